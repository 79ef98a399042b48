// SPDX-License-Identifier: MIT
#pragma once
// The network core behind the C ABI, in stages (each its own file):
//   rules.cpp    every rule once: architecture, hyper-parameter ranges, their messages
//   checks.hpp   validation of data arrays (finite inputs, targets, sample weights)
//   layer.hpp    dense forward and the delta product, with their GEMM epilogues
//   loss.hpp     the loss and dC0/dz(L) together, per loss, with sample weights; accuracy
//   optim.hpp    one rule per optimizer over a span, its state; learning-rate schedules
//   net.hpp      Net<T>: storage (parameters, gradients, optimizer state, workspace)
//   network.cpp  storage, forward, inference, the one delta recursion and its gradient strategies
//   train.cpp    the training loop: epochs, batches, validation, early stopping, progress, the guard
// This header is the interface the C ABI uses.
#include <array>
#include <cstdio>
#include <new>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "deltaprop/deltaprop.h"
#include "src/rng.hpp"

namespace deltaprop::detail {

// An error with the status the C ABI returns for it.
struct Error : std::runtime_error {
    dp_status status;
    Error(dp_status s, const std::string& message) : std::runtime_error(message), status(s) {}
};
[[noreturn]] void fail(dp_status status, const std::string& message);

// Out of memory, saying what was being allocated and how many bytes (a std::bad_alloc).
struct OutOfMemory : std::bad_alloc {
    std::string message;
    explicit OutOfMemory(std::string m) : message(std::move(m)) {}
    const char* what() const noexcept override { return message.c_str(); }
};
// Runs f; a std::bad_alloc from it becomes OutOfMemory naming `what` and `bytes` (the total asked for).
template <class F>
auto naming_allocation(const char* what, double bytes, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const OutOfMemory&) {
        throw;
    } catch (const std::bad_alloc&) {
        char buf[256];
        std::snprintf(buf, sizeof buf, "out of memory allocating %s (%.0f bytes)", what, bytes);
        throw OutOfMemory(buf);
    }
}

// Training produced a non-finite value; the net is as before the failing step.
struct Diverged : Error {
    dp_divergence where;
    Diverged(const dp_divergence& w, const std::string& message) : Error(DP_ERR_DIVERGED, message), where(w) {}
};

struct Arch {
    dp_dtype dtype = DP_FLOAT32;
    std::vector<std::size_t> sizes;         // [L + 1]
    std::vector<dp_activation> activations; // [L]
    std::vector<double> slopes;             // [L]
    dp_loss loss = DP_LOSS_MSE;
    dp_init init = DP_INIT_GLOROT_UNIFORM;

    std::size_t layers() const { return sizes.size() - 1; }
    std::size_t n_in() const { return sizes.front(); }
    std::size_t n_out() const { return sizes.back(); }
    // Throws Error(DP_ERR_INVALID_ARGUMENT) naming what is wrong.
    void validate() const;
};

const char* activation_name(dp_activation a);
const char* loss_name(dp_loss l);
const char* optimizer_name(dp_optimizer_kind k);
const char* phase_name(dp_phase p);

// ---- the rules (rules.cpp): each throws Error(DP_ERR_INVALID_ARGUMENT) naming the argument ----
void check_l2(double l2);
void check_sgd(const dp_sgd& sgd, bool for_step);
void check_optimizer(const dp_optimizer& opt);
void check_schedule(const dp_schedule& s, double lr0);
// The scalar options of fit (not the data), the optimizer and the schedule included.
void check_fit_options(const dp_fit_options& o, dp_loss loss);
void check_batch(const char* what, std::size_t batch);
// The optimizer that dp_sgd describes (its l2 belongs to the loss).
dp_optimizer optimizer_from_sgd(const dp_sgd& sgd);
// Defaults of the C ABI.
dp_optimizer default_optimizer(dp_optimizer_kind kind);
dp_schedule default_schedule(dp_schedule_kind kind);
dp_fit_options default_fit_options();

// The optimizer state: its kind, the step count and up to three buffers in the parameter layout.
struct OptimizerView {
    dp_optimizer_kind kind;
    std::uint64_t step;
    void* buffers[3];
};

class NetBase {
public:
    virtual ~NetBase() = default;

    const Arch& arch() const { return arch_; }
    std::size_t num_params() const { return n_params_; }
    std::size_t w_offset(std::size_t layer) const { return w_off_[layer]; }
    std::size_t b_offset(std::size_t layer) const { return b_off_[layer]; }
    Rng& rng() { return rng_; }
    const Rng& rng() const { return rng_; }

    virtual void* params() = 0;
    virtual void* grads() = 0;
    virtual void* velocity() = 0;
    virtual std::unique_ptr<NetBase> clone() const = 0;

    // Draw fresh parameters (zero biases), clear gradients and the optimizer state, seed the generator.
    virtual void initialize(dp_init init, std::uint64_t seed) = 0;
    virtual void reserve(std::size_t max_batch) = 0;

    virtual void forward(const void* x, std::size_t batch, void* out) = 0;
    virtual void predict(const void* x, std::size_t batch, void* out) const = 0;
    // predict, asking for the output buffer only once the work is under way: out_for(user) is called
    // once, on this thread, after x is validated and the first parallel job has been handed to the
    // workers, and returns where the outputs go. If it throws, the job is finished, then the exception
    // propagates. For callers whose output takes a while to allocate (a numpy array).
    virtual void predict_into(const void* x, std::size_t batch, void* (*out_for)(void*), void* user) const = 0;
    // sw: per-sample weights [batch] in the net's dtype, or null.
    virtual double loss(const void* x, std::size_t batch, dp_target kind, const void* y, const void* sw,
                        double l2) const = 0;
    virtual double backward(const void* x, std::size_t batch, dp_target kind, const void* y, const void* sw,
                            double l2, bool accumulate) = 0;
    virtual void backward_output_grad(const void* dc_da, std::size_t batch, bool accumulate) = 0;
    // One update from the gradient buffer (guarded: throws Diverged with nothing changed).
    virtual void step(const dp_optimizer& opt) = 0;
    // backward + step, guarded: on Diverged the parameters and optimizer state are as before.
    virtual double train_batch(const void* x, std::size_t batch, dp_target kind, const void* y,
                               const void* sw, double l2, const dp_optimizer& opt) = 0;
    virtual OptimizerView optimizer_state() = 0;
    // Clears the state and sets its kind (allocates the buffers the kind needs).
    virtual void reset_optimizer(dp_optimizer_kind kind) = 0;
    virtual void set_optimizer_step(std::uint64_t step) = 0;
    // Parameters, optimizer state and generator from src (same architecture and dtype, else Error).
    virtual void copy_state(const NetBase& src) = 0;
    // The training loop (train.cpp). Returns DP_OK or DP_ERR_INTERRUPTED; throws Diverged or a
    // validation error. history [o.epochs] may be null. partial_loss (may be null): after an
    // interruption, the interrupted epoch's mean loss so far.
    virtual dp_status fit(const void* x, std::size_t n, dp_target kind, const void* y,
                          const dp_fit_options& o, dp_epoch_record* history, dp_fit_result* result,
                          double* partial_loss) = 0;
    virtual void workspace(std::size_t layer, const void** z, const void** a, const void** delta,
                           std::size_t* batch) const = 0;

protected:
    explicit NetBase(const Arch& arch);
    Arch arch_;
    std::size_t n_params_ = 0;
    std::vector<std::size_t> w_off_, b_off_;
    Rng rng_;
};

// Validates the architecture, allocates and initialises the parameters from seed.
std::unique_ptr<NetBase> make_net(const Arch& arch, std::uint64_t seed);
// Allocates a network of this architecture without drawing parameters (for loading).
std::unique_ptr<NetBase> make_empty_net(const Arch& arch);

}  // namespace deltaprop::detail
