// SPDX-License-Identifier: MIT
#pragma once
// Validation of data arrays at the entry points: inputs finite, targets in range, sample weights.
// Each throws Error(DP_ERR_INVALID_ARGUMENT) naming the array, the row and the column.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/threadpool.h"
#include "kernels/tuning.h"
#include "src/network.hpp"

namespace deltaprop::detail {

// True if p[0..n) holds no NaN or infinity (x - x is 0 exactly for finite x); branch-free, so it
// vectorises.
template <class T>
bool all_finite(const T* p, std::size_t n) {
    int ok = 1;
    for (std::size_t i = 0; i < n; ++i) ok &= int(p[i] - p[i] == T(0));
    return ok != 0;
}

// Index of the first non-finite element of p[0..n), or n; fixed chunks on the thread pool.
template <class T>
std::size_t first_non_finite(const T* p, std::size_t n) {
    constexpr std::size_t kChunk = kernels::tuning::kFiniteChunk;
    const std::size_t chunks = (n + kChunk - 1) / kChunk;
    std::atomic<bool> bad{false};
    kernels::parallel_for(chunks, [&](std::size_t c) {
        if (!bad.load(std::memory_order_relaxed) && !all_finite(p + c * kChunk, std::min(kChunk, n - c * kChunk)))
            bad.store(true, std::memory_order_relaxed);
    });
    if (!bad.load()) return n;
    for (std::size_t i = 0; i < n; ++i)
        if (!std::isfinite(p[i])) return i;
    return n;
}

template <class T>
void check_finite(const char* name, const T* p, std::size_t rows, std::size_t cols) {
    const std::size_t i = first_non_finite(p, rows * cols);
    if (i < rows * cols)
        fail(DP_ERR_INVALID_ARGUMENT, std::string(name) + " contains NaN or infinity (at row " +
                                          std::to_string(i / cols) + ", column " + std::to_string(i % cols) + ")");
}

template <class T>
void check_targets(const char* name, dp_target kind, const void* y, std::size_t batch, std::size_t n_out) {
    if (!y) fail(DP_ERR_INVALID_ARGUMENT, std::string(name) + " is NULL");
    if (kind == DP_TARGET_VALUES) {
        check_finite(name, static_cast<const T*>(y), batch, n_out);
    } else if (kind == DP_TARGET_CLASSES) {
        const auto* c = static_cast<const std::int64_t*>(y);
        for (std::size_t i = 0; i < batch; ++i) {
            if (c[i] < 0 || static_cast<std::uint64_t>(c[i]) >= n_out)
                fail(DP_ERR_INVALID_ARGUMENT, std::string(name) + ": class index " + std::to_string(c[i]) +
                                                  " at row " + std::to_string(i) + " is out of range [0, " +
                                                  std::to_string(n_out) + ")");
        }
    } else {
        fail(DP_ERR_INVALID_ARGUMENT, "kind: unknown target kind " + std::to_string(int(kind)));
    }
}

// Sample weights: finite, >= 0 and not all zero. Returns their sum.
template <class T>
double check_weights(const char* name, const T* w, std::size_t n) {
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        if (!(w[i] >= T(0)) || !std::isfinite(w[i]))
            fail(DP_ERR_INVALID_ARGUMENT, std::string(name) + ": expected finite weights >= 0, got " +
                                              std::to_string(double(w[i])) + " at row " + std::to_string(i));
        sum += double(w[i]);
    }
    if (!(sum > 0.0)) fail(DP_ERR_INVALID_ARGUMENT, std::string(name) + ": the weights sum to 0");
    return sum;
}

}  // namespace deltaprop::detail
