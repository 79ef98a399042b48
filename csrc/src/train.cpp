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
#include "kernels/tuning.h"
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
        if (since < std::chrono::microseconds(kernels::tuning::kClockMinMicroseconds) &&
            stride_ < kernels::tuning::kClockMaxStride)
            stride_ *= 2;
        else if (since > std::chrono::microseconds(kernels::tuning::kClockMaxMicroseconds) && stride_ > 1)
            stride_ /= 2;
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
    // data-parallel training (o.reduce)
    std::size_t chunk = 0;   // replicated ORDERED: rows per chunk
    Buffer<T> slots;         // ORDERED: [slots, n_params]
    std::vector<double> stats;
};

// The rows of one step: the global batch is rows [start, start + b) of this process's order (the
// shuffle or the identity; with sharded data, this process's share); this process computes rows
// [r0, r1) of it. Replicated ORDERED: they are chunks [first, first + count) of the batch's n_chunks.
template <class T>
struct Net<T>::Span {
    std::size_t start, b, r0, r1, n_chunks, first, count;
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
    struct StoreGrad {  // on every way out, the last online step's gradient goes where callers read it
        Net& net;
        ~StoreGrad() { net.store_deferred_grad(); }
    } store_grad{*this};
    if (shuffle) {
        for (std::size_t i = 0; i < n; ++i) perm_[i] = i;
        for (std::size_t i = n - 1; i > 0; --i) std::swap(perm_[i], perm_[rng_.below(i + 1)]);
    }
    const bool reduce = o.reduce != nullptr, sharded = reduce && o.sharded;
    const auto span = [&](std::size_t i) {
        Span sp{};
        if (sharded) {
            sp.start = n * i / f.batches;
            sp.b = n * (i + 1) / f.batches - sp.start;
        } else {
            sp.start = std::min(n, i * bs);
            sp.b = std::min(bs, n - sp.start);
        }
        sp.r1 = sp.b;
        if (reduce && !sharded && o.reduce_kind == DP_REDUCE_ORDERED) {
            sp.n_chunks = (sp.b + f.chunk - 1) / f.chunk;
            sp.first = sp.n_chunks * o.rank / o.ranks;
            sp.count = sp.n_chunks * (o.rank + 1) / o.ranks - sp.first;
            sp.r0 = std::min(sp.b, sp.first * f.chunk);
            sp.r1 = std::min(sp.b, (sp.first + sp.count) * f.chunk);
        } else if (reduce && !sharded) {  // SUM: an even share of the rows
            sp.r0 = sp.b * o.rank / o.ranks;
            sp.r1 = sp.b * (o.rank + 1) / o.ranks;
        }
        return sp;
    };
    const auto started = Clock::now();
    double total = 0.0, weight = 0.0;
    std::size_t done = 0;
    for (std::size_t bi = 0; bi < f.batches; ++bi) {
        if (bi == stop_before) break;
        const Span sp = span(bi), sp_next = span(bi + 1);
        // this process's rows of the batch: [start, start + b) of its order
        const std::size_t start = sp.start + sp.r0, b = sp.r1 - sp.r0;
        const T* xb;
        const void* yb;
        const T* wb = nullptr;
        if (shuffle) {
            // The copy is cut into fixed row ranges on the thread pool; each range's thread also
            // prefetches the same range of the next batch, which it copies next time (the pool gives a
            // task index to the same thread from call to call): whole rows if the batch fits
            // comfortably in L2, else their heads (the hardware prefetcher follows a row once it is
            // being read).
            const std::size_t next = sp_next.start + sp_next.r0, next_b = sp_next.r1 - sp_next.r0;
            const std::size_t row_bytes = n_in * sizeof(T);
            const std::size_t head =
                bs * row_bytes <= kernels::tuning::kGatherWholeRowsBytes
                    ? row_bytes
                    : std::min<std::size_t>(row_bytes, kernels::tuning::kGatherHeadBytes);
            const std::size_t parts =
                bs * row_bytes >= kernels::tuning::kGatherParallelBytes ? kernels::tuning::kGatherParts : 1;
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
        if (reduce) {
            double batch_loss = 0.0, m = 0.0;
            const dp_divergence at{epoch, bi, DP_PHASE_LOSS, 0, 0};
            if (reduce_step(f, sp, xb, yb, wb, lr, careful, at, &batch_loss, &m) == DP_ERR_INTERRUPTED) {
                if (mean_loss) *mean_loss = weight > 0 ? total / weight : kNaN;
                return DP_ERR_INTERRUPTED;
            }
            if (m > 0.0) {
                ++f.steps;
                f.lr = lr;
                if (!std::isfinite(batch_loss)) {
                    *failed_batch = bi;
                    return DP_ERR_DIVERGED;
                }
                total += batch_loss * m;
                weight += m;
            }
            done += sp.b;
            if (!careful && o.on_progress && f.progress.due()) {
                const dp_progress p{epoch, o.epochs, bi + 1, f.batches, done, weight > 0 ? total / weight : kNaN,
                                    seconds_since(started)};
                o.on_progress(o.user, &p);
            }
            continue;
        }
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
                grad_deferred_ = false;  // this step's gradient replaces it
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
                    // a run of online steps stores only its last gradient (the store costs a third of the update)
                    plan.keep_grad = plan.mode != GradMode::online;
                    backpropagate(b, plan);
                    grad_deferred_ = !plan.keep_grad;
                } else {
                    grad_deferred_ = false;
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
            store_deferred_grad();
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
        store_deferred_grad();
        const dp_progress p{epoch, o.epochs, f.batches, f.batches, done, *mean_loss, seconds_since(started)};
        o.on_progress(o.user, &p);
    }
    return DP_OK;
}

template <class T>
void Net<T>::evaluate(const T* x, std::size_t n, dp_target kind, const void* y, const T* sw, double l2,
                      double* loss_out, double* accuracy_out) const {
    double s[4];
    evaluate_sums(x, n, kind, y, sw, s);
    *loss_out = s[0] / s[1] + l2_penalty(l2, s[1]);
    *accuracy_out = arch_.loss == DP_LOSS_MSE ? kNaN : s[2] / s[3];
}

template <class T>
void Net<T>::evaluate_sums(const T* x, std::size_t n, dp_target kind, const void* y, const T* sw,
                           double sums[4]) const {
    constexpr std::size_t kRows = kernels::tuning::kEvalRows;  // bounds the scratch; the sums run in this fixed order
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
    sums[0] = loss;
    sums[1] = weight;
    sums[2] = correct;
    sums[3] = units;
}

template <class T>
dp_status Net<T>::reduce_step(Fit& f, const Span& sp, const T* x, const void* y, const T* sw, double lr,
                              bool careful, const dp_divergence& at, double* batch_loss, double* weight) {
    const dp_fit_options& o = f.o;
    const std::size_t np = n_params_, n_in = arch_.n_in(), n_out = arch_.n_out(), rows = sp.r1 - sp.r0;
    const bool ordered = o.reduce_kind == DP_REDUCE_ORDERED;
    T* const slots = f.slots.data();
    dp_reduce_call call{};
    call.n_params = np;
    call.stats = f.stats.data();
    call.batch = at.batch;
    call.grads = ordered ? static_cast<void*>(slots) : static_cast<void*>(grads_.data());
    if (ordered && !o.sharded) {  // one slot per chunk of the global batch
        call.n_slots = sp.n_chunks;
        call.first = sp.first;
        call.count = sp.count;
    } else if (ordered) {  // one slot per process
        call.n_slots = o.ranks;
        call.first = o.rank;
        call.count = 1;
    } else {
        call.n_slots = 1;
        call.count = 1;
    }
    // overlap (o.layer_ready): each layer announced once its gradient is final in every slot of this
    // process, i.e. during the backward pass of the last one
    struct Announce {
        const Net* net;
        const dp_fit_options* o;
        const dp_reduce_call* call;
    } announce{this, &o, &call};
    const auto layer_done = [](void* ctx, std::size_t l) {
        const auto* a = static_cast<const Announce*>(ctx);
        const std::size_t begin = a->net->w_off_[l];
        const std::size_t end = a->net->b_off_[l] + a->net->arch_.sizes[l + 1];
        a->o->layer_ready(a->o->reduce_user, a->call, l, begin, end);
    };
    const auto announce_all = [&] {
        if (o.layer_ready)
            for (std::size_t l = arch_.layers(); l-- > 0;) layer_done(&announce, l);
    };
    // The gradient sum (not the mean) of rows [r0, r1) of x into g, their loss and weight sums into st;
    // last: this process's last slot of the step.
    const auto local_sum = [&](std::size_t r0, std::size_t r1, T* g, double* st, bool last) {
        st[0] = st[1] = st[2] = st[3] = 0.0;
        if (r0 == r1) {
            std::fill(g, g + np, T(0));
            if (last) announce_all();
            return;
        }
        const void* yr = f.kind == DP_TARGET_VALUES ? static_cast<const void*>(static_cast<const T*>(y) + r0 * n_out)
                                                    : static_cast<const void*>(static_cast<const std::int64_t*>(y) + r0);
        double m = 0.0;
        st[0] = forward_loss(x + r0 * n_in, r1 - r0, f.kind, yr, sw ? sw + r0 : nullptr, &m);
        st[1] = m;
        GradPlan<T> plan;
        plan.grad = g;
        if (last && o.layer_ready) {
            plan.layer_done = layer_done;
            plan.layer_ctx = &announce;
        }
        backpropagate(r1 - r0, plan);
    };
    if (ordered && !o.sharded) {
        for (std::size_t k = 0; k < sp.count; ++k)
            local_sum(k * f.chunk, std::min(rows, (k + 1) * f.chunk), slots + (sp.first + k) * np,
                      call.stats + (sp.first + k) * 4, k + 1 == sp.count);
        if (sp.count == 0) announce_all();
    } else if (ordered) {
        local_sum(0, rows, slots + o.rank * np, call.stats + o.rank * 4, true);
    } else {
        local_sum(0, rows, grads_.data(), call.stats, true);
    }
    if (o.reduce(o.reduce_user, &call)) return DP_ERR_INTERRUPTED;
    double c = 0.0, m = 0.0;
    for (std::size_t k = 0; k < call.n_slots; ++k) {
        c += call.stats[k * 4];
        m += call.stats[k * 4 + 1];
    }
    *weight = m;
    if (!(m > 0.0)) return DP_OK;  // a batch whose weights are all 0 has no gradient: no step
    *batch_loss = c / m + l2_penalty(o.l2, m);  // of the weights before the step
    // grad = (the slots summed in slot order) / m, in fixed ranges (never cut by the thread count)
    constexpr std::size_t kChunk = kernels::tuning::kParamChunk;
    const T inv = T(1.0 / m);
    T* g = grads_.data();
    const std::size_t n_slots = ordered ? call.n_slots : 1;
    const T* src = ordered ? slots : g;
    kernels::parallel_for((np + kChunk - 1) / kChunk, [&](std::size_t t) {
        const std::size_t i0 = t * kChunk, i1 = std::min(np, i0 + kChunk);
        if (src != g) std::memcpy(g + i0, src + i0, (i1 - i0) * sizeof(T));
        for (std::size_t k = 1; k < n_slots; ++k) {
            const T* s = src + k * np;
            for (std::size_t i = i0; i < i1; ++i) g[i] += s[i];
        }
        for (std::size_t i = i0; i < i1; ++i) g[i] *= inv;
    });
    if (o.l2 != 0.0) {  // dW += (l2 / m) W, as the plain gradient
        const T l2coef = T(o.l2 / m);
        for (std::size_t l = 0; l < arch_.layers(); ++l)
            kernels::axpy(arch_.sizes[l] * arch_.sizes[l + 1], l2coef, W(l), g + w_off_[l]);
    }
    if (careful) {
        if (!std::isfinite(*batch_loss)) diverged(at, "the loss", lr);
        guarded_step(o.optimizer, lr, at);
    } else {
        clip_gradient(o.optimizer.clip_norm);
        apply_rule(make_rule(o.optimizer, lr));
        ++opt_step_;
    }
    return DP_OK;
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
    const bool sharded = o.reduce && o.sharded;
    // sharded: this process's share of a step is at most ceil(n / steps) rows
    reserve(sharded ? std::max<std::size_t>(1, (n + o.steps_per_epoch - 1) / o.steps_per_epoch) : bs);
    if (o.shuffle && perm_.size() < n) perm_.resize(n);
    Snapshot<T> epoch_start, best;
    prepare_state(o.optimizer.kind);  // may reset the state: a new kind starts afresh (documented)
    allocate(epoch_start);
    const bool keep_best = o.early_stopping && o.restore_best;
    if (keep_best) allocate(best);

    Fit f{static_cast<const T*>(x), n, kind, y, sw, o, bs, sharded ? o.steps_per_epoch : (n + bs - 1) / bs,
          Schedule(o.schedule, o.optimizer.lr), o.optimizer.clip_norm <= 0.0, 0, 0, o.optimizer.lr,
          Ticker(o.progress_interval), 0, Buffer<T>(), {}};
    if (o.reduce) {
        f.chunk = o.chunk_rows ? o.chunk_rows : (bs + 7) / 8;
        const std::size_t n_slots = o.reduce_kind == DP_REDUCE_SUM ? 1 : sharded ? o.ranks : (bs + f.chunk - 1) / f.chunk;
        if (o.reduce_kind == DP_REDUCE_ORDERED) {
            if (n_slots > std::numeric_limits<std::size_t>::max() / 8 / n_params_) throw std::bad_alloc();
            f.slots = Buffer<T>(n_slots * n_params_);
        }
        f.stats.assign(4 * std::max(n_slots, o.ranks), 0.0);
    }
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
        if (xv && sharded) {  // every process's validation shard: the sums, reduced
            const bool ordered = o.reduce_kind == DP_REDUCE_ORDERED;
            double* st = f.stats.data();
            std::fill(f.stats.begin(), f.stats.end(), 0.0);
            const dp_reduce_call call{nullptr, st, 0, ordered ? o.ranks : 1, ordered ? o.rank : 0, 1, std::size_t(-1)};
            evaluate_sums(xv, o.n_val, o.val_kind, o.y_val, wv, st + 4 * call.first);
            if (o.reduce(o.reduce_user, &call)) {
                if (partial_loss) *partial_loss = kNaN;
                res.interrupted = 1;
                if (result) *result = res;
                return DP_ERR_INTERRUPTED;
            }
            double s[4] = {0.0, 0.0, 0.0, 0.0};
            for (std::size_t k = 0; k < call.n_slots; ++k)
                for (int j = 0; j < 4; ++j) s[j] += st[4 * k + j];
            rec.val_loss = s[0] / s[1] + l2_penalty(o.l2, s[1]);
            rec.val_accuracy = arch_.loss == DP_LOSS_MSE ? kNaN : s[2] / s[3];
        } else if (xv) {
            evaluate(xv, o.n_val, o.val_kind, o.y_val, wv, o.l2, &rec.val_loss, &rec.val_accuracy);
        }
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
        if (o.cancel && !o.reduce && e + 1 < o.epochs && o.cancel(o.user)) {
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
