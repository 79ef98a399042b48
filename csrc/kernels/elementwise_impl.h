// SPDX-License-Identifier: MIT
// The elementwise kernels, compiled once per ISA level: the including file defines DP_ISA_NS (the
// namespace) and provides exp_inplace<T>(T* x, size_t n) (x[i] = exp(x[i])) and
// log1p_unit_inplace(double* x, size_t n) (x[i] = log1p(x[i]) for x[i] in [0, 1]) in that namespace.
// It gets the tables DP_ISA_NS::kernels_f32 and kernels_f64 (elementwise.h, ElementwiseKernels).
//
// As in gemm_impl.h, this code is compiled with each level's target flags, so it must not emit a
// function that another translation unit could also emit (the linker keeps one copy of such a function,
// maybe the one built for a wider instruction set): the kernels sit in an anonymous namespace, and they
// call no C++ standard-library function template or inline function (std::max, std::copy, std::tanh
// ...), only the C library's functions and their own code.
#include <math.h>

#include <cassert>
#include <cstddef>

#include "kernels/elementwise.h"
#include "kernels/tuning.h"

namespace deltaprop::kernels::DP_ISA_NS {
namespace {

inline float tanh_of(float x) { return ::tanhf(x); }
inline double tanh_of(double x) { return ::tanh(x); }

template <class T>
void sigmoid_rows(const T* z, T* a, std::size_t n) {
    // a = 1 / (1 + exp(-z)); exp(-z) saturates to inf for z << 0, giving a = 0.
    for (std::size_t i = 0; i < n; ++i) a[i] = -z[i];
    exp_inplace(a, n);
    for (std::size_t i = 0; i < n; ++i) a[i] = T(1) / (T(1) + a[i]);
}

void softplus(const double* z, double* out, std::size_t n) {
    // max(z, 0) + log1p(exp(-|z|)): no overflow, and exp(-|z|) is in (0, 1]
    for (std::size_t i = 0; i < n; ++i) out[i] = -__builtin_fabs(z[i]);
    exp_inplace(out, n);
    log1p_unit_inplace(out, n);
    for (std::size_t i = 0; i < n; ++i) out[i] += z[i] < 0.0 ? 0.0 : z[i];
}

template <class T>
void softmax_rows(T* a, std::size_t rows, std::size_t cols) {
    for (std::size_t r = 0; r < rows; ++r) {
        T* row = a + r * cols;
        T m = row[0];  // the first largest
        for (std::size_t c = 1; c < cols; ++c)
            if (m < row[c]) m = row[c];
        // a[c] = exp(z[c] - max) / sum_k exp(z[k] - max)
        for (std::size_t c = 0; c < cols; ++c) row[c] -= m;
        exp_inplace(row, cols);
        T s = 0;
        for (std::size_t c = 0; c < cols; ++c) s += row[c];
        const T inv = T(1) / s;
        for (std::size_t c = 0; c < cols; ++c) row[c] *= inv;
    }
}

template <class T>
void bias_activation_block(Act act, T slope, const T* b, T* z, T* a, std::size_t ld, std::size_t rows,
                           std::size_t cols) {
    if (act == Act::sigmoid && ld == cols) {
        // whole rows: one contiguous stream through the vector exp (no ragged tail per row)
        for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t c = 0; c < cols; ++c) z[r * ld + c] += b[c];
        sigmoid_rows(z, a, rows * cols);
        return;
    }
    for (std::size_t r = 0; r < rows; ++r) {
        T* zr = z + r * ld;
        T* ar = a + r * ld;
        for (std::size_t c = 0; c < cols; ++c) zr[c] += b[c];
        switch (act) {
            case Act::identity:
            case Act::softmax:
                if (ar != zr)
                    for (std::size_t c = 0; c < cols; ++c) ar[c] = zr[c];
                break;
            case Act::sigmoid:
                sigmoid_rows(zr, ar, cols);
                break;
            case Act::tanh:
                for (std::size_t c = 0; c < cols; ++c) ar[c] = tanh_of(zr[c]);
                break;
            case Act::relu:
                for (std::size_t c = 0; c < cols; ++c) ar[c] = zr[c] > T(0) ? zr[c] : T(0);
                break;
            case Act::leaky_relu:
                for (std::size_t c = 0; c < cols; ++c) ar[c] = zr[c] > T(0) ? zr[c] : slope * zr[c];
                break;
        }
    }
}

template <class T>
void bias_activation(Act act, T slope, const T* b, T* z, T* a, std::size_t rows, std::size_t cols) {
    DP_ISA_NS::bias_activation_block(act, slope, b, z, a, cols, rows, cols);
    if (act == Act::softmax) softmax_rows(a, rows, cols);
}

template <class T>
void mul_activation_grad_row(Act act, T slope, const T* z, const T* a, T* delta, std::size_t n) {
    switch (act) {
        case Act::identity:
        case Act::softmax:
            break;
        case Act::sigmoid:  // g' = a (1 - a)
            for (std::size_t i = 0; i < n; ++i) delta[i] *= a[i] * (T(1) - a[i]);
            break;
        case Act::tanh:  // g' = 1 - a^2
            for (std::size_t i = 0; i < n; ++i) delta[i] *= T(1) - a[i] * a[i];
            break;
        case Act::relu:  // g' = [z > 0]
            for (std::size_t i = 0; i < n; ++i) delta[i] = z[i] > T(0) ? delta[i] : T(0);
            break;
        case Act::leaky_relu:
            for (std::size_t i = 0; i < n; ++i) delta[i] = z[i] > T(0) ? delta[i] : slope * delta[i];
            break;
    }
}

template <class T>
void mul_activation_grad(Act act, T slope, const T* z, const T* a, T* delta, std::size_t rows,
                         std::size_t cols) {
    mul_activation_grad_row(act, slope, z, a, delta, rows * cols);
}

template <class T>
void mul_activation_grad_block(Act act, T slope, const T* z, const T* a, T* delta, std::size_t ld,
                               std::size_t rows, std::size_t cols) {
    for (std::size_t r = 0; r < rows; ++r)
        mul_activation_grad_row(act, slope, z + r * ld, a + r * ld, delta + r * ld, cols);
}

template <class T>
void softmax_backward(const T* a, T* delta, std::size_t rows, std::size_t cols) {
    for (std::size_t r = 0; r < rows; ++r) {
        const T* ar = a + r * cols;
        T* dr = delta + r * cols;
        T dot = 0;
        for (std::size_t c = 0; c < cols; ++c) dot += dr[c] * ar[c];
        // delta[c] = a[c] * (g[c] - sum_k g[k] a[k])
        for (std::size_t c = 0; c < cols; ++c) dr[c] = ar[c] * (dr[c] - dot);
    }
}

template <class T>
void column_sums(const T* delta, std::size_t rows, std::size_t cols, T alpha, bool accumulate, T* db) {
    // Each column summed over rows in order (vectorised across columns), then scaled.
    constexpr std::size_t kChunk = tuning::kColumnSumChunk;
    T s[kChunk];
    for (std::size_t c0 = 0; c0 < cols; c0 += kChunk) {
        const std::size_t nc = cols - c0 < kChunk ? cols - c0 : kChunk;
        for (std::size_t c = 0; c < nc; ++c) s[c] = T(0);
        for (std::size_t r = 0; r < rows; ++r) {
            const T* d = delta + r * cols + c0;
            for (std::size_t c = 0; c < nc; ++c) s[c] += d[c];
        }
        T* out = db + c0;
        if (accumulate)
            for (std::size_t c = 0; c < nc; ++c) out[c] += alpha * s[c];
        else
            for (std::size_t c = 0; c < nc; ++c) out[c] = alpha * s[c];
    }
}

template <class T>
void axpy(std::size_t n, T coef, const T* x, T* y) {
    for (std::size_t i = 0; i < n; ++i) y[i] += coef * x[i];
}

template <class T>
void sgd_step(std::size_t n, T lr, T momentum, bool nesterov, T weight_decay, const T* grad, T* w,
              T* v) {
    if (momentum == T(0) && weight_decay == T(0)) {
        for (std::size_t i = 0; i < n; ++i) w[i] -= lr * grad[i];  // w -= lr g
    } else if (momentum == T(0)) {
        for (std::size_t i = 0; i < n; ++i) w[i] -= lr * (grad[i] + weight_decay * w[i]);
    } else if (nesterov) {
        for (std::size_t i = 0; i < n; ++i) {
            const T g = grad[i] + weight_decay * w[i];
            v[i] = momentum * v[i] + g;
            w[i] -= lr * (g + momentum * v[i]);
        }
    } else {
        for (std::size_t i = 0; i < n; ++i) {
            const T g = grad[i] + weight_decay * w[i];
            v[i] = momentum * v[i] + g;
            w[i] -= lr * v[i];
        }
    }
}

template <class T>
void param_update_block(std::size_t rows, std::size_t cols, std::size_t ld, T l2coef, T lr, T momentum,
                        bool nesterov, T weight_decay, T* dW, T* W, T* v) {
    const bool plain = momentum == T(0) && weight_decay == T(0);
    for (std::size_t r = 0; r < rows; ++r) {
        T* __restrict g = dW + r * ld;
        T* __restrict w = W + r * ld;
        if (l2coef != T(0))
            for (std::size_t c = 0; c < cols; ++c) g[c] += l2coef * w[c];  // dW += (l2/m) W
        if (plain)
            for (std::size_t c = 0; c < cols; ++c) w[c] -= lr * g[c];  // w -= lr g, as in sgd_step
        else
            sgd_step(cols, lr, momentum, nesterov, weight_decay, g, w, v + r * ld);
    }
}

// The four buffers never overlap (activations or input, parameters, gradient), which the restrict
// qualifiers tell the compiler: no overlap checks per row.
template <class T, bool kGrad, bool kUpdate>
void online_pass(std::size_t rows, std::size_t cols, T lr, const T* __restrict delta, const T* __restrict x,
                 T* __restrict dW, T* __restrict W, T* __restrict db, T* __restrict b) {
    std::size_t r0 = 0;
    for (; r0 + 2 <= rows; r0 += 2) {  // two rows a pass: x is loaded once for both, half the loop overhead
        const T d0 = delta[r0], d1 = delta[r0 + 1];
        T* __restrict g0 = kGrad ? dW + r0 * cols : nullptr;
        T* __restrict g1 = kGrad ? g0 + cols : nullptr;
        T* __restrict w0 = kUpdate ? W + r0 * cols : nullptr;
        T* __restrict w1 = kUpdate ? w0 + cols : nullptr;
        for (std::size_t c = 0; c < cols; ++c) {
            const T e0 = d0 * x[c] + T(0), e1 = d1 * x[c] + T(0);
            if (kGrad) {
                g0[c] = e0;
                g1[c] = e1;
            }
            if (kUpdate) {
                w0[c] -= lr * e0;
                w1[c] -= lr * e1;
            }
        }
    }
    for (std::size_t r = r0; r < rows; ++r) {
        const T d = delta[r];
        T* __restrict gw = kGrad ? dW + r * cols : nullptr;
        T* __restrict w = kUpdate ? W + r * cols : nullptr;
        for (std::size_t c = 0; c < cols; ++c) {
            const T g = d * x[c] + T(0);  // dW = delta x^T (+0: a zero is +0, as the GEMM gives)
            if (kGrad) gw[c] = g;
            if (kUpdate) w[c] -= lr * g;  // w -= lr g
        }
    }
    for (std::size_t r = 0; r < rows; ++r) {
        const T g = delta[r] + T(0);
        if (kGrad) db[r] = g;
        if (kUpdate) b[r] -= lr * g;
    }
}

// dW, db null: the update alone (the gradient is not kept); W, b null: the gradient alone.
template <class T>
void online_update(std::size_t rows, std::size_t cols, T lr, const T* delta, const T* x, T* dW, T* W,
                   T* db, T* b) {
    if (!W)
        online_pass<T, true, false>(rows, cols, lr, delta, x, dW, W, db, b);
    else if (!dW)
        online_pass<T, false, true>(rows, cols, lr, delta, x, dW, W, db, b);
    else
        online_pass<T, true, true>(rows, cols, lr, delta, x, dW, W, db, b);
}

}  // namespace

#define DP_ELEMENTWISE_TABLE(T)                                                                      \
    {bias_activation<T>,       mul_activation_grad<T>, bias_activation_block<T>,                       \
     mul_activation_grad_block<T>, softmax_backward<T>, column_sums<T>,                                \
     axpy<T>,                  softplus,               sgd_step<T>,                                    \
     online_update<T>,         param_update_block<T>}
extern const ElementwiseKernels<float> kernels_f32 = DP_ELEMENTWISE_TABLE(float);
extern const ElementwiseKernels<double> kernels_f64 = DP_ELEMENTWISE_TABLE(double);
#undef DP_ELEMENTWISE_TABLE

}  // namespace deltaprop::kernels::DP_ISA_NS
