// SPDX-License-Identifier: MIT
// Portable build of the elementwise kernels (any architecture; the C library's exp and log1p).
#include <math.h>

#include <cstddef>

namespace deltaprop::kernels::portable {
namespace {
inline float exp_of(float x) { return ::expf(x); }
inline double exp_of(double x) { return ::exp(x); }
}  // namespace

template <class T>
void exp_inplace(T* x, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) x[i] = exp_of(x[i]);
}
inline void log1p_unit_inplace(double* x, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) x[i] = ::log1p(x[i]);
}
}  // namespace deltaprop::kernels::portable

#define DP_ISA_NS portable
#include "kernels/elementwise_impl.h"
#undef DP_ISA_NS
