// SPDX-License-Identifier: MIT
// TEMPORARY scaffolding: naive gemm so the core links; replaced by the packed SIMD kernels.
#include "kernels/gemm.h"
#include "kernels/reference/gemm_ref.h"

namespace deltaprop::kernels {

Level level() { return Level::portable; }
Level best_level() { return Level::portable; }
bool set_level(Level l) { return l == Level::portable; }

template <class T>
void gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, T alpha, const T* A,
          std::size_t lda, const T* B, std::size_t ldb, T beta, T* C, std::size_t ldc) {
    reference::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
template void gemm<float>(bool, bool, std::size_t, std::size_t, std::size_t, float, const float*,
                          std::size_t, const float*, std::size_t, float, float*, std::size_t);
template void gemm<double>(bool, bool, std::size_t, std::size_t, std::size_t, double, const double*,
                           std::size_t, const double*, std::size_t, double, double*, std::size_t);
}  // namespace deltaprop::kernels
