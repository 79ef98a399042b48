// SPDX-License-Identifier: MIT
#include "kernels/memory.h"

#include <cstdlib>

#include "kernels/tuning.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace deltaprop::kernels {
namespace {
constexpr std::size_t kHugeMin = tuning::kHugePageMinBytes;
constexpr std::size_t kHuge = std::size_t(2) << 20;  // the huge page size
}  // namespace

void* alloc_bytes(std::size_t bytes) noexcept {
    if (bytes == 0) bytes = 1;
    const std::size_t align = bytes >= kHugeMin ? kHuge : 64;
    if (bytes > std::size_t(-1) - align) return nullptr;
    const std::size_t size = (bytes + align - 1) / align * align;
    void* p = std::aligned_alloc(align, size);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p && align == kHuge) (void)madvise(p, size, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
    return p;
}

void free_bytes(void* p) noexcept { std::free(p); }

}  // namespace deltaprop::kernels
