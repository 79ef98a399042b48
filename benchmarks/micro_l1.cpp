// SPDX-License-Identifier: MIT
// The GEMM micro-kernel alone (kernels/gemm_impl.h `micro`, the library's template), its operands in L1:
// what the core gives each register tile without packing, memory or threads. It checks the predictions of
// benchmarks/mca.py on the machine at hand. Built by hand, once per level, from the repository root:
//   F="-std=c++17 -O3 -ffp-contract=off -fno-math-errno -Icsrc -Icsrc/include -DDP_X86=1"
//   g++ $F -mavx2 -mfma benchmarks/micro_l1.cpp -o micro_l1_avx2
//   g++ $F -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma benchmarks/micro_l1.cpp -o micro_l1_avx512
//   ./micro_l1_avx2; ./micro_l1_avx512          (a few seconds each)
// Prints GFLOP/s (thread CPU time, best of 7 rounds) per tile at the level the binary was built for, the
// tiles of gemm_avx2.cpp / gemm_avx512.cpp (MR rows x NV vectors, packed A; one vector wide as in the
// tall path). Divide by the core clock for flops per cycle (the FMA peak: 2 FMA units x lanes x 2).
#include <cstdio>
#include <ctime>
#include <immintrin.h>

#include "kernels/gemm_impl.h"

namespace dk = deltaprop::kernels::detail;
using std::size_t;

// The subset of the SIMD traits (gemm_avx2.cpp, gemm_avx512.cpp) that `micro` uses, for float32.
#if defined(__AVX512F__)
struct S {
    using T = float;
    using V = __m512;
    static constexpr int W = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V set1(T x) { return _mm512_set1_ps(x); }
    static V load(const T* p) { return _mm512_loadu_ps(p); }
    static V loadn(const T* p, size_t n) { return _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1u), p); }
    static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
    static void storen(T* p, V v, size_t n) { _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1u), v); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
};
constexpr int MR = 14;
const char* kLevel = "avx512";
#else
struct S {
    using T = float;
    using V = __m256;
    static constexpr int W = 8;
    static __m256i mask(size_t n) {
        alignas(32) static const int m[16] = {-1, -1, -1, -1, -1, -1, -1, -1};
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m + 8 - n));
    }
    static V zero() { return _mm256_setzero_ps(); }
    static V set1(T x) { return _mm256_set1_ps(x); }
    static V load(const T* p) { return _mm256_loadu_ps(p); }
    static V loadn(const T* p, size_t n) { return _mm256_maskload_ps(p, mask(n)); }
    static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
    static void storen(T* p, V v, size_t n) { _mm256_maskstore_ps(p, mask(n), v); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
};
constexpr int MR = 6;
const char* kLevel = "avx2";
#endif

static double thread_seconds() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

constexpr size_t kKc = 128;  // A sliver (MR x kc) and B sliver (kc x NR) together well inside a 32 KiB L1
alignas(64) float A[16 * kKc], B[kKc * 2 * 16], C[16 * 2 * 16];

// C[MR x NV*W] = A sliver (packed [kc][MR]) x B sliver (packed [kc][NR]); GFLOP/s, best of `rounds`.
template <int NV, bool A_ROWS>
__attribute__((noinline)) void run(size_t kc) {
    constexpr size_t NR = size_t(NV) * S::W;
    if (A_ROWS)  // rows of A read in place (row stride kc), as the tall path reads them
        dk::micro<S, MR, NV, true>(kc, A, kc, B, NR, C, NR, MR, NR, 1.0f, 0.0f);
    else
        dk::micro<S, MR, NV>(kc, A, 0, B, NR, C, NR, MR, NR, 1.0f, 0.0f);
}

template <int NV, bool A_ROWS>
double gflops() {
    const double flops = 2.0 * MR * NV * S::W * double(kKc);
    double best = 0;
    for (int round = 0; round < 7; ++round) {
        long calls = 0;
        const double t0 = thread_seconds();
        double t = 0;
        do {
            for (int r = 0; r < 256; ++r) run<NV, A_ROWS>(kKc);
            calls += 256;
            t = thread_seconds() - t0;
        } while (t < 0.1);
        const double g = flops * double(calls) / t * 1e-9;
        best = g > best ? g : best;
    }
    return best;
}

int main() {
    for (size_t i = 0; i < sizeof(A) / sizeof(A[0]); ++i) A[i] = float(int(i % 7) - 3) / 64.0f;
    for (size_t i = 0; i < sizeof(B) / sizeof(B[0]); ++i) B[i] = float(int(i % 5) - 2) / 64.0f;
    std::printf("level %s, float32, kc %zu, GFLOP/s (thread CPU time, best of 7)\n", kLevel, kKc);
    std::printf("  packed A, %2d x %2d (MR x NV vectors):       %6.1f\n", MR, 2 * S::W, gflops<2, false>());
    std::printf("  rows of A in place, %2d x %2d:               %6.1f\n", MR, 2 * S::W, gflops<2, true>());
    std::printf("  rows of A in place, %2d x %2d (tall, N <= W): %6.1f\n", MR, S::W, gflops<1, true>());
    return 0;
}
