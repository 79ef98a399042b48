// SPDX-License-Identifier: MIT
// Round trip of one cache line between two CPUs (built by hand, not by CMake; Linux):
//   g++ -std=c++17 -O2 benchmarks/vcpu_pingpong.cpp -pthread -o vcpu_pingpong
//   ./vcpu_pingpong [cpu_a cpu_b]     (default 0 1)
// Two threads pinned to the two CPUs bounce one atomic; prints the round trip, ten times, 0.3 s apart.
// On a VM the figure tells whether the two vCPUs currently sit on neighbouring cores (benchmarks/README).
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int main(int argc, char** argv) {
    const int cpu_a = argc > 2 ? std::atoi(argv[1]) : 0, cpu_b = argc > 2 ? std::atoi(argv[2]) : 1;
    alignas(64) static std::atomic<long> flag{0};
    constexpr long kTrips = 200000;
    for (int rep = 0; rep < 10; ++rep) {
        flag.store(0);
        std::thread other([&] {
            pin(cpu_b);
            for (long i = 0; i < kTrips; ++i) {
                while (flag.load(std::memory_order_acquire) != 2 * i + 1) {
                }
                flag.store(2 * i + 2, std::memory_order_release);
            }
        });
        pin(cpu_a);
        const auto t0 = std::chrono::steady_clock::now();
        for (long i = 0; i < kTrips; ++i) {
            flag.store(2 * i + 1, std::memory_order_release);
            while (flag.load(std::memory_order_acquire) != 2 * i + 2) {
            }
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        other.join();
        std::printf("cpu %d <-> cpu %d: round trip %.0f ns\n", cpu_a, cpu_b, s / kTrips * 1e9);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
}
