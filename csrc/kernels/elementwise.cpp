// SPDX-License-Identifier: MIT
// Portable build of the elementwise kernels, and the dispatch to the best build for this CPU.
#include <algorithm>
#include <cmath>
#include <cstddef>

namespace deltaprop::kernels::portable {
template <class T>
void exp_inplace(T* x, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}
inline void log1p_unit_inplace(double* x, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) x[i] = std::log1p(x[i]);
}
}  // namespace deltaprop::kernels::portable

#define DP_ISA_NS portable
#include "kernels/elementwise_impl.h"
#undef DP_ISA_NS

#include "kernels/elementwise_isa.h"
#include "kernels/gemm.h"
#include "kernels/threadpool.h"

namespace deltaprop::kernels {

namespace {
// Large passes are split over the thread pool in tasks of about kGrain elements whose boundaries depend
// only on the shape (each element's arithmetic is the same whatever the split).
constexpr std::size_t kGrain = 32768;

// f(r0, r1) over row ranges of a [rows, cols] array
template <class F>
void over_rows(std::size_t rows, std::size_t cols, F&& f) {
    const std::size_t per = cols >= kGrain ? 1 : kGrain / (cols ? cols : 1);
    const std::size_t tasks = (rows + per - 1) / per;
    if (tasks <= 1) return f(std::size_t(0), rows);
    parallel_for(tasks, [&](std::size_t t) { f(t * per, std::min(rows, (t + 1) * per)); });
}

// f(i0, i1) over ranges of [0, n)
template <class F>
void over_range(std::size_t n, F&& f) {
    const std::size_t tasks = (n + kGrain - 1) / kGrain;
    if (tasks <= 1) return f(std::size_t(0), n);
    parallel_for(tasks, [&](std::size_t t) { f(t * kGrain, std::min(n, (t + 1) * kGrain)); });
}

inline bool use_avx2() {
#if defined(DP_X86)
    return level() >= Level::avx2;
#else
    return false;
#endif
}
}  // namespace

#if defined(DP_X86)
#define DP_DISPATCH(fn, ...) \
    (use_avx2() ? avx2::fn(__VA_ARGS__) : portable::fn(__VA_ARGS__))
#else
#define DP_DISPATCH(fn, ...) portable::fn(__VA_ARGS__)
#endif

void softplus(const double* z, double* out, std::size_t n) { DP_DISPATCH(softplus, z, out, n); }

template <class T>
void bias_activation(Act act, T slope, const T* b, T* z, T* a, std::size_t rows, std::size_t cols) {
    over_rows(rows, cols, [&](std::size_t r0, std::size_t r1) {
        DP_DISPATCH(bias_activation<T>, act, slope, b, z + r0 * cols, a + r0 * cols, r1 - r0, cols);
    });
}
template <class T>
void mul_activation_grad(Act act, T slope, const T* z, const T* a, T* delta, std::size_t rows,
                         std::size_t cols) {
    over_rows(rows, cols, [&](std::size_t r0, std::size_t r1) {
        DP_DISPATCH(mul_activation_grad<T>, act, slope, z + r0 * cols, a + r0 * cols,
                    delta + r0 * cols, r1 - r0, cols);
    });
}
template <class T>
void bias_activation_block(Act act, T slope, const T* b, T* z, T* a, std::size_t ld, std::size_t rows,
                           std::size_t cols) {
    DP_DISPATCH(bias_activation_block<T>, act, slope, b, z, a, ld, rows, cols);
}
template <class T>
void mul_activation_grad_block(Act act, T slope, const T* z, const T* a, T* delta, std::size_t ld,
                               std::size_t rows, std::size_t cols) {
    DP_DISPATCH(mul_activation_grad_block<T>, act, slope, z, a, delta, ld, rows, cols);
}
template <class T>
void softmax_backward(const T* a, T* delta, std::size_t rows, std::size_t cols) {
    over_rows(rows, cols, [&](std::size_t r0, std::size_t r1) {
        DP_DISPATCH(softmax_backward<T>, a + r0 * cols, delta + r0 * cols, r1 - r0, cols);
    });
}
template <class T>
void column_sums(const T* delta, std::size_t rows, std::size_t cols, T alpha, bool accumulate, T* db) {
    DP_DISPATCH(column_sums<T>, delta, rows, cols, alpha, accumulate, db);
}
template <class T>
void axpy(std::size_t n, T coef, const T* x, T* y) {
    over_range(n, [&](std::size_t i0, std::size_t i1) {
        DP_DISPATCH(axpy<T>, i1 - i0, coef, x + i0, y + i0);
    });
}
template <class T>
void sgd_step(std::size_t n, T lr, T momentum, bool nesterov, T weight_decay, const T* grad, T* w,
              T* v) {
    over_range(n, [&](std::size_t i0, std::size_t i1) {
        DP_DISPATCH(sgd_step<T>, i1 - i0, lr, momentum, nesterov, weight_decay, grad + i0, w + i0,
                    v + i0);
    });
}
template <class T>
void online_update(std::size_t rows, std::size_t cols, T lr, const T* delta, const T* x, T* dW, T* W,
                   T* db, T* b) {
    DP_DISPATCH(online_update<T>, rows, cols, lr, delta, x, dW, W, db, b);
}
template <class T>
void param_update_block(std::size_t rows, std::size_t cols, std::size_t ld, T l2coef, T lr, T momentum,
                        bool nesterov, T weight_decay, T* dW, T* W, T* v) {
    DP_DISPATCH(param_update_block<T>, rows, cols, ld, l2coef, lr, momentum, nesterov, weight_decay, dW,
                W, v);
}
#undef DP_DISPATCH

#define DP_INSTANTIATE(T)                                                                           \
    template void bias_activation<T>(Act, T, const T*, T*, T*, std::size_t, std::size_t);           \
    template void mul_activation_grad<T>(Act, T, const T*, const T*, T*, std::size_t, std::size_t); \
    template void bias_activation_block<T>(Act, T, const T*, T*, T*, std::size_t, std::size_t,      \
                                           std::size_t);                                            \
    template void mul_activation_grad_block<T>(Act, T, const T*, const T*, T*, std::size_t,         \
                                               std::size_t, std::size_t);                           \
    template void softmax_backward<T>(const T*, T*, std::size_t, std::size_t);                      \
    template void column_sums<T>(const T*, std::size_t, std::size_t, T, bool, T*);                  \
    template void axpy<T>(std::size_t, T, const T*, T*);                                            \
    template void sgd_step<T>(std::size_t, T, T, bool, T, const T*, T*, T*);                        \
    template void online_update<T>(std::size_t, std::size_t, T, const T*, const T*, T*, T*, T*, T*); \
    template void param_update_block<T>(std::size_t, std::size_t, std::size_t, T, T, T, bool, T, T*, \
                                        T*, T*);
DP_INSTANTIATE(float)
DP_INSTANTIATE(double)
#undef DP_INSTANTIATE

}  // namespace deltaprop::kernels
