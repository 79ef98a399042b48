// SPDX-License-Identifier: MIT
// The worker pool: every task runs exactly once; nested and concurrent calls run (serially) instead of
// deadlocking; thread counts can change between calls; a child of fork() can use the pool; a task that
// throws reaches the caller, not std::terminate, and leaves the pool usable.
#include <atomic>
#include <chrono>
#include <new>
#include <stdexcept>
#include <cstdio>
#include <thread>
#include <vector>

#include "kernels/threadpool.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/wait.h>
#include <unistd.h>
#define DP_TEST_FORK 1
#endif

namespace k = deltaprop::kernels;

static int g_failures = 0;
#define EXPECT(cond, ...)                      \
    do {                                       \
        if (!(cond)) {                         \
            ++g_failures;                      \
            std::printf("FAIL: " __VA_ARGS__); \
            std::printf("\n");                 \
        }                                      \
    } while (0)

// Runs n tasks and checks each ran exactly once.
static bool exactly_once(std::size_t n) {
    std::vector<std::atomic<int>> hits(n);
    for (auto& h : hits) h.store(0);
    k::parallel_for(n, [&](std::size_t i) { hits[i].fetch_add(1); });
    for (auto& h : hits)
        if (h.load() != 1) return false;
    return true;
}

int main() {
    EXPECT(k::num_threads() >= 1, "default thread count %d", k::num_threads());

    for (int threads : {1, 2, 3, 4, 0}) {
        k::set_num_threads(threads);
        for (std::size_t n : {0u, 1u, 2u, 3u, 7u, 64u, 1000u}) {
            for (int rep = 0; rep < 20; ++rep)
                EXPECT(exactly_once(n), "threads=%d n=%zu: a task did not run exactly once", threads, n);
        }
    }

    // Small functors travel with the job (copied into the line that announces it): by-value captures of
    // 8 to 48 bytes, and a 56-byte one that is passed by pointer, reach every task intact; many short
    // jobs in a row, with ranges that are empty for some participants (n < threads).
    for (int threads : {2, 3}) {
        k::set_num_threads(threads);
        std::vector<long> out(8);
        long bad = 0;
        for (long rep = 0; rep < 40000; ++rep) {
            const std::size_t n = 1 + std::size_t(rep % 5);
            long* o = out.data();
            const long a = rep, b = 3 * rep, c = -rep, d = rep * rep, e = rep % 11, f = rep ^ 5;
            switch (rep % 3) {
                case 0:
                    k::parallel_for(n, [o, a](std::size_t i) { o[i] = a + long(i); });
                    for (std::size_t i = 0; i < n; ++i) bad += out[i] != a + long(i);
                    break;
                case 1:
                    k::parallel_for(n, [o, a, b, c, d, e](std::size_t i) { o[i] = a + b + c + d * e + long(i); });
                    for (std::size_t i = 0; i < n; ++i) bad += out[i] != a + b + c + d * e + long(i);
                    break;
                default:
                    k::parallel_for(n, [o, a, b, c, d, e, f](std::size_t i) { o[i] = a + b + c + d + e + f + long(i); });
                    for (std::size_t i = 0; i < n; ++i) bad += out[i] != a + b + c + d + e + f + long(i);
            }
            if (rep % 1000 == 0) bad += !exactly_once(std::size_t(rep % 7));
        }
        EXPECT(bad == 0, "threads=%d: %ld wrong results from small functors", threads, bad);
    }

    // The job counter wraps around (2^31: its top bit travels outside the sequence word; 2^32: back to 0)
    // without losing or repeating a task.
    for (int threads : {2, 3}) {
        k::set_num_threads(threads);
        EXPECT(exactly_once(5), "threads=%d before the wrap test", threads);
        for (std::uint32_t start : {0x7ffffff0u, 0xfffffff0u, 0x3ffffff8u}) {
            k::set_generation_for_testing(start);
            bool ok = true;
            for (int rep = 0; rep < 64; ++rep) ok = ok && exactly_once(std::size_t(1 + rep % 7));
            EXPECT(ok, "threads=%d: a task did not run exactly once across generation %#x", threads, start + 32);
            // and the workers still take part (a worker that lost track of the generation would leave
            // every task to the caller): jobs of 8 slow tasks until a worker runs one, for up to 2 s
            const auto caller = std::this_thread::get_id();
            const auto t0 = std::chrono::steady_clock::now();
            std::atomic<int> by_workers{0};
            while (by_workers.load() == 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2))
                k::parallel_for(8, [&](std::size_t) {
                    volatile long x = 0;
                    for (long j = 0; j < 20000; ++j) x = x + j;
                    if (std::this_thread::get_id() != caller) by_workers.fetch_add(1);
                });
            EXPECT(by_workers.load() > 0, "threads=%d: no worker ran a task after generation %#x", threads, start);
        }
    }

    // Nested: a task calling parallel_for runs the inner loop serially on its own thread.
    k::set_num_threads(3);
    {
        std::atomic<int> inner{0};
        k::parallel_for(8, [&](std::size_t) {
            k::parallel_for(16, [&](std::size_t) { inner.fetch_add(1); });
        });
        EXPECT(inner.load() == 8 * 16, "nested: %d inner tasks instead of 128", inner.load());
    }

    // Concurrent callers: one owns the pool, the others run serially; all complete.
    {
        std::atomic<long> total{0};
        std::vector<std::thread> callers;
        for (int c = 0; c < 4; ++c)
            callers.emplace_back([&] {
                for (int rep = 0; rep < 300; ++rep) {
                    std::atomic<int> local{0};
                    k::parallel_for(37, [&](std::size_t) { local.fetch_add(1); });
                    if (local.load() != 37) total.fetch_add(1000000);
                    total.fetch_add(local.load());
                }
            });
        for (auto& t : callers) t.join();
        EXPECT(total.load() == 4L * 300 * 37, "concurrent: total %ld", total.load());
    }

    // Long and short tasks mixed, with sleeping workers in between.
    {
        std::atomic<long> sum{0};
        for (int rep = 0; rep < 5; ++rep) {
            k::parallel_for(10, [&](std::size_t i) {
                volatile long s = 0;
                for (long j = 0; j < long(i) * 20000; ++j) s = s + j;
                sum.fetch_add(long(i));
            });
            std::this_thread::sleep_for(std::chrono::milliseconds(rep));
        }
        EXPECT(sum.load() == 5 * 45, "mixed: sum %ld", sum.load());
    }

#if DP_TEST_FORK
    // The child of a fork has no workers; its pool must start afresh rather than wait on dead threads.
    {
        const pid_t pid = fork();
        if (pid == 0) {
            alarm(20);  // a deadlock kills the child, which the parent reports
            const bool ok = exactly_once(100) && exactly_once(5);
            _exit(ok ? 0 : 3);
        }
        int status = 0;
        EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
                   WEXITSTATUS(status) == 0,
               "fork child failed (status %d)", status);
        EXPECT(exactly_once(100), "parent after fork");
    }
#endif

    // A throwing task (an allocation failing inside a task): with a pool, every other task still runs
    // and the first exception is rethrown on the caller after the join; serially (one thread) it
    // leaves at once. Either way the pool runs the next job normally.
    for (int threads : {1, 2, 3}) {
        k::set_num_threads(threads);
        for (int rep = 0; rep < 50; ++rep) {
            const std::size_t n = 64, bad = std::size_t(rep) % n, bad2 = (bad + 17) % n;
            std::vector<std::atomic<int>> hits(n);
            for (auto& h : hits) h.store(0);
            bool caught = false;
            try {
                k::parallel_for(n, [&](std::size_t i) {
                    hits[i].fetch_add(1);
                    if (i == bad) throw std::bad_alloc();
                    if (i == bad2 && rep % 2) throw std::runtime_error("second");
                });
            } catch (const std::bad_alloc&) {
                caught = true;
            } catch (const std::runtime_error&) {
                caught = threads > 1 || bad2 < bad;  // serially the first thrown wins
            }
            EXPECT(caught, "threads=%d rep=%d: the task's exception did not reach the caller", threads, rep);
            std::size_t ran = 0;
            for (auto& h : hits) ran += std::size_t(h.load());
            if (threads > 1) EXPECT(ran == n, "threads=%d rep=%d: %zu of %zu tasks ran", threads, rep, ran, n);
            EXPECT(exactly_once(100), "threads=%d rep=%d: the pool after a throwing task", threads, rep);
        }
        // through parallel_begin / parallel_end
        auto task = [](std::size_t i) {
            if (i == 3) throw std::bad_alloc();
        };
        bool caught = false;
        const k::Pending job = k::parallel_begin(8, task);
        try {
            k::parallel_end(job);
        } catch (const std::bad_alloc&) {
            caught = true;
        }
        EXPECT(caught, "threads=%d: parallel_end did not rethrow", threads);
        EXPECT(exactly_once(10), "threads=%d: the pool after parallel_end threw", threads);
    }

    k::set_num_threads(0);
    EXPECT(exactly_once(50), "default threads");
    if (g_failures) std::printf("%d failure(s)\n", g_failures);
    else std::printf("ok\n");
    return g_failures ? 1 : 0;
}
