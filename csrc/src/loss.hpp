// SPDX-License-Identifier: MIT
#pragma once
// The loss of a batch and dC0/dz(L) together, per loss, with optional per-sample weights; accuracy.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/elementwise.h"
#include "kernels/threadpool.h"
#include "kernels/tuning.h"
#include "src/layer.hpp"
#include "src/network.hpp"

namespace deltaprop::detail {

// Rows [r0, r1): returns sum_r w_r C0_r (w = 1 if sw is null). If delta is not null it receives
// w_r dC0/dz(L) per row.
template <class T>
double output_loss_rows(const Arch& arch, const T* z, const T* a, std::size_t r0, std::size_t r1,
                        dp_target kind, const void* y, const T* sw, T* delta) {
    const std::size_t n = arch.n_out();
    const dp_activation act = arch.activations.back();
    const T* yv = kind == DP_TARGET_VALUES ? static_cast<const T*>(y) : nullptr;
    const auto* yc = kind == DP_TARGET_CLASSES ? static_cast<const std::int64_t*>(y) : nullptr;
    auto target = [&](std::size_t r, std::size_t c) -> T {
        return yv ? yv[r * n + c] : T(yc[r] == std::int64_t(c) ? 1 : 0);
    };
    double total = 0.0;
    if (arch.loss == DP_LOSS_BINARY_CROSS_ENTROPY) {
        // C0 = sum_j softplus(z_j) - y_j z_j, delta = a - y. softplus runs vectorised over pieces of the
        // rows taken as one stream (no allocation: this runs in pool tasks).
        constexpr std::size_t kPiece = kernels::tuning::kLossPiece;
        double zin[kPiece], sp[kPiece];
        std::size_t r = r0, c = 0;
        double row = 0.0;
        for (std::size_t e0 = r0 * n, end = r1 * n; e0 < end; e0 += kPiece) {
            const std::size_t m = std::min(kPiece, end - e0);
            for (std::size_t i = 0; i < m; ++i) zin[i] = double(z[e0 + i]);
            kernels::softplus(zin, sp, m);
            for (std::size_t i = 0; i < m; ++i) {
                const T t = target(r, c);
                row += sp[i] - double(t) * zin[i];
                if (delta) delta[e0 + i] = a[e0 + i] - t;
                if (++c == n) {
                    total += sw ? double(sw[r]) * row : row;
                    row = 0.0;
                    c = 0;
                    ++r;
                }
            }
        }
    }
    for (std::size_t r = r0; r < r1 && arch.loss != DP_LOSS_BINARY_CROSS_ENTROPY; ++r) {
        const T* zr = z + r * n;
        const T* ar = a + r * n;
        T* dr = delta ? delta + r * n : nullptr;
        double row = 0.0;
        switch (arch.loss) {
            case DP_LOSS_MSE:  // C0 = sum_j (a_j - y_j)^2, dC0/da_j = 2 (a_j - y_j)
                for (std::size_t c = 0; c < n; ++c) {
                    const T d = ar[c] - target(r, c);
                    row += double(d) * double(d);
                    if (dr) dr[c] = T(2) * d;
                }
                break;
            case DP_LOSS_BINARY_CROSS_ENTROPY:  // above, over all the rows as one stream
                break;
            case DP_LOSS_CROSS_ENTROPY: {  // C0 = -sum_j y_j (z_j - logsumexp z), delta = a - y
                double m = zr[0];
                for (std::size_t c = 1; c < n; ++c) m = std::max(m, double(zr[c]));
                double s = 0.0;
                for (std::size_t c = 0; c < n; ++c) s += std::exp(double(zr[c]) - m);
                const double lse = m + std::log(s);
                for (std::size_t c = 0; c < n; ++c) {
                    const T t = target(r, c);
                    if (t != T(0)) row -= double(t) * (double(zr[c]) - lse);
                    if (dr) dr[c] = ar[c] - t;
                }
                break;
            }
        }
        total += sw ? double(sw[r]) * row : row;
    }
    if (delta && arch.loss == DP_LOSS_MSE) {
        // delta = dC0/da (.) g'(z); softmax needs its Jacobian.
        const std::size_t o = r0 * n;
        if (act == DP_SOFTMAX)
            kernels::softmax_backward(a + o, delta + o, r1 - r0, n);
        else
            kernels::mul_activation_grad(kact(act), T(arch.slopes.back()), z + o, a + o, delta + o, r1 - r0, n);
    }
    if (delta && sw) {
        for (std::size_t r = r0; r < r1; ++r) {
            const T w = sw[r];
            T* dr = delta + r * n;
            for (std::size_t c = 0; c < n; ++c) dr[c] *= w;
        }
    }
    return total;
}

// The chunking of output_loss: at most kLossChunks chunks, cut by the batch only (never the thread count).
constexpr std::size_t kLossChunks = kernels::tuning::kLossMaxChunks;
inline std::size_t loss_chunk_rows(std::size_t batch) {
    return std::max<std::size_t>(kernels::tuning::kLossMinChunkRows, (batch + kLossChunks - 1) / kLossChunks);
}

// Weighted loss of one batch from the output pre-activations z and activations a, summed over samples
// (the caller divides by the batch or the weight sum). If delta is not null it receives w dC0/dz(L)
// per sample. Chunks summed in order on the thread pool.
template <class T>
double output_loss(const Arch& arch, const T* z, const T* a, std::size_t batch, dp_target kind,
                   const void* y, const T* sw, T* delta) {
    const std::size_t rows = loss_chunk_rows(batch);
    const std::size_t chunks = (batch + rows - 1) / rows;
    double part[kLossChunks];
    kernels::parallel_for(chunks, [&](std::size_t c) {
        part[c] = output_loss_rows(arch, z, a, c * rows, std::min(batch, (c + 1) * rows), kind, y, sw, delta);
    });
    double total = 0.0;
    for (std::size_t c = 0; c < chunks; ++c) total += part[c];
    return total;
}

// Weighted number of correct predictions in rows [0, batch) from the outputs a: the argmax equals
// the class (cross_entropy; the argmax of one-hot rows), or per output a > 1/2 equals y > 1/2
// (binary_cross_entropy; then the count is over all outputs and *units receives batch * n_out
// weighted). *units receives the weighted number of predictions.
template <class T>
double correct_predictions(const Arch& arch, const T* a, std::size_t batch, dp_target kind, const void* y,
                           const T* sw, double* units) {
    const std::size_t n = arch.n_out();
    const T* yv = kind == DP_TARGET_VALUES ? static_cast<const T*>(y) : nullptr;
    const auto* yc = kind == DP_TARGET_CLASSES ? static_cast<const std::int64_t*>(y) : nullptr;
    double correct = 0.0, count = 0.0;
    for (std::size_t r = 0; r < batch; ++r) {
        const double w = sw ? double(sw[r]) : 1.0;
        const T* ar = a + r * n;
        if (arch.loss == DP_LOSS_BINARY_CROSS_ENTROPY) {
            for (std::size_t c = 0; c < n; ++c) {
                const bool t = yv ? yv[r * n + c] > T(0.5) : yc[r] == std::int64_t(c);
                correct += (ar[c] > T(0.5)) == t ? w : 0.0;
            }
            count += w * double(n);
        } else {
            const std::size_t pred = std::size_t(std::max_element(ar, ar + n) - ar);
            std::size_t truth;
            if (yc) {
                truth = std::size_t(yc[r]);
            } else {
                const T* yr = yv + r * n;
                truth = std::size_t(std::max_element(yr, yr + n) - yr);
            }
            correct += pred == truth ? w : 0.0;
            count += w;
        }
    }
    *units = count;
    return correct;
}

}  // namespace deltaprop::detail
