// SPDX-License-Identifier: MIT
#pragma once
// Kernel dispatch: what this CPU can run (cpuid + xgetbv), its caches, the DELTAPROP_KERNEL override, and
// which instruction-set build each kernel family runs. The one place that knows about instruction sets;
// the GEMM, the elementwise kernels and the C ABI ask it.
//
// A level is a ceiling chosen by the user (set_level, DELTAPROP_KERNEL=portable|avx2|avx512) or
// automatic. Forced, every family runs the best build it has at or below that level. Automatic, each
// family runs the build that is fastest on this CPU (auto_level in dispatch.cpp states the evidence),
// which is not always the widest one.
#include <cstddef>

namespace deltaprop::kernels {

enum class Level { portable = 1, avx2 = 2, avx512 = 3 };
// gemm: the float32 matrix products; gemm_f64: the float64 ones (a separate family: on some CPUs the
// fastest build differs by element size); elementwise: activations, losses, updates.
enum class Family { gemm = 0, elementwise = 1, gemm_f64 = 2 };
constexpr int kFamilies = 3;

struct CpuInfo {
    enum Vendor { other = 0, intel = 1, amd = 2 } vendor;
    unsigned family, model;  // cpuid leaf 1, extended family and model folded in (x86 only; else 0)
    Level best;              // best level the CPU and the OS (saved vector state) support
    // data cache sizes in bytes, per core for L1 and L2 (cpuid leaf 4 / 0x8000001D, else sysfs, else
    // a default of 32 KiB / 512 KiB / 8 MiB)
    std::size_t l1d, l2, l3;
};
const CpuInfo& cpu();

// Best level this CPU supports.
Level best_level();
// The level in use: the forced level, or automatically the widest build any family runs.
Level level();
// The build that family f runs.
Level level(Family f);
// Force every family to at most l; returns false (and changes nothing) if the CPU lacks l.
bool set_level(Level l);
// Back to the start-up choice: DELTAPROP_KERNEL if it names a level the CPU has, else automatic.
void set_auto();
// Whether the level is automatic (not forced by set_level or DELTAPROP_KERNEL).
bool level_is_auto();
// The automatic choice for family f on this CPU (what set_auto gives without DELTAPROP_KERNEL).
Level auto_level(Family f);

// nullptr if DELTAPROP_KERNEL and DELTAPROP_NUM_THREADS are unset or valid; else a message, one line per
// variable, naming the value and what is used instead. The library itself never prints it.
const char* env_warning();

const char* level_name(Level l);  // "portable", "avx2", "avx512"

}  // namespace deltaprop::kernels
