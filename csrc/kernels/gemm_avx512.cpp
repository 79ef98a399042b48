// SPDX-License-Identifier: MIT
// AVX-512 (F/BW/DQ/VL) instance of the GEMM (compiled with those flags; used only if the CPU has them).
#include <immintrin.h>

#include "kernels/gemm_impl.h"

// GCC 12's unpack/shuffle intrinsics pass _mm512_undefined_*() as the unused merge source, which its own
// -Wuninitialized then reports; the instructions read no such value.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace deltaprop::kernels::detail {
namespace {

struct F32x16 {
    using T = float;
    using V = __m512;
    static constexpr int W = 16;
    static __mmask16 mask(size_t n) { return __mmask16((1u << n) - 1u); }
    // dst[k * ldd + r] = src[r * ld + k] for a 16 x 16 block: pairs, then quads within 128-bit lanes,
    // then the lanes themselves
    static constexpr int TB = 16;
    static void transpose(const T* src, size_t ld, T* dst, size_t ldd) {
        V r[16], t[16];
        for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + size_t(i) * ld);
        for (int i = 0; i < 16; i += 2) {
            t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);      // per lane L: a[4L] b[4L] a[4L+1] b[4L+1]
            t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);  // a[4L+2] b[4L+2] a[4L+3] b[4L+3]
        }
        for (int i = 0; i < 16; i += 4) {  // r[i + j], lane L: column 4L + j of rows i..i+3
            r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
            r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
            r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
            r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
        }
        for (int j = 0; j < 4; ++j) {
            const V v0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44);  // lanes 0,1 of row groups 0, 1
            const V v1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xEE);  // lanes 2,3 of row groups 0, 1
            const V w0 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44);
            const V w1 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xEE);
            _mm512_storeu_ps(dst + size_t(j) * ldd, _mm512_shuffle_f32x4(v0, w0, 0x88));
            _mm512_storeu_ps(dst + size_t(4 + j) * ldd, _mm512_shuffle_f32x4(v0, w0, 0xDD));
            _mm512_storeu_ps(dst + size_t(8 + j) * ldd, _mm512_shuffle_f32x4(v1, w1, 0x88));
            _mm512_storeu_ps(dst + size_t(12 + j) * ldd, _mm512_shuffle_f32x4(v1, w1, 0xDD));
        }
    }
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
    static __mmask8 mask(size_t n) { return __mmask8((1u << n) - 1u); }
    // dst[k * ldd + r] = src[r * ld + k] for an 8 x 8 block: pairs within 128-bit lanes, then the lanes
    static constexpr int TB = 8;
    static void transpose(const T* src, size_t ld, T* dst, size_t ldd) {
        V r[8], t[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm512_loadu_pd(src + size_t(i) * ld);
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);      // lane L: a[2L] b[2L]
            t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);  // lane L: a[2L+1] b[2L+1]
        }
        for (int j = 0; j < 2; ++j) {
            const V v0 = _mm512_shuffle_f64x2(t[j], t[2 + j], 0x44);
            const V v1 = _mm512_shuffle_f64x2(t[j], t[2 + j], 0xEE);
            const V w0 = _mm512_shuffle_f64x2(t[4 + j], t[6 + j], 0x44);
            const V w1 = _mm512_shuffle_f64x2(t[4 + j], t[6 + j], 0xEE);
            _mm512_storeu_pd(dst + size_t(j) * ldd, _mm512_shuffle_f64x2(v0, w0, 0x88));
            _mm512_storeu_pd(dst + size_t(2 + j) * ldd, _mm512_shuffle_f64x2(v0, w0, 0xDD));
            _mm512_storeu_pd(dst + size_t(4 + j) * ldd, _mm512_shuffle_f64x2(v1, w1, 0x88));
            _mm512_storeu_pd(dst + size_t(6 + j) * ldd, _mm512_shuffle_f64x2(v1, w1, 0xDD));
        }
    }
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

// 32 zmm registers: 14 x 2 accumulators + 2 B vectors + 1 broadcast. Rows of op(A) are always packed
// (A_IN_PLACE false): read in place, the micro-kernel would need 14 row pointers, more than the general
// registers left beside B, C and the counters, and its loop would spill (benchmarks/gemm_bench.cpp
// compares both; figures in benchmarks/README.md).
struct Avx512F32 {
    using S = F32x16;
    static constexpr int MR = 14, NV = 2;
    static constexpr bool A_IN_PLACE = false;
    static constexpr int DIRECT_B_MMAX = 64, MR_ALT = 13, TALL_NMAX = 4 * NV * S::W;
    static constexpr int DOT_MMAX = 24, DOT_NMAX = 32, DOT1_JB = 8, DOT_IB = 4, DOT_JB = 4;
    static constexpr int AXPY_MMAX = 48, AXPY_KMAX = 16, AXPY1_JV = 8, AXPY_IB = 4, AXPY_JV = 4;
};
struct Avx512F64 {
    using S = F64x8;
    static constexpr int MR = 14, NV = 2;
    static constexpr bool A_IN_PLACE = false;
    static constexpr int DIRECT_B_MMAX = 64, MR_ALT = 13, TALL_NMAX = 4 * NV * S::W;
    static constexpr int DOT_MMAX = 24, DOT_NMAX = 32, DOT1_JB = 8, DOT_IB = 4, DOT_JB = 4;
    static constexpr int AXPY_MMAX = 48, AXPY_KMAX = 16, AXPY1_JV = 8, AXPY_IB = 4, AXPY_JV = 4;
};

}  // namespace

void gemm_avx512(const GemmArgs<float>& g) { gemm_run<Avx512F32>(g); }
void gemm_avx512(const GemmArgs<double>& g) { gemm_run<Avx512F64>(g); }

}  // namespace deltaprop::kernels::detail
