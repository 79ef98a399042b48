// SPDX-License-Identifier: MIT
// kernels::gemm against reference::gemm at every instruction-set level this CPU supports: both dtypes,
// all four transpose combinations, alpha/beta (beta = 0 over NaN-filled C), strides wider than the
// matrices, odd shapes around every block size, epilogues (each element once, after its final value);
// plus bitwise determinism across thread counts.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/reference/gemm_ref.h"
#include "kernels/threadpool.h"

namespace k = deltaprop::kernels;
using std::size_t;

static int g_failures = 0;
static unsigned long long g_rng = 0x9E3779B97F4A7C15ull;

static double uniform() {  // [-1, 1)
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return double(g_rng >> 11) / double(1ull << 52) - 1.0;
}

// A matrix of `rows` rows of `cols` used elements at stride ld: exactly (rows-1)*ld + cols elements are
// allocated, so a read past the last element is a heap overflow (caught under -fsanitize=address).
template <class T>
static std::vector<T> random_matrix(size_t rows, size_t cols, size_t ld) {
    std::vector<T> m(rows == 0 ? 0 : (rows - 1) * ld + cols);
    for (auto& v : m) v = T(uniform());
    return m;
}

struct Case {
    bool ta, tb;
    size_t M, N, K;
    double alpha, beta;
    size_t pad;  // extra stride beyond the width
};

template <class T>
static void check(const Case& c) {
    const size_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
    const size_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
    const size_t lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.N + c.pad;
    const auto A = random_matrix<T>(a_rows, a_cols, lda);
    const auto B = random_matrix<T>(b_rows, b_cols, ldb);
    // C with a sentinel in the padding, to catch writes outside the M x N block
    std::vector<T> C0(c.M * ldc);
    const T sentinel = T(12345.0);
    for (size_t i = 0; i < c.M; ++i)
        for (size_t j = 0; j < ldc; ++j)
            C0[i * ldc + j] = j >= c.N ? sentinel
                              : c.beta == 0 ? std::numeric_limits<T>::quiet_NaN()
                                            : T(uniform());
    std::vector<T> C = C0, R = C0;
    const T alpha = T(c.alpha), beta = T(c.beta);
    const T* pA = A.empty() ? nullptr : A.data();
    const T* pB = B.empty() ? nullptr : B.data();
    k::gemm<T>(c.ta, c.tb, c.M, c.N, c.K, alpha, pA, lda, pB, ldb, beta, C.data(), ldc);
    k::reference::gemm<T>(c.ta, c.tb, c.M, c.N, c.K, alpha, pA, lda, pB, ldb, beta, R.data(), ldc);
    const double eps = std::numeric_limits<T>::epsilon();
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < c.M; ++i)
        for (size_t j = 0; j < ldc; ++j) {
            const T got = C[i * ldc + j];
            if (j >= c.N) {
                if (!(got == sentinel)) ++bad;
                continue;
            }
            // error bound from sum_k |a||b| (the magnitude being summed), not from the result
            double mag = 0;
            for (size_t p = 0; p < c.K; ++p) {
                const double a = c.ta ? A[p * lda + i] : A[i * lda + p];
                const double b = c.tb ? B[j * ldb + p] : B[p * ldb + j];
                mag += std::fabs(a * b);
            }
            mag = std::fabs(c.alpha) * mag + (c.beta == 0 ? 0.0 : std::fabs(c.beta * C0[i * ldc + j]));
            const double err = std::fabs(double(got) - double(R[i * ldc + j]));
            const double tol = 2.0 * double(c.K + 4) * eps * mag + 1e-30;
            if (!(err <= tol)) {
                ++bad;
                if (err / tol > worst || std::isnan(err)) worst = std::isnan(err) ? 1e300 : err / tol;
            }
        }
    // The same product with an epilogue C <- 2 C + 1: every element visited once, after its final
    // value (so the result is exactly 2 C + 1 of the plain call), and nothing outside M x N.
    struct EpCtx {
        T* C;
        size_t ldc, N;
        std::atomic<int>* visits;
    };
    std::vector<T> E = C0;
    std::vector<std::atomic<int>> visits(c.M * c.N);
    for (auto& v : visits) v = 0;
    EpCtx ctx{E.data(), ldc, c.N, visits.data()};
    const k::Epilogue ep{[](void* p, size_t i0, size_t i1, size_t j0, size_t j1) {
                             auto* e = static_cast<EpCtx*>(p);
                             for (size_t i = i0; i < i1; ++i)
                                 for (size_t j = j0; j < j1; ++j) {
                                     e->visits[i * e->N + j].fetch_add(1);
                                     T& v = e->C[i * e->ldc + j];
                                     v = T(2) * v + T(1);
                                 }
                         },
                         &ctx};
    k::gemm<T>(c.ta, c.tb, c.M, c.N, c.K, alpha, pA, lda, pB, ldb, beta, E.data(), ldc, &ep);
    for (size_t i = 0; i < c.M; ++i)
        for (size_t j = 0; j < ldc; ++j) {
            if (j >= c.N) {
                if (!(E[i * ldc + j] == sentinel)) ++bad;
                continue;
            }
            const T want = T(2) * C[i * ldc + j] + T(1);
            if (visits[i * c.N + j].load() != 1 || !(E[i * ldc + j] == want || std::isnan(want))) {
                ++bad;
                worst = 1e300;
            }
        }
    if (bad) {
        ++g_failures;
        std::printf("FAIL %s %s ta=%d tb=%d M=%zu N=%zu K=%zu alpha=%g beta=%g pad=%zu: %zu bad, "
                    "worst err/tol %g\n",
                    k::level_name(k::level(sizeof(T) == 4 ? k::Family::gemm : k::Family::gemm_f64)), sizeof(T) == 4 ? "f32" : "f64", c.ta, c.tb, c.M, c.N, c.K,
                    c.alpha, c.beta, c.pad, bad, worst);
    }
}

template <class T>
static void run_shapes() {
    const size_t small[] = {1, 2, 7, 17, 33, 65};
    const double ab[][2] = {{1.0, 0.0}, {0.5, 1.0}, {-1.5, 0.25}};
    int n = 0;
    for (int t = 0; t < 4; ++t) {
        const bool ta = t & 1, tb = t & 2;
        for (size_t M : small)
            for (size_t N : small)
                for (size_t K : small) {
                    const auto& s = ab[n % 3];
                    check<T>({ta, tb, M, N, K, s[0], s[1], size_t(n % 4 == 0 ? 3 : 0)});
                    ++n;
                }
        // 257 in each position, and larger than every block size (MC, KC, NC) with odd remainders
        const size_t big[][3] = {{257, 33, 17}, {17, 257, 33}, {33, 17, 257}, {257, 65, 257},
                                 {1, 257, 257}, {257, 257, 1}, {3, 513, 300},  {4, 300, 513},
                                 {5, 300, 513}, {300, 70, 600}, {181, 91, 523}, {13, 4100, 70},
                                 {2, 4100, 65}, {600, 3, 2},   {700, 37, 4},  {37, 2100, 3},
                                 {100, 4100, 40}, {48, 200, 100}, {70, 50, 20},
                                 // tall and skinny (rows of A read in place, several K blocks, a
                                 // ragged last sliver of B; every sliver count up to the limit), few
                                 // rows of op(A) with a long K (B read in place, ragged last sliver,
                                 // row counts that choose each micro-tile height)
                                 {1000, 25, 300}, {333, 31, 65}, {2001, 25, 401}, {97, 10, 600},
                                 {130, 64, 33}, {40, 17, 7}, {25, 403, 700}, {10, 25, 3000}, {25, 403, 4100}, {7, 33, 2100}, {3, 5, 2048},
                                 {64, 785, 300}, {63, 257, 1100},
                                 // around the cache blocks of every level on common caches (kc 128 /
                                 // 256, mc up to ~600 rows), and K blocks of a 16 x 16 / 8 x 8 block
                                 // transpose with ragged ends
                                 {575, 97, 129}, {33, 1025, 385}, {601, 40, 1025}, {257, 63, 255},
                                 {29, 129, 17}};
        for (const auto& s : big) {
            const auto& a = ab[n % 3];
            check<T>({ta, tb, s[0], s[1], s[2], a[0], a[1], size_t(n % 2 ? 5 : 0)});
            ++n;
        }
        // K == 0 scales C by beta; M == 0 / N == 0 do nothing
        check<T>({ta, tb, 7, 9, 0, 1.0, 0.5, 2});
        check<T>({ta, tb, 7, 9, 0, 1.0, 0.0, 0});
        check<T>({ta, tb, 0, 9, 5, 1.0, 0.5, 0});
        check<T>({ta, tb, 7, 0, 5, 1.0, 0.5, 0});
    }
}

// Results must be bitwise identical whatever the thread count.
template <class T>
static void run_determinism() {
    const size_t shapes[][3] = {{300, 500, 700}, {256, 1024, 300}, {1, 2000, 800}, {3, 3000, 500},
                                {2000, 1000, 2},  {1, 3000, 500},   {40, 3000, 70}};
    for (int t = 0; t < 4; ++t) {
        const bool ta = t & 1, tb = t & 2;
        for (const auto& s : shapes) {
            const size_t M = s[0], N = s[1], K = s[2];
            const size_t lda = ta ? M : K, ldb = tb ? K : N;
            const auto A = random_matrix<T>(ta ? K : M, lda, lda);
            const auto B = random_matrix<T>(tb ? N : K, ldb, ldb);
            const auto C0 = random_matrix<T>(M, N, N);
            std::vector<T> first;
            for (int threads = 1; threads <= 3; ++threads) {
                k::set_num_threads(threads);
                std::vector<T> C = C0;
                k::gemm<T>(ta, tb, M, N, K, T(0.75), A.data(), lda, B.data(), ldb, T(0.5), C.data(), N);
                if (threads == 1) {
                    first = C;
                } else if (std::memcmp(first.data(), C.data(), C.size() * sizeof(T)) != 0) {
                    ++g_failures;
                    std::printf("FAIL determinism %s %s ta=%d tb=%d M=%zu N=%zu K=%zu: %d threads differ "
                                "from 1\n",
                                k::level_name(k::level(sizeof(T) == 4 ? k::Family::gemm : k::Family::gemm_f64)), sizeof(T) == 4 ? "f32" : "f64", ta, tb, M, N, K,
                                threads);
                }
            }
        }
    }
    k::set_num_threads(0);
}

int main() {
    const k::Level best = k::best_level();
    std::printf("best level: %s, threads: %d, L1d %zu KiB, L2 %zu KiB, L3 %zu KiB\n", k::level_name(best),
                k::num_threads(), k::cpu().l1d >> 10, k::cpu().l2 >> 10, k::cpu().l3 >> 10);
    if (k::set_level(k::Level(int(best) + 1))) {
        ++g_failures;
        std::printf("FAIL set_level accepted a level above the CPU's\n");
    }
    for (int l = int(k::Level::portable); l <= int(best); ++l) {
        if (!k::set_level(k::Level(l)) || k::level() != k::Level(l)) {
            ++g_failures;
            std::printf("FAIL set_level(%d)\n", l);
            continue;
        }
        const int before = g_failures;
        run_shapes<float>();
        run_shapes<double>();
        run_determinism<float>();
        run_determinism<double>();
        std::printf("%s: %s\n", k::level_name(k::Level(l)), g_failures == before ? "ok" : "FAILED");
    }
    k::set_level(best);
    if (g_failures) std::printf("%d failure(s)\n", g_failures);
    return g_failures ? 1 : 0;
}
