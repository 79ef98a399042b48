// SPDX-License-Identifier: MIT
#pragma once
// Private kernel interface. Kernels trust their inputs: callers validate first.
#include <cstddef>

namespace deltaprop::kernels {

enum class Level { portable = 1, avx2 = 2, avx512 = 3 };

// The level in use. Chosen once from cpuid (or DELTAPROP_KERNEL=portable|avx2|avx512) on first use.
Level level();
// Best level this CPU supports.
Level best_level();
// Force a level; returns false (and changes nothing) if the CPU lacks it.
bool set_level(Level l);

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
// op(A) = A stored [M, lda >= K], or (trans_a) A stored [K, lda >= M] read transposed.
// op(B) = B stored [K, ldb >= N], or (trans_b) B stored [N, ldb >= K] read transposed.
// beta == 0 never reads C (NaN in C is overwritten). K == 0 scales C by beta.
// Runs on the thread pool; the result is bitwise identical for any thread count.
template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t M, std::size_t N, std::size_t K, T alpha,
          const T* A, std::size_t lda, const T* B, std::size_t ldb, T beta, T* C, std::size_t ldc);

extern template void gemm<float>(bool, bool, std::size_t, std::size_t, std::size_t, float,
                                 const float*, std::size_t, const float*, std::size_t, float,
                                 float*, std::size_t);
extern template void gemm<double>(bool, bool, std::size_t, std::size_t, std::size_t, double,
                                  const double*, std::size_t, const double*, std::size_t, double,
                                  double*, std::size_t);

}  // namespace deltaprop::kernels
