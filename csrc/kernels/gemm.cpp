// SPDX-License-Identifier: MIT
// GEMM entry point: picks the instruction-set instance once (cpuid, or DELTAPROP_KERNEL), owns the
// per-thread packing scratch. The kernels themselves are in gemm_impl.h and the gemm_<isa>.cpp units.
#include "kernels/gemm.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernels/gemm_impl.h"
#include "kernels/memory.h"

namespace deltaprop::kernels {
namespace {

Level detect_best() {
#if DP_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return Level::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Level::avx2;
#endif
    return Level::portable;
}

// DELTAPROP_KERNEL=portable|avx2|avx512 selects a level at or below the best one.
Level initial_level() {
    const Level best = best_level();
    if (const char* s = std::getenv("DELTAPROP_KERNEL")) {
        Level want = best;
        if (std::strcmp(s, "portable") == 0) want = Level::portable;
        else if (std::strcmp(s, "avx2") == 0) want = Level::avx2;
        else if (std::strcmp(s, "avx512") == 0) want = Level::avx512;
        if (int(want) <= int(best)) return want;
    }
    return best;
}

std::atomic<int> g_level{0};  // 0: not chosen yet

}  // namespace

Level best_level() {
    static const Level best = detect_best();
    return best;
}

Level level() {
    int l = g_level.load(std::memory_order_relaxed);
    if (l == 0) {
        int expected = 0;
        l = int(initial_level());
        if (!g_level.compare_exchange_strong(expected, l)) l = expected;
    }
    return Level(l);
}

bool set_level(Level l) {
    if (int(l) < int(Level::portable) || int(l) > int(best_level())) return false;
    g_level.store(int(l));
    return true;
}

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
    const detail::GemmArgs<T> g{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep};
    switch (level()) {
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
