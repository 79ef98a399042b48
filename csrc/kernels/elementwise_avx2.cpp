// SPDX-License-Identifier: MIT
// AVX2+FMA build of the elementwise kernels (compiled with -mavx2 -mfma, chosen at run time), with
// vectorised exp: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, a Taylor polynomial for
// exp(r), and 2^n built in the exponent bits.
#include <immintrin.h>

#include <cstddef>

namespace deltaprop::kernels::avx2 {

namespace {

inline __m256 exp_ps(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
    // exp(r) = sum_k r^k / k!, k <= 7
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline __m256d exp_pd(__m256d x) {
    x = _mm256_min_pd(_mm256_max_pd(x, _mm256_set1_pd(-708.39)), _mm256_set1_pd(709.0));
    const __m256d n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(1.4426950408889634074)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), x);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);
    // exp(r) = sum_k r^k / k!, k <= 13
    static const double inv_fact[14] = {1.0,
                                        1.0,
                                        1.0 / 2,
                                        1.0 / 6,
                                        1.0 / 24,
                                        1.0 / 120,
                                        1.0 / 720,
                                        1.0 / 5040,
                                        1.0 / 40320,
                                        1.0 / 362880,
                                        1.0 / 3628800,
                                        1.0 / 39916800,
                                        1.0 / 479001600,
                                        1.0 / 6227020800.0};
    __m256d p = _mm256_set1_pd(inv_fact[13]);
    for (int k = 12; k >= 0; --k) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(inv_fact[k]));
    // 2^n: n + (2^52 + 2^51) puts n in the low mantissa bits; subtract the magic's bits to get n.
    const __m256d magic = _mm256_set1_pd(6755399441055744.0);
    const __m256i ni = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n, magic)), _mm256_castpd_si256(magic));
    const __m256i e = _mm256_slli_epi64(_mm256_add_epi64(ni, _mm256_set1_epi64x(1023)), 52);
    return _mm256_mul_pd(p, _mm256_castsi256_pd(e));
}

// log1p(e) for 0 <= e <= 1: y = 1 + e and its rounding error c (exact, as e <= 1); y = 2^k f with
// f in [sqrt(1/2), sqrt(2)]; log f = 2 atanh(s), s = (f - 1) / (f + 1) (f - 1 is exact), |s| <= 0.1716,
// by its series to s^21 (truncation < 1e-17 relative); log1p(e) = k ln 2 + log f + c / y.
inline __m256d log1p_pd(__m256d e) {
    const __m256d one = _mm256_set1_pd(1.0);
    const __m256d y = _mm256_add_pd(one, e);
    const __m256d c = _mm256_sub_pd(e, _mm256_sub_pd(y, one));
    const __m256d big = _mm256_cmp_pd(y, _mm256_set1_pd(1.4142135623730951), _CMP_GT_OQ);
    const __m256d f = _mm256_blendv_pd(y, _mm256_mul_pd(y, _mm256_set1_pd(0.5)), big);
    const __m256d s = _mm256_div_pd(_mm256_sub_pd(f, one), _mm256_add_pd(f, one));
    const __m256d s2 = _mm256_mul_pd(s, s);
    __m256d p = _mm256_set1_pd(1.0 / 21);
    for (int k = 19; k >= 1; k -= 2) p = _mm256_fmadd_pd(p, s2, _mm256_set1_pd(1.0 / k));
    const __m256d r = _mm256_fmadd_pd(_mm256_add_pd(s, s), p, _mm256_div_pd(c, y));
    return _mm256_add_pd(r, _mm256_and_pd(big, _mm256_set1_pd(0.69314718055994530942)));
}

}  // namespace

template <class T>
void exp_inplace(T* x, std::size_t n);

template <>
void exp_inplace<float>(float* x, std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp_ps(_mm256_loadu_ps(x + i)));
    if (i < n) {  // the tail through the same vector code, via a padded copy
        alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (std::size_t k = 0; i + k < n; ++k) t[k] = x[i + k];
        _mm256_store_ps(t, exp_ps(_mm256_load_ps(t)));
        for (std::size_t k = 0; i + k < n; ++k) x[i + k] = t[k];
    }
}

namespace {
// x[i] = f(x[i]) four at a time; the tail through the same vector code, via a padded copy
template <class F>
void map_pd(double* x, std::size_t n, F f) {
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, f(_mm256_loadu_pd(x + i)));
    if (i < n) {
        alignas(32) double t[4] = {0, 0, 0, 0};
        for (std::size_t k = 0; i + k < n; ++k) t[k] = x[i + k];
        _mm256_store_pd(t, f(_mm256_load_pd(t)));
        for (std::size_t k = 0; i + k < n; ++k) x[i + k] = t[k];
    }
}
}  // namespace

template <>
void exp_inplace<double>(double* x, std::size_t n) {
    map_pd(x, n, [](__m256d v) { return exp_pd(v); });
}

// x[i] = log1p(x[i]) for 0 <= x[i] <= 1
void log1p_unit_inplace(double* x, std::size_t n) {
    map_pd(x, n, [](__m256d v) { return log1p_pd(v); });
}

}  // namespace deltaprop::kernels::avx2

#define DP_ISA_NS avx2
#include "kernels/elementwise_impl.h"
#undef DP_ISA_NS
