// SPDX-License-Identifier: MIT
// GEMM micro-benchmark (built by hand, not by CMake):
//   g++ -std=c++17 -O2 -Icsrc benchmarks/gemm_bench.cpp <build>/libdeltaprop.a -pthread -o gemm_bench
//   ./gemm_bench [threads...]        (default: 1 2)
//   ./gemm_bench w [threads]         the products of the W1 and W2 workloads
//   ./gemm_bench c f64 ta tb M N K threads   one shape
//   ./gemm_bench levels [threads] [rounds] [filter]   the W1/W2/W3 layer shapes at every SIMD level
//                                   this CPU has, interleaved (A B B A ... per shape): medians, ratios
// Prints the median and min-max GFLOP/s over repetitions for the layer shapes of a dense network.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/threadpool.h"

namespace k = deltaprop::kernels;
using std::size_t;

struct Shape {
    const char* name;
    bool ta, tb;
    size_t M, N, K;
    double beta;
};

template <class T>
static void bench(const Shape& s) {
    const size_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    std::vector<T> A((s.ta ? s.K : s.M) * lda), B((s.tb ? s.N : s.K) * ldb), C(s.M * s.N);
    for (size_t i = 0; i < A.size(); ++i) A[i] = T((i * 7 % 13) - 6) / T(8);
    for (size_t i = 0; i < B.size(); ++i) B[i] = T((i * 5 % 11) - 5) / T(8);
    const double flops = 2.0 * double(s.M) * double(s.N) * double(s.K);
    auto run = [&] {
        k::gemm<T>(s.ta, s.tb, s.M, s.N, s.K, T(1), A.data(), lda, B.data(), ldb, T(s.beta), C.data(),
                   s.N);
    };
    run();
    // repetitions: about 0.3 s in total, at least 5
    auto t0 = std::chrono::steady_clock::now();
    run();
    const double once = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int reps = std::max(5, std::min(20000, int(0.3 / std::max(once, 1e-7))));
    const int inner = once < 1e-4 ? 20 : 1;
    std::vector<double> g;
    for (int r = 0; r < std::max(5, reps / inner); ++r) {
        t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < inner; ++i) run();
        const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        g.push_back(flops * inner / t / 1e9);
    }
    std::sort(g.begin(), g.end());
    std::printf("  %-34s %s  %8.1f GFLOP/s  (%.1f-%.1f)\n", s.name, sizeof(T) == 4 ? "f32" : "f64",
                g[g.size() / 2], g.front(), g.back());
}

// Layer shapes of a 784 -> 256 dense layer for small batches (to place the direct/packed crossover).
static void sweep() {
    for (size_t batch : {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64}) {
        char f[64], bw[64], dw[64];
        std::snprintf(f, sizeof f, "fwd  batch %zu 784->256", batch);
        std::snprintf(bw, sizeof bw, "bwd  batch %zu 256->784", batch);
        std::snprintf(dw, sizeof dw, "dW   batch %zu 256x784", batch);
        bench<float>({f, false, true, batch, 256, 784, 0});
        bench<float>({bw, false, false, batch, 784, 256, 0});
        bench<float>({dw, true, false, 256, 784, batch, 1});
    }
}

// The float64 products of W2 (400-25-10, full batch of 5000) and the float32 ones of W1 (batch 64).
static void workloads() {
    bench<double>({"W2 fwd x.W1^T 5000x25x400", false, true, 5000, 25, 400, 0});
    bench<double>({"W2 dW1 = delta^T.x 25x400 K=5000", true, false, 25, 400, 5000, 0});
    bench<double>({"W2 fwd a1.W2^T 5000x10x25", false, true, 5000, 10, 25, 0});
    bench<double>({"W2 delta2.W2 5000x25x10", false, false, 5000, 25, 10, 0});
    bench<double>({"W2 dW2 10x25 K=5000", true, false, 10, 25, 5000, 0});
    bench<float>({"W1 fwd 64x256x784", false, true, 64, 256, 784, 0});
    bench<float>({"W1 dW1 256x784 K=64", true, false, 256, 784, 64, 0});
    bench<float>({"W1 fwd 64x128x256", false, true, 64, 128, 256, 0});
    bench<float>({"W1 delta 64x256x128", false, false, 64, 256, 128, 0});
    bench<float>({"W1 dW2 128x256 K=64", true, false, 128, 256, 64, 0});
}

// One thread: the CPU time of this thread, which leaves out the time other processes of a shared machine
// hold its core (not their effect on the caches); more threads: wall time.
static double seconds() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
    if (k::num_threads() == 1) {
        timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
    }
#endif
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One shape at each level in turn, `rounds` times (each turn about 20 ms of calls): the median GFLOP/s
// per level, and each level's ratio to the automatic one. Interleaving cancels most of the drift of a
// shared machine.
template <class T>
static void interleaved(const Shape& s, int rounds) {
    const size_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    std::vector<T> A((s.ta ? s.K : s.M) * lda), B((s.tb ? s.N : s.K) * ldb), C(s.M * s.N);
    for (size_t i = 0; i < A.size(); ++i) A[i] = T((i * 7 % 13) - 6) / T(8);
    for (size_t i = 0; i < B.size(); ++i) B[i] = T((i * 5 % 11) - 5) / T(8);
    const double flops = 2.0 * double(s.M) * double(s.N) * double(s.K);
    auto run = [&] {
        k::gemm<T>(s.ta, s.tb, s.M, s.N, s.K, T(1), A.data(), lda, B.data(), ldb, T(s.beta), C.data(),
                   s.N);
    };
    const int best = int(k::best_level()), low = best >= 2 ? 2 : 1;  // portable: kernel_levels.py
    std::vector<std::vector<double>> g(best + 1);
    int calls = 1;
    for (int l = low; l <= best; ++l) {  // warm up each level; calls per turn from the slowest
        k::set_level(k::Level(l));
        run();
        const auto t0 = std::chrono::steady_clock::now();
        run();
        const double once = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        calls = std::max(calls, int(0.02 / std::max(once, 1e-7)));
    }
    for (int r = 0; r < rounds; ++r)
        for (int l = (r % 2 ? best : low); l >= low && l <= best; l += (r % 2 ? -1 : 1)) {
            k::set_level(k::Level(l));
            const double t0 = seconds();
            for (int i = 0; i < calls; ++i) run();
            g[l].push_back(flops * calls / (seconds() - t0) / 1e9);
        }
    k::set_auto();
    const int autol = int(k::level(sizeof(T) == 4 ? k::Family::gemm : k::Family::gemm_f64));
    std::printf("  %-36s %s", s.name, sizeof(T) == 4 ? "f32" : "f64");
    std::vector<double> med(best + 1);
    for (int l = low; l <= best; ++l) {
        std::sort(g[l].begin(), g[l].end());
        med[l] = g[l][g[l].size() / 2];
    }
    int fastest = low;
    for (int l = low; l <= best; ++l) {
        if (med[l] > med[fastest]) fastest = l;
        std::printf("  %s %6.1f (%5.1f-%5.1f)", k::level_name(k::Level(l)), med[l], g[l].front(),
                    g[l].back());
    }
    std::printf("  auto %s = %.2f of the fastest (%s)\n", k::level_name(k::Level(autol)),
                med[autol] / med[fastest], k::level_name(k::Level(fastest)));
}

static void levels(int rounds, const char* filter) {
    const Shape shapes[] = {
        {"W3 fwd x.W^T 256x1024x1024", false, true, 256, 1024, 1024, 0},
        {"W3 dX delta.W 256x1024x1024", false, false, 256, 1024, 1024, 0},
        {"W3 dW delta^T.x 1024x1024 K=256", true, false, 1024, 1024, 256, 1},
        {"W3 out fwd 256x10x1024", false, true, 256, 10, 1024, 0},
        {"W1 fwd 64x256x784", false, true, 64, 256, 784, 0},
        {"W1 dW1 256x784 K=64", true, false, 256, 784, 64, 1},
        {"W1 fwd 64x128x256", false, true, 64, 128, 256, 0},
        {"W1 dX 64x256x128", false, false, 64, 256, 128, 0},
        {"W1 dW2 128x256 K=64", true, false, 128, 256, 64, 1},
        {"W1 predict fwd 1x256x784", false, true, 1, 256, 784, 0},
        {"W1 predict fwd 1024x256x784", false, true, 1024, 256, 784, 0},
    };
    const Shape shapes64[] = {
        {"W2 fwd x.W1^T 5000x25x400", false, true, 5000, 25, 400, 0},
        {"W2 fwd a1.W2^T 5000x10x25", false, true, 5000, 10, 25, 0},
        {"W2 dX delta2.W2 5000x25x10", false, false, 5000, 25, 10, 0},
        {"W2 dW1 25x400 K=5000", true, false, 25, 400, 5000, 0},
        {"f64 fwd 256x1024x1024", false, true, 256, 1024, 1024, 0},
        {"f64 dX 256x1024x1024", false, false, 256, 1024, 1024, 0},
        {"f64 dW 1024x1024 K=256", true, false, 1024, 1024, 256, 1},
        // scikit-learn's MLP defaults: batch 200, 100 hidden units (benchmarks/sklearn_bench.py)
        {"f64 sk fwd 200x100x100", false, true, 200, 100, 100, 0},
        {"f64 sk dX 200x100x100", false, false, 200, 100, 100, 0},
        {"f64 sk dW 100x100 K=200", true, false, 100, 100, 200, 1},
        {"f64 sk fwd 200x100x64", false, true, 200, 100, 64, 0},
        {"f64 sk dW 100x64 K=200", true, false, 100, 64, 200, 1},
    };
    for (const auto& s : shapes)
        if (!filter || std::strstr(s.name, filter)) interleaved<float>(s, rounds);
    for (const auto& s : shapes64)
        if (!filter || std::strstr(s.name, filter)) interleaved<double>(s, rounds);
}

int main(int argc, char** argv) {
    if (argc > 1 && argv[1][0] == 'l') {
        k::set_num_threads(argc > 2 ? std::atoi(argv[2]) : 1);
        std::printf("threads %d, cpu family %u model %u, L1d %zu KiB, L2 %zu KiB; medians GFLOP/s (min-max)\n",
                    k::num_threads(), k::cpu().family, k::cpu().model, k::cpu().l1d >> 10, k::cpu().l2 >> 10);
        levels(argc > 3 ? std::atoi(argv[3]) : 10, argc > 4 ? argv[4] : nullptr);
        return 0;
    }
    if (argc == 9 && argv[1][0] == 'c') {  // c f32|f64 ta tb M N K threads: one shape
        k::set_num_threads(std::atoi(argv[8]));
        const Shape s{"custom", argv[3][0] == '1', argv[4][0] == '1', size_t(std::atol(argv[5])),
                      size_t(std::atol(argv[6])), size_t(std::atol(argv[7])), 0};
        if (argv[2][1] == '3') bench<float>(s);
        else bench<double>(s);
        return 0;
    }
    if (argc > 1 && argv[1][0] == 'w') {
        k::set_num_threads(argc > 2 ? std::atoi(argv[2]) : 1);
        workloads();
        return 0;
    }
    if (argc > 1 && argv[1][0] == 's') {
        k::set_num_threads(argc > 2 ? std::atoi(argv[2]) : 1);
        sweep();
        return 0;
    }
    std::vector<int> threads;
    for (int i = 1; i < argc; ++i) threads.push_back(std::atoi(argv[i]));
    if (threads.empty()) threads = {1, 2};
    const Shape shapes[] = {
        {"square 1024^3 (NN)", false, false, 1024, 1024, 1024, 0},
        {"forward x.W^T 256x1024x1024", false, true, 256, 1024, 1024, 0},
        {"backward delta.W 256x1024x1024", false, false, 256, 1024, 1024, 0},
        {"dW = delta^T.x 1024x1024 (K=256)", true, false, 1024, 1024, 256, 1},
        {"matvec fwd M=1 784->256", false, true, 1, 256, 784, 0},
        {"matvec bwd M=1 256->784", false, false, 1, 784, 256, 0},
        {"dW outer K=1 256x784", true, false, 256, 784, 1, 1},
        {"forward batch 16 784->256", false, true, 16, 256, 784, 0},
        {"forward batch 64 784->256", false, true, 64, 256, 784, 0},
        {"backward batch 16 256->784", false, false, 16, 784, 256, 0},
        {"dW batch 16 256x784", true, false, 256, 784, 16, 1},
    };
    const char* names[] = {"", "portable", "avx2", "avx512"};
    std::printf("level %s\n", names[int(k::level(k::Family::gemm))]);
    for (int t : threads) {
        k::set_num_threads(t);
        std::printf("threads %d\n", k::num_threads());
        for (const auto& s : shapes) bench<float>(s);
        bench<double>(shapes[0]);
        bench<double>(shapes[1]);
    }
}
