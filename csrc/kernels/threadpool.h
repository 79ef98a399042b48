// SPDX-License-Identifier: MIT
#pragma once
// Process-wide persistent worker pool. Work is split into tasks whose boundaries do not depend on the
// thread count, so results are bitwise identical with any number of threads.
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

namespace deltaprop::kernels {

// n >= 1, or 0 for the default: DELTAPROP_NUM_THREADS, else the CPUs this process may run on.
void set_num_threads(int n);
int num_threads();

// DELTAPROP_NUM_THREADS not a positive integer (ignored) or above the limit (clamped): a message naming
// the value and what is used instead; else empty. (kernels::env_warning reports it.)
std::string num_threads_env_warning();

// Calls fn(ctx, i) for every i in [0, n_tasks), spread over the pool; returns when all are done.
// Tasks must not throw. If one does anyway, the exception is caught on the thread that ran it, the
// other tasks still run, and the first exception is rethrown on the caller once all have completed
// (run serially, the exception leaves at once and later tasks do not run).
// Thread p of P (the caller is 0) starts on the tasks [p n / P, (p + 1) n / P), so the same task index
// lands on the same thread from call to call (its data stays in that core's caches); idle threads
// then take tasks from the others' ranges.
// Runs everything on the calling thread when n_tasks == 1, the pool has one thread, or the pool is busy
// (called from a worker or from another thread concurrently): it never deadlocks and never allocates.
using TaskFn = void (*)(void* ctx, std::size_t i);
void parallel_for(std::size_t n_tasks, TaskFn fn, void* ctx);

// The same for a trivially copyable functor of at most kInlineBytes bytes at ctx: the workers run
// fn on a copy of it carried to them with the job, so a task finds what it needs in the cache line
// that announced the job (a lambda capturing by value reads no memory of the caller's).
constexpr std::size_t kInlineBytes = 48;
void parallel_for_inline(std::size_t n_tasks, TaskFn fn, void* ctx, std::size_t bytes);

// parallel_for_inline in two parts: parallel_begin hands the job to the workers and returns at once,
// so that the caller can do something else while they start; parallel_end runs the caller's share of
// the tasks and returns when all are done. Every begin must be followed by exactly one end, on the same
// thread, and ctx must stay valid until then. In between, this thread's other parallel_for calls run
// serially (the pool is taken).
struct Pending {
    std::size_t n_tasks;
    TaskFn fn;
    void* ctx;
    void* pool;  // null: parallel_end runs the tasks on the calling thread
    std::uint32_t gen;
};
Pending parallel_begin(std::size_t n_tasks, TaskFn fn, void* ctx, std::size_t bytes);
void parallel_end(const Pending& job);

// Tests only: moves the pool's job counter to g (as if g jobs had run), to exercise its wrap-around.
void set_generation_for_testing(std::uint32_t g);

// Convenience for lambdas: parallel_for(n, [&](std::size_t i) { ... }). Small lambdas travel with the
// job (parallel_for_inline).
template <class F>
void parallel_for(std::size_t n_tasks, F&& f) {
    if (n_tasks == 1) {  // nothing to hand out (batch-1 training calls this ~10 times a step)
        f(std::size_t(0));
        return;
    }
    using G = std::remove_reference_t<F>;
    const TaskFn call = [](void* ctx, std::size_t i) { (*static_cast<G*>(ctx))(i); };
    void* ctx = const_cast<void*>(static_cast<const void*>(&f));
    if constexpr (std::is_trivially_copyable_v<G> && sizeof(G) <= kInlineBytes && alignof(G) <= 8)
        parallel_for_inline(n_tasks, call, ctx, sizeof(G));
    else
        parallel_for(n_tasks, call, ctx);
}

// parallel_begin for a lambda, which must outlive parallel_end.
template <class F>
Pending parallel_begin(std::size_t n_tasks, F& f) {
    using G = std::remove_reference_t<F>;
    const TaskFn call = [](void* ctx, std::size_t i) { (*static_cast<G*>(ctx))(i); };
    void* ctx = const_cast<void*>(static_cast<const void*>(&f));
    constexpr bool small = std::is_trivially_copyable_v<G> && sizeof(G) <= kInlineBytes && alignof(G) <= 8;
    return parallel_begin(n_tasks, call, ctx, small ? sizeof(G) : 0);
}

}  // namespace deltaprop::kernels
