// SPDX-License-Identifier: MIT
// Persistent worker pool. One job at a time: the caller publishes (fn, n_tasks, and the functor itself
// when it is small, else a pointer to it) in one cache line under a new generation number. The tasks are
// dealt out in contiguous ranges, one per participant (the caller is participant 0, worker i is i + 1),
// so that consecutive jobs cut the same way give the same rows of the same arrays to the same thread and
// data stays in that core's caches. Each range is claimed through an atomic counter in its own cache line
// that carries the generation in its high bits, so a late worker can never claim a task of a job that
// has already finished; the range's owner moves it to the new generation with its first claim. A
// participant that has finished its range waits a moment for the others, then takes tasks from their
// ranges. The caller returns once every task has completed. Which thread runs a task never changes a
// result: that depends only on the task index.
// Cross-core transfers dominate small jobs (each shared cache line written by one core and read by
// another crosses once; benchmarks/vcpu_pingpong.cpp times a crossing), so a job touches as few shared
// lines as it can: the job line (caller to workers), the owner's own range
// counter, the completion counter (workers to caller), and whatever the tasks themselves share.
// Workers spin briefly after each job, then sleep on a condition variable.
// The pool object is never destroyed (threads may still be alive during static destruction), and a
// child of fork() starts with a fresh, empty pool.
#include "kernels/threadpool.h"
#include "kernels/tuning.h"

#include <atomic>
#include <cassert>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <exception>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
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
// (tuning.h: what each trades, and the benchmark that re-derives it)
constexpr auto kSpin = std::chrono::microseconds(tuning::kSpinMicroseconds);  // workers spin, then sleep
constexpr auto kStealDelay = std::chrono::microseconds(tuning::kStealDelayMicroseconds);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

constexpr int kMaxThreads = 1024;

// DELTAPROP_NUM_THREADS: a positive integer, at most kMaxThreads (larger: kMaxThreads); 0 if unset or not
// a positive integer (then the CPU count is used).
int env_threads(bool* invalid, bool* clamped) {
    *invalid = *clamped = false;
    const char* s = std::getenv("DELTAPROP_NUM_THREADS");
    if (!s || !*s) return 0;
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(s, &end, 10);
    while (end && (*end == ' ' || *end == '\t' || *end == '\n')) ++end;
    if (end == s || *end != '\0' || n <= 0 || errno == ERANGE) {
        *invalid = true;
        return 0;
    }
    if (n > kMaxThreads) {
        *clamped = true;
        return kMaxThreads;
    }
    return int(n);
}

int default_threads() {
    bool invalid, clamped;
    if (const int n = env_threads(&invalid, &clamped)) return n;
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

// The job, in one cache line that only the caller writes: a worker that sees a new generation finds
// everything it needs in the same line. `seq` is a sequence lock: odd while the caller rewrites the
// fields, even (twice the generation, mod 2^32) once they are complete.
struct alignas(64) Job {
    std::atomic<std::uint32_t> seq{0};
    // bits 0-29: the task count; bit 30: the generation's top bit (seq keeps the others); bit 31: the
    // functor is in `payload` (else a pointer to it is in payload[0])
    std::atomic<std::uint32_t> n_tasks{0};
    std::atomic<TaskFn> fn{nullptr};
    std::atomic<std::uint64_t> payload[kInlineBytes / 8];
};
static_assert(sizeof(Job) == 64, "the job must fit one cache line");
constexpr std::uint32_t kInlineFlag = 0x80000000u, kTopBit = 0x40000000u;

struct alignas(64) Counter {
    std::atomic<std::size_t> done{0};  // tasks of the current job completed
    std::atomic<int> sleeping{0};      // workers waiting on the condition variable
};

struct Pool {
    Job job;
    Counter c;
    alignas(64) std::atomic<bool> busy{false};
    // The first exception thrown by a task of the current job (written before its task counts as done).
    alignas(64) std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::uint32_t gen = 0;                  // the caller's generation counter (busy held)
    std::vector<std::uint32_t> fresh;       // [participants]: the last generation slot q was current
    // read by the workers, written only while none runs
    alignas(64) std::unique_ptr<Slot[]> slots;  // [participants]
    std::size_t participants = 1;
    std::atomic<bool> stop{false};
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::thread> workers;

    // Participant p's range of n tasks: [p n / P, (p + 1) n / P).
    std::size_t range_begin(std::size_t p, std::size_t n) const { return p * n / participants; }

    // Claims and runs tasks of generation g until none is left: participant p's own range first, then,
    // unless the others finish theirs within kStealDelay, the others' ranges in turn (not at once: each
    // look at another participant's slot pulls a cache line that its owner writes next).
    // A slot of an older generation is a range nobody has started in this job; a newer one means the job
    // is over.
    void work(std::size_t p, std::uint32_t g, TaskFn f, void* ctx, std::size_t n) {
        for (std::size_t k = 0; k < participants; ++k) {
            if (k == 1 && !others_finish(n)) return;
            const std::size_t q = (p + k) % participants;
            const std::size_t begin = range_begin(q, n), end = range_begin(q + 1, n);
            if (begin == end) continue;
            std::atomic<std::uint64_t>& next = slots[q].next;
            std::uint64_t v = next.load(std::memory_order_acquire);
            for (;;) {
                const auto age = std::int32_t(std::uint32_t(v >> 32) - g);
                if (age > 0) return;  // a later job: ours is over
                const std::size_t i = age < 0 ? begin : std::size_t(v & kIndexMask);
                if (i >= end) break;
                if (next.compare_exchange_weak(v, (std::uint64_t(g) << 32) | (i + 1),
                                               std::memory_order_acq_rel, std::memory_order_acquire)) {
                    run_task(f, ctx, i);
                    c.done.fetch_add(1, std::memory_order_release);
                    v = next.load(std::memory_order_acquire);
                }
            }
        }
    }

    // A task must not throw, but if one does (std::bad_alloc, say), the exception must neither reach a
    // worker's stack (std::terminate) nor leave the job unfinished: the first one of the job is kept
    // for the caller, which rethrows it once every task has completed; later ones are dropped.
    void run_task(TaskFn f, void* ctx, std::size_t i) noexcept {
        try {
            f(ctx, i);
        } catch (...) {
            if (!failed.exchange(true, std::memory_order_acq_rel)) error = std::current_exception();
        }
    }

    // Waits up to kStealDelay for all n tasks to complete; false if they have (nothing left to take).
    bool others_finish(std::size_t n) {
        const auto t0 = std::chrono::steady_clock::now();
        for (unsigned spins = 1;; ++spins) {
            if (c.done.load(std::memory_order_acquire) == n) return false;
            if ((spins & 15) == 0 && std::chrono::steady_clock::now() - t0 > kStealDelay) return true;
            cpu_relax();
        }
    }

    // `seen`: the generation current when the worker was created, so no later one is missed.
    void worker_main(std::size_t p, std::uint32_t seen) {
        t_in_worker = true;
        alignas(8) unsigned char local[kInlineBytes];
        for (;;) {
            auto t0 = std::chrono::steady_clock::now();
            std::uint32_t s = 0;
            for (unsigned spins = 1;; ++spins) {
                s = job.seq.load(std::memory_order_acquire);
                if (s != 2 * seen && !(s & 1)) {
                    // read the job, then check that the caller did not start rewriting it meanwhile
                    const std::uint32_t nt = job.n_tasks.load(std::memory_order_relaxed);
                    const TaskFn f = job.fn.load(std::memory_order_relaxed);
                    std::uint64_t words[kInlineBytes / 8];
                    for (std::size_t w = 0; w < kInlineBytes / 8; ++w)
                        words[w] = job.payload[w].load(std::memory_order_relaxed);
                    std::atomic_thread_fence(std::memory_order_acquire);
                    if (job.seq.load(std::memory_order_relaxed) != s) continue;
                    seen = (s >> 1) | ((nt & kTopBit) << 1);
                    if (stop.load(std::memory_order_acquire)) return;
                    void* ctx;
                    if (nt & kInlineFlag) {
                        std::memcpy(local, words, kInlineBytes);
                        ctx = local;
                    } else {
                        ctx = reinterpret_cast<void*>(std::uintptr_t(words[0]));
                    }
                    work(p, seen, f, ctx, nt & ~(kInlineFlag | kTopBit));
                    break;
                }
                if ((spins & 63) == 0 && std::chrono::steady_clock::now() - t0 > kSpin) {
                    std::unique_lock<std::mutex> lk(m);
                    c.sleeping.fetch_add(1);
                    cv.wait(lk, [&] { return job.seq.load() != 2 * seen; });
                    c.sleeping.fetch_sub(1);
                    t0 = std::chrono::steady_clock::now();
                    spins = 0;
                    continue;
                }
                cpu_relax();
            }
        }
    }

    // Publishes a new generation (busy held): the job fields under the sequence lock, then wakes any
    // sleeping worker. Returns the generation.
    std::uint32_t publish(std::uint32_t nt, TaskFn f, const void* ctx, std::size_t bytes) {
        const std::uint32_t g = ++gen;
        job.seq.store(2 * g - 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
        job.n_tasks.store(nt | (bytes ? kInlineFlag : 0u) | ((g >> 1) & kTopBit), std::memory_order_relaxed);
        job.fn.store(f, std::memory_order_relaxed);
        std::uint64_t words[kInlineBytes / 8] = {};
        if (bytes) std::memcpy(words, ctx, bytes);
        else words[0] = std::uint64_t(reinterpret_cast<std::uintptr_t>(ctx));
        for (std::size_t w = 0; w < kInlineBytes / 8; ++w)
            job.payload[w].store(words[w], std::memory_order_relaxed);
        job.seq.store(2 * g);  // seq_cst: pairs with the sleeping counter (no lost wake-up)
        if (c.sleeping.load() > 0) {
            { std::lock_guard<std::mutex> lk(m); }
            cv.notify_all();
        }
        return g;
    }

    // Called with `busy` held.
    void resize(std::size_t n_workers) {
        if (!workers.empty()) {
            stop.store(true, std::memory_order_release);
            publish(0, nullptr, nullptr, 0);
            for (auto& t : workers) t.join();
            workers.clear();
            stop.store(false, std::memory_order_release);
        }
        participants = 1;
        try {
            fresh.assign(n_workers + 1, gen);
            slots.reset(new Slot[n_workers + 1]);
            for (std::size_t q = 0; q <= n_workers; ++q)
                slots[q].next.store(std::uint64_t(gen) << 32, std::memory_order_relaxed);
            workers.reserve(n_workers);
            for (std::size_t i = 0; i < n_workers; ++i)
                workers.emplace_back([this, g = gen, i] { worker_main(i + 1, g); });
        } catch (...) {
            // Fewer threads than asked (allocation or thread creation failed): keep those that started.
        }
        if (!slots || fresh.size() != n_workers + 1) workers.clear();  // no thread was started
        participants = workers.size() + 1;
    }

    // Called with `busy` held. bytes > 0: ctx is a trivially copyable functor of that many bytes, copied
    // into the job line for the workers.
    std::uint32_t start(std::size_t n, TaskFn f, void* ctx, std::size_t bytes) {
        // Slots are brought to the new generation by whoever claims from them first (their owner, as a
        // rule), not here: writing them would pull every worker's slot line to this core. A slot whose
        // range has been empty for 2^30 jobs is refreshed, so that generation ages never wrap.
        const std::uint32_t g = gen + 1;
        for (std::size_t q = 0; q < participants; ++q) {
            if (range_begin(q, n) != range_begin(q + 1, n)) {
                fresh[q] = g;
            } else if (std::uint32_t(g - fresh[q]) >= (1u << 30)) {
                slots[q].next.store(std::uint64_t(g) << 32, std::memory_order_relaxed);
                fresh[q] = g;
            }
        }
        c.done.store(0, std::memory_order_relaxed);
        return publish(std::uint32_t(n), f, ctx, bytes);
    }

    // Called with `busy` held, after start: the caller's share, then the wait for the others'.
    void finish(std::uint32_t g, std::size_t n, TaskFn f, void* ctx) {
        work(0, g, f, ctx, n);
        for (unsigned spins = 1; c.done.load(std::memory_order_acquire) != n; ++spins) {
            if (spins < tuning::kCallerPauses) cpu_relax();
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

// Hands the job to the workers (busy taken, the job published) and returns the pool, or nullptr if the
// job is to run serially on this thread.
Pool* start_parallel(std::size_t n_tasks, TaskFn fn, void* ctx, std::size_t bytes, std::uint32_t* g) {
    if (n_tasks <= 1 || t_in_worker || n_tasks >= kTopBit) return nullptr;
    const int want = num_threads();
    if (want <= 1) return nullptr;
    Pool* p = get_pool();
    bool expected = false;
    if (!p || !p->busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) return nullptr;
    if (p->workers.size() != std::size_t(want - 1)) p->resize(std::size_t(want - 1));
    if (p->workers.empty()) {
        p->busy.store(false, std::memory_order_release);
        return nullptr;
    }
    *g = p->start(n_tasks, fn, ctx, bytes);
    return p;
}

void finish_parallel(Pool* p, std::uint32_t g, std::size_t n_tasks, TaskFn fn, void* ctx) {
    if (!p) return run_serial(n_tasks, fn, ctx);
    p->finish(g, n_tasks, fn, ctx);
    std::exception_ptr error;
    if (p->failed.load(std::memory_order_acquire)) {
        error = std::move(p->error);
        p->error = nullptr;
        p->failed.store(false, std::memory_order_relaxed);
    }
    p->busy.store(false, std::memory_order_release);
    if (error) std::rethrow_exception(error);
}

void run_parallel(std::size_t n_tasks, TaskFn fn, void* ctx, std::size_t bytes) {
    assert(n_tasks == 0 || fn);
    assert(bytes <= kInlineBytes);
    std::uint32_t g = 0;
    Pool* p = start_parallel(n_tasks, fn, ctx, bytes, &g);
    finish_parallel(p, g, n_tasks, fn, ctx);
}

}  // namespace

void set_num_threads(int n) {
    g_desired.store(n > 0 ? (n > kMaxThreads ? kMaxThreads : n) : default_threads());
}

std::string num_threads_env_warning() {
    bool invalid, clamped;
    env_threads(&invalid, &clamped);
    const char* s = std::getenv("DELTAPROP_NUM_THREADS");
    if (invalid)
        return std::string("DELTAPROP_NUM_THREADS=\"") + s +
               "\" is not a positive integer: ignored, one thread per CPU this process may use";
    if (clamped)
        return std::string("DELTAPROP_NUM_THREADS=") + s + ": more than " + std::to_string(kMaxThreads) +
               " threads, " + std::to_string(kMaxThreads) + " are used";
    return std::string();
}

int num_threads() {
    int n = g_desired.load(std::memory_order_relaxed);
    if (n == 0) {
        int expected = 0;
        n = default_threads();
        if (!g_desired.compare_exchange_strong(expected, n)) n = expected;
    }
    return n;
}

void parallel_for(std::size_t n_tasks, TaskFn fn, void* ctx) { run_parallel(n_tasks, fn, ctx, 0); }

void set_generation_for_testing(std::uint32_t g) {
    Pool* p = get_pool();
    bool expected = false;
    while (!p->busy.compare_exchange_weak(expected, true, std::memory_order_acquire)) {
        expected = false;
        std::this_thread::yield();
    }
    // every range counter and the caller's record of them at g, as after a resize
    p->gen = g;
    for (std::size_t q = 0; q < p->participants; ++q) {
        p->slots[q].next.store(std::uint64_t(g) << 32, std::memory_order_relaxed);
        p->fresh[q] = g;
    }
    p->busy.store(false, std::memory_order_release);
}

Pending parallel_begin(std::size_t n_tasks, TaskFn fn, void* ctx, std::size_t bytes) {
    Pending job{n_tasks, fn, ctx, nullptr, 0};
    job.pool = start_parallel(n_tasks, fn, ctx, bytes <= kInlineBytes ? bytes : 0, &job.gen);
    return job;
}

void parallel_end(const Pending& job) {
    finish_parallel(static_cast<Pool*>(job.pool), job.gen, job.n_tasks, job.fn, job.ctx);
}

void parallel_for_inline(std::size_t n_tasks, TaskFn fn, void* ctx, std::size_t bytes) {
    run_parallel(n_tasks, fn, ctx, bytes <= kInlineBytes ? bytes : 0);
}

}  // namespace deltaprop::kernels
