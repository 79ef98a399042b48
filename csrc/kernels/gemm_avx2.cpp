// SPDX-License-Identifier: MIT
// AVX2 + FMA instance of the GEMM (compiled with -mavx2 -mfma; used only if the CPU has both).
#include <immintrin.h>

#include "kernels/gemm_impl.h"

namespace deltaprop::kernels::detail {
namespace {

alignas(64) const std::int32_t kMask32[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
alignas(64) const std::int64_t kMask64[8] = {-1, -1, -1, -1, 0, 0, 0, 0};

struct F32x8 {
    using T = float;
    using V = __m256;
    static constexpr int W = 8;
    static __m256i mask(size_t n) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask32 + 8 - n));
    }
    static V zero() { return _mm256_setzero_ps(); }
    static V set1(T x) { return _mm256_set1_ps(x); }
    static V load(const T* p) { return _mm256_loadu_ps(p); }
    static V load_aligned(const T* p) { return _mm256_load_ps(p); }
    static V loadn(const T* p, size_t n) { return _mm256_maskload_ps(p, mask(n)); }
    static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
    static void storen(T* p, V v, size_t n) { _mm256_maskstore_ps(p, mask(n), v); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    // dst[k * ldd + r] = src[r * ld + k] for an 8 x 8 block
    static constexpr int TB = 8;
    static void transpose(const T* src, size_t ld, T* dst, size_t ldd) {
        V r[8], t[8], u[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + size_t(i) * ld);
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
            u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
            u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
            u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
            u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
        }
        for (int k = 0; k < 4; ++k) {
            _mm256_storeu_ps(dst + size_t(k) * ldd, _mm256_permute2f128_ps(u[k], u[k + 4], 0x20));
            _mm256_storeu_ps(dst + size_t(k + 4) * ldd, _mm256_permute2f128_ps(u[k], u[k + 4], 0x31));
        }
    }
    static T hsum(V v) {
        // ((l0+h0)+(l2+h2)) + ((l1+h1)+(l3+h3)), a fixed tree
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
};

struct F64x4 {
    using T = double;
    using V = __m256d;
    static constexpr int W = 4;
    static __m256i mask(size_t n) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask64 + 4 - n));
    }
    static V zero() { return _mm256_setzero_pd(); }
    static V set1(T x) { return _mm256_set1_pd(x); }
    static V load(const T* p) { return _mm256_loadu_pd(p); }
    static V load_aligned(const T* p) { return _mm256_load_pd(p); }
    static V loadn(const T* p, size_t n) { return _mm256_maskload_pd(p, mask(n)); }
    static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
    static void storen(T* p, V v, size_t n) { _mm256_maskstore_pd(p, mask(n), v); }
    static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
    // dst[k * ldd + r] = src[r * ld + k] for a 4 x 4 block
    static constexpr int TB = 4;
    static void transpose(const T* src, size_t ld, T* dst, size_t ldd) {
        const V r0 = _mm256_loadu_pd(src), r1 = _mm256_loadu_pd(src + ld);
        const V r2 = _mm256_loadu_pd(src + 2 * ld), r3 = _mm256_loadu_pd(src + 3 * ld);
        const V t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
        const V t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
        _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
        _mm256_storeu_pd(dst + ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
        _mm256_storeu_pd(dst + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
        _mm256_storeu_pd(dst + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
    }
    static T hsum(V v) {
        __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
        return _mm_cvtsd_f64(s);
    }
};

// 16 ymm registers: 6 x 2 accumulators + 2 B vectors + 1 broadcast (dot: 3 x 4 + 3 + 1).
// Direct-kernel thresholds: re-derived by benchmarks/gemm_bench.cpp on the W1 shapes (784 <-> 256
// layers, batch 1..64); figures in benchmarks/README.md.
struct Avx2F32 {
    using S = F32x8;
    static constexpr int MR = 6, NV = 2;
    static constexpr bool A_IN_PLACE = true;
    static constexpr int DIRECT_B_MMAX = 64, MR_ALT = 5, TALL_NMAX = 4 * NV * S::W;
    static constexpr int DOT_MMAX = 32, DOT_NMAX = 32, DOT1_JB = 8, DOT_IB = 3, DOT_JB = 4;
    static constexpr int AXPY_MMAX = 64, AXPY_KMAX = 16, AXPY1_JV = 8, AXPY_IB = 4, AXPY_JV = 3;
};
struct Avx2F64 {
    using S = F64x4;
    static constexpr int MR = 6, NV = 2;
    static constexpr bool A_IN_PLACE = true;
    static constexpr int DIRECT_B_MMAX = 64, MR_ALT = 5, TALL_NMAX = 4 * NV * S::W;
    static constexpr int DOT_MMAX = 32, DOT_NMAX = 32, DOT1_JB = 8, DOT_IB = 3, DOT_JB = 4;
    static constexpr int AXPY_MMAX = 64, AXPY_KMAX = 16, AXPY1_JV = 8, AXPY_IB = 4, AXPY_JV = 3;
};

}  // namespace

void gemm_avx2(const GemmArgs<float>& g) { gemm_run<Avx2F32>(g); }
void gemm_avx2(const GemmArgs<double>& g) { gemm_run<Avx2F64>(g); }

}  // namespace deltaprop::kernels::detail
