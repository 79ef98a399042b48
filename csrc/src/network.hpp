// SPDX-License-Identifier: MIT
#pragma once
// The network core behind the C ABI: architecture, one parameter buffer, a workspace reserved for a
// maximum batch, forward, loss, backward (the delta recursion), SGD and the training loop.
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

    // Draw fresh parameters (zero biases), clear gradients and momentum, seed the generator.
    virtual void initialize(dp_init init, std::uint64_t seed) = 0;
    virtual void reserve(std::size_t max_batch) = 0;

    virtual void forward(const void* x, std::size_t batch, void* out) = 0;
    virtual void predict(const void* x, std::size_t batch, void* out) const = 0;
    // predict, asking for the output buffer only once the work is under way: out_for(user) is called
    // once, on this thread, after x is validated and the first parallel job has been handed to the
    // workers, and returns where the outputs go. If it throws, the job is finished, then the exception
    // propagates. For callers whose output takes a while to allocate (a numpy array).
    virtual void predict_into(const void* x, std::size_t batch, void* (*out_for)(void*), void* user) const = 0;
    virtual double loss(const void* x, std::size_t batch, dp_target kind, const void* y,
                        double l2) const = 0;
    virtual double backward(const void* x, std::size_t batch, dp_target kind, const void* y,
                            double l2, bool accumulate) = 0;
    virtual void backward_output_grad(const void* dc_da, std::size_t batch, bool accumulate) = 0;
    virtual void step(const dp_sgd& sgd) = 0;
    // Returns DP_OK or DP_ERR_INTERRUPTED (weights of the completed steps kept). Validates once, then
    // trains `epochs` epochs: losses[e] (may be null) is epoch e's mean loss (on interruption, the
    // partial epoch's mean), epochs_done (may be null) the number of complete epochs.
    virtual dp_status train(const void* x, std::size_t n, dp_target kind, const void* y,
                            std::size_t batch_size, const dp_sgd& sgd, bool shuffle, std::size_t epochs,
                            dp_cancel_fn cancel, void* user, double* losses,
                            std::size_t* epochs_done) = 0;
    // train with epochs = 1.
    virtual dp_status train_epoch(const void* x, std::size_t n, dp_target kind, const void* y,
                                  std::size_t batch_size, const dp_sgd& sgd, bool shuffle,
                                  dp_cancel_fn cancel, void* user, double* mean_loss) = 0;
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

// Validation shared by the entry points (throw Error(DP_ERR_INVALID_ARGUMENT)).
void check_sgd(const dp_sgd& sgd, bool for_step);
void check_l2(double l2);

}  // namespace deltaprop::detail
