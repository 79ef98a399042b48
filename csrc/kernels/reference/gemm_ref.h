// SPDX-License-Identifier: MIT
#pragma once
// Deliberately naive reference kernels, for the tests only.
#include <cstddef>

namespace deltaprop::kernels::reference {

// Row-major C[M,N] = alpha * op(A) op(B) + beta * C, summed in double-free plain T arithmetic.
template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t M, std::size_t N, std::size_t K, T alpha,
          const T* A, std::size_t lda, const T* B, std::size_t ldb, T beta, T* C, std::size_t ldc) {
    for (std::size_t i = 0; i < M; ++i) {
        for (std::size_t j = 0; j < N; ++j) {
            T s = 0;
            // s = sum_k op(A)[i][k] * op(B)[k][j]
            for (std::size_t k = 0; k < K; ++k) {
                const T a = trans_a ? A[k * lda + i] : A[i * lda + k];
                const T b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            T& c = C[i * ldc + j];
            c = beta == T(0) ? alpha * s : alpha * s + beta * c;
        }
    }
}

}  // namespace deltaprop::kernels::reference
