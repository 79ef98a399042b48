// SPDX-License-Identifier: MIT
// AVX-512 (F/BW/DQ/VL) instance of the GEMM (compiled with those flags; used only if the CPU has them).
#include <immintrin.h>

#include "kernels/gemm_impl.h"

namespace deltaprop::kernels::detail {
namespace {

struct F32x16 {
    using T = float;
    using V = __m512;
    static constexpr int W = 16;
    static constexpr int TB = 0;  // no block transpose: packing transposes element by element
    static __mmask16 mask(size_t n) { return __mmask16((1u << n) - 1u); }
    static V zero() { return _mm512_setzero_ps(); }
    static V set1(T x) { return _mm512_set1_ps(x); }
    static V load(const T* p) { return _mm512_loadu_ps(p); }
    static V load_aligned(const T* p) { return _mm512_load_ps(p); }
    static V loadn(const T* p, size_t n) { return _mm512_maskz_loadu_ps(mask(n), p); }
    static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
    static void storen(T* p, V v, size_t n) { _mm512_mask_storeu_ps(p, mask(n), v); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static T hsum(V v) {
        // fixed pairwise tree over the 16 lanes
        alignas(64) float t[16];
        _mm512_store_ps(t, v);
        for (int w = 8; w >= 1; w /= 2)
            for (int i = 0; i < w; ++i) t[i] += t[i + w];
        return t[0];
    }
};

struct F64x8 {
    using T = double;
    using V = __m512d;
    static constexpr int W = 8;
    static constexpr int TB = 0;  // no block transpose: packing transposes element by element
    static __mmask8 mask(size_t n) { return __mmask8((1u << n) - 1u); }
    static V zero() { return _mm512_setzero_pd(); }
    static V set1(T x) { return _mm512_set1_pd(x); }
    static V load(const T* p) { return _mm512_loadu_pd(p); }
    static V load_aligned(const T* p) { return _mm512_load_pd(p); }
    static V loadn(const T* p, size_t n) { return _mm512_maskz_loadu_pd(mask(n), p); }
    static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
    static void storen(T* p, V v, size_t n) { _mm512_mask_storeu_pd(p, mask(n), v); }
    static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    static T hsum(V v) {
        // fixed pairwise tree over the 8 lanes
        alignas(64) double t[8];
        _mm512_store_pd(t, v);
        for (int w = 4; w >= 1; w /= 2)
            for (int i = 0; i < w; ++i) t[i] += t[i + w];
        return t[0];
    }
};

// 32 zmm registers: 14 x 2 accumulators + 2 B vectors + 1 broadcast.
struct Avx512F32 {
    using S = F32x16;
    static constexpr int MR = 14, NV = 2;
    static constexpr size_t KC = 256, MC = 168, NC = 4064;
    static constexpr int DIRECT_B_MMAX = 64, MR_ALT = 13, TALL_NMAX = 4 * NV * S::W;
    static constexpr int DOT_MMAX = 24, DOT_NMAX = 32, DOT1_JB = 8, DOT_IB = 4, DOT_JB = 4;
    static constexpr int AXPY_MMAX = 48, AXPY_KMAX = 16, AXPY1_JV = 8, AXPY_IB = 4, AXPY_JV = 4;
};
struct Avx512F64 {
    using S = F64x8;
    static constexpr int MR = 14, NV = 2;
    static constexpr size_t KC = 256, MC = 84, NC = 2032;
    static constexpr int DIRECT_B_MMAX = 64, MR_ALT = 13, TALL_NMAX = 4 * NV * S::W;
    static constexpr int DOT_MMAX = 24, DOT_NMAX = 32, DOT1_JB = 8, DOT_IB = 4, DOT_JB = 4;
    static constexpr int AXPY_MMAX = 48, AXPY_KMAX = 16, AXPY1_JV = 8, AXPY_IB = 4, AXPY_JV = 4;
};

}  // namespace

void gemm_avx512(const GemmArgs<float>& g) { gemm_run<Avx512F32>(g); }
void gemm_avx512(const GemmArgs<double>& g) { gemm_run<Avx512F64>(g); }

}  // namespace deltaprop::kernels::detail
