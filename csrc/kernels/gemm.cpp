// SPDX-License-Identifier: MIT
// GEMM entry point: runs the instruction-set instance that dispatch.h chooses, owns the per-thread
// packing scratch. The kernels themselves are in gemm_impl.h and the gemm_<isa>.cpp units.
#include "kernels/gemm.h"

#include <cassert>

#include "kernels/gemm_impl.h"
#include "kernels/memory.h"

namespace deltaprop::kernels {

namespace detail {

void* scratch(int slot, std::size_t bytes) noexcept {
    struct Buffer {
        void* p = nullptr;
        std::size_t size = 0;
        ~Buffer() { free_bytes(p); }
    };
    thread_local Buffer buffers[5];
    Buffer& b = buffers[slot];
    if (bytes > b.size) {
        const std::size_t size = (bytes + 4095) / 4096 * 4096;
        void* p = alloc_bytes(size);
        if (!p) return nullptr;
        free_bytes(b.p);
        b.p = p;
        b.size = size;
    }
    return b.p;
}

}  // namespace detail

template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t M, std::size_t N, std::size_t K, T alpha,
          const T* A, std::size_t lda, const T* B, std::size_t ldb, T beta, T* C, std::size_t ldc,
          const Epilogue* ep) {
    assert(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N) && ldc >= N);
    assert(M == 0 || N == 0 || (C && (K == 0 || (A && B))));
    assert(!ep || ep->fn);
    const detail::GemmArgs<T> g{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep};
    switch (level(sizeof(T) == sizeof(double) ? Family::gemm_f64 : Family::gemm)) {
#if DP_X86
        case Level::avx512: return detail::gemm_avx512(g);
        case Level::avx2: return detail::gemm_avx2(g);
#endif
        default: return detail::gemm_portable(g);
    }
}

template void gemm<float>(bool, bool, std::size_t, std::size_t, std::size_t, float, const float*,
                          std::size_t, const float*, std::size_t, float, float*, std::size_t,
                          const Epilogue*);
template void gemm<double>(bool, bool, std::size_t, std::size_t, std::size_t, double, const double*,
                           std::size_t, const double*, std::size_t, double, double*, std::size_t,
                           const Epilogue*);

}  // namespace deltaprop::kernels
