// SPDX-License-Identifier: MIT
#pragma once
// Private kernel interface. Kernels trust their inputs: callers validate first.
#include <cstddef>

#include "kernels/dispatch.h"

namespace deltaprop::kernels {

// Work fused into a GEMM: fn(ctx, i0, i1, j0, j1) runs on blocks of C (rows [i0, i1), columns
// [j0, j1)) that cover C exactly once, each right after its final values are stored, while they are in
// cache, on the thread that computed them. Blocks are disjoint: fn may rewrite them (and the same
// blocks of other arrays). Block boundaries depend only on the shape.
struct Epilogue {
    void (*fn)(void* ctx, std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1);
    void* ctx;
};

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, then ep (if not null) over C.
// op(A) = A stored [M, lda >= K], or (trans_a) A stored [K, lda >= M] read transposed.
// op(B) = B stored [K, ldb >= N], or (trans_b) B stored [N, ldb >= K] read transposed.
// beta == 0 never reads C (NaN in C is overwritten). K == 0 scales C by beta.
// Runs on the thread pool, with the build dispatch.h chooses for Family::gemm (float) or gemm_f64 (double); the result is bitwise
// identical for any thread count.
template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t M, std::size_t N, std::size_t K, T alpha,
          const T* A, std::size_t lda, const T* B, std::size_t ldb, T beta, T* C, std::size_t ldc,
          const Epilogue* ep = nullptr);

extern template void gemm<float>(bool, bool, std::size_t, std::size_t, std::size_t, float,
                                 const float*, std::size_t, const float*, std::size_t, float,
                                 float*, std::size_t, const Epilogue*);
extern template void gemm<double>(bool, bool, std::size_t, std::size_t, std::size_t, double,
                                  const double*, std::size_t, const double*, std::size_t, double,
                                  double*, std::size_t, const Epilogue*);

}  // namespace deltaprop::kernels
