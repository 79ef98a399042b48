// SPDX-License-Identifier: MIT
#pragma once
// Declarations of the per-ISA builds of the elementwise kernels (definitions in elementwise_impl.h).
#include <cstddef>

#include "kernels/elementwise.h"

#define DP_ELEMENTWISE_DECLARE(NS)                                                                    \
    namespace deltaprop::kernels::NS {                                                                \
    void softplus(const double*, double*, std::size_t);                                               \
    template <class T>                                                                                \
    void bias_activation(Act, T, const T*, T*, T*, std::size_t, std::size_t);                         \
    template <class T>                                                                                \
    void mul_activation_grad(Act, T, const T*, const T*, T*, std::size_t, std::size_t);               \
    template <class T>                                                                                \
    void bias_activation_block(Act, T, const T*, T*, T*, std::size_t, std::size_t, std::size_t);      \
    template <class T>                                                                                \
    void mul_activation_grad_block(Act, T, const T*, const T*, T*, std::size_t, std::size_t,          \
                                   std::size_t);                                                      \
    template <class T>                                                                                \
    void softmax_backward(const T*, T*, std::size_t, std::size_t);                                    \
    template <class T>                                                                                \
    void column_sums(const T*, std::size_t, std::size_t, T, bool, T*);                                \
    template <class T>                                                                                \
    void axpy(std::size_t, T, const T*, T*);                                                          \
    template <class T>                                                                                \
    void sgd_step(std::size_t, T, T, bool, T, const T*, T*, T*);                                      \
    template <class T>                                                                                \
    void online_update(std::size_t, std::size_t, T, const T*, const T*, T*, T*, T*, T*);              \
    template <class T>                                                                                \
    void param_update_block(std::size_t, std::size_t, std::size_t, T, T, T, bool, T, T*, T*, T*);     \
    }

DP_ELEMENTWISE_DECLARE(portable)
#if defined(DP_X86)
DP_ELEMENTWISE_DECLARE(avx2)
#endif
#undef DP_ELEMENTWISE_DECLARE
