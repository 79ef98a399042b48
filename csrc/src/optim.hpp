// SPDX-License-Identifier: MIT
#pragma once
// One rule per optimizer over a span of parameters and its state, and the learning-rate schedules.
// The same function runs over the whole buffer (step) and over a block of a layer's weights in the
// GEMM epilogue of dW (the fused training step), so the update is written once and both paths give
// the same bits. The formulas are PyTorch's (deltaprop.h, dp_optimizer).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/elementwise.h"
#include "src/network.hpp"

namespace deltaprop::detail {

// An optimizer step made concrete: the rate of this step and the bias corrections of step t.
template <class T>
struct Rule {
    dp_optimizer_kind kind = DP_OPTIM_SGD;
    T lr = T(0), momentum = T(0), weight_decay = T(0);
    bool nesterov = false, amsgrad = false, eps_hat = false;
    T one_minus_beta1 = T(0), beta1 = T(0), beta2 = T(0), one_minus_beta2 = T(0), eps = T(0);
    T neg_step_size = T(0);  // -lr / (1 - beta1^t)       (eps_hat: -lr sqrt(1 - beta2^t) / (1 - beta1^t))
    T bc2_sqrt = T(1);       // sqrt(1 - beta2^t)
    T decay = T(1);          // AdamW: 1 - lr weight_decay
    // State buffers in the parameter layout: s0 momentum / m, s1 v, s2 vmax.
    T *s0 = nullptr, *s1 = nullptr, *s2 = nullptr;

    // lr: the scheduled rate of this step; t: the optimizer's step count including this step.
    static Rule make(const dp_optimizer& o, double lr, std::uint64_t t, T* s0, T* s1, T* s2) {
        Rule r;
        r.kind = o.kind;
        r.lr = T(lr);
        r.weight_decay = T(o.weight_decay);
        r.s0 = s0;
        r.s1 = s1;
        r.s2 = s2;
        if (o.kind == DP_OPTIM_SGD) {
            r.momentum = T(o.momentum);
            r.nesterov = o.nesterov != 0;
            return r;
        }
        r.amsgrad = o.amsgrad != 0;
        r.eps_hat = o.eps_hat != 0;
        r.beta1 = T(o.beta1);
        r.one_minus_beta1 = T(1.0 - o.beta1);
        r.beta2 = T(o.beta2);
        r.one_minus_beta2 = T(1.0 - o.beta2);
        r.eps = T(o.eps);
        const double bc1 = 1.0 - std::pow(o.beta1, double(t)), bc2 = 1.0 - std::pow(o.beta2, double(t));
        r.bc2_sqrt = T(std::sqrt(bc2));
        r.neg_step_size = o.eps_hat ? T(-(lr * std::sqrt(bc2) / bc1)) : T(-(lr / bc1));
        r.decay = T(1.0 - lr * o.weight_decay);
        return r;
    }
    bool plain_sgd() const { return kind == DP_OPTIM_SGD && momentum == T(0) && weight_decay == T(0); }
};

// Adam/AdamW on n contiguous elements at offset off of the parameter layout: w, g point at them.
// The variant flags are compile-time in the loop (one branch-free loop each, which vectorises).
template <class T, bool L2, bool DECOUPLED, bool HAT, bool AMS>
void adam_loop(const Rule<T>& r, std::size_t off, std::size_t n, const T* __restrict g_in, T* __restrict w) {
    T* __restrict m = r.s0 + off;
    T* __restrict v = r.s1 + off;
    T* __restrict vmax = r.s2 + off;
    const T wd = r.weight_decay, decay = r.decay, b1 = r.beta1, omb1 = r.one_minus_beta1, b2 = r.beta2,
            omb2 = r.one_minus_beta2, eps = r.eps, bc2 = r.bc2_sqrt, step = r.neg_step_size;
    for (std::size_t i = 0; i < n; ++i) {
        T g = g_in[i];
        if constexpr (L2) g = g + wd * w[i];         // g += weight_decay w
        if constexpr (DECOUPLED) w[i] = w[i] * decay;  // w *= 1 - lr weight_decay
        T vv;
        if constexpr (!HAT) {
            m[i] = m[i] + omb1 * (g - m[i]);       // m = lerp(m, g, 1 - beta1)
            v[i] = v[i] * b2 + omb2 * g * g;       // v = beta2 v + (1 - beta2) g^2
        } else {
            m[i] = b1 * m[i] + omb1 * g;           // m = beta1 m + (1 - beta1) g
            v[i] = b2 * v[i] + omb2 * (g * g);     // v = beta2 v + (1 - beta2) g^2
        }
        vv = v[i];
        if constexpr (AMS) {
            vv = vmax[i] > vv ? vmax[i] : vv;      // vmax = max(vmax, v)
            vmax[i] = vv;
        }
        T denom;
        if constexpr (!HAT)
            denom = std::sqrt(vv) / bc2 + eps;     // sqrt(v) / sqrt(1 - beta2^t) + eps
        else
            denom = std::sqrt(vv) + eps;           // sqrt(v) + eps
        w[i] = w[i] + step * m[i] / denom;         // w -= step_size m / denom
    }
}

template <class T>
void adam_span(const Rule<T>& r, std::size_t off, std::size_t n, const T* g, T* w) {
    const bool l2 = r.kind == DP_OPTIM_ADAM && r.weight_decay != T(0);
    const bool dec = r.kind == DP_OPTIM_ADAMW && r.weight_decay != T(0);
    const int variant = (l2 ? 8 : 0) | (dec ? 4 : 0) | (r.eps_hat ? 2 : 0) | (r.amsgrad ? 1 : 0);
    switch (variant) {
#define DP_ADAM_CASE(V) \
    case V: return adam_loop<T, (V & 8) != 0, (V & 4) != 0, (V & 2) != 0, (V & 1) != 0>(r, off, n, g, w);
        DP_ADAM_CASE(0) DP_ADAM_CASE(1) DP_ADAM_CASE(2) DP_ADAM_CASE(3)
        DP_ADAM_CASE(4) DP_ADAM_CASE(5) DP_ADAM_CASE(6) DP_ADAM_CASE(7)
        DP_ADAM_CASE(8) DP_ADAM_CASE(9) DP_ADAM_CASE(10) DP_ADAM_CASE(11)
#undef DP_ADAM_CASE
    }
}

// The update of rows x cols elements of a layer's weights (row r at r * ld) starting at offset off of
// the parameter layout: dW += l2coef W first (the L2 term of the loss), then the optimizer's rule.
// dW and W point at the block.
template <class T>
void update_block(const Rule<T>& r, std::size_t off, std::size_t rows, std::size_t cols, std::size_t ld,
                  T l2coef, T* dW, T* W) {
    if (r.kind == DP_OPTIM_SGD) {
        kernels::param_update_block(rows, cols, ld, l2coef, r.lr, r.momentum, r.nesterov, r.weight_decay, dW, W,
                                    r.s0 + off);
        return;
    }
    for (std::size_t i = 0; i < rows; ++i) {
        T* g = dW + i * ld;
        T* w = W + i * ld;
        if (l2coef != T(0))
            for (std::size_t c = 0; c < cols; ++c) g[c] += l2coef * w[c];  // dW += (l2/m) W, as axpy
        adam_span(r, off + i * ld, cols, g, w);
    }
}

// ---- learning-rate schedules ----
struct Schedule {
    dp_schedule s;
    double lr0;
    double plateau_lr;                // PLATEAU: the current rate
    double best;                      // PLATEAU: best monitored value
    std::size_t bad_epochs = 0, cooldown_left = 0;

    Schedule(const dp_schedule& sched, double lr) : s(sched), lr0(lr), plateau_lr(lr), best(INFINITY) {}

    // The rate after k completed units (steps if per_step, else epochs).
    double rate(std::size_t k) const {
        const double kd = double(k);
        switch (s.kind) {
            case DP_SCHEDULE_CONSTANT: return lr0;
            case DP_SCHEDULE_INVERSE_SCALING: return lr0 / std::pow(1.0 + s.scale * kd, s.power);
            case DP_SCHEDULE_STEP: return lr0 * std::pow(s.gamma, double(k / s.step_size));
            case DP_SCHEDULE_EXPONENTIAL: return lr0 * std::pow(s.gamma, kd);
            case DP_SCHEDULE_COSINE: {
                if (k < s.warmup) return lr0 * (kd + 1.0) / double(s.warmup);
                const std::size_t c = k - s.warmup;
                if (c >= s.t_max) return s.eta_min;
                const double pi = 3.14159265358979323846;
                return s.eta_min + (lr0 - s.eta_min) * (1.0 + std::cos(pi * double(c) / double(s.t_max))) / 2.0;
            }
            case DP_SCHEDULE_PLATEAU: return plateau_lr;
        }
        return lr0;
    }
    bool per_step() const { return s.per_step != 0 && s.kind != DP_SCHEDULE_PLATEAU; }

    // PLATEAU: after an epoch whose monitored value (lower is better) is `value`.
    void epoch_end(double value) {
        if (s.kind != DP_SCHEDULE_PLATEAU) return;
        const bool better = s.threshold_abs ? value < best - s.threshold : value < best * (1.0 - s.threshold);
        if (better) {
            best = value;
            bad_epochs = 0;
        } else {
            ++bad_epochs;
        }
        if (cooldown_left > 0) {
            --cooldown_left;
            bad_epochs = 0;
        }
        if (bad_epochs > s.patience) {
            const double reduced = std::max(plateau_lr * s.factor, s.min_lr);
            if (plateau_lr - reduced > 1e-8) plateau_lr = reduced;  // as PyTorch: no change below 1e-8
            cooldown_left = s.cooldown;
            bad_epochs = 0;
        }
    }
};

}  // namespace deltaprop::detail
