// SPDX-License-Identifier: MIT
// Net<T>: storage, inference, the one delta recursion with its gradient strategies, and the optimizer
// step with its guard. The training loop is in train.cpp.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <sstream>
#include <type_traits>

#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/threadpool.h"
#include "kernels/tuning.h"
#include "src/checks.hpp"
#include "src/layer.hpp"
#include "src/loss.hpp"
#include "src/net.hpp"

namespace deltaprop::detail {

namespace {

template <class... Args>
std::string cat(const Args&... args) {
    std::ostringstream s;
    (s << ... << args);
    return s.str();
}

std::size_t state_buffers(dp_optimizer_kind kind, bool amsgrad_in_use) {
    if (kind == DP_OPTIM_SGD) return 1;
    return amsgrad_in_use ? 3 : 2;
}

}  // namespace

// ---- storage ----

template <class T>
Net<T>::Workspace::Workspace(const Arch& arch, std::size_t c) : cap(c) {
    std::size_t s = 0;
    off.resize(arch.layers());
    for (std::size_t l = 0; l < arch.layers(); ++l) {
        off[l] = s;
        if (arch.sizes[l + 1] > std::numeric_limits<std::size_t>::max() / 4 / sizeof(T) / c) throw std::bad_alloc();
        s += arch.sizes[l + 1] * c;
    }
    if (s > std::numeric_limits<std::size_t>::max() / 4 / sizeof(T)) throw std::bad_alloc();
    z = Buffer<T>(s);
    a = Buffer<T>(s);
    delta = Buffer<T>(s);
    x = Buffer<T>(c * arch.n_in());
    y = Buffer<T>(c * arch.n_out());
    w = Buffer<T>(c);
    classes = Buffer<std::int64_t>(c);
}

template <class T>
Net<T>::Net(const Arch& arch) : NetBase(arch) {
    const double bytes = 3.0 * double(n_params_) * sizeof(T);
    naming_allocation("the parameters, gradients and momentum buffer", bytes, [&] {
        params_ = Buffer<T>(n_params_);
        grads_ = Buffer<T>(n_params_);
        state_[0] = Buffer<T>(n_params_);
    });
}

template <class T>
Net<T>::Net(const Net& o)
    : NetBase(o), params_(o.params_), grads_(o.grads_), opt_kind_(o.opt_kind_), opt_step_(o.opt_step_) {
    for (int i = 0; i < 3; ++i) state_[i] = Buffer<T>(o.state_[i]);
}

template <class T>
void Net<T>::initialize(dp_init init, std::uint64_t seed) {
    if (init < DP_INIT_GLOROT_UNIFORM || init > DP_INIT_HE_NORMAL)
        fail(DP_ERR_INVALID_ARGUMENT, cat("init: unknown initialisation ", int(init)));
    rng_.reseed(seed);
    T* p = params_.data();
    std::fill(p, p + n_params_, T(0));
    for (std::size_t l = 0; l < arch_.layers(); ++l) {
        const double n_in = double(arch_.sizes[l]), n_out = double(arch_.sizes[l + 1]);
        T* Wl = p + w_off_[l];
        const std::size_t count = arch_.sizes[l] * arch_.sizes[l + 1];
        if (init == DP_INIT_HE_NORMAL) {
            const double sd = std::sqrt(2.0 / n_in);
            for (std::size_t i = 0; i < count; ++i) Wl[i] = T(sd * rng_.normal());
        } else {
            const double e = init == DP_INIT_GLOROT_UNIFORM ? std::sqrt(6.0 / (n_in + n_out)) : std::sqrt(6.0 / n_in);
            for (std::size_t i = 0; i < count; ++i) Wl[i] = T((2.0 * rng_.uniform() - 1.0) * e);
        }
    }
    std::fill(grads_.data(), grads_.data() + n_params_, T(0));
    for (auto& s : state_)
        if (s.data()) std::fill(s.data(), s.data() + n_params_, T(0));
    opt_step_ = 0;
    arch_.init = init;
    has_forward_ = has_delta_ = false;
}

template <class T>
void Net<T>::copy_state(const NetBase& other) {
    const Arch& a = other.arch();
    if (a.dtype != arch_.dtype || a.sizes != arch_.sizes || a.activations != arch_.activations ||
        a.slopes != arch_.slopes || a.loss != arch_.loss)
        fail(DP_ERR_INVALID_ARGUMENT, "src: expected a net of the same architecture and dtype");
    const auto& src = static_cast<const Net&>(other);
    Buffer<T> fresh[3];
    for (int i = 0; i < 3; ++i)
        if (src.state_[i].data() && !state_[i].data()) fresh[i] = Buffer<T>(n_params_);  // may throw: nothing changed
    for (int i = 0; i < 3; ++i)
        if (fresh[i].data()) state_[i] = std::move(fresh[i]);
    const std::size_t bytes = n_params_ * sizeof(T);
    std::memcpy(params_.data(), src.params_.data(), bytes);
    for (int i = 0; i < 3; ++i) {
        if (!state_[i].data()) continue;
        if (src.state_[i].data()) std::memcpy(state_[i].data(), src.state_[i].data(), bytes);
        else std::fill(state_[i].data(), state_[i].data() + n_params_, T(0));
    }
    opt_kind_ = src.opt_kind_;
    opt_step_ = src.opt_step_;
    rng_.set_state(src.rng_.state());
}

template <class T>
void Net<T>::reserve(std::size_t max_batch) {
    if (ws_ && max_batch <= ws_->cap) return;
    check_batch("max_batch", max_batch);
    const std::size_t cap = ws_ ? std::max(max_batch, 2 * ws_->cap) : max_batch;
    double per_row = double(arch_.n_in() + arch_.n_out() + 1);
    for (std::size_t l = 1; l < arch_.sizes.size(); ++l) per_row += 3.0 * double(arch_.sizes[l]);
    const std::string what = "the workspace for batches of " + std::to_string(cap) + " samples";
    auto ws = naming_allocation(what.c_str(), per_row * double(cap) * sizeof(T), [&] {
        return std::make_unique<Workspace>(arch_, cap);  // may throw: nothing changed
    });
    // Keep the old workspace alive: pointers handed out earlier stay valid (and stale).
    if (ws_) retired_.push_back(std::move(ws_));
    ws_ = std::move(ws);
    has_forward_ = has_delta_ = false;
}

template <class T>
std::size_t Net<T>::max_width() const {
    std::size_t m = 0;
    for (std::size_t l = 1; l < arch_.sizes.size(); ++l) m = std::max(m, arch_.sizes[l]);
    return m;
}

template <class T>
double Net<T>::l2_penalty(double l2, double m) const {
    if (l2 == 0.0) return 0.0;
    double s = 0.0;
    for (std::size_t l = 0; l < arch_.layers(); ++l) {
        const T* w = W(l);
        const std::size_t count = arch_.sizes[l] * arch_.sizes[l + 1];
        for (std::size_t i = 0; i < count; ++i) s += double(w[i]) * double(w[i]);
    }
    return l2 / (2.0 * m) * s;
}

// Per-thread scratch: 0 for predict's layer ping-pong, 1 for loss's outputs, 2 for the partial sums
// of forward_pair. Grows on the calling thread, never inside a pool task.
template <class T>
T* Net<T>::scratch(int which, std::size_t n) {
    thread_local std::vector<T> bufs[3];
    constexpr std::size_t pad = 64 / sizeof(T);  // room to start on a cache line
    if (bufs[which].size() < n + pad) bufs[which].resize(n + pad);
    const auto p = reinterpret_cast<std::uintptr_t>(bufs[which].data());
    return reinterpret_cast<T*>((p + 63) / 64 * 64);
}

template <class T>
void Net<T>::workspace(std::size_t layer, const void** zp, const void** ap, const void** dp,
                       std::size_t* batch) const {
    if (layer >= arch_.layers())
        fail(DP_ERR_INVALID_ARGUMENT, cat("layer: index ", layer, " is out of range [0, ", arch_.layers(), ")"));
    if (!has_forward_) fail(DP_ERR_STATE, "no forward pass has been run yet");
    if (zp) *zp = z(layer);
    if (ap) *ap = a(layer);
    if (dp) *dp = has_delta_ ? delta(layer) : nullptr;
    if (batch) *batch = batch_;
}

// ---- inference ----

template <class T>
void Net<T>::forward(const void* x, std::size_t batch, void* out) {
    check_batch("X", batch);
    if (!x) fail(DP_ERR_INVALID_ARGUMENT, "X is NULL");
    check_finite("X", static_cast<const T*>(x), batch, arch_.n_in());
    reserve(batch);
    std::memcpy(ws_->x.data(), x, batch * arch_.n_in() * sizeof(T));
    forward_impl(ws_->x.data(), batch);
    if (out) std::memcpy(out, a(arch_.layers() - 1), batch * arch_.n_out() * sizeof(T));
}

template <class T>
void Net<T>::predict(const void* x, std::size_t batch, void* out) const {
    check_batch("X", batch);
    if (!x) fail(DP_ERR_INVALID_ARGUMENT, "X is NULL");
    if (!out) fail(DP_ERR_INVALID_ARGUMENT, "out is NULL");
    check_finite("X", static_cast<const T*>(x), batch, arch_.n_in());
    predict_impl(static_cast<const T*>(x), batch, static_cast<T*>(out), nullptr);
}

template <class T>
void Net<T>::predict_into(const void* x, std::size_t batch, void* (*out_for)(void*), void* user) const {
    check_batch("X", batch);
    if (!x) fail(DP_ERR_INVALID_ARGUMENT, "X is NULL");
    if (!out_for) fail(DP_ERR_INVALID_ARGUMENT, "out_for is NULL");
    check_finite("X", static_cast<const T*>(x), batch, arch_.n_in());
    predict_impl(static_cast<const T*>(x), batch, nullptr, nullptr, out_for, user);
}

// z(l) = in W(l)^T + b(l), a(l) = g(z(l)), for every layer, into the workspace.
template <class T>
void Net<T>::forward_impl(const T* x, std::size_t batch) {
    const T* in = x;
    for (std::size_t l = 0; l < arch_.layers(); ++l) {
        const std::size_t n_in = arch_.sizes[l], n_out = arch_.sizes[l + 1];
        if (batch == 1 && pair_parts(l) > 1) {
            T* a2 = nullptr;
            forward_pair(l, in, z(l), a(l), [&](T*& z2, T*& a2r) { z2 = z(l + 1), a2r = a(l + 1); }, &a2);
            in = a(++l);
            continue;
        }
        dense_forward(arch_.activations[l], T(arch_.slopes[l]), in, batch, n_in, n_out, W(l), b(l), z(l), a(l));
        in = a(l);
    }
    x_ = x;
    batch_ = batch;
    has_forward_ = true;
    has_delta_ = false;
}

// The same forward pass through thread-local ping-pong buffers; z_out (may be null) receives the
// output layer's pre-activations. out_for (if not null; out is then null): asked for out once the
// first layer's work has been handed out (predict_into).
template <class T>
void Net<T>::predict_impl(const T* x, std::size_t batch, T* out, T* z_out, void* (*out_for)(void*),
                          void* user) const {
    const std::size_t L = arch_.layers(), w = batch * max_width();
    T* ping = scratch(0, 2 * w);
    T* pong = ping + w;
    const bool pair0 = batch == 1 && pair_parts(0) > 1;
    if (out_for && !pair0) out = static_cast<T*>(out_for(user));
    const T* in = x;
    for (std::size_t l = 0; l < L; ++l) {
        const std::size_t n_in = arch_.sizes[l], n_out = arch_.sizes[l + 1];
        const bool last = l + 1 == L;
        T* zl = last && z_out ? z_out : (last ? out : ping);
        T* al = last ? out : ping;
        if (batch == 1 && pair_parts(l) > 1) {
            const bool last2 = l + 2 == L;
            // the output pointers of layer l + 1, once out is known
            auto outputs = [&](T*& z2, T*& a2) {
                if (l == 0 && out_for) out = static_cast<T*>(out_for(user));
                z2 = last2 && z_out ? z_out : (last2 ? out : pong);
                a2 = last2 ? out : pong;
            };
            T* a2 = nullptr;
            forward_pair(l, in, ping, ping, outputs, &a2);
            in = a2;
            ++l;
            continue;
        }
        dense_forward(arch_.activations[l], T(arch_.slopes[l]), in, batch, n_in, n_out, W(l), b(l), zl, al);
        in = al;
        std::swap(ping, pong);
    }
}

// forward_pair's task count for layers l and l + 1: fixed by the shape (never by the thread count),
// about one per kPairTaskFlops flops of layer l, in whole groups of kPairRows rows (tuning.h); 1: no
// pair (also for the last layer).
template <class T>
std::size_t Net<T>::pair_parts(std::size_t l) const {
    if (l + 1 >= arch_.layers() || arch_.activations[l] == DP_SOFTMAX) return 1;
    const std::size_t n_in = arch_.sizes[l], n_out = arch_.sizes[l + 1];
    namespace tuning = kernels::tuning;
    const std::size_t by_flops = std::size_t(2.0 * double(n_in) * double(n_out) / tuning::kPairTaskFlops);
    const std::size_t groups = (n_out + tuning::kPairRows - 1) / tuning::kPairRows;
    return std::max<std::size_t>(1, std::min({by_flops, groups, tuning::kPairMaxParts}));
}

// One sample through layers l and l + 1 in one parallel job (matrix-vector products, bound by reading
// the weights). Task t computes its rows [r0, r1) of a(l) = g(W(l) in + b(l)) into mid, then its share
// W(l+1)[:, r0:r1] a(l)[r0:r1] of z(l+1) into partial row t. After the join, z(l+1) = the partial rows
// summed in task order, then b(l+1) and g. Each thread reads only its rows of W(l) and its columns of
// W(l+1), and nobody waits between the two layers. forward (batch 1) and predict both take this
// path, so their outputs stay identical. a1 may equal z1. outputs(z2, a2) sets where z(l+1) and
// a(l+1) go; it runs while the workers start (and may throw: the job is finished first); a2 may
// equal z2, and they may alias in (they are written after the join). *a2_out receives a2.
template <class T>
template <class Outputs>
void Net<T>::forward_pair(std::size_t l, const T* in, T* z1, T* a1, Outputs&& outputs, T** a2_out) const {
    const std::size_t n1 = arch_.sizes[l + 1], n2 = arch_.sizes[l + 2];
    const std::size_t parts = pair_parts(l);
    constexpr std::size_t group = kernels::tuning::kPairRows;
    const std::size_t rows = ((n1 + parts - 1) / parts + group - 1) / group * group;
    const std::size_t tasks = (n1 + rows - 1) / rows;
    T* part = scratch(2, tasks * n2);
    // captured by value (48 bytes: the job carries them to the workers in its own cache line)
    const Net* self = this;
    const auto lr = std::uint32_t(l), rs = std::uint32_t(rows);
    const auto task = [self, in, z1, a1, part, lr, rs](std::size_t t) { self->pair_task(lr, rs, t, in, z1, a1, part); };
    static_assert(sizeof(task) <= kernels::kInlineBytes && std::is_trivially_copyable_v<decltype(task)>,
                  "forward_pair's task must travel with the job");
    const kernels::Pending job = kernels::parallel_begin(tasks, task);
    T *z2 = nullptr, *a2 = nullptr;
    try {
        outputs(z2, a2);
    } catch (...) {
        kernels::parallel_end(job);
        throw;
    }
    kernels::parallel_end(job);
    *a2_out = a2;
    std::memcpy(z2, part, n2 * sizeof(T));
    for (std::size_t t = 1; t < tasks; ++t)
        for (std::size_t j = 0; j < n2; ++j) z2[j] += part[t * n2 + j];
    kernels::bias_activation(kact(arch_.activations[l + 1]), T(arch_.slopes[l + 1]), b(l + 1), z2, a2, 1, n2);
}

// Task t of forward_pair: rows [t rows, t rows + rows) of layer l, and their share of layer l + 1.
template <class T>
void Net<T>::pair_task(std::size_t l, std::size_t rows, std::size_t t, const T* in, T* z1, T* a1, T* part) const {
    const std::size_t n0 = arch_.sizes[l], n1 = arch_.sizes[l + 1], n2 = arch_.sizes[l + 2];
    const std::size_t r0 = t * rows, r = std::min(rows, n1 - r0);
    dense_forward(arch_.activations[l], T(arch_.slopes[l]), in, 1, n0, r, W(l) + r0 * n0, b(l) + r0, z1 + r0, a1 + r0);
    kernels::gemm<T>(false, true, 1, n2, r, T(1), a1 + r0, r, W(l + 1) + r0, n1, T(0), part + t * n2, n2);
}

// ---- loss and backpropagation ----

template <class T>
double Net<T>::loss(const void* x, std::size_t batch, dp_target kind, const void* y, const void* sw,
                    double l2) const {
    check_batch("X", batch);
    if (!x) fail(DP_ERR_INVALID_ARGUMENT, "X is NULL");
    check_finite("X", static_cast<const T*>(x), batch, arch_.n_in());
    check_targets<T>("Y", kind, y, batch, arch_.n_out());
    const T* w = static_cast<const T*>(sw);
    const double m = w ? check_weights("sample_weight", w, batch) : double(batch);
    check_l2(l2);
    const std::size_t n = batch * arch_.n_out();
    T* out_a = scratch(1, 2 * n);
    T* out_z = out_a + n;
    predict_impl(static_cast<const T*>(x), batch, out_a, out_z);
    const double c = output_loss(arch_, out_z, out_a, batch, kind, y, w, static_cast<T*>(nullptr));
    return c / m + l2_penalty(l2, m);
}

template <class T>
double Net<T>::forward_loss(const T* x, std::size_t batch, dp_target kind, const void* y, const T* sw,
                            double* weight) {
    forward_impl(x, batch);
    const std::size_t L = arch_.layers();
    double m = double(batch);
    if (sw) {
        m = 0.0;
        for (std::size_t i = 0; i < batch; ++i) m += double(sw[i]);
    }
    *weight = m;
    return output_loss(arch_, z(L - 1), a(L - 1), batch, kind, y, sw, delta(L - 1));
}

template <class T>
double Net<T>::backward(const void* x, std::size_t batch, dp_target kind, const void* y, const void* sw, double l2,
                        bool accumulate) {
    check_batch("X", batch);
    if (!x) fail(DP_ERR_INVALID_ARGUMENT, "X is NULL");
    check_finite("X", static_cast<const T*>(x), batch, arch_.n_in());
    check_targets<T>("Y", kind, y, batch, arch_.n_out());
    const T* w = static_cast<const T*>(sw);
    if (w) check_weights("sample_weight", w, batch);
    check_l2(l2);
    reserve(batch);
    std::memcpy(ws_->x.data(), x, batch * arch_.n_in() * sizeof(T));
    double m = 0.0;
    const double c = forward_loss(ws_->x.data(), batch, kind, y, w, &m);
    const double penalty = l2_penalty(l2, m);
    GradPlan<T> plan;
    plan.inv = T(1.0 / m);
    plan.l2coef = T(l2 / m);
    plan.accumulate = accumulate;
    backpropagate(batch, plan);
    return c / m + penalty;
}

template <class T>
void Net<T>::backward_output_grad(const void* dc_da, std::size_t batch, bool accumulate) {
    if (!has_forward_) fail(DP_ERR_STATE, "backward from an output gradient needs a forward pass first");
    if (batch != batch_)
        fail(DP_ERR_INVALID_ARGUMENT, cat("grad: batch of ", batch, " rows does not match the last forward's ", batch_));
    if (!dc_da) fail(DP_ERR_INVALID_ARGUMENT, "grad is NULL");
    const std::size_t L = arch_.layers();
    check_finite("grad", static_cast<const T*>(dc_da), batch, arch_.n_out());
    T* d = delta(L - 1);
    std::memcpy(d, dc_da, batch * arch_.n_out() * sizeof(T));
    if (arch_.activations.back() == DP_SOFTMAX)
        kernels::softmax_backward(a(L - 1), d, batch, arch_.n_out());
    else
        kernels::mul_activation_grad(kact(arch_.activations.back()), T(arch_.slopes.back()), z(L - 1), a(L - 1), d,
                                     batch, arch_.n_out());
    GradPlan<T> plan;
    plan.inv = T(1.0 / double(batch));
    plan.accumulate = accumulate;
    backpropagate(batch, plan);
}

// The delta recursion, from delta(L-1) (set by the loss) down: delta(l-1) = delta(l) W(l) (.) g'(z(l-1)),
// always from W(l) before any update of it, then layer l's gradient by the plan's strategy. With
// plan.layer_done (plain only: nothing updates W(l)), layer l's gradient comes first and is announced.
template <class T>
void Net<T>::backpropagate(std::size_t batch, const GradPlan<T>& plan) {
    const bool announce = plan.layer_done != nullptr;
    for (std::size_t l = arch_.layers(); l-- > 0;) {
        const std::size_t n_in = arch_.sizes[l], n_out = arch_.sizes[l + 1];
        if (announce) {
            layer_gradient(l, batch, plan);
            plan.layer_done(plan.layer_ctx, l);
        }
        if (l > 0)
            dense_backward_delta(arch_.activations[l - 1], T(arch_.slopes[l - 1]), delta(l), batch, n_in, n_out, W(l),
                                 z(l - 1), a(l - 1), delta(l - 1));
        if (!announce) layer_gradient(l, batch, plan);
    }
    has_delta_ = true;
}

// Layer l's gradient is final here: dW(l) = inv delta(l)^T a(l-1) + l2coef W(l), db(l) = inv sum of
// delta(l), and what the strategy does with it.
template <class T>
void Net<T>::layer_gradient(std::size_t l, std::size_t batch, const GradPlan<T>& plan) {
    const std::size_t n_in = arch_.sizes[l], n_out = arch_.sizes[l + 1];
    const T* in = l == 0 ? x_ : a(l - 1);
    T* const G = plan.grad ? plan.grad : grads_.data();
    T* dW = G + w_off_[l];
    T* db = G + b_off_[l];
    T* Wl = params_.data() + w_off_[l];
    T* bl = params_.data() + b_off_[l];
    switch (plan.mode) {
        case GradMode::plain:
            kernels::gemm<T>(true, false, n_out, n_in, batch, plan.inv, delta(l), n_out, in, n_in,
                             plan.accumulate ? T(1) : T(0), dW, n_in);
            if (plan.l2coef != T(0)) kernels::axpy(n_out * n_in, plan.l2coef, W(l), dW);
            kernels::column_sums(delta(l), batch, n_out, plan.inv, plan.accumulate, db);
            return;
        case GradMode::fused: {
            struct Ctx {
                const Rule<T>* rule;
                std::size_t off, ld;
                T l2coef;
                T *dW, *W;
            } ctx{plan.rule, w_off_[l], n_in, plan.l2coef, dW, Wl};
            const kernels::Epilogue ep{[](void* p, std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1) {
                                           const auto* c = static_cast<const Ctx*>(p);
                                           const std::size_t o = i0 * c->ld + j0;
                                           update_block(*c->rule, c->off + o, i1 - i0, j1 - j0, c->ld, c->l2coef,
                                                        c->dW + o, c->W + o);
                                       },
                                       &ctx};
            kernels::gemm<T>(true, false, n_out, n_in, batch, plan.inv, delta(l), n_out, in, n_in, T(0), dW, n_in, &ep);
            kernels::column_sums(delta(l), batch, n_out, plan.inv, false, db);
            update_block(*plan.rule, b_off_[l], 1, n_out, n_out, T(0), db, bl);
            return;
        }
        case GradMode::online:  // batch 1, plain SGD: dW = delta x^T and W -= lr dW in one pass
            kernels::online_update(n_out, n_in, plan.rule->lr, delta(l), in, plan.keep_grad ? dW : nullptr, Wl,
                                   plan.keep_grad ? db : nullptr, bl);
            return;
    }
}

template <class T>
void Net<T>::store_deferred_grad() {
    if (!grad_deferred_) return;
    grad_deferred_ = false;
    T* const G = grads_.data();
    for (std::size_t l = 0; l < arch_.layers(); ++l)
        kernels::online_update(arch_.sizes[l + 1], arch_.sizes[l], T(0), delta(l), l == 0 ? x_ : a(l - 1),
                               G + w_off_[l], static_cast<T*>(nullptr), G + b_off_[l], static_cast<T*>(nullptr));
}

// ---- the optimizer ----

template <class T>
void Net<T>::prepare_state(dp_optimizer_kind kind) {
    const std::size_t need = state_buffers(kind, kind != DP_OPTIM_SGD);
    Buffer<T> fresh[3];
    naming_allocation("the optimizer state", double(need - 1) * double(n_params_) * sizeof(T), [&] {
        for (std::size_t i = 1; i < need; ++i)
            if (!state_[i].data()) fresh[i] = Buffer<T>(n_params_);  // may throw: nothing changed yet
    });
    for (std::size_t i = 1; i < need; ++i)
        if (fresh[i].data()) state_[i] = std::move(fresh[i]);
    if (kind != opt_kind_) {
        for (auto& s : state_)
            if (s.data()) std::fill(s.data(), s.data() + n_params_, T(0));
        opt_kind_ = kind;
        opt_step_ = 0;
    }
}

template <class T>
void Net<T>::reset_optimizer(dp_optimizer_kind kind) {
    if (kind < DP_OPTIM_SGD || kind > DP_OPTIM_ADAMW) fail(DP_ERR_INVALID_ARGUMENT, cat("kind: unknown optimizer ", int(kind)));
    prepare_state(kind);
    for (auto& s : state_)
        if (s.data()) std::fill(s.data(), s.data() + n_params_, T(0));
    opt_step_ = 0;
}

template <class T>
OptimizerView Net<T>::optimizer_state() {
    OptimizerView v{opt_kind_, opt_step_, {state_[0].data(), nullptr, nullptr}};
    if (opt_kind_ != DP_OPTIM_SGD) {
        v.buffers[1] = state_[1].data();
        v.buffers[2] = state_[2].data();
    }
    return v;
}

template <class T>
Rule<T> Net<T>::make_rule(const dp_optimizer& opt, double lr) const {
    auto& st = const_cast<Buffer<T>(&)[3]>(state_);  // the rule writes the state when applied
    return Rule<T>::make(opt, lr, opt_step_ + 1, st[0].data(), st[1].data(), st[2].data());
}

template <class T>
void Net<T>::apply_rule(const Rule<T>& rule) {
    if (rule.kind == DP_OPTIM_SGD) {
        kernels::sgd_step(n_params_, rule.lr, rule.momentum, rule.nesterov, rule.weight_decay, grads_.data(),
                          params_.data(), state_[0].data());
        return;
    }
    constexpr std::size_t kChunk = kernels::tuning::kParamChunk;  // fixed by the size, never the thread count
    const std::size_t chunks = (n_params_ + kChunk - 1) / kChunk;
    const T* g = grads_.data();
    T* w = params_.data();
    const std::size_t n = n_params_;
    kernels::parallel_for(chunks, [&](std::size_t c) {
        const std::size_t i0 = c * kChunk, m = std::min(kChunk, n - i0);
        adam_span(rule, i0, m, g + i0, w + i0);
    });
}

// torch.nn.utils.clip_grad_norm_: the global L2 norm over every parameter's gradient; if it exceeds
// max_norm, every gradient is scaled by max_norm / (norm + 1e-6). Sums in fixed chunks, in order.
template <class T>
void Net<T>::clip_gradient(double max_norm) {
    if (max_norm <= 0.0) return;
    constexpr std::size_t kChunk = kernels::tuning::kParamChunk;
    const std::size_t chunks = (n_params_ + kChunk - 1) / kChunk;
    std::vector<double> part(chunks);
    const T* g = grads_.data();
    const std::size_t n = n_params_;
    kernels::parallel_for(chunks, [&](std::size_t c) {
        double s = 0.0;
        for (std::size_t i = c * kChunk, e = std::min(n, (c + 1) * kChunk); i < e; ++i) s += double(g[i]) * double(g[i]);
        part[c] = s;
    });
    double total = 0.0;
    for (double p : part) total += p;
    const double coef = max_norm / (std::sqrt(total) + 1e-6);
    if (coef < 1.0) {
        const T k = T(coef);
        T* gm = grads_.data();
        kernels::parallel_for(chunks, [&](std::size_t c) {
            for (std::size_t i = c * kChunk, e = std::min(n, (c + 1) * kChunk); i < e; ++i) gm[i] *= k;
        });
    }
}

template <class T>
void Net<T>::allocate(Snapshot<T>& s) const {
    naming_allocation("a copy of the parameters and optimizer state (the divergence guard, restore_best)",
                      4.0 * double(n_params_) * sizeof(T), [&] { allocate_copy(s); });
}

template <class T>
void Net<T>::allocate_copy(Snapshot<T>& s) const {
    if (!s.params.data()) s.params = Buffer<T>(n_params_);
    if (!s.s0.data()) s.s0 = Buffer<T>(n_params_);
    if (opt_kind_ != DP_OPTIM_SGD) {
        if (!s.s1.data()) s.s1 = Buffer<T>(n_params_);
        if (state_[2].data() && !s.s2.data()) s.s2 = Buffer<T>(n_params_);
    }
}

template <class T>
void Net<T>::save(Snapshot<T>& s) const {
    const std::size_t bytes = n_params_ * sizeof(T);
    std::memcpy(s.params.data(), params_.data(), bytes);
    std::memcpy(s.s0.data(), state_[0].data(), bytes);
    if (opt_kind_ != DP_OPTIM_SGD) {
        std::memcpy(s.s1.data(), state_[1].data(), bytes);
        if (state_[2].data()) std::memcpy(s.s2.data(), state_[2].data(), bytes);
    }
    s.kind = opt_kind_;
    s.step = opt_step_;
    s.rng = rng_.state();
}

template <class T>
void Net<T>::restore(const Snapshot<T>& s) {
    const std::size_t bytes = n_params_ * sizeof(T);
    std::memcpy(params_.data(), s.params.data(), bytes);
    std::memcpy(state_[0].data(), s.s0.data(), bytes);
    if (s.kind != DP_OPTIM_SGD) {
        std::memcpy(state_[1].data(), s.s1.data(), bytes);
        if (state_[2].data() && s.s2.data()) std::memcpy(state_[2].data(), s.s2.data(), bytes);
    }
    opt_kind_ = s.kind;
    opt_step_ = s.step;
    rng_.set_state(s.rng);
}

template <class T>
void Net<T>::diverged(dp_divergence at, const char* what, double lr) const {
    std::ostringstream m;
    m << "training diverged at epoch " << at.epoch + 1 << ", batch " << at.batch + 1 << ": " << what;
    if (at.phase != DP_PHASE_LOSS) m << " in layer " << at.layer << " (first at unit " << at.unit << ")";
    m << " is not finite (phase " << phase_name(at.phase) << "). Parameters and optimizer state are those "
      << "before this step. Try a lower learning rate (lr was " << lr << ") or clip_norm=";
    m << (at.phase == DP_PHASE_FORWARD ? "... (the inputs or weights are too large; scale the inputs)" : "1.0");
    throw Diverged(at, m.str());
}

template <class T>
void Net<T>::check_forward(std::size_t batch, const dp_divergence& at) const {
    for (std::size_t l = 0; l < arch_.layers(); ++l) {
        const std::size_t n = arch_.sizes[l + 1];
        for (const T* p : {z(l), a(l)}) {
            const std::size_t i = first_non_finite(p, batch * n);
            if (i < batch * n) {
                dp_divergence d = at;
                d.phase = DP_PHASE_FORWARD;
                d.layer = l;
                d.unit = i % n;
                diverged(d, "the activation", 0.0);
            }
        }
    }
}

// The first layer (from the output down, the order backpropagation fills them) whose gradient is not
// finite.
template <class T>
void Net<T>::check_gradient(const dp_divergence& at) const {
    for (std::size_t l = arch_.layers(); l-- > 0;) {
        const std::size_t n_in = arch_.sizes[l], n_out = arch_.sizes[l + 1];
        const std::size_t i = first_non_finite(grads_.data() + w_off_[l], n_out * n_in + n_out);
        if (i < n_out * n_in + n_out) {
            dp_divergence d = at;
            d.phase = DP_PHASE_BACKWARD;
            d.layer = l;
            d.unit = i < n_out * n_in ? i / n_in : i - n_out * n_in;
            throw d;
        }
    }
}

template <class T>
void Net<T>::check_updated(const dp_divergence& at) const {
    for (std::size_t l = 0; l < arch_.layers(); ++l) {
        const std::size_t n_in = arch_.sizes[l], n_out = arch_.sizes[l + 1], cnt = n_out * n_in + n_out;
        for (const T* base : {params_.data(), state_[0].data(), state_[1].data(), state_[2].data()}) {
            if (!base || (base != params_.data() && base != state_[0].data() && opt_kind_ == DP_OPTIM_SGD)) continue;
            const std::size_t i = first_non_finite(base + w_off_[l], cnt);
            if (i < cnt) {
                dp_divergence d = at;
                d.phase = DP_PHASE_UPDATE;
                d.layer = l;
                d.unit = i < n_out * n_in ? i / n_in : i - n_out * n_in;
                throw d;
            }
        }
    }
}

// The update from grads_, guarded: the gradient must be finite, and if the updated parameters or
// state are not, they are put back and Diverged is thrown.
template <class T>
void Net<T>::guarded_step(const dp_optimizer& opt, double lr, const dp_divergence& at) {
    try {
        check_gradient(at);
    } catch (const dp_divergence& d) {
        diverged(d, "the gradient", lr);
    }
    allocate(step_guard_);  // once per net (kept)
    save(step_guard_);
    clip_gradient(opt.clip_norm);
    const Rule<T> rule = make_rule(opt, lr);
    apply_rule(rule);
    ++opt_step_;
    try {
        check_updated(at);
    } catch (const dp_divergence& d) {
        restore(step_guard_);
        diverged(d, "the updated parameters or optimizer state", lr);
    }
}

template <class T>
void Net<T>::step(const dp_optimizer& opt) {
    check_optimizer(opt);
    // nothing changes before the guard has its copy: a new kind's state is set up on that copy's terms
    const dp_optimizer_kind old_kind = opt_kind_;
    const std::uint64_t old_step = opt_step_;
    Snapshot<T> before_kind;
    if (opt.kind != opt_kind_) {
        allocate(before_kind);
        save(before_kind);
    }
    prepare_state(opt.kind);
    try {
        guarded_step(opt, opt.lr, dp_divergence{0, 0, DP_PHASE_UPDATE, 0, 0});
    } catch (const Diverged&) {
        if (opt.kind != old_kind) {
            restore(before_kind);
            opt_kind_ = old_kind;
            opt_step_ = old_step;
        }
        throw;
    }
}

template <class T>
double Net<T>::train_batch(const void* x, std::size_t batch, dp_target kind, const void* y, const void* sw,
                           double l2, const dp_optimizer& opt) {
    check_optimizer(opt);
    const double c = backward(x, batch, kind, y, sw, l2, false);  // validates; changes no parameter
    const dp_divergence at{0, 0, DP_PHASE_LOSS, 0, 0};
    if (!std::isfinite(c)) {
        check_forward(batch, at);
        diverged(at, "the loss", opt.lr);
    }
    step(opt);
    return c;
}

template class Net<float>;
template class Net<double>;

std::unique_ptr<NetBase> make_empty_net(const Arch& arch) {
    arch.validate();
    if (arch.dtype == DP_FLOAT64) return std::make_unique<Net<double>>(arch);
    return std::make_unique<Net<float>>(arch);
}

std::unique_ptr<NetBase> make_net(const Arch& arch, std::uint64_t seed) {
    auto net = make_empty_net(arch);
    net->initialize(arch.init, seed);
    return net;
}

}  // namespace deltaprop::detail
