// SPDX-License-Identifier: MIT
#pragma once
// Private to the gemm translation units. The GEMM is written once here, over a small SIMD trait `S`,
// and compiled once per instruction set (gemm_portable.cpp, gemm_avx2.cpp, gemm_avx512.cpp).
//
// Everything after the `detail` declarations sits in an anonymous namespace, so each instruction-set
// unit has its own private copy: no AVX code can reach another unit through the linker's merging of
// inline functions. For the same reason these templates use no standard-library function templates.
//
// Algorithm (Goto / BLIS): C is covered by tiles of whole MR x NR micro-tiles. For each K block (<= kc,
// all blocks near-equal) op(A) is packed into MR-tall slivers and op(B) into NR-wide slivers, and the
// register-blocked micro-kernel runs over the tiles. Two ways to share the work: many row blocks (large
// M): the op(B) panel is packed once, in parallel, and each task packs and runs its own row block of
// op(A); few row blocks (small batches): op(A) is packed once and each task packs and runs its own column
// chunk of op(B). With op(B) = B and few rows, full B slivers are read in place (no packing). Packing
// reads only the caller's elements and zero-pads, so the micro-kernel never needs bounds checks except on
// the final (masked) store. Tile boundaries and K blocks depend only on (M, N, K) and the cache sizes
// (never on the thread count), and K is never split
// between tasks, so every element of C is computed by the same instruction sequence whatever the thread
// count: results are bitwise identical for any thread count. An optional epilogue (gemm.h) runs on each
// finished block right after its last K block, on the thread that computed it.
//
// Shape-specific paths, all deterministic for any thread count: few rows of op(A) = A are read in
// place by the micro-kernel (no serial packing) with longer K blocks; a mini-batch parameter gradient
// (delta^T x, one K block) is cut by rows of dW, the rows of W that the forward product's column chunks
// read, with x read in place when its rows fit in L1; a full-batch parameter gradient (long K, small C)
// splits K into fixed ranges whose partial products are summed in order; tall and skinny products
// (few columns) pack op(B) once and read the rows of op(A) in place. The thread pool gives a task index
// to the same thread from call to call, so these cuts keep each array's rows on one core.
//
// Small problems skip packing: with op(B) = B^T (forward, x W^T) and few rows, or few columns (tall and
// skinny), a direct kernel streams rows of op(A) and W and takes dot products; with op(B) = B (delta W,
// or delta^T x with a small batch) and few rows while B stays in cache, or a short K, a direct kernel
// broadcasts op(A) elements against contiguous rows of B.
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/threadpool.h"
#include "kernels/tuning.h"

namespace deltaprop::kernels::detail {

template <class T>
struct GemmArgs {
    bool trans_a, trans_b;
    std::size_t M, N, K;
    T alpha;
    const T* A;
    std::size_t lda;
    const T* B;
    std::size_t ldb;
    T beta;
    T* C;
    std::size_t ldc;
    const Epilogue* ep;  // may be null
};

void gemm_portable(const GemmArgs<float>& g);
void gemm_portable(const GemmArgs<double>& g);
#if DP_X86
void gemm_avx2(const GemmArgs<float>& g);
void gemm_avx2(const GemmArgs<double>& g);
void gemm_avx512(const GemmArgs<float>& g);
void gemm_avx512(const GemmArgs<double>& g);
#endif

// Per-thread scratch, 64-byte aligned, grown on demand and never shrunk (no allocation in steady
// state). Slot 0: packed B panel (owned by the calling thread, read by the workers during one call);
// slot 1: packed A block (owned by the thread running a task); slot 2: small copies; slot 3: all of
// op(A)'s K block, packed once when several tasks share it (owned by the calling thread); slot 4: the
// partial products of a split K (owned by the calling thread).
// Returns nullptr if the allocation fails.
void* scratch(int slot, std::size_t bytes) noexcept;

namespace {

using std::size_t;

inline size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
inline size_t max_sz(size_t a, size_t b) { return a < b ? b : a; }
inline size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
inline size_t round_up(size_t a, size_t b) { return ceil_div(a, b) * b; }

// The task sizes, thresholds and counts of the cuts below: tuning.h (what each trades, and the
// benchmark that re-derives it).
using tuning::kMinTaskFlops;
using tuning::kMinPackedTaskFlops;
using tuning::kMaxTasks;
using tuning::kPackGrain;
using tuning::kFewRowBlocks;
using tuning::kSmallBatchKcFactor;
using tuning::kColumnTasks;
using tuning::kParamRowTasks;
using tuning::kSplitMinK;
using tuning::kSplitParts;
using tuning::kSplitMaxC;
using tuning::kSplitSumBlocks;
using tuning::kEpilogueSlivers;
using tuning::kPrefetchRows;
using tuning::kAxpyMaxBBytes;

// Whether `rows` cache lines spaced `stride` bytes apart fit in L1 together (assumed 64 sets of 8
// lines): strides of a multiple of 4 KiB put them all in one set, where 8 evict each other.
inline bool rows_fit_l1(size_t stride, size_t rows) {
    if (stride % 64) return true;
    size_t a = (stride / 64) % 64, b = 64;  // sets reached: 64 / gcd(stride in lines, 64)
    while (a) {
        const size_t r = b % a;
        b = a;
        a = r;
    }
    return (64 / b) * 8 >= rows;
}

// Cache blocking of the packed GEMM, derived once per level and dtype from the cache sizes the CPU
// reports (dispatch.h), for a micro-tile of MR x NR elements of `bytes` bytes:
//  - kc: the packed op(B) sliver (kc x NR), re-read by every micro-tile of a row block, takes half of
//    L1d; the other half streams the op(A) slivers and C;
//  - mc: the packed op(A) block (mc x kc), re-read for every sliver of op(B), takes 9/32 of L2 (the rest:
//    the op(B) slivers passing through, C, and what the epilogue touches);
//  - nc: the packed op(B) panel (kc x nc), shared by the row blocks, takes a quarter of L3.
// On a core with 32 KiB L1d and 512 KiB L2 these give the constants the AVX2 kernels were first tuned
// with (kc 256, mc 144 for float32); benchmarks/gemm_bench.cpp ("levels") measures them.
struct Blocking {
    size_t kc, mc, nc;
};
inline Blocking make_blocking(size_t MR, size_t NR, size_t bytes) {
    const CpuInfo& c = cpu();
    size_t kc = c.l1d / 2 / (NR * bytes) / 16 * 16;
    kc = kc < 64 ? 64 : kc > 1024 ? 1024 : kc;
    size_t mc = c.l2 / 32 * 9 / (kc * bytes) / MR * MR;
    mc = mc < 2 * MR ? 2 * MR : mc > 256 * MR ? 256 * MR : mc;
    size_t nc = c.l3 / 4 / (kc * bytes) / NR * NR;
    nc = nc < 16 * NR ? 16 * NR : nc > 8192 * NR ? 8192 * NR : nc;
    return Blocking{kc, mc, nc};
}
template <class Cfg>
const Blocking& blocking() {
    static const Blocking b = make_blocking(Cfg::MR, Cfg::NV * Cfg::S::W, sizeof(typename Cfg::S::T));
    return b;
}

// Calls f(std::integral_constant<int, n>) for a runtime 1 <= n <= N.
template <int N, class F>
inline void with_const(size_t n, F&& f) {
    if constexpr (N > 1) {
        if (n == size_t(N)) {
            f(std::integral_constant<int, N>{});
            return;
        }
        with_const<N - 1>(n, f);
    } else {
        f(std::integral_constant<int, 1>{});
    }
}

// ---------------------------------------------------------------------------------------------------
// Naive fallback, used only if scratch memory cannot be allocated.
// C[i][j] = alpha * sum_{k in [p0,p1)} op(A)[i][k] op(B)[k][j] + beta * C[i][j]   (beta == 0: no read)
template <class T>
void naive_block(const GemmArgs<T>& g, size_t i0, size_t i1, size_t j0, size_t j1, size_t p0,
                 size_t p1, T beta) {
    for (size_t i = i0; i < i1; ++i)
        for (size_t j = j0; j < j1; ++j) {
            T s = 0;
            for (size_t k = p0; k < p1; ++k)
                s += (g.trans_a ? g.A[k * g.lda + i] : g.A[i * g.lda + k]) *
                     (g.trans_b ? g.B[j * g.ldb + k] : g.B[k * g.ldb + j]);
            T& c = g.C[i * g.ldc + j];
            c = beta == T(0) ? g.alpha * s : g.alpha * s + beta * c;
        }
}

// The epilogue, if any, on the finished block [i0, i1) x [j0, j1) of C.
template <class T>
inline void epilogue(const GemmArgs<T>& g, size_t i0, size_t i1, size_t j0, size_t j1) {
    if (g.ep) g.ep->fn(g.ep->ctx, i0, i1, j0, j1);
}

// C = beta * C (beta == 0 writes zeros without reading).
template <class T>
void scale_c(const GemmArgs<T>& g) {
    for (size_t i = 0; i < g.M; ++i) {
        T* c = g.C + i * g.ldc;
        if (g.beta == T(0))
            for (size_t j = 0; j < g.N; ++j) c[j] = T(0);
        else
            for (size_t j = 0; j < g.N; ++j) c[j] = g.beta * c[j];
    }
}

// ---------------------------------------------------------------------------------------------------
// Packing. dst holds ceil(mc/MR) slivers; sliver s is [kc][MR]: dst[s][k][r] = op(A)[s*MR + r][k],
// zero for rows >= mc.
template <class T, int MR>
void pack_a(bool trans_a, size_t mc, size_t kc, const T* A, size_t lda, T* __restrict dst) {
    const size_t full = mc / MR, rest = mc % MR;
    if (trans_a) {
        // op(A)[i][k] = A[k][i]: walk each row k of A once, handing MR elements to every sliver
        for (size_t k = 0; k < kc; ++k) {
            const T* src = A + k * lda;
            T* d = dst + k * MR;
            for (size_t s = 0; s < full; ++s, src += MR, d += MR * kc) {
#pragma GCC unroll 16
                for (int r = 0; r < MR; ++r) d[r] = src[r];
            }
            if (rest)
                for (size_t r = 0; r < size_t(MR); ++r) d[r] = r < rest ? src[r] : T(0);
        }
        return;
    }
    // op(A)[i][k] = A[i][k]: interleave MR row streams
    for (size_t s = 0; s < full; ++s, dst += MR * kc) {
        const T* src = A + s * MR * lda;
        for (size_t k = 0; k < kc; ++k) {
#pragma GCC unroll 16
            for (int r = 0; r < MR; ++r) dst[k * MR + r] = src[r * lda + k];
        }
    }
    if (rest) {
        const T* src = A + full * MR * lda;
        for (size_t k = 0; k < kc; ++k)
            for (size_t r = 0; r < size_t(MR); ++r) dst[k * MR + r] = r < rest ? src[r * lda + k] : T(0);
    }
}

// dst holds slivers of NR columns; sliver s is [kc][NR]: dst[s][k][c] = op(B)[k][s*NR + c], zero for
// columns >= nc. S::TB > 0: S::transpose moves TB x TB blocks (NR is a multiple of TB).
template <class S, int NR>
void pack_b(bool trans_b, size_t kc, size_t nc, const typename S::T* B, size_t ldb,
            typename S::T* __restrict dst) {
    using T = typename S::T;
    const size_t full = nc / NR, rest = nc % NR;
    if (!trans_b) {
        // op(B)[k][j] = B[k][j]: walk each row k of B once, handing NR elements to every sliver
        for (size_t k = 0; k < kc; ++k) {
            const T* src = B + k * ldb;
            T* d = dst + k * NR;
            for (size_t s = 0; s < full; ++s, src += NR, d += NR * kc) {
#pragma GCC unroll 4
                for (int c = 0; c < NR; ++c) d[c] = src[c];
            }
            if (rest)
                for (size_t c = 0; c < size_t(NR); ++c) d[c] = c < rest ? src[c] : T(0);
        }
        return;
    }
    // op(B)[k][j] = B[j][k]: transpose NR rows, 4 k at a time to keep the writes dense
    for (size_t s = 0; s < full; ++s, dst += NR * kc) {
        const T* src = B + s * NR * ldb;
        size_t k = 0;
        if constexpr (S::TB > 0) {
            static_assert(NR % S::TB == 0, "NR must be a multiple of the transpose block");
            for (; k + S::TB <= kc; k += S::TB)
                for (int c = 0; c < NR; c += S::TB)
                    S::transpose(src + size_t(c) * ldb + k, ldb, dst + k * NR + c, NR);
        }
        for (; k + 4 <= kc; k += 4) {
            T* d = dst + k * NR;
#pragma GCC unroll 4
            for (int c = 0; c < NR; ++c) {
                const T* p = src + size_t(c) * ldb + k;
                d[c] = p[0];
                d[NR + c] = p[1];
                d[2 * NR + c] = p[2];
                d[3 * NR + c] = p[3];
            }
        }
        for (; k < kc; ++k)
            for (int c = 0; c < NR; ++c) dst[k * NR + c] = src[size_t(c) * ldb + k];
    }
    if (rest) {
        const T* src = B + full * NR * ldb;
        for (size_t c = 0; c < size_t(NR); ++c) {
            T* d = dst + c;
            if (c < rest)
                for (size_t k = 0; k < kc; ++k) d[k * NR] = src[c * ldb + k];
            else
                for (size_t k = 0; k < kc; ++k) d[k * NR] = T(0);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Stores an accumulator vector: c = alpha * acc (+ beta * c unless beta == 0). n = valid lanes.
template <class S>
inline void store_c(typename S::T* c, typename S::V acc, typename S::V va, typename S::V vb, bool read_c,
                    size_t n) {
    if (n >= size_t(S::W)) {
        typename S::V r = S::mul(va, acc);
        if (read_c) r = S::fmadd(vb, S::load(c), r);
        S::store(c, r);
    } else {
        typename S::V r = S::mul(va, acc);
        if (read_c) r = S::fmadd(vb, S::loadn(c, n), r);
        S::storen(c, r, n);
    }
}

// Micro-kernel: C[MR x NR] (only m x n of it stored) = alpha * Apanel Bpanel + beta * C.
// a: a packed sliver (A_ROWS false: a[k][i], lda unused) or m rows of A read in place (A_ROWS true:
// a[i * lda + k]; rows >= m re-read row m - 1, never memory past the caller's rows).
// b: a packed sliver (bstride = NR) or NR columns of B read in place (bstride = ldb).
// acc[i][v] += a[k][i] * b[k][v]   over k < kc
// PF_B: B is read in place from memory; fetch the row kPrefetchRows ahead (prefetches never fault).
template <class S, int MR, int NV, bool A_ROWS = false, bool PF_B = false>
inline void micro(size_t kc, const typename S::T* __restrict a, size_t lda,
                  const typename S::T* __restrict b, size_t bstride, typename S::T* C, size_t ldc,
                  size_t m, size_t n, typename S::T alpha, typename S::T beta) {
    using T = typename S::T;
    using V = typename S::V;
    constexpr int W = S::W;
    V acc[MR][NV];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();
    const T* row[MR];  // A_ROWS: the rows of A (packed: unused)
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) row[i] = A_ROWS ? a + (size_t(i) < m ? size_t(i) : m - 1) * lda : a;
#pragma GCC unroll 4
    for (size_t k = 0; k < kc; ++k) {
        if constexpr (PF_B) __builtin_prefetch(b + kPrefetchRows * bstride);
        V bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * W);
#pragma GCC unroll 32
        for (int i = 0; i < MR; ++i) {
            const V av = S::set1(A_ROWS ? row[i][k] : a[k * MR + i]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[i][v] = S::fmadd(av, bv[v], acc[i][v]);
        }
        b += bstride;
    }
    const V va = S::set1(alpha), vb = S::set1(beta);
    const bool read_c = beta != typename S::T(0);
    if (m == size_t(MR) && n == size_t(NV * W)) {
#pragma GCC unroll 32
        for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) store_c<S>(C + i * ldc + v * W, acc[i][v], va, vb, read_c, W);
    } else {
#pragma GCC unroll 32
        for (int i = 0; i < MR; ++i) {
            if (size_t(i) >= m) break;
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v)
                if (size_t(v * W) < n)
                    store_c<S>(C + i * ldc + v * W, acc[i][v], va, vb, read_c, n - size_t(v * W));
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Direct dot kernel (op(B) = B^T, few rows): C[i][j] = alpha * sum_k a[i][k] * B[j][k] + beta * C[i][j]
// for IB rows of a (row stride lda, contiguous in k) and JB rows of B.
template <class S, int IB, int JB>
inline void dot_block(size_t K, const typename S::T* a, size_t lda, const typename S::T* B, size_t ldb,
                      typename S::T* C, size_t ldc, typename S::T alpha, typename S::T beta) {
    using T = typename S::T;
    using V = typename S::V;
    constexpr int W = S::W;
    V acc[IB][JB];
#pragma GCC unroll 16
    for (int i = 0; i < IB; ++i)
#pragma GCC unroll 16
        for (int j = 0; j < JB; ++j) acc[i][j] = S::zero();
    size_t k = 0;
    for (; k + W <= K; k += W) {
        V av[IB];
#pragma GCC unroll 16
        for (int i = 0; i < IB; ++i) av[i] = S::load(a + i * lda + k);
#pragma GCC unroll 16
        for (int j = 0; j < JB; ++j) {
            const V bv = S::load(B + j * ldb + k);
#pragma GCC unroll 16
            for (int i = 0; i < IB; ++i) acc[i][j] = S::fmadd(av[i], bv, acc[i][j]);
        }
    }
    if (k < K) {
        const size_t n = K - k;
        V av[IB];
#pragma GCC unroll 16
        for (int i = 0; i < IB; ++i) av[i] = S::loadn(a + i * lda + k, n);
#pragma GCC unroll 16
        for (int j = 0; j < JB; ++j) {
            const V bv = S::loadn(B + j * ldb + k, n);
#pragma GCC unroll 16
            for (int i = 0; i < IB; ++i) acc[i][j] = S::fmadd(av[i], bv, acc[i][j]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < IB; ++i)
#pragma GCC unroll 16
        for (int j = 0; j < JB; ++j) {
            const T s = S::hsum(acc[i][j]);
            T& c = C[i * ldc + j];
            c = beta == T(0) ? alpha * s : alpha * s + beta * c;
        }
}

// Direct broadcast kernel (op(B) = B): C[i][j..j+n) = alpha * sum_k op(A)[i][k] * B[k][j..] + beta * C
// op(A)[i][k] = A[i * rs + k * cs]; n <= JV * W columns (masked loads and stores on the last vector).
template <class S, int IB, int JV>
inline void axpy_block(size_t K, const typename S::T* A, size_t rs, size_t cs, const typename S::T* B,
                       size_t ldb, typename S::T* C, size_t ldc, size_t n, typename S::T alpha,
                       typename S::T beta) {
    using V = typename S::V;
    constexpr int W = S::W;
    V acc[IB][JV];
#pragma GCC unroll 16
    for (int i = 0; i < IB; ++i)
#pragma GCC unroll 16
        for (int v = 0; v < JV; ++v) acc[i][v] = S::zero();
    const size_t n_last = n - size_t((JV - 1) * W);  // lanes used in the last vector, 1..W
    if (n_last == size_t(W)) {
        for (size_t k = 0; k < K; ++k) {
            const typename S::T* b = B + k * ldb;
            V bv[JV];
#pragma GCC unroll 16
            for (int v = 0; v < JV; ++v) bv[v] = S::load(b + v * W);
#pragma GCC unroll 16
            for (int i = 0; i < IB; ++i) {
                const V av = S::set1(A[i * rs + k * cs]);
#pragma GCC unroll 16
                for (int v = 0; v < JV; ++v) acc[i][v] = S::fmadd(av, bv[v], acc[i][v]);
            }
        }
    } else {
        for (size_t k = 0; k < K; ++k) {
            const typename S::T* b = B + k * ldb;
            V bv[JV];
#pragma GCC unroll 16
            for (int v = 0; v < JV - 1; ++v) bv[v] = S::load(b + v * W);
            bv[JV - 1] = S::loadn(b + (JV - 1) * W, n_last);
#pragma GCC unroll 16
            for (int i = 0; i < IB; ++i) {
                const V av = S::set1(A[i * rs + k * cs]);
#pragma GCC unroll 16
                for (int v = 0; v < JV; ++v) acc[i][v] = S::fmadd(av, bv[v], acc[i][v]);
            }
        }
    }
    const V va = S::set1(alpha), vb = S::set1(beta);
    const bool read_c = beta != typename S::T(0);
#pragma GCC unroll 16
    for (int i = 0; i < IB; ++i)
#pragma GCC unroll 16
        for (int v = 0; v < JV; ++v)
            store_c<S>(C + i * ldc + v * W, acc[i][v], va, vb, read_c, v == JV - 1 ? n_last : size_t(W));
}

// ---------------------------------------------------------------------------------------------------
// Cfg provides: S (SIMD trait), MR, MR_ALT, NV (NR = NV * W), TALL_NMAX, DIRECT_B_MMAX, DOT_MMAX, DOT_NMAX,
// DOT1_JB, DOT_IB, DOT_JB,
// AXPY_MMAX, AXPY_KMAX, AXPY1_JV, AXPY_IB, AXPY_JV.

// Tasks over [0, n) in units of `grain`, so that each task has at least kMinTaskFlops.
inline size_t split(size_t n, size_t grain, double flops_per_unit, size_t max_tasks, size_t* width) {
    const size_t units = ceil_div(n, grain);
    double want = flops_per_unit * double(units * grain) / kMinTaskFlops;
    size_t tasks = want < 1.0 ? 1 : (want > double(max_tasks) ? max_tasks : size_t(want));
    tasks = min_sz(tasks, units);
    *width = ceil_div(units, tasks) * grain;
    return ceil_div(n, *width);
}

template <class Cfg, class T>
void gemm_dot(const GemmArgs<T>& g) {
    using S = typename Cfg::S;
    const size_t M = g.M, N = g.N, K = g.K;
    const T* a = g.A;
    size_t lda = g.lda;
    if (g.trans_a) {
        // op(A) has few rows: copy them contiguous (M x K)
        T* t = static_cast<T*>(scratch(2, M * K * sizeof(T)));
        if (!t) {
            naive_block(g, 0, M, 0, N, 0, K, g.beta);
            epilogue(g, 0, M, 0, N);
            return;
        }
        for (size_t k = 0; k < K; ++k)
            for (size_t i = 0; i < M; ++i) t[i * K + k] = g.A[k * g.lda + i];
        a = t;
        lda = K;
    }
    const size_t JB = M == 1 ? Cfg::DOT1_JB : Cfg::DOT_JB;
    // Tiles: few rows: split the columns (rows of B); tall op(A): split its rows only, so that each is
    // streamed once, against all of the (skinny) B.
    size_t width = N;
    const size_t col_tasks =
        M <= size_t(Cfg::DOT_MMAX) ? split(N, JB, 2.0 * double(M) * double(K), kMaxTasks, &width) : 1;
    size_t height = 0;
    const size_t row_tasks = split(M, Cfg::DOT_IB * 8, 2.0 * double(width) * double(K),
                                   max_sz(1, kMaxTasks / col_tasks), &height);
    auto task = [&](size_t t) {
        const size_t i0 = (t / col_tasks) * height, i1 = min_sz(M, i0 + height);
        const size_t j0 = (t % col_tasks) * width, j1 = min_sz(N, j0 + width);
        for (size_t j = j0; j < j1; j += JB) {
            const size_t jn = min_sz(JB, j1 - j);
            const T* b = g.B + j * g.ldb;
            if (M == 1) {
                with_const<Cfg::DOT1_JB>(jn, [&](auto jb) {
                    dot_block<S, 1, decltype(jb)::value>(K, a, lda, b, g.ldb, g.C + j, g.ldc, g.alpha,
                                                         g.beta);
                });
                continue;
            }
            for (size_t i = i0; i < i1; i += Cfg::DOT_IB) {
                const size_t in = min_sz(Cfg::DOT_IB, i1 - i);
                with_const<Cfg::DOT_IB>(in, [&](auto ib) {
                    with_const<Cfg::DOT_JB>(jn, [&](auto jb) {
                        dot_block<S, decltype(ib)::value, decltype(jb)::value>(
                            K, a + i * lda, lda, b, g.ldb, g.C + i * g.ldc + j, g.ldc, g.alpha, g.beta);
                    });
                });
            }
        }
        epilogue(g, i0, i1, j0, j1);
    };
    parallel_for(row_tasks * col_tasks, task);
}

template <class Cfg, class T>
void gemm_axpy(const GemmArgs<T>& g) {
    using S = typename Cfg::S;
    constexpr size_t W = S::W;
    const size_t M = g.M, N = g.N, K = g.K;
    const size_t rs = g.trans_a ? 1 : g.lda, cs = g.trans_a ? g.lda : 1;
    const size_t JV = M == 1 ? Cfg::AXPY1_JV : Cfg::AXPY_JV, IB = M == 1 ? 1 : Cfg::AXPY_IB;
    const size_t NRd = JV * W;
    // Tiles: split columns first, then rows.
    size_t width = 0;
    const size_t col_tasks = split(N, NRd, 2.0 * double(M) * double(K), kMaxTasks, &width);
    size_t height = 0;
    const size_t row_tasks =
        split(M, IB, 2.0 * double(width) * double(K), max_sz(1, kMaxTasks / col_tasks), &height);
    auto task = [&](size_t t) {
        const size_t i0 = (t / col_tasks) * height, i1 = min_sz(M, i0 + height);
        const size_t j0 = (t % col_tasks) * width, j1 = min_sz(N, j0 + width);
        for (size_t j = j0; j < j1; j += NRd) {
            const size_t n = min_sz(NRd, j1 - j);
            const size_t nv = ceil_div(n, W);
            const T* b = g.B + j;
            if (M == 1) {
                with_const<Cfg::AXPY1_JV>(nv, [&](auto jv) {
                    axpy_block<S, 1, decltype(jv)::value>(K, g.A, rs, cs, b, g.ldb, g.C + j, g.ldc, n,
                                                          g.alpha, g.beta);
                });
                continue;
            }
            for (size_t i = i0; i < i1; i += IB) {
                const size_t in = min_sz(IB, i1 - i);
                with_const<Cfg::AXPY_IB>(in, [&](auto ib) {
                    with_const<Cfg::AXPY_JV>(nv, [&](auto jv) {
                        axpy_block<S, decltype(ib)::value, decltype(jv)::value>(
                            K, g.A + i * rs, rs, cs, b, g.ldb, g.C + i * g.ldc + j, g.ldc, n, g.alpha,
                            g.beta);
                    });
                });
            }
        }
        epilogue(g, i0, i1, j0, j1);
    };
    parallel_for(row_tasks * col_tasks, task);
}

template <class Cfg, int MR_, class T>
void gemm_packed(const GemmArgs<T>& g) {
    using S = typename Cfg::S;
    constexpr size_t MR = MR_, NR = Cfg::NV * S::W;
    const size_t M = g.M, N = g.N, K = g.K;
    // Blocking from the shape and the caches (never the thread count): near-equal K blocks <= kc, N
    // panels <= nc, M blocks <= mc.
    // Few rows of op(A) (a small batch): longer K blocks, fewer hand-offs (the packed op(B) sliver of a
    // K block is re-read by only a few micro-tiles, from L2).
    const Blocking& bl = blocking<Cfg>();
    const size_t kc_max =
        ceil_div(M, bl.mc) < kFewRowBlocks && !g.trans_a ? kSmallBatchKcFactor * bl.kc : bl.kc;
    const size_t nkb = ceil_div(K, kc_max), kcb = ceil_div(K, nkb);
    const size_t nnb = ceil_div(N, bl.nc), ncb = round_up(ceil_div(N, nnb), NR);
    size_t nmb = ceil_div(M, bl.mc), mcb = round_up(ceil_div(M, nmb), MR);
    // A parameter gradient, dW = delta^T x, over one K block (a mini-batch): cut by rows of dW, the
    // rows of W that the forward product x W^T cuts by its columns, so that each thread updates the
    // rows of W it reads in the forward pass; B (x) is read in place, so nothing packed is shared.
    const bool param_rows = g.trans_a && !g.trans_b && nkb == 1 && M >= 4 * MR;
    if (param_rows) {
        const double flops = 2.0 * double(M) * double(N) * double(K);
        nmb = min_sz(min_sz(kParamRowTasks, ceil_div(M, MR)), max_sz(1, size_t(flops / kMinPackedTaskFlops)));
        mcb = round_up(ceil_div(M, nmb), MR);
        nmb = ceil_div(M, mcb);
    }
    // Two ways to cut a K block into tasks (the cut depends only on the shape):
    //  - many row blocks: a task is a row block of C; it packs its own block of op(A) and runs it
    //    against the panel of op(B), packed once (in parallel) and shared;
    //  - few row blocks (small batch): a task is a column chunk of C; it packs its own chunk of op(B)
    //    (no packed B crosses between cores) and runs it against all of op(A), packed once and shared.
    size_t nt = ncb;
    const bool by_columns = nmb < kFewRowBlocks && !param_rows;
    if (by_columns)
        while (ceil_div(ncb, nt) < kColumnTasks && nt > NR &&
               2.0 * double(M) * double(nt / 2) * double(K) >= kMinPackedTaskFlops)
            nt = round_up(nt / 2, NR);
    // op(B) = B and few rows of op(A): each B sliver is used by too few micro-tiles to repay packing;
    // full slivers are read in place, only a ragged last sliver is packed (its loads would overrun).
    const bool direct_b = !g.trans_b && (M <= size_t(Cfg::DIRECT_B_MMAX) || param_rows) &&
                          rows_fit_l1(g.ldb * sizeof(T), kcb);

    // Runs the rows [i0, i0 + mc) of packed op(A) (pa) against columns [j0, j1) of the panel, whose
    // slivers are at bsliver(j) with stride bstride(j); then the epilogue on the last K block.
    // The epilogue runs on groups of kEpilogueSlivers slivers: rows long enough to stream well.
    // pa == nullptr: the rows of op(A) = A are read in place (from column pc on).
    auto tile = [&](const T* pa, size_t i0, size_t mc, size_t jc, size_t j0, size_t j1, size_t pc,
                    size_t kc, T beta, bool last_k, auto&& sliver) {
        size_t group = j0;
        for (size_t j = j0; j < j1; j += NR) {
            const size_t nr = min_sz(NR, j1 - j);
            size_t bstride = NR;
            const T* bs = sliver(j, &bstride);
            T* c = g.C + i0 * g.ldc + jc + j;
            for (size_t i = 0; i < mc; i += MR) {
                const size_t m = min_sz(MR, mc - i);
                if (!pa) {
                    const T* a = g.A + (i0 + i) * g.lda + pc;
                    if (i == 0 && bstride != NR)
                        micro<S, int(MR), Cfg::NV, true, true>(kc, a, g.lda, bs, bstride, c, g.ldc, m,
                                                               nr, g.alpha, beta);
                    else
                        micro<S, int(MR), Cfg::NV, true>(kc, a, g.lda, bs, bstride, c + i * g.ldc, g.ldc,
                                                         m, nr, g.alpha, beta);
                    continue;
                }
                // the first pass over a sliver read in place streams it from memory
                if (i == 0 && bstride != NR)
                    micro<S, int(MR), Cfg::NV, false, true>(kc, pa, 0, bs, bstride, c, g.ldc,
                                                            min_sz(MR, mc), nr, g.alpha, beta);
                else
                    micro<S, int(MR), Cfg::NV>(kc, pa + i * kc, 0, bs, bstride, c + i * g.ldc, g.ldc,
                                               min_sz(MR, mc - i), nr, g.alpha, beta);
            }
            if (last_k && (j + nr == j1 || (j + NR - group) / NR == kEpilogueSlivers)) {
                epilogue(g, i0, i0 + mc, jc + group, jc + j + nr);
                group = j + nr;
            }
        }
    };

    for (size_t jc = 0; jc < N; jc += ncb) {
        const size_t nc = min_sz(ncb, N - jc);
        const size_t n_chunks = ceil_div(nc, nt);
        for (size_t pc = 0; pc < K; pc += kcb) {
            const size_t kc = min_sz(kcb, K - pc);
            const T beta = pc == 0 ? g.beta : T(1);
            const bool last_k = pc + kc == K;
            T* pa_all = nullptr;
            // few rows of op(A) = A: the micro-kernel reads them in place (no serial packing)
            const bool a_in_place = by_columns && !g.trans_a && Cfg::A_IN_PLACE;
            if (by_columns && !a_in_place) {
                // Pack op(A)[:, pc:pc+kc] once, in parallel. Sliver s holds rows [s*MR, s*MR + MR).
                const size_t a_slivers = ceil_div(M, MR);
                pa_all = static_cast<T*>(scratch(3, a_slivers * MR * kc * sizeof(T)));
                if (pa_all) {
                    const size_t a_tasks = max_sz(1, min_sz(a_slivers, M * kc / kPackGrain));
                    auto pack_all = [&](size_t t) {
                        const size_t s0 = t * a_slivers / a_tasks, s1 = (t + 1) * a_slivers / a_tasks;
                        const size_t i0 = s0 * MR, i1 = min_sz(M, s1 * MR);
                        const T* src = g.trans_a ? g.A + pc * g.lda + i0 : g.A + i0 * g.lda + pc;
                        pack_a<T, int(MR)>(g.trans_a, i1 - i0, kc, src, g.lda, pa_all + s0 * MR * kc);
                    };
                    parallel_for(a_tasks, pack_all);
                }
            }
            if (pa_all || a_in_place) {
                auto chunk = [&](size_t t) {
                    const size_t j0 = t * nt, j1 = min_sz(nc, j0 + nt);
                    const size_t s0 = j0 / NR, ns = ceil_div(j1 - j0, NR);
                    // own packed chunk of op(B) (direct_b: only a ragged last sliver)
                    const size_t tail0 = direct_b ? (j1 - j0) / NR : 0;
                    const bool pack_some = !direct_b || (j1 - j0) % NR != 0;
                    T* pbt = nullptr;
                    if (pack_some) {
                        pbt = static_cast<T*>(scratch(1, (ns - tail0) * NR * kc * sizeof(T)));
                        if (!pbt) {
                            naive_block(g, 0, M, jc + j0, jc + j1, pc, pc + kc, beta);
                            if (last_k) epilogue(g, 0, M, jc + j0, jc + j1);
                            return;
                        }
                        const size_t b0 = jc + j0 + tail0 * NR;
                        const T* src = g.trans_b ? g.B + b0 * g.ldb + pc : g.B + pc * g.ldb + b0;
                        pack_b<S, int(NR)>(g.trans_b, kc, j1 - j0 - tail0 * NR, src, g.ldb, pbt);
                    }
                    auto sliver = [&](size_t j, size_t* bstride) -> const T* {
                        const size_t s = j / NR - s0;
                        if (s < tail0) {
                            *bstride = g.ldb;
                            return g.B + pc * g.ldb + jc + j;
                        }
                        *bstride = NR;
                        return pbt + (s - tail0) * NR * kc;
                    };
                    for (size_t i0 = 0; i0 < M; i0 += mcb)
                        tile(a_in_place ? nullptr : pa_all + i0 * kc, i0, min_sz(mcb, M - i0), jc, j0,
                             j1, pc, kc, beta, last_k, sliver);
                };
                parallel_for(n_chunks, chunk);
                continue;
            }
            // Row blocks: pack op(B)[pc:pc+kc, jc:jc+nc] (a few slivers per task), then each task packs
            // its block of op(A) and runs it against the whole panel.
            T* pb = static_cast<T*>(scratch(0, kcb * ncb * sizeof(T)));
            if (!pb) {
                naive_block(g, 0, M, jc, jc + nc, pc, pc + kc, beta);
                if (last_k) epilogue(g, 0, M, jc, jc + nc);
                continue;
            }
            const size_t ns = ceil_div(nc, NR);
            if (!direct_b) {
                const size_t pack_tasks = max_sz(1, min_sz(ns, kc * nc / kPackGrain));
                auto pack = [&](size_t t) {
                    const size_t s0 = t * ns / pack_tasks, s1 = (t + 1) * ns / pack_tasks;
                    const size_t j0 = jc + s0 * NR, j1 = min_sz(jc + s1 * NR, jc + nc);
                    const T* src = g.trans_b ? g.B + j0 * g.ldb + pc : g.B + pc * g.ldb + j0;
                    pack_b<S, int(NR)>(g.trans_b, kc, j1 - j0, src, g.ldb, pb + s0 * NR * kc);
                };
                parallel_for(pack_tasks, pack);
            } else if (nc % NR) {
                const size_t s_tail = nc / NR;
                pack_b<S, int(NR)>(false, kc, nc - s_tail * NR, g.B + pc * g.ldb + jc + s_tail * NR,
                                   g.ldb, pb + s_tail * NR * kc);
            }
            auto sliver = [&](size_t j, size_t* bstride) -> const T* {
                if (direct_b && j + NR <= nc) {
                    *bstride = g.ldb;
                    return g.B + pc * g.ldb + jc + j;
                }
                *bstride = NR;
                return pb + (j / NR) * NR * kc;
            };
            auto block = [&](size_t t) {
                const size_t i0 = t * mcb, mc = min_sz(mcb, M - i0);
                T* pa = static_cast<T*>(scratch(1, round_up(mc, MR) * kc * sizeof(T)));
                if (!pa) {
                    naive_block(g, i0, i0 + mc, jc, jc + nc, pc, pc + kc, beta);
                    if (last_k) epilogue(g, i0, i0 + mc, jc, jc + nc);
                    return;
                }
                const T* src = g.trans_a ? g.A + pc * g.lda + i0 : g.A + i0 * g.lda + pc;
                pack_a<T, int(MR)>(g.trans_a, mc, kc, src, g.lda, pa);
                tile(pa, i0, mc, jc, 0, nc, pc, kc, beta, last_k, sliver);
            };
            parallel_for(nmb, block);
        }
    }
}

// Tall and skinny, op(A) = A (rows contiguous), few columns: all of op(B) is packed once (it is small),
// and the micro-kernel broadcasts op(A) straight from its rows, so the big operand is never copied. A
// task is a block of rows; inside it, K blocks, then groups of mc rows (a group's K block stays in L2
// while every sliver of op(B) passes over it, so A comes from memory once per K block, not once per
// sliver), then slivers, then MR rows. The grouping changes no sum: each tile is the same.
template <class Cfg, class T>
void gemm_tall(const GemmArgs<T>& g) {
    using S = typename Cfg::S;
    constexpr size_t MR = Cfg::MR, W = S::W, NR = Cfg::NV * W;
    const size_t M = g.M, N = g.N, K = g.K;
    const size_t nkb = ceil_div(K, blocking<Cfg>().kc), kcb = ceil_div(K, nkb);
    const size_t group = blocking<Cfg>().mc;  // a multiple of MR
    // Columns that fill less than a vector after the last whole vector (N = 25: 3 x 8 + 1 with 4-wide
    // vectors, 16 + 8 + 1 with 8-wide ones) would waste most of a micro-kernel pass: with op(B) = B^T
    // they go to the dot kernel, which runs along k (B's rows are contiguous) and wastes nothing.
    const size_t ragged = N % size_t(W);
    const bool dot_tail = g.trans_b && ragged != 0 && ragged <= size_t(Cfg::DOT_JB);
    const size_t tail = dot_tail ? ragged : 0;
    const size_t n_micro = N - tail, ns_micro = ceil_div(n_micro, NR);
    const size_t ns = ceil_div(N, NR), block = ns * NR * kcb;  // packed elements per K block
    T* pb = static_cast<T*>(scratch(0, nkb * block * sizeof(T)));
    if (!pb) {
        naive_block(g, 0, M, 0, N, 0, K, g.beta);
        return epilogue(g, 0, M, 0, N);
    }
    for (size_t b = 0; b < nkb; ++b) {
        const size_t pc = b * kcb, kc = min_sz(kcb, K - pc);
        const T* src = g.trans_b ? g.B + pc : g.B + pc * g.ldb;
        pack_b<S, int(NR)>(g.trans_b, kc, N, src, g.ldb, pb + b * block);
    }
    size_t height = 0;
    const size_t tasks = split(M, MR, 2.0 * double(N) * double(K), kMaxTasks, &height);
    auto task = [&](size_t t) {
        const size_t i0 = t * height, i1 = min_sz(M, i0 + height);
        for (size_t b = 0; b < nkb; ++b) {
            const size_t pc = b * kcb, kc = min_sz(kcb, K - pc);
            const T beta = b == 0 ? g.beta : T(1);
            for (size_t r0 = i0; r0 < i1; r0 += group) {
                const size_t r1 = min_sz(i1, r0 + group);
                for (size_t s = 0; s < ns_micro; ++s) {
                    const size_t nr = min_sz(NR, n_micro - s * NR);
                    const T* bs = pb + b * block + s * NR * kc;
                    with_const<Cfg::NV>(ceil_div(nr, W), [&](auto nv) {
                        for (size_t i = r0; i < r1; i += MR)
                            micro<S, int(MR), decltype(nv)::value, true>(
                                kc, g.A + i * g.lda + pc, g.lda, bs, NR, g.C + i * g.ldc + s * NR, g.ldc,
                                min_sz(MR, r1 - i), nr, g.alpha, beta);
                    });
                }
                if (dot_tail) {
                    const T* bt = g.B + n_micro * g.ldb + pc;
                    T* ct = g.C + n_micro;
                    with_const<Cfg::DOT_JB>(tail, [&](auto jb) {
                        // one column: twice the rows, so that enough sums are in flight
                        constexpr int IB = decltype(jb)::value == 1 ? 2 * Cfg::DOT_IB : Cfg::DOT_IB;
                        for (size_t i = r0; i < r1; i += IB)
                            with_const<IB>(min_sz(IB, r1 - i), [&](auto ib) {
                                dot_block<S, decltype(ib)::value, decltype(jb)::value>(
                                    kc, g.A + i * g.lda + pc, g.lda, bt, g.ldb, ct + i * g.ldc, g.ldc, g.alpha, beta);
                            });
                    });
                }
            }
        }
        epilogue(g, i0, i1, 0, N);
    };
    parallel_for(tasks, task);
}

// The packed GEMM with the micro-tile height that pads op(A) least: Cfg::MR, or Cfg::MR_ALT when it
// saves more than 5% of the rows (25 rows: 5 x 5 instead of 5 x 6).
template <class Cfg, class T>
void gemm_packed_any(const GemmArgs<T>& g) {
    const size_t rows = round_up(g.M, Cfg::MR), rows_alt = round_up(g.M, Cfg::MR_ALT);
    if (Cfg::MR_ALT != Cfg::MR && 1.05 * double(rows_alt) < double(rows))
        return gemm_packed<Cfg, Cfg::MR_ALT>(g);
    gemm_packed<Cfg, Cfg::MR>(g);
}

// A parameter gradient over a long K (dW = delta^T x over a full batch of thousands of samples) with a
// small C: K is cut into `parts` fixed ranges (the cut depends only on K), each range's product goes to
// its own partial C on the thread that runs it (the rows of x it ran in the forward pass, whose
// product is cut the same way), then the partials are summed in range order by row blocks of C, and
// the epilogue runs on each block. The same result for any thread count.
template <class Cfg, class T>
void gemm_split_k(const GemmArgs<T>& g, size_t parts) {
    const size_t M = g.M, N = g.N, K = g.K, mn = M * N;
    T* part = static_cast<T*>(scratch(4, parts * mn * sizeof(T)));
    if (!part) return gemm_packed_any<Cfg>(g);
    parallel_for(parts, [&](size_t t) {
        const size_t k0 = t * K / parts, k1 = (t + 1) * K / parts;
        GemmArgs<T> s = g;  // nested: its own parallel_for runs on this thread
        s.K = k1 - k0;
        s.A = g.trans_a ? g.A + k0 * g.lda : g.A + k0;
        s.B = g.trans_b ? g.B + k0 : g.B + k0 * g.ldb;
        s.alpha = T(1);
        s.beta = T(0);
        s.C = part + t * mn;
        s.ldc = N;
        s.ep = nullptr;
        gemm_packed_any<Cfg>(s);
    });
    const size_t blocks = min_sz(M, kSplitSumBlocks), height = ceil_div(M, blocks);
    parallel_for(ceil_div(M, height), [&](size_t r) {
        const size_t i0 = r * height, i1 = min_sz(M, i0 + height);
        for (size_t i = i0; i < i1; ++i) {
            T* c = g.C + i * g.ldc;
            for (size_t j = 0; j < N; ++j) {
                T s = part[i * N + j];  // C = alpha * sum_t part[t] + beta * C
                for (size_t t = 1; t < parts; ++t) s += part[t * mn + i * N + j];
                c[j] = g.beta == T(0) ? g.alpha * s : g.alpha * s + g.beta * c[j];
            }
        }
        epilogue(g, i0, i1, 0, N);
    });
}

template <class Cfg, class T>
void gemm_run(const GemmArgs<T>& g) {
    if (g.M == 0 || g.N == 0) return;
    if (g.K == 0) {
        scale_c(g);
        return epilogue(g, 0, g.M, 0, g.N);
    }
    // tall and skinny: packing op(A) would cost more than it saves
    const bool tall = !g.trans_a && g.M > size_t(Cfg::DOT_MMAX) && g.N <= size_t(Cfg::TALL_NMAX);
    if (g.trans_b) {
        if (g.M <= Cfg::DOT_MMAX) return gemm_dot<Cfg>(g);  // few rows
        if (tall) return gemm_tall<Cfg>(g);
        if (g.N <= Cfg::DOT_NMAX && !g.trans_a) return gemm_dot<Cfg>(g);
    } else if (g.K <= Cfg::AXPY_KMAX ||
               (g.M <= Cfg::AXPY_MMAX && g.K * g.N * sizeof(T) <= kAxpyMaxBBytes)) {
        // the direct kernel re-reads op(B) once per AXPY_IB rows: only while op(B) stays in cache
        return gemm_axpy<Cfg>(g);
    } else if (g.trans_a && g.K >= kSplitMinK && g.M * g.N <= kSplitMaxC) {
        return gemm_split_k<Cfg>(g, min_sz(kSplitParts, g.K / (kSplitMinK / kSplitParts)));
    } else if (tall) {
        return gemm_tall<Cfg>(g);
    }
    gemm_packed_any<Cfg>(g);
}

}  // namespace
}  // namespace deltaprop::kernels::detail
