// SPDX-License-Identifier: MIT
#pragma once
// Private elementwise kernels of a dense layer: bias + activation, activation derivative, bias
// gradient, SGD update. Row-major [rows, cols]; inputs are trusted (validated by the caller).
#include <cstddef>

#include "kernels/dispatch.h"

namespace deltaprop::kernels {

enum class Act { identity = 0, sigmoid = 1, tanh = 2, relu = 3, leaky_relu = 4, softmax = 5 };

// z[r][c] += b[c]; a[r][c] = g(z[r][c]) (softmax: row-wise). a may equal z (then z is not kept).
template <class T>
void bias_activation(Act act, T slope, const T* b, T* z, T* a, std::size_t rows, std::size_t cols);

// delta[r][c] *= g'(z[r][c]), using a = g(z) where cheaper. Not for softmax.
template <class T>
void mul_activation_grad(Act act, T slope, const T* z, const T* a, T* delta, std::size_t rows,
                         std::size_t cols);

// The same two on a block of a wider array (GEMM epilogues): row r of z, a and delta starts at r * ld.
// Run on the calling thread. bias_activation_block: not for softmax (whose rows need every column).
template <class T>
void bias_activation_block(Act act, T slope, const T* b, T* z, T* a, std::size_t ld, std::size_t rows,
                           std::size_t cols);
template <class T>
void mul_activation_grad_block(Act act, T slope, const T* z, const T* a, T* delta, std::size_t ld,
                               std::size_t rows, std::size_t cols);

// Softmax Jacobian-vector product per row: delta[c] = a[c] * (g[c] - sum_k g[k] a[k]), g = dC/da in
// delta on entry.
template <class T>
void softmax_backward(const T* a, T* delta, std::size_t rows, std::size_t cols);

// db[c] = alpha * sum_r delta[r][c] + (accumulate ? db[c] : 0)
template <class T>
void column_sums(const T* delta, std::size_t rows, std::size_t cols, T alpha, bool accumulate, T* db);

// dW[i] += coef * W[i]
template <class T>
void axpy(std::size_t n, T coef, const T* x, T* y);

// out[i] = log(1 + exp(z[i])), without overflow; out must not overlap z. On the calling thread.
void softplus(const double* z, double* out, std::size_t n);

// SGD over the whole parameter buffer (see dp_sgd in deltaprop.h):
// g = grad + weight_decay * w; v = momentum * v + g; u = g | v | g + momentum * v; w -= lr * u.
template <class T>
void sgd_step(std::size_t n, T lr, T momentum, bool nesterov, T weight_decay, const T* grad, T* w,
              T* v);

// Online (batch-1) plain-SGD update of one layer, fused with its gradient:
// dW[r][c] = delta[r] * x[c]; W[r][c] -= lr * dW[r][c]; db[r] = delta[r]; b[r] -= lr * db[r].
// Bitwise equal to the gradient followed by sgd_step with no momentum and no weight decay. dW and db
// null: the update without keeping the gradient; W and b null: the gradient without the update.
template <class T>
void online_update(std::size_t rows, std::size_t cols, T lr, const T* delta, const T* x, T* dW, T* W,
                   T* db, T* b);

// A block of a layer's weights (GEMM epilogue of dW): per row r (at r * ld), dW += l2coef * W, then the
// SGD update of sgd_step on W and v. The same arithmetic as axpy and sgd_step over the whole buffer.
template <class T>
void param_update_block(std::size_t rows, std::size_t cols, std::size_t ld, T l2coef, T lr, T momentum,
                        bool nesterov, T weight_decay, T* dW, T* W, T* v);

// The instruction-set builds behind the entry points above, one table per build: each entry has the type
// of the entry point it backs (so every kernel's signature is written once, above). The entry points
// split large passes over the thread pool and call the build that dispatch.h chooses for
// Family::elementwise; the tests call a build directly.
template <class T>
struct ElementwiseKernels {
    decltype(&kernels::bias_activation<T>) bias_activation;
    decltype(&kernels::mul_activation_grad<T>) mul_activation_grad;
    decltype(&kernels::bias_activation_block<T>) bias_activation_block;
    decltype(&kernels::mul_activation_grad_block<T>) mul_activation_grad_block;
    decltype(&kernels::softmax_backward<T>) softmax_backward;
    decltype(&kernels::column_sums<T>) column_sums;
    decltype(&kernels::axpy<T>) axpy;
    decltype(&kernels::softplus) softplus;
    decltype(&kernels::sgd_step<T>) sgd_step;
    decltype(&kernels::online_update<T>) online_update;
    decltype(&kernels::param_update_block<T>) param_update_block;
};

// The build for level l: the best one this library has at or below l (l must be one the CPU supports).
template <class T>
const ElementwiseKernels<T>& elementwise_kernels(Level l);
extern template const ElementwiseKernels<float>& elementwise_kernels<float>(Level);
extern template const ElementwiseKernels<double>& elementwise_kernels<double>(Level);

}  // namespace deltaprop::kernels
