// SPDX-License-Identifier: MIT
#pragma once
// One dense layer: forward z = a_prev W^T + b, a = g(z), and the delta product
// delta_prev = delta W (.) g'(z_prev), each with its elementwise part in the GEMM's epilogue.
#include <cstddef>

#include "deltaprop/deltaprop.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"

namespace deltaprop::detail {

inline kernels::Act kact(dp_activation a) { return static_cast<kernels::Act>(a); }

// z = in W^T + b, a = g(z). Bias and activation run in the GEMM's epilogue on each finished block
// while it is in cache; softmax, which needs whole rows, runs after the GEMM. a may equal z.
template <class T>
void dense_forward(dp_activation act, T slope, const T* in, std::size_t batch, std::size_t n_in,
                   std::size_t n_out, const T* W, const T* b, T* z, T* a) {
    if (act == DP_SOFTMAX) {
        kernels::gemm<T>(false, true, batch, n_out, n_in, T(1), in, n_in, W, n_in, T(0), z, n_out);
        kernels::bias_activation(kact(act), slope, b, z, a, batch, n_out);
        return;
    }
    struct Ctx {
        kernels::Act act;
        T slope;
        const T* b;
        T *z, *a;
        std::size_t ld;
    } ctx{kact(act), slope, b, z, a, n_out};
    const kernels::Epilogue ep{[](void* p, std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1) {
                                   const auto* c = static_cast<const Ctx*>(p);
                                   const std::size_t o = i0 * c->ld + j0;
                                   kernels::bias_activation_block(c->act, c->slope, c->b + j0, c->z + o,
                                                                  c->a + o, c->ld, i1 - i0, j1 - j0);
                               },
                               &ctx};
    kernels::gemm<T>(false, true, batch, n_out, n_in, T(1), in, n_in, W, n_in, T(0), z, n_out, &ep);
}

// delta_in = delta W (.) g'(z_in), the activation derivative in the GEMM's epilogue. z_in, a_in and
// delta_in are [batch, n_in]; g is not softmax (hidden layers only).
template <class T>
void dense_backward_delta(dp_activation act, T slope, const T* delta, std::size_t batch, std::size_t n_in,
                          std::size_t n_out, const T* W, const T* z_in, const T* a_in, T* delta_in) {
    struct Ctx {
        kernels::Act act;
        T slope;
        const T *z, *a;
        T* d;
        std::size_t ld;
    } ctx{kact(act), slope, z_in, a_in, delta_in, n_in};
    const kernels::Epilogue ep{[](void* p, std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1) {
                                   const auto* c = static_cast<const Ctx*>(p);
                                   const std::size_t o = i0 * c->ld + j0;
                                   kernels::mul_activation_grad_block(c->act, c->slope, c->z + o, c->a + o,
                                                                      c->d + o, c->ld, i1 - i0, j1 - j0);
                               },
                               &ctx};
    kernels::gemm<T>(false, false, batch, n_in, n_out, T(1), delta, n_out, W, n_in, T(0), delta_in, n_in,
                     act == DP_IDENTITY ? nullptr : &ep);
}

}  // namespace deltaprop::detail
