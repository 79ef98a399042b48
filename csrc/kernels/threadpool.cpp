// SPDX-License-Identifier: MIT
// Persistent worker pool. One job at a time: the caller publishes (fn, ctx, n_tasks) under a new
// generation number. The tasks are dealt out in contiguous ranges, one per participant (the caller is
// participant 0, worker i is i + 1), so that consecutive jobs cut the same way give the same rows of the
// same arrays to the same thread and data stays in that core's caches (crossing between the two vCPUs
// of a VM can cost a quarter of a microsecond per cache line). A participant that has finished its range
// takes tasks from the others'. Each range is claimed through an atomic counter that carries the
// generation in its high bits, so a late worker can never claim a task of a job that has already
// finished. The caller returns once every task has completed. Which thread runs a task never changes a
// result: that depends only on the task index.
// Workers spin briefly after each job, then sleep on a condition variable.
// The pool object is never destroyed (threads may still be alive during static destruction), and a
// child of fork() starts with a fresh, empty pool.
#include "kernels/threadpool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define DP_HAVE_PTHREAD_ATFORK 1
#endif

namespace deltaprop::kernels {
namespace {

constexpr std::uint64_t kIndexMask = 0xffffffffu;
constexpr auto kSpin = std::chrono::microseconds(1000);  // workers spin this long before sleeping

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

int default_threads() {
    if (const char* s = std::getenv("DELTAPROP_NUM_THREADS")) {
        char* end = nullptr;
        const long n = std::strtol(s, &end, 10);
        if (end != s && n > 0) return n > 1024 ? 1024 : int(n);
    }
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    const unsigned h = std::thread::hardware_concurrency();
    return h ? int(h) : 1;
}

thread_local bool t_in_worker = false;
std::atomic<int> g_desired{0};  // 0: not yet resolved

struct alignas(64) Slot {
    std::atomic<std::uint64_t> next{0};  // (generation << 32) | next task index of this range
};

struct Pool {
    std::atomic<bool> busy{false};
    std::atomic<TaskFn> fn{nullptr};
    std::atomic<void*> ctx{nullptr};
    std::atomic<std::size_t> n_tasks{0};
    std::unique_ptr<Slot[]> slots;  // [participants], replaced only while no worker runs
    std::size_t participants = 1;
    std::atomic<std::size_t> done{0};
    std::atomic<std::uint32_t> gen{0};
    std::atomic<bool> stop{false};
    std::atomic<int> sleeping{0};
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::thread> workers;

    // Participant p's range of n tasks: [p n / P, (p + 1) n / P).
    std::size_t range_begin(std::size_t p, std::size_t n) const { return p * n / participants; }

    // Claims and runs tasks of generation g until none is left: participant p's own range first, then
    // the others' in turn.
    void work(std::size_t p, std::uint32_t g, TaskFn f, void* c, std::size_t n) {
        for (std::size_t k = 0; k < participants; ++k) {
            const std::size_t q = (p + k) % participants;
            const std::size_t end = range_begin(q + 1, n);
            std::atomic<std::uint64_t>& next = slots[q].next;
            std::uint64_t v = next.load(std::memory_order_acquire);
            for (;;) {
                if (std::uint32_t(v >> 32) != g) return;  // the job is over
                if ((v & kIndexMask) >= end) break;
                if (next.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
                    f(c, std::size_t(v & kIndexMask));
                    done.fetch_add(1, std::memory_order_release);
                    v = next.load(std::memory_order_acquire);
                }
            }
        }
    }

    // `seen`: the generation current when the worker was created, so no later one is missed.
    void worker_main(std::size_t p, std::uint32_t seen) {
        t_in_worker = true;
        for (;;) {
            const auto t0 = std::chrono::steady_clock::now();
            for (unsigned spins = 1;; ++spins) {
                if (gen.load(std::memory_order_acquire) != seen) break;
                if ((spins & 63) == 0 && std::chrono::steady_clock::now() - t0 > kSpin) {
                    std::unique_lock<std::mutex> lk(m);
                    sleeping.fetch_add(1);
                    cv.wait(lk, [&] { return gen.load() != seen; });
                    sleeping.fetch_sub(1);
                    break;
                }
                cpu_relax();
            }
            seen = gen.load(std::memory_order_acquire);
            if (stop.load(std::memory_order_acquire)) return;
            work(p, seen, fn.load(std::memory_order_acquire), ctx.load(std::memory_order_acquire),
                 n_tasks.load(std::memory_order_acquire));
        }
    }

    void publish_generation() {
        gen.fetch_add(1);  // seq_cst: pairs with the sleeping counter (no lost wake-up)
        if (sleeping.load() > 0) {
            { std::lock_guard<std::mutex> lk(m); }
            cv.notify_all();
        }
    }

    // Called with `busy` held.
    void resize(std::size_t n_workers) {
        if (!workers.empty()) {
            stop.store(true, std::memory_order_release);
            publish_generation();
            for (auto& t : workers) t.join();
            workers.clear();
            stop.store(false, std::memory_order_release);
        }
        participants = 1;
        try {
            slots.reset(new Slot[n_workers + 1]);
            workers.reserve(n_workers);
            const std::uint32_t g = gen.load();
            for (std::size_t i = 0; i < n_workers; ++i)
                workers.emplace_back([this, g, i] { worker_main(i + 1, g); });
        } catch (...) {
            // Fewer threads than asked (allocation or thread creation failed): keep those that started.
        }
        if (!slots) workers.clear();  // no thread was started
        participants = workers.size() + 1;
    }

    // Called with `busy` held.
    void run(std::size_t n, TaskFn f, void* c) {
        // Move `next` to the new generation BEFORE changing the job fields: a worker still in the old
        // generation that reads a new field then fails its claim (the claim checks the generation).
        const std::uint32_t g = gen.load(std::memory_order_relaxed) + 1;
        for (std::size_t q = 0; q < participants; ++q)
            slots[q].next.store((std::uint64_t(g) << 32) | range_begin(q, n), std::memory_order_seq_cst);
        done.store(0, std::memory_order_relaxed);
        fn.store(f, std::memory_order_release);
        ctx.store(c, std::memory_order_release);
        n_tasks.store(n, std::memory_order_release);
        publish_generation();
        work(0, g, f, c, n);
        for (unsigned spins = 1; done.load(std::memory_order_acquire) != n; ++spins) {
            if (spins < 4096) cpu_relax();
            else std::this_thread::yield();
        }
    }
};

std::atomic<Pool*> g_pool{nullptr};

#if DP_HAVE_PTHREAD_ATFORK
// In the child only the forking thread exists: abandon (leak) the parent's pool, whose mutex may be held
// by a thread that no longer exists, and let the next parallel_for create a fresh one.
void after_fork_in_child() {
    g_pool.store(nullptr);
    t_in_worker = false;
}
#endif

Pool* get_pool() {
    Pool* p = g_pool.load(std::memory_order_acquire);
    if (p) return p;
    static const bool registered = [] {
#if DP_HAVE_PTHREAD_ATFORK
        pthread_atfork(nullptr, nullptr, after_fork_in_child);
#endif
        return true;
    }();
    (void)registered;
    Pool* fresh = new (std::nothrow) Pool;  // intentionally never deleted
    if (!fresh) return nullptr;
    if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) return fresh;
    delete fresh;  // another thread won; no thread was started on ours
    return p;
}

void run_serial(std::size_t n_tasks, TaskFn fn, void* ctx) {
    for (std::size_t i = 0; i < n_tasks; ++i) fn(ctx, i);
}

}  // namespace

void set_num_threads(int n) { g_desired.store(n > 0 ? (n > 1024 ? 1024 : n) : default_threads()); }

int num_threads() {
    int n = g_desired.load(std::memory_order_relaxed);
    if (n == 0) {
        int expected = 0;
        n = default_threads();
        if (!g_desired.compare_exchange_strong(expected, n)) n = expected;
    }
    return n;
}

void parallel_for(std::size_t n_tasks, TaskFn fn, void* ctx) {
    if (n_tasks == 0) return;
    const int want = num_threads();
    if (n_tasks == 1 || want <= 1 || t_in_worker || n_tasks > kIndexMask) {
        run_serial(n_tasks, fn, ctx);
        return;
    }
    Pool* p = get_pool();
    bool expected = false;
    if (!p || !p->busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
        run_serial(n_tasks, fn, ctx);
        return;
    }
    if (p->workers.size() != std::size_t(want - 1)) p->resize(std::size_t(want - 1));
    if (p->workers.empty()) run_serial(n_tasks, fn, ctx);
    else p->run(n_tasks, fn, ctx);
    p->busy.store(false, std::memory_order_release);
}

}  // namespace deltaprop::kernels
