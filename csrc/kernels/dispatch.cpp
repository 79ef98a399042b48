// SPDX-License-Identifier: MIT
// The CPU query (cpuid + xgetbv, cache sizes), the DELTAPROP_KERNEL override and the per-family choice.
#include "kernels/dispatch.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/threadpool.h"

#if DP_X86
#include <cpuid.h>
#endif

namespace deltaprop::kernels {
namespace {

#if DP_X86
struct Regs {
    unsigned a = 0, b = 0, c = 0, d = 0;
};
Regs cpuid(unsigned leaf, unsigned sub = 0) {
    Regs r;
    if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) r = Regs{};
    return r;
}
unsigned long long xgetbv0() {
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<unsigned long long>(hi) << 32) | lo;
}

// Data or unified caches from the deterministic cache parameters leaf (4 on Intel, 0x8000001D on AMD):
// size = ways * partitions * line * sets.
void cache_sizes_cpuid(unsigned leaf, CpuInfo& info) {
    for (unsigned sub = 0; sub < 16; ++sub) {
        const Regs r = cpuid(leaf, sub);
        const unsigned type = r.a & 0x1f, lvl = (r.a >> 5) & 0x7;
        if (type == 0) break;
        if (type == 2) continue;  // instruction cache
        const std::size_t size = std::size_t((r.b >> 22) + 1) * (((r.b >> 12) & 0x3ff) + 1) *
                                 ((r.b & 0xfff) + 1) * (std::size_t(r.c) + 1);
        if (lvl == 1) info.l1d = size;
        else if (lvl == 2) info.l2 = size;
        else if (lvl == 3) info.l3 = size;
    }
}
#endif

// /sys/devices/system/cpu/cpu0/cache/index<i>/{level,type,size} (Linux), for what cpuid did not give.
void cache_sizes_sysfs(CpuInfo& info) {
    for (int i = 0; i < 8; ++i) {
        char path[96], buf[32];
        auto read = [&](const char* name) -> bool {
            std::snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/%s", i, name);
            std::FILE* f = std::fopen(path, "r");
            if (!f) return false;
            const bool ok = std::fgets(buf, sizeof(buf), f) != nullptr;
            std::fclose(f);
            return ok;
        };
        if (!read("level")) break;
        const int lvl = std::atoi(buf);
        if (!read("type") || std::strncmp(buf, "Instruction", 11) == 0) continue;
        if (!read("size")) continue;
        char* end = nullptr;
        std::size_t size = std::strtoul(buf, &end, 10);
        if (end && (*end == 'K' || *end == 'k')) size <<= 10;
        else if (end && *end == 'M') size <<= 20;
        if (lvl == 1 && !info.l1d) info.l1d = size;
        else if (lvl == 2 && !info.l2) info.l2 = size;
        else if (lvl == 3 && !info.l3) info.l3 = size;
    }
}

CpuInfo detect() {
    CpuInfo info{CpuInfo::other, 0, 0, Level::portable, 0, 0, 0};
#if DP_X86
    const Regs r0 = cpuid(0);
    char vendor[13] = {};
    std::memcpy(vendor, &r0.b, 4);
    std::memcpy(vendor + 4, &r0.d, 4);
    std::memcpy(vendor + 8, &r0.c, 4);
    if (std::strcmp(vendor, "GenuineIntel") == 0) info.vendor = CpuInfo::intel;
    else if (std::strcmp(vendor, "AuthenticAMD") == 0 || std::strcmp(vendor, "HygonGenuine") == 0)
        info.vendor = CpuInfo::amd;
    const Regs r1 = cpuid(1);
    info.family = (r1.a >> 8) & 0xf;
    info.model = (r1.a >> 4) & 0xf;
    if (info.family == 0xf) info.family += (r1.a >> 20) & 0xff;
    if (info.family >= 6) info.model |= ((r1.a >> 16) & 0xf) << 4;
    // The OS must save the vector registers (OSXSAVE, then XCR0): SSE+AVX state for avx2, plus the
    // opmask and both halves of the upper ZMM state for avx512.
    const bool osxsave = (r1.c >> 27) & 1, fma = (r1.c >> 12) & 1;
    const unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    const bool ymm_state = (xcr0 & 0x6) == 0x6, zmm_state = (xcr0 & 0xe6) == 0xe6;
    const Regs r7 = r0.a >= 7 ? cpuid(7) : Regs{};
    const bool avx2 = (r7.b >> 5) & 1;
    const bool avx512 = ((r7.b >> 16) & 1) && ((r7.b >> 17) & 1) && ((r7.b >> 30) & 1) && ((r7.b >> 31) & 1);
    if (ymm_state && avx2 && fma) {
        info.best = Level::avx2;
        if (zmm_state && avx512) info.best = Level::avx512;
    }
    if (info.vendor == CpuInfo::intel && r0.a >= 4) {
        cache_sizes_cpuid(4, info);
    } else if (info.vendor == CpuInfo::amd) {
        const Regs e0 = cpuid(0x80000000u), e1 = cpuid(0x80000001u);
        const bool topoext = (e1.c >> 22) & 1;
        if (topoext && e0.a >= 0x8000001Du) cache_sizes_cpuid(0x8000001Du, info);
    }
#endif
    cache_sizes_sysfs(info);
    if (!info.l1d) info.l1d = std::size_t(32) << 10;
    if (!info.l2) info.l2 = std::size_t(512) << 10;
    if (!info.l3) info.l3 = std::size_t(8) << 20;
    return info;
}

// The fastest build of each family on this CPU. The evidence behind each rule is in benchmarks/README.md
// (benchmarks/kernel_levels.py and gemm_bench re-derive it on the machine at hand).
Level auto_for(Family f, const CpuInfo& c) {
    if (f == Family::elementwise) return c.best < Level::avx2 ? c.best : Level::avx2;  // no avx512 build
    // GEMM on AMD family 25 with AVX-512 (Zen 4): its 512-bit FMAs run as two 256-bit halves, so an
    // AVX-512 micro-kernel has the same flops per cycle as the AVX2 one, and what it saves in
    // instructions it loses in wider edges, masks and packing; the AVX2 GEMM is as fast or faster on
    // every layer shape measured (benchmarks/README.md, "AMD EPYC Zen 4"). Zen 5 (family 26) and Intel
    // cores with two 512-bit FMA ports get the AVX-512 GEMM (benchmarks/mca.py: its 14 x 32 tile keeps
    // both ports busy, 1.86x the AVX2 tile's flops per cycle). Intel parts with one 512-bit FMA port
    // (some Xeon Silver/Bronze/Gold 5xxx, client cores) would be better off with AVX2, like Zen 4, but
    // cpuid does not tell them apart; DELTAPROP_KERNEL=avx2 is the remedy there.
    // The float64 GEMM is a family of its own because the evidence differs by shape there: the AVX-512
    // build is 12-40% faster on W2's products (5000 x 400 -> 25 -> 10, narrow ragged edges) but the AVX2
    // one is 3-12% faster on scikit-learn-sized layers (batch 200, 64-100 units) and on 1024-wide ones
    // (gemm_bench levels 1 5 f64; benchmarks/README.md). The common case wins: AVX2 for both here.
    if (c.best == Level::avx512 && c.vendor == CpuInfo::amd && c.family == 25) return Level::avx2;
    return c.best;
}

// The best build family f has at or below l.
Level cap(Family f, Level l) {
    if (f == Family::elementwise && l > Level::avx2) return Level::avx2;
    return l;
}

// DELTAPROP_KERNEL=auto|portable|avx2|avx512: a forced level (0 for auto), and a warning for a value that
// is not one of these or names a level this CPU lacks (both are then ignored: automatic).
struct EnvKernel {
    int forced = 0;
    std::string warning;
};
EnvKernel parse_env_kernel() {
    EnvKernel e;
    const char* s = std::getenv("DELTAPROP_KERNEL");
    if (!s || !*s || std::strcmp(s, "auto") == 0) return e;
    int want = 0;
    if (std::strcmp(s, "portable") == 0) want = int(Level::portable);
    else if (std::strcmp(s, "avx2") == 0) want = int(Level::avx2);
    else if (std::strcmp(s, "avx512") == 0) want = int(Level::avx512);
    if (want == 0) {
        e.warning = std::string("DELTAPROP_KERNEL=\"") + s +
                    "\" is not one of auto, portable, avx2, avx512: ignored, the kernels are chosen "
                    "automatically";
    } else if (want > int(cpu().best)) {
        e.warning = std::string("DELTAPROP_KERNEL=") + s + ": this CPU lacks the " + s +
                    " instructions (its best level is " + level_name(cpu().best) +
                    "): ignored, the kernels are chosen automatically";
    } else {
        e.forced = want;
    }
    return e;
}
const EnvKernel& env_kernel() {
    static const EnvKernel e = parse_env_kernel();
    return e;
}

// 0: not chosen yet; else the level (g_level) and each family's build (g_family).
std::atomic<int> g_level{0};
std::atomic<int> g_family[kFamilies] = {};
std::atomic<bool> g_auto{true};

void apply(int forced) {
    const CpuInfo& c = cpu();
    int top = int(Level::portable);
    for (int f = 0; f < kFamilies; ++f) {
        const Level l = forced ? cap(Family(f), Level(forced)) : auto_for(Family(f), c);
        g_family[f].store(int(l), std::memory_order_relaxed);
        if (int(l) > top) top = int(l);
    }
    g_auto.store(forced == 0, std::memory_order_relaxed);
    g_level.store(forced ? forced : top, std::memory_order_release);
}

inline void ensure_chosen() {
    if (g_level.load(std::memory_order_acquire) == 0) {
        static const bool once = (apply(env_kernel().forced), true);
        (void)once;
    }
}

}  // namespace

const CpuInfo& cpu() {
    static const CpuInfo info = detect();
    return info;
}

Level best_level() { return cpu().best; }

Level level() {
    ensure_chosen();
    return Level(g_level.load(std::memory_order_acquire));
}

Level level(Family f) {
    ensure_chosen();
    return Level(g_family[int(f)].load(std::memory_order_relaxed));
}

bool set_level(Level l) {
    if (int(l) < int(Level::portable) || int(l) > int(best_level())) return false;
    ensure_chosen();
    apply(int(l));
    return true;
}

void set_auto() {
    ensure_chosen();
    apply(env_kernel().forced);
}

bool level_is_auto() {
    ensure_chosen();
    return g_auto.load(std::memory_order_relaxed);
}

Level auto_level(Family f) { return auto_for(f, cpu()); }

const char* env_warning() {
    static const std::string text = [] {
        std::string t = env_kernel().warning;
        const std::string threads = num_threads_env_warning();
        if (!t.empty() && !threads.empty()) t += "\n";
        return t + threads;
    }();
    return text.empty() ? nullptr : text.c_str();
}

const char* level_name(Level l) {
    return l == Level::avx512 ? "avx512" : l == Level::avx2 ? "avx2" : "portable";
}

}  // namespace deltaprop::kernels
