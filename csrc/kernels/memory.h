// SPDX-License-Identifier: MIT
#pragma once
// Storage for the large arrays (parameters, gradients, workspaces, packing scratch).
#include <cstddef>

namespace deltaprop::kernels {

// At least `bytes` bytes, 64-byte aligned, or nullptr. From 512 KiB up, the block is rounded up to
// whole 2 MiB pages, aligned to 2 MiB and (Linux) advised as transparent huge pages: one TLB entry per
// 2 MiB, and physically contiguous memory that spreads evenly over the cache sets.
void* alloc_bytes(std::size_t bytes) noexcept;
void free_bytes(void* p) noexcept;

}  // namespace deltaprop::kernels
