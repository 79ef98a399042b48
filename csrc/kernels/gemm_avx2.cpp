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
    static T hsum(V v) {
        __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
        return _mm_cvtsd_f64(s);
    }
};

// 16 ymm registers: 6 x 2 accumulators + 2 B vectors + 1 broadcast (dot: 3 x 4 + 3 + 1).
// Direct-kernel thresholds measured on Zen 3 (784 <-> 256 layers, batch 1..64).
struct Avx2F32 {
    using S = F32x8;
    static constexpr int MR = 6, NV = 2;
    static constexpr size_t KC = 256, MC = 144, NC = 4080;
    static constexpr int DOT_MMAX = 32, DOT1_JB = 8, DOT_IB = 3, DOT_JB = 4;
    static constexpr int AXPY_MMAX = 64, AXPY_KMAX = 16, AXPY1_JV = 8, AXPY_IB = 4, AXPY_JV = 3;
};
struct Avx2F64 {
    using S = F64x4;
    static constexpr int MR = 6, NV = 2;
    static constexpr size_t KC = 256, MC = 72, NC = 2040;
    static constexpr int DOT_MMAX = 32, DOT1_JB = 8, DOT_IB = 3, DOT_JB = 4;
    static constexpr int AXPY_MMAX = 64, AXPY_KMAX = 16, AXPY1_JV = 8, AXPY_IB = 4, AXPY_JV = 3;
};

}  // namespace

void gemm_avx2(const GemmArgs<float>& g) { gemm_run<Avx2F32>(g); }
void gemm_avx2(const GemmArgs<double>& g) { gemm_run<Avx2F64>(g); }

}  // namespace deltaprop::kernels::detail
