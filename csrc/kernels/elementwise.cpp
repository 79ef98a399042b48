// SPDX-License-Identifier: MIT
#include "kernels/elementwise.h"

#include <algorithm>
#include <cmath>

namespace deltaprop::kernels {

namespace {

template <class T>
inline T sigmoid(T z) {
    if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
    const T e = std::exp(z);
    return e / (T(1) + e);
}

template <class T>
void softmax_rows(T* a, std::size_t rows, std::size_t cols) {
    for (std::size_t r = 0; r < rows; ++r) {
        T* row = a + r * cols;
        const T m = *std::max_element(row, row + cols);
        T s = 0;
        // a[c] = exp(z[c] - max) / sum_k exp(z[k] - max)
        for (std::size_t c = 0; c < cols; ++c) {
            row[c] = std::exp(row[c] - m);
            s += row[c];
        }
        const T inv = T(1) / s;
        for (std::size_t c = 0; c < cols; ++c) row[c] *= inv;
    }
}

}  // namespace

template <class T>
void bias_activation(Act act, T slope, const T* b, T* z, T* a, std::size_t rows, std::size_t cols) {
    for (std::size_t r = 0; r < rows; ++r) {
        T* zr = z + r * cols;
        T* ar = a + r * cols;
        for (std::size_t c = 0; c < cols; ++c) zr[c] += b[c];
        switch (act) {
            case Act::identity:
            case Act::softmax:
                if (ar != zr) std::copy(zr, zr + cols, ar);
                break;
            case Act::sigmoid:
                for (std::size_t c = 0; c < cols; ++c) ar[c] = sigmoid(zr[c]);
                break;
            case Act::tanh:
                for (std::size_t c = 0; c < cols; ++c) ar[c] = std::tanh(zr[c]);
                break;
            case Act::relu:
                for (std::size_t c = 0; c < cols; ++c) ar[c] = zr[c] > T(0) ? zr[c] : T(0);
                break;
            case Act::leaky_relu:
                for (std::size_t c = 0; c < cols; ++c) ar[c] = zr[c] > T(0) ? zr[c] : slope * zr[c];
                break;
        }
    }
    if (act == Act::softmax) softmax_rows(a, rows, cols);
}

template <class T>
void mul_activation_grad(Act act, T slope, const T* z, const T* a, T* delta, std::size_t rows,
                         std::size_t cols) {
    const std::size_t n = rows * cols;
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
    // Sum rows in a fixed order, then scale: identical for any thread count.
    for (std::size_t c = 0; c < cols; ++c) {
        T s = 0;
        for (std::size_t r = 0; r < rows; ++r) s += delta[r * cols + c];
        db[c] = accumulate ? db[c] + alpha * s : alpha * s;
    }
}

template <class T>
void axpy(std::size_t n, T coef, const T* x, T* y) {
    for (std::size_t i = 0; i < n; ++i) y[i] += coef * x[i];
}

template <class T>
void sgd_step(std::size_t n, T lr, T momentum, bool nesterov, T weight_decay, const T* grad, T* w,
              T* v) {
    const bool decay = weight_decay != T(0);
    if (momentum == T(0)) {
        for (std::size_t i = 0; i < n; ++i) {
            const T g = decay ? grad[i] + weight_decay * w[i] : grad[i];
            w[i] -= lr * g;
        }
        return;
    }
    for (std::size_t i = 0; i < n; ++i) {
        const T g = decay ? grad[i] + weight_decay * w[i] : grad[i];
        v[i] = momentum * v[i] + g;
        const T u = nesterov ? g + momentum * v[i] : v[i];
        w[i] -= lr * u;
    }
}

#define DP_INSTANTIATE(T)                                                                           \
    template void bias_activation<T>(Act, T, const T*, T*, T*, std::size_t, std::size_t);           \
    template void mul_activation_grad<T>(Act, T, const T*, const T*, T*, std::size_t, std::size_t); \
    template void softmax_backward<T>(const T*, T*, std::size_t, std::size_t);                      \
    template void column_sums<T>(const T*, std::size_t, std::size_t, T, bool, T*);                  \
    template void axpy<T>(std::size_t, T, const T*, T*);                                            \
    template void sgd_step<T>(std::size_t, T, T, bool, T, const T*, T*, T*);
DP_INSTANTIATE(float)
DP_INSTANTIATE(double)
#undef DP_INSTANTIATE

}  // namespace deltaprop::kernels
