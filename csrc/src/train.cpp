// SPDX-License-Identifier: MIT
// The training loop: epochs of shuffled mini-batches, each one forward, loss and the delta recursion
// with the optimizer's rule fused into it; the schedule, validation, early stopping, callbacks,
// progress and interruption between batches and epochs; and the divergence guard.
//
// The guard costs almost nothing per step: each batch's loss is checked (a scalar), and at the end of
// each epoch the parameters and optimizer state are scanned once. The epoch's starting state is kept
// (one copy per epoch). When a check fails, the epoch is replayed from that copy with every step
// checked in full (forward values, loss, gradient, updated values); training is deterministic, so the
// replay meets the same numbers and finds the first failing step and phase. The epoch is then replayed
// once more up to that step, which leaves the net exactly as before it.
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/threadpool.h"
#include "src/checks.hpp"
#include "src/loss.hpp"
#include "src/net.hpp"

namespace deltaprop::detail {

namespace {

inline void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
}

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Says when `interval` seconds have passed, reading the clock about once a millisecond (every call
// for long batches, every few hundred for online training, where reading it would cost a few percent).
class Ticker {
public:
    explicit Ticker(double interval) : interval_(interval), last_(Clock::now()), read_(last_) {}
    bool due() {
        if (++calls_ < stride_) return false;
        calls_ = 0;
        const auto now = Clock::now();
        const auto since = now - read_;
        read_ = now;
        if (since < std::chrono::microseconds(500) && stride_ < 4096) stride_ *= 2;
        else if (since > std::chrono::milliseconds(2) && stride_ > 1) stride_ /= 2;
        if (std::chrono::duration<double>(now - last_).count() < interval_) return false;
        last_ = now;
        return true;
    }

private:
    double interval_;
    Clock::time_point last_, read_;
    unsigned calls_ = 0, stride_ = 1;
};

const double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

template <class T>
struct Net<T>::Fit {
    const T* X;
    std::size_t n;
    dp_target kind;
    const void* y;
    const T* sw;
    const dp_fit_options& o;
    std::size_t bs, batches;
    Schedule sched;
    bool fuse;               // the update can run inside the backward pass (no clipping)
    std::size_t steps = 0;   // optimizer steps in this call (the schedule's unit when per_step)
    std::size_t epochs = 0;  // epochs completed in this call
    double lr = 0.0;         // the rate of the last step
    Ticker progress;
};

// One epoch over validated inputs (workspace reserved, perm_ sized). Stops before batch stop_before
// (SIZE_MAX: none). careful: every step checked in full, Diverged thrown at the first failure;
// otherwise returns DP_ERR_DIVERGED with *failed_batch at a non-finite loss.
template <class T>
dp_status Net<T>::run_epoch(Fit& f, std::size_t epoch, std::size_t stop_before, bool careful, double* mean_loss,
                            std::size_t* failed_batch) {
    const std::size_t n = f.n, bs = f.bs, n_in = arch_.n_in(), n_out = arch_.n_out();
    const dp_fit_options& o = f.o;
    const bool shuffle = o.shuffle != 0;
    if (shuffle) {
        for (std::size_t i = 0; i < n; ++i) perm_[i] = i;
        for (std::size_t i = n - 1; i > 0; --i) std::swap(perm_[i], perm_[rng_.below(i + 1)]);
    }
    const auto started = Clock::now();
    double total = 0.0, weight = 0.0;
    std::size_t done = 0, bi = 0;
    for (std::size_t start = 0; start < n; start += bs, ++bi) {
        if (bi == stop_before) break;
        const std::size_t b = std::min(bs, n - start);
        const T* xb;
        const void* yb;
        const T* wb = nullptr;
        if (shuffle) {
            // The copy is cut into fixed row ranges on the thread pool; each range's thread also
            // prefetches the same range of the next batch, which it copies next time (the pool gives a
            // task index to the same thread from call to call): whole rows if the batch fits
            // comfortably in L2, else their heads (the hardware prefetcher follows a row once it is
            // being read).
            const std::size_t next = start + b, next_b = std::min(bs, n - std::min(n, next));
            const std::size_t row_bytes = n_in * sizeof(T);
            const std::size_t head =
                bs * row_bytes <= (std::size_t(256) << 10) ? row_bytes : std::min<std::size_t>(row_bytes, 256);
            const std::size_t parts = bs * row_bytes >= (std::size_t(32) << 10) ? 8 : 1;
            T* xw = ws_->x.data();
            const T* X = f.X;
            const std::size_t* perm = perm_.data();
            kernels::parallel_for(parts, [&](std::size_t t) {
                for (std::size_t i = next + t * next_b / parts; i < next + (t + 1) * next_b / parts; ++i) {
                    const char* row = reinterpret_cast<const char*>(X + perm[i] * n_in);
                    for (std::size_t off = 0; off < head; off += 64) prefetch(row + off);
                }
                for (std::size_t i = t * b / parts; i < (t + 1) * b / parts; ++i)
                    std::memcpy(xw + i * n_in, X + perm[start + i] * n_in, row_bytes);
            });
            xb = xw;
            if (f.kind == DP_TARGET_VALUES) {
                const T* Y = static_cast<const T*>(f.y);
                T* yw = ws_->y.data();
                for (std::size_t i = 0; i < b; ++i)
                    std::memcpy(yw + i * n_out, Y + perm_[start + i] * n_out, n_out * sizeof(T));
                yb = yw;
            } else {
                const auto* Y = static_cast<const std::int64_t*>(f.y);
                std::int64_t* yw = ws_->classes.data();
                for (std::size_t i = 0; i < b; ++i) yw[i] = Y[perm_[start + i]];
                yb = yw;
            }
            if (f.sw) {
                T* ww = ws_->w.data();
                for (std::size_t i = 0; i < b; ++i) ww[i] = f.sw[perm_[start + i]];
                wb = ww;
            }
        } else {
            xb = f.X + start * n_in;
            yb = f.kind == DP_TARGET_VALUES ? static_cast<const void*>(static_cast<const T*>(f.y) + start * n_out)
                                            : static_cast<const void*>(static_cast<const std::int64_t*>(f.y) + start);
            if (f.sw) wb = f.sw + start;
        }
        const double lr = f.sched.per_step() ? f.sched.rate(f.steps) : f.sched.rate(f.epochs);
        double m = double(b);
        if (wb) {
            m = 0.0;
            for (std::size_t i = 0; i < b; ++i) m += double(wb[i]);
        }
        if (m > 0.0) {  // a batch whose weights are all 0 has no gradient: no step
            const dp_divergence at{epoch, bi, DP_PHASE_LOSS, 0, 0};
            const double penalty = l2_penalty(o.l2, m);  // of the weights before the step
            GradPlan<T> plan;
            plan.inv = T(1.0 / m);
            plan.l2coef = T(o.l2 / m);
            double c;
            if (careful) {
                c = forward_loss(xb, b, f.kind, yb, wb, &m);
                check_forward(b, at);
                if (!std::isfinite(c / m + penalty)) diverged(at, "the loss", lr);
                backpropagate(b, plan);
                guarded_step(o.optimizer, lr, at);
            } else {
                const Rule<T> rule = make_rule(o.optimizer, lr);
                c = forward_loss(xb, b, f.kind, yb, wb, &m);
                if (f.fuse) {
                    plan.rule = &rule;
                    plan.mode = b == 1 && !wb && o.l2 == 0.0 && rule.plain_sgd() ? GradMode::online : GradMode::fused;
                    backpropagate(b, plan);
                } else {
                    backpropagate(b, plan);
                    clip_gradient(o.optimizer.clip_norm);
                    apply_rule(rule);
                }
                ++opt_step_;
            }
            const double batch_loss = c / m + penalty;
            ++f.steps;
            f.lr = lr;
            if (!std::isfinite(batch_loss)) {
                *failed_batch = bi;
                return DP_ERR_DIVERGED;
            }
            total += batch_loss * m;
            weight += m;
        }
        done += b;
        if (careful) continue;
        if (o.on_progress && f.progress.due()) {
            const dp_progress p{epoch, o.epochs, bi + 1, f.batches, done, weight > 0 ? total / weight : kNaN,
                                seconds_since(started)};
            o.on_progress(o.user, &p);
        }
        if (o.cancel && done < n && o.cancel(o.user)) {
            if (mean_loss) *mean_loss = weight > 0 ? total / weight : kNaN;
            return DP_ERR_INTERRUPTED;
        }
    }
    if (mean_loss) *mean_loss = weight > 0 ? total / weight : kNaN;
    if (o.on_progress && !careful && stop_before == std::size_t(-1)) {
        const dp_progress p{epoch, o.epochs, f.batches, f.batches, n, *mean_loss, seconds_since(started)};
        o.on_progress(o.user, &p);
    }
    return DP_OK;
}

template <class T>
void Net<T>::evaluate(const T* x, std::size_t n, dp_target kind, const void* y, const T* sw, double l2,
                      double* loss_out, double* accuracy_out) const {
    constexpr std::size_t kRows = 1024;  // bounds the scratch; the sums run in this fixed order
    const std::size_t n_in = arch_.n_in(), n_out = arch_.n_out();
    double loss = 0.0, weight = 0.0, correct = 0.0, units = 0.0;
    T* out_a = scratch(1, 2 * std::min(n, kRows) * n_out);
    for (std::size_t r0 = 0; r0 < n; r0 += kRows) {
        const std::size_t rows = std::min(kRows, n - r0);
        T* out_z = out_a + rows * n_out;
        predict_impl(x + r0 * n_in, rows, out_a, out_z);
        const void* yr = kind == DP_TARGET_VALUES ? static_cast<const void*>(static_cast<const T*>(y) + r0 * n_out)
                                                  : static_cast<const void*>(static_cast<const std::int64_t*>(y) + r0);
        const T* wr = sw ? sw + r0 : nullptr;
        loss += output_loss(arch_, out_z, out_a, rows, kind, yr, wr, static_cast<T*>(nullptr));
        if (wr)
            for (std::size_t i = 0; i < rows; ++i) weight += double(wr[i]);
        else
            weight += double(rows);
        if (arch_.loss != DP_LOSS_MSE) {
            double u = 0.0;
            correct += correct_predictions(arch_, out_a, rows, kind, yr, wr, &u);
            units += u;
        }
    }
    *loss_out = loss / weight + l2_penalty(l2, weight);
    *accuracy_out = arch_.loss == DP_LOSS_MSE ? kNaN : correct / units;
}

template <class T>
dp_status Net<T>::fit(const void* x, std::size_t n, dp_target kind, const void* y, const dp_fit_options& o,
                      dp_epoch_record* history, dp_fit_result* result, double* partial_loss) {
    dp_fit_result res{0, 0, 0, 0};
    if (result) *result = res;
    // ---- validated once: from here on nothing fails but divergence ----
    check_batch("X", n);
    if (!x) fail(DP_ERR_INVALID_ARGUMENT, "X is NULL");
    check_fit_options(o, arch_.loss);
    check_finite("X", static_cast<const T*>(x), n, arch_.n_in());
    check_targets<T>("Y", kind, y, n, arch_.n_out());
    const T* sw = static_cast<const T*>(o.sample_weight);
    if (sw) check_weights("sample_weight", sw, n);
    const T* xv = static_cast<const T*>(o.x_val);
    const T* wv = static_cast<const T*>(o.w_val);
    if (xv) {
        check_batch("X_val", o.n_val);
        if (o.val_kind != DP_TARGET_VALUES && o.val_kind != DP_TARGET_CLASSES)
            fail(DP_ERR_INVALID_ARGUMENT, "val_kind: unknown target kind " + std::to_string(int(o.val_kind)));
        check_finite("X_val", xv, o.n_val, arch_.n_in());
        check_targets<T>("Y_val", o.val_kind, o.y_val, o.n_val, arch_.n_out());
        if (wv) check_weights("sample_weight_val", wv, o.n_val);
    }
    const std::size_t bs = std::min(o.batch_size, n);
    reserve(bs);
    if (o.shuffle && perm_.size() < n) perm_.resize(n);
    Snapshot<T> epoch_start, best;
    prepare_state(o.optimizer.kind);  // may reset the state: a new kind starts afresh (documented)
    allocate(epoch_start);
    const bool keep_best = o.early_stopping && o.restore_best;
    if (keep_best) allocate(best);

    Fit f{static_cast<const T*>(x), n, kind, y, sw, o, bs, (n + bs - 1) / bs,
          Schedule(o.schedule, o.optimizer.lr), o.optimizer.clip_norm <= 0.0, 0, 0, o.optimizer.lr,
          Ticker(o.progress_interval)};
    const dp_monitor monitor = o.monitor != DP_MONITOR_AUTO ? o.monitor : (xv ? DP_MONITOR_VAL_LOSS : DP_MONITOR_LOSS);
    const bool higher_better = monitor == DP_MONITOR_VAL_ACCURACY;
    double best_value = higher_better ? -INFINITY : INFINITY;
    std::size_t wait = 0, best_epoch = 0;
    bool have_best = false;

    for (std::size_t e = 0; e < o.epochs; ++e) {
        const auto started = Clock::now();
        save(epoch_start);
        const std::size_t steps_before = f.steps;
        double mean = 0.0;
        std::size_t failed = 0;
        dp_status st = run_epoch(f, e, std::size_t(-1), false, &mean, &failed);
        if (st == DP_ERR_INTERRUPTED) {
            if (partial_loss) *partial_loss = mean;
            res.interrupted = 1;
            if (result) *result = res;
            return st;
        }
        const bool finite_state = [&] {
            if (first_non_finite(params_.data(), n_params_) < n_params_) return false;
            for (int i = 0; i < 3; ++i)
                if (state_[i].data() && first_non_finite(state_[i].data(), n_params_) < n_params_) return false;
            return true;
        }();
        if (st == DP_ERR_DIVERGED || !finite_state) {
            restore(epoch_start);
            f.steps = steps_before;
            double ignored = 0.0;
            try {
                run_epoch(f, e, std::size_t(-1), true, &ignored, &failed);
            } catch (const Diverged& d) {
                restore(epoch_start);
                f.steps = steps_before;
                if (d.where.batch > 0) run_epoch(f, e, d.where.batch, false, &ignored, &failed);
                if (result) *result = res;
                throw;
            }
            // The full checks found nothing (they cover every value the fast path checks): report it.
            restore(epoch_start);
            f.steps = steps_before;
            dp_divergence d{e, st == DP_ERR_DIVERGED ? failed : f.batches - 1, DP_PHASE_UPDATE, 0, 0};
            if (result) *result = res;
            diverged(d, "a value of the epoch (the replay could not locate it; the net is as at the epoch's start)",
                     f.lr);
        }
        ++f.epochs;
        dp_epoch_record rec{e, mean, kNaN, kNaN, f.lr, 0.0};
        if (xv) evaluate(xv, o.n_val, o.val_kind, o.y_val, wv, o.l2, &rec.val_loss, &rec.val_accuracy);
        rec.seconds = seconds_since(started);
        if (history) history[e] = rec;
        res.epochs_done = e + 1;
        res.best_epoch = o.early_stopping ? best_epoch : e;
        const double value = monitor == DP_MONITOR_LOSS       ? rec.loss
                             : monitor == DP_MONITOR_VAL_LOSS ? rec.val_loss
                                                              : rec.val_accuracy;
        f.sched.epoch_end(higher_better ? -value : value);
        bool stop = false;
        if (o.early_stopping) {
            const bool improved = higher_better ? value > best_value + o.min_delta : value < best_value - o.min_delta;
            if (improved || !have_best) {
                best_value = value;
                res.best_epoch = best_epoch = e;
                have_best = true;
                wait = 0;
                if (keep_best) save(best);
            } else {
                ++wait;
                stop = wait >= o.patience;
            }
        }
        if (o.on_epoch && o.on_epoch(o.user, &rec)) stop = true;
        if (stop) {
            res.stopped_early = 1;
            break;
        }
        if (o.cancel && e + 1 < o.epochs && o.cancel(o.user)) {
            res.interrupted = 1;
            if (partial_loss) *partial_loss = kNaN;
            if (result) *result = res;
            return DP_ERR_INTERRUPTED;
        }
    }
    if (keep_best && have_best && res.epochs_done > 0) {
        const auto rng_now = rng_.state();
        restore(best);
        rng_.set_state(rng_now);
    }
    if (result) *result = res;
    return DP_OK;
}

template class Net<float>;
template class Net<double>;

}  // namespace deltaprop::detail
