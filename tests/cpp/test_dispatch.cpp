// SPDX-License-Identifier: MIT
// Kernel dispatch: the CPU query, DELTAPROP_KERNEL (honoured at start-up and by a return to automatic,
// also through the C ABI's DP_KERNEL_AUTO), the warning for a misspelled or unsupported value (and for
// DELTAPROP_NUM_THREADS), and the per-family automatic choice. Each environment is tried in a child
// process that sets the variables before its first query (the choice is made once per process).
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "deltaprop/deltaprop.h"
#include "kernels/dispatch.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/wait.h>
#include <unistd.h>
#define DP_TEST_FORK 1
#endif

namespace k = deltaprop::kernels;

static int g_failures = 0;
#define EXPECT(cond, ...)                                    \
    do {                                                     \
        if (!(cond)) {                                       \
            ++g_failures;                                    \
            std::printf("FAIL (%s:%d): ", __FILE__, __LINE__); \
            std::printf(__VA_ARGS__);                        \
            std::printf("\n");                               \
        }                                                    \
    } while (0)

static bool contains(const char* s, const char* part) { return s && std::strstr(s, part); }

static k::Level auto_top() {
    k::Level top = k::Level::portable;
    for (int f = 0; f < k::kFamilies; ++f)
        if (k::auto_level(k::Family(f)) > top) top = k::auto_level(k::Family(f));
    return top;
}

// In a fresh process: DELTAPROP_KERNEL=kernel (null: unset), DELTAPROP_NUM_THREADS=threads (null:
// unset); `forced` is the level the variable should force (0: automatic), `warn` a part of the expected
// warning (null: none).
static void check_env(const char* kernel, const char* threads, int forced, const char* warn) {
    if (kernel) setenv("DELTAPROP_KERNEL", kernel, 1);
    else unsetenv("DELTAPROP_KERNEL");
    if (threads) setenv("DELTAPROP_NUM_THREADS", threads, 1);
    else unsetenv("DELTAPROP_NUM_THREADS");
    const char* w = k::env_warning();
    if (warn) EXPECT(contains(w, warn), "warning %s, expected one containing \"%s\"", w ? w : "(none)", warn);
    else EXPECT(!w, "unexpected warning: %s", w);
    EXPECT(!w || std::strcmp(w, dp_env_warning()) == 0, "dp_env_warning differs");
    const k::Level want = forced ? k::Level(forced) : auto_top();
    EXPECT(k::level() == want, "level %s, expected %s", k::level_name(k::level()), k::level_name(want));
    EXPECT(k::level_is_auto() == (forced == 0), "level_is_auto");
    for (int f = 0; f < k::kFamilies; ++f) {
        const k::Family fam = k::Family(f);
        const k::Level lf = k::level(fam);
        const k::Level expect_f = forced ? (fam == k::Family::elementwise && forced > 2 ? k::Level::avx2
                                                                                       : k::Level(forced))
                                         : k::auto_level(fam);
        EXPECT(lf == expect_f, "family %d runs %s, expected %s", f, k::level_name(lf), k::level_name(expect_f));
        EXPECT(int(dp_get_kernel_family_level(dp_kernel_family(f))) == int(lf), "C ABI: family %d", f);
    }
    // forcing another level, then back to automatic: the variable is honoured again (C ABI and C++)
    EXPECT(dp_set_kernel_level(DP_KERNEL_PORTABLE) == DP_OK && k::level() == k::Level::portable, "portable");
    EXPECT(dp_set_kernel_level(DP_KERNEL_AUTO) == DP_OK, "auto");
    EXPECT(k::level() == want && int(dp_get_kernel_level()) == int(want), "after DP_KERNEL_AUTO: %s, expected %s",
           k::level_name(k::level()), k::level_name(want));
    EXPECT(k::set_level(k::best_level()) && k::level() == k::best_level(), "set_level(best)");
    k::set_auto();
    EXPECT(k::level() == want, "after set_auto: %s, expected %s", k::level_name(k::level()), k::level_name(want));
    if (threads == nullptr) EXPECT(dp_get_num_threads() >= 1, "threads");
}

#if DP_TEST_FORK
static void in_child(const char* kernel, const char* threads, int forced, const char* warn) {
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        check_env(kernel, threads, forced, warn);
        std::fflush(stdout);
        _exit(g_failures ? 1 : 0);
    }
    int status = 0;
    EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "DELTAPROP_KERNEL=%s DELTAPROP_NUM_THREADS=%s: child failed", kernel ? kernel : "(unset)",
           threads ? threads : "(unset)");
}
#endif

int main() {
    // Nothing queried in this process before the children fork.
    const k::CpuInfo& c = k::cpu();
    std::printf("cpu: vendor %d family %u model %u, best %s; L1d %zu KiB, L2 %zu KiB, L3 %zu KiB\n",
                int(c.vendor), c.family, c.model, k::level_name(c.best), c.l1d >> 10, c.l2 >> 10, c.l3 >> 10);
    std::printf("auto: gemm float32 %s, gemm float64 %s, elementwise %s\n",
                k::level_name(k::auto_level(k::Family::gemm)), k::level_name(k::auto_level(k::Family::gemm_f64)),
                k::level_name(k::auto_level(k::Family::elementwise)));
    EXPECT(c.l1d >= (4u << 10) && c.l1d <= (4u << 20), "L1d %zu", c.l1d);
    EXPECT(c.l2 >= c.l1d && c.l3 >= (1u << 16), "L2 %zu L3 %zu", c.l2, c.l3);
    EXPECT(k::auto_level(k::Family::gemm) <= c.best && k::auto_level(k::Family::gemm_f64) <= c.best &&
               k::auto_level(k::Family::elementwise) <= k::Level::avx2,
           "auto above the CPU's or the family's best");
    EXPECT(int(dp_get_kernel_family_level(dp_kernel_family(7))) == int(DP_KERNEL_PORTABLE), "unknown family");
#if DP_X86
    EXPECT((c.best >= k::Level::avx2) == (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")),
           "avx2 detection disagrees with the compiler's");
    EXPECT((c.best >= k::Level::avx512) ==
               (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")),
           "avx512 detection disagrees with the compiler's");
    // The documented rule: AMD family 25 (Zen 4) runs the AVX2 GEMM automatically, float32 and float64.
    if (c.vendor == k::CpuInfo::amd && c.family == 25 && c.best == k::Level::avx512) {
        EXPECT(k::auto_level(k::Family::gemm) == k::Level::avx2, "Zen 4: auto float32 GEMM is not avx2");
        EXPECT(k::auto_level(k::Family::gemm_f64) == k::Level::avx2, "Zen 4: auto float64 GEMM is not avx2");
    }
#endif
#if DP_TEST_FORK
    const int best = int(c.best);
    in_child(nullptr, nullptr, 0, nullptr);
    in_child("auto", nullptr, 0, nullptr);
    in_child("portable", nullptr, 1, nullptr);
    if (best >= 2) in_child("avx2", nullptr, 2, nullptr);
    if (best >= 3) in_child("avx512", nullptr, 3, nullptr);
    else in_child("avx512", nullptr, 0, "lacks the avx512");
    in_child("AVX3", nullptr, 0, "DELTAPROP_KERNEL=\"AVX3\" is not one of");
    in_child("portable", "two", 1, "DELTAPROP_NUM_THREADS=\"two\" is not a positive integer");
    in_child(nullptr, "5000", 0, "DELTAPROP_NUM_THREADS=5000: more than 1024");
    in_child("sse9", "0", 0, "DELTAPROP_KERNEL=\"sse9\"");
    in_child(nullptr, "3", 0, nullptr);
#else
    std::printf("no fork: the environment cases are skipped\n");
#endif
    if (g_failures) std::printf("%d failure(s)\n", g_failures);
    else std::printf("ok\n");
    return g_failures ? 1 : 0;
}
