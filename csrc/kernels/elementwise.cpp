// SPDX-License-Identifier: MIT
// Entry points of the elementwise kernels: large passes split over the thread pool, each piece run by the
// build that dispatch.h chooses for Family::elementwise.
#include <cassert>
#include <cstddef>

#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/threadpool.h"
#include "kernels/tuning.h"

namespace deltaprop::kernels {

// The builds' tables (elementwise_impl.h).
namespace portable {
extern const ElementwiseKernels<float> kernels_f32;
extern const ElementwiseKernels<double> kernels_f64;
}  // namespace portable
#if defined(DP_X86)
namespace avx2 {
extern const ElementwiseKernels<float> kernels_f32;
extern const ElementwiseKernels<double> kernels_f64;
}  // namespace avx2
#endif

template <class T>
const ElementwiseKernels<T>& elementwise_kernels(Level l) {
    constexpr bool f32 = sizeof(T) == sizeof(float);
#if defined(DP_X86)
    if (l >= Level::avx2) {
        if constexpr (f32) return avx2::kernels_f32;
        else return avx2::kernels_f64;
    }
#endif
    (void)l;
    if constexpr (f32) return portable::kernels_f32;
    else return portable::kernels_f64;
}
template const ElementwiseKernels<float>& elementwise_kernels<float>(Level);
template const ElementwiseKernels<double>& elementwise_kernels<double>(Level);

namespace {
// Large passes are split over the thread pool in tasks of about kGrain elements whose boundaries depend
// only on the shape (each element's arithmetic is the same whatever the split).
constexpr std::size_t kGrain = tuning::kGrain;

// f(r0, r1) over row ranges of a [rows, cols] array
template <class F>
void over_rows(std::size_t rows, std::size_t cols, F&& f) {
    const std::size_t per = cols >= kGrain ? 1 : kGrain / (cols ? cols : 1);
    const std::size_t tasks = (rows + per - 1) / per;
    if (tasks <= 1) return f(std::size_t(0), rows);
    parallel_for(tasks, [&](std::size_t t) { f(t * per, (t + 1) * per < rows ? (t + 1) * per : rows); });
}

// f(i0, i1) over ranges of [0, n)
template <class F>
void over_range(std::size_t n, F&& f) {
    const std::size_t tasks = (n + kGrain - 1) / kGrain;
    if (tasks <= 1) return f(std::size_t(0), n);
    parallel_for(tasks, [&](std::size_t t) { f(t * kGrain, (t + 1) * kGrain < n ? (t + 1) * kGrain : n); });
}

template <class T>
inline const ElementwiseKernels<T>& build() {
    return elementwise_kernels<T>(level(Family::elementwise));
}
}  // namespace

#define DP_DISPATCH(fn, ...) build<T>().fn(__VA_ARGS__)

void softplus(const double* z, double* out, std::size_t n) {
    assert(n == 0 || (z && out && (out + n <= z || z + n <= out)));
    build<double>().softplus(z, out, n);
}

template <class T>
void bias_activation(Act act, T slope, const T* b, T* z, T* a, std::size_t rows, std::size_t cols) {
    assert(rows == 0 || cols == 0 || (b && z && a));
    over_rows(rows, cols, [&](std::size_t r0, std::size_t r1) {
        DP_DISPATCH(bias_activation, act, slope, b, z + r0 * cols, a + r0 * cols, r1 - r0, cols);
    });
}
template <class T>
void mul_activation_grad(Act act, T slope, const T* z, const T* a, T* delta, std::size_t rows,
                         std::size_t cols) {
    assert(act != Act::softmax && (rows == 0 || cols == 0 || (z && a && delta)));
    over_rows(rows, cols, [&](std::size_t r0, std::size_t r1) {
        DP_DISPATCH(mul_activation_grad, act, slope, z + r0 * cols, a + r0 * cols,
                    delta + r0 * cols, r1 - r0, cols);
    });
}
template <class T>
void bias_activation_block(Act act, T slope, const T* b, T* z, T* a, std::size_t ld, std::size_t rows,
                           std::size_t cols) {
    assert(act != Act::softmax && ld >= cols && (rows == 0 || cols == 0 || (b && z && a)));
    DP_DISPATCH(bias_activation_block, act, slope, b, z, a, ld, rows, cols);
}
template <class T>
void mul_activation_grad_block(Act act, T slope, const T* z, const T* a, T* delta, std::size_t ld,
                               std::size_t rows, std::size_t cols) {
    assert(act != Act::softmax && ld >= cols && (rows == 0 || cols == 0 || (z && a && delta)));
    DP_DISPATCH(mul_activation_grad_block, act, slope, z, a, delta, ld, rows, cols);
}
template <class T>
void softmax_backward(const T* a, T* delta, std::size_t rows, std::size_t cols) {
    assert(rows == 0 || cols == 0 || (a && delta));
    over_rows(rows, cols, [&](std::size_t r0, std::size_t r1) {
        DP_DISPATCH(softmax_backward, a + r0 * cols, delta + r0 * cols, r1 - r0, cols);
    });
}
template <class T>
void column_sums(const T* delta, std::size_t rows, std::size_t cols, T alpha, bool accumulate, T* db) {
    assert(cols == 0 || (db && (rows == 0 || delta)));
    DP_DISPATCH(column_sums, delta, rows, cols, alpha, accumulate, db);
}
template <class T>
void axpy(std::size_t n, T coef, const T* x, T* y) {
    assert(n == 0 || (x && y));
    over_range(n, [&](std::size_t i0, std::size_t i1) {
        DP_DISPATCH(axpy, i1 - i0, coef, x + i0, y + i0);
    });
}
template <class T>
void sgd_step(std::size_t n, T lr, T momentum, bool nesterov, T weight_decay, const T* grad, T* w,
              T* v) {
    assert(n == 0 || (grad && w && (momentum == T(0) || v)));
    over_range(n, [&](std::size_t i0, std::size_t i1) {
        DP_DISPATCH(sgd_step, i1 - i0, lr, momentum, nesterov, weight_decay, grad + i0, w + i0,
                    v + i0);
    });
}
template <class T>
void online_update(std::size_t rows, std::size_t cols, T lr, const T* delta, const T* x, T* dW, T* W,
                   T* db, T* b) {
    assert(rows == 0 || (delta && (db || b) && !db == !dW && !b == !W && (cols == 0 || x)));
    DP_DISPATCH(online_update, rows, cols, lr, delta, x, dW, W, db, b);
}
template <class T>
void param_update_block(std::size_t rows, std::size_t cols, std::size_t ld, T l2coef, T lr, T momentum,
                        bool nesterov, T weight_decay, T* dW, T* W, T* v) {
    assert(ld >= cols && (rows == 0 || cols == 0 || (dW && W && (momentum == T(0) || v))));
    DP_DISPATCH(param_update_block, rows, cols, ld, l2coef, lr, momentum, nesterov, weight_decay, dW,
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
