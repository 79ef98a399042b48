// SPDX-License-Identifier: MIT
#pragma once
// Net<T>: the storage of one network (parameters, gradients, optimizer state, workspace) and the
// declarations of its stages; network.cpp defines storage, inference and backpropagation, train.cpp
// the training loop. Private to the core.
#include <array>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <vector>

#include "kernels/memory.h"
#include "src/network.hpp"
#include "src/optim.hpp"

namespace deltaprop::detail {

// Aligned storage: one allocation, 64-byte aligned, zero-filled.
template <class T>
class Buffer {
public:
    Buffer() = default;
    explicit Buffer(std::size_t n) : n_(n) {
        if (n == 0) return;
        if (n > std::numeric_limits<std::size_t>::max() / sizeof(T) - 64) throw std::bad_alloc();
        p_ = static_cast<T*>(kernels::alloc_bytes(n * sizeof(T)));
        if (!p_) throw std::bad_alloc();
        std::memset(p_, 0, (n * sizeof(T) + 63) / 64 * 64);  // alloc_bytes rounds up to 64 at least
    }
    Buffer(const Buffer& o) : Buffer(o.n_) {
        if (n_) std::memcpy(p_, o.p_, n_ * sizeof(T));
    }
    Buffer(Buffer&& o) noexcept : p_(o.p_), n_(o.n_) {
        o.p_ = nullptr;
        o.n_ = 0;
    }
    Buffer& operator=(Buffer&& o) noexcept {
        std::swap(p_, o.p_);
        std::swap(n_, o.n_);
        return *this;
    }
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { kernels::free_bytes(p_); }
    T* data() { return p_; }
    const T* data() const { return p_; }
    std::size_t size() const { return n_; }

private:
    T* p_ = nullptr;
    std::size_t n_ = 0;
};

// How a layer's gradient is formed once its delta is known, and what follows it (the seam of the one
// delta recursion): plain (the gradient stays for the caller), fused (the optimizer's rule applied to
// each block of dW in the GEMM epilogue while it is in cache, then to db), online (batch 1, plain
// SGD: the outer product fused with the update).
enum class GradMode { plain, fused, online };
template <class T>
struct GradPlan {
    GradMode mode = GradMode::plain;
    T inv = T(1);      // 1 / batch, or 1 / (sum of the sample weights)
    T l2coef = T(0);   // l2 * inv
    bool accumulate = false;
    const Rule<T>* rule = nullptr;  // fused, online
    bool keep_grad = true;          // online: false leaves dW and db unwritten (see store_deferred_grad)
    T* grad = nullptr;              // plain: where the gradient goes (parameter layout); null: the net's
    // plain: called with l once layer l's gradient is final, before delta(l-1) is computed (the overlap
    // of a data-parallel reduction with the rest of the backward pass, train.cpp); null: none
    void (*layer_done)(void* ctx, std::size_t l) = nullptr;
    void* layer_ctx = nullptr;
};

// A copy of everything a training step changes, to put back (the divergence guard, restore_best).
template <class T>
struct Snapshot {
    Buffer<T> params, s0, s1, s2;
    dp_optimizer_kind kind = DP_OPTIM_SGD;
    std::uint64_t step = 0;
    std::array<std::uint64_t, 4> rng{};
};

template <class T>
class Net final : public NetBase {
public:
    explicit Net(const Arch& arch);
    Net(const Net& o);

    void* params() override { return params_.data(); }
    void* grads() override { return grads_.data(); }
    void* velocity() override { return state_[0].data(); }
    std::unique_ptr<NetBase> clone() const override { return std::make_unique<Net>(*this); }

    void initialize(dp_init init, std::uint64_t seed) override;
    void reserve(std::size_t max_batch) override;
    void forward(const void* x, std::size_t batch, void* out) override;
    void predict(const void* x, std::size_t batch, void* out) const override;
    void predict_into(const void* x, std::size_t batch, void* (*out_for)(void*), void* user) const override;
    double loss(const void* x, std::size_t batch, dp_target kind, const void* y, const void* sw,
                double l2) const override;
    double backward(const void* x, std::size_t batch, dp_target kind, const void* y, const void* sw, double l2,
                    bool accumulate) override;
    void backward_output_grad(const void* dc_da, std::size_t batch, bool accumulate) override;
    void step(const dp_optimizer& opt) override;
    double train_batch(const void* x, std::size_t batch, dp_target kind, const void* y, const void* sw,
                       double l2, const dp_optimizer& opt) override;
    OptimizerView optimizer_state() override;
    void reset_optimizer(dp_optimizer_kind kind) override;
    void set_optimizer_step(std::uint64_t step) override { opt_step_ = step; }
    void copy_state(const NetBase& src) override;
    dp_status fit(const void* x, std::size_t n, dp_target kind, const void* y, const dp_fit_options& o,
                  dp_epoch_record* history, dp_fit_result* result, double* partial_loss) override;
    void workspace(std::size_t layer, const void** z, const void** a, const void** delta,
                   std::size_t* batch) const override;

private:
    struct Workspace {
        std::size_t cap;
        std::vector<std::size_t> off;  // [L]: offset of layer l in z, a, delta
        Buffer<T> z, a, delta, x, y, w;
        Buffer<std::int64_t> classes;
        Workspace(const Arch& arch, std::size_t c);
    };
    struct Fit;   // the state of one fit call (train.cpp)
    struct Span;  // the rows of one step (train.cpp)

    T* z(std::size_t l) const { return const_cast<T*>(ws_->z.data()) + ws_->off[l]; }
    T* a(std::size_t l) const { return const_cast<T*>(ws_->a.data()) + ws_->off[l]; }
    T* delta(std::size_t l) const { return const_cast<T*>(ws_->delta.data()) + ws_->off[l]; }
    const T* W(std::size_t l) const { return params_.data() + w_off_[l]; }
    const T* b(std::size_t l) const { return params_.data() + b_off_[l]; }
    std::size_t max_width() const;
    double l2_penalty(double l2, double m) const;
    static T* scratch(int which, std::size_t n);

    // inference (network.cpp)
    void forward_impl(const T* x, std::size_t batch);
    void predict_impl(const T* x, std::size_t batch, T* out, T* z_out, void* (*out_for)(void*) = nullptr,
                      void* user = nullptr) const;
    std::size_t pair_parts(std::size_t l) const;
    template <class Outputs>
    void forward_pair(std::size_t l, const T* in, T* z1, T* a1, Outputs&& outputs, T** a2_out) const;
    void pair_task(std::size_t l, std::size_t rows, std::size_t t, const T* in, T* z1, T* a1, T* part) const;

    // backpropagation (network.cpp)
    // Forward, loss and the delta recursion over x (kept valid by the caller) and targets y; returns
    // the weighted loss sum and sets *weight to the batch's weight (batch, or the sum of sw).
    double forward_loss(const T* x, std::size_t batch, dp_target kind, const void* y, const T* sw, double* weight);
    void backpropagate(std::size_t batch, const GradPlan<T>& plan);
    void layer_gradient(std::size_t l, std::size_t batch, const GradPlan<T>& plan);

    // optimizer (network.cpp)
    void prepare_state(dp_optimizer_kind kind);  // allocates and, for a new kind, clears the state
    Rule<T> make_rule(const dp_optimizer& opt, double lr) const;
    void apply_rule(const Rule<T>& rule);        // over the whole buffer, from grads_
    void clip_gradient(double max_norm);
    void save(Snapshot<T>& s) const;             // s must be allocated for the state in use
    void restore(const Snapshot<T>& s);
    void allocate(Snapshot<T>& s) const;
    void allocate_copy(Snapshot<T>& s) const;
    // the divergence guard's diagnosis: throws Diverged if a layer's values are not finite
    void check_forward(std::size_t batch, const dp_divergence& at) const;
    void check_gradient(const dp_divergence& at) const;
    void check_updated(const dp_divergence& at) const;
    [[noreturn]] void diverged(dp_divergence at, const char* what, double lr) const;
    void guarded_step(const dp_optimizer& opt, double lr, const dp_divergence& at);

    // training (train.cpp)
    // Weighted mean loss (with the l2 penalty) and accuracy (NaN for mse) of x, without the workspace.
    void evaluate(const T* x, std::size_t n, dp_target kind, const void* y, const T* sw, double l2,
                  double* loss, double* accuracy) const;
    // The sums behind evaluate: weighted loss, weight, weighted correct predictions, predictions.
    void evaluate_sums(const T* x, std::size_t n, dp_target kind, const void* y, const T* sw, double sums[4]) const;
    // One data-parallel step (options.reduce): this process's gradient sums of rows x [rows] of the
    // span, the reduction, then the update from the reduced gradient. *batch_loss and *weight receive
    // the global batch's cost and weight (0: no step). DP_ERR_INTERRUPTED if reduce asked to stop.
    dp_status reduce_step(Fit& f, const Span& sp, const T* x, const void* y, const T* sw, double lr, bool careful,
                          const dp_divergence& at, double* batch_loss, double* weight);
    dp_status run_epoch(Fit& f, std::size_t epoch, std::size_t stop_before, bool careful, double* mean_loss,
                        std::size_t* failed_batch);
    // The gradient of the last online step taken with keep_grad false, written from the workspace (its
    // delta and inputs are still there): the next step would have overwritten it, so a run of online
    // steps stores only its last one's. No-op if there is none.
    void store_deferred_grad();

    Buffer<T> params_, grads_;
    Buffer<T> state_[3];  // optimizer state, parameter layout (state_[0] always allocated)
    dp_optimizer_kind opt_kind_ = DP_OPTIM_SGD;
    std::uint64_t opt_step_ = 0;
    Snapshot<T> step_guard_;  // step()'s pre-step copy, allocated on first use
    std::unique_ptr<Workspace> ws_;
    std::vector<std::unique_ptr<Workspace>> retired_;
    std::vector<std::size_t> perm_;
    const T* x_ = nullptr;
    std::size_t batch_ = 0;
    bool has_forward_ = false, has_delta_ = false;
    bool grad_deferred_ = false;  // the last step's gradient is in the workspace, not in grads_
};

}  // namespace deltaprop::detail
