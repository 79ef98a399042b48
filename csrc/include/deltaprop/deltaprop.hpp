// SPDX-License-Identifier: MIT
// deltaprop C++ API: an RAII handle over the C ABI (deltaprop.h) that throws on failure.
//   std::invalid_argument   bad argument (DP_ERR_INVALID_ARGUMENT, DP_ERR_UNSUPPORTED)
//   deltaprop::format_error  bad model file (derives from std::invalid_argument)
//   deltaprop::io_error      file system failure (std::runtime_error)
//   deltaprop::state_error   call out of order (std::logic_error)
//   deltaprop::interrupted   the cancel callback stopped training (std::runtime_error)
//   deltaprop::diverged      training produced NaN or infinity (std::runtime_error; where() says
//                            where); parameters and optimizer state are as before the failing step
//   deltaprop::out_of_memory out of memory (a std::bad_alloc whose what() says what and how many bytes)
// Buffers are row-major [batch, features] in the net's dtype; the typed overloads check T against it.
#ifndef DELTAPROP_HPP
#define DELTAPROP_HPP

#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "deltaprop/deltaprop.h"

namespace deltaprop {

struct format_error : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};
struct io_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct state_error : std::logic_error {
    using std::logic_error::logic_error;
};
struct out_of_memory : std::bad_alloc {
    explicit out_of_memory(std::string message) : message_(std::move(message)) {}
    const char* what() const noexcept override { return message_.c_str(); }

private:
    std::string message_;
};
struct interrupted : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct diverged : std::runtime_error {
    diverged(const std::string& message, const dp_divergence& where)
        : std::runtime_error(message), where_(where) {}
    const dp_divergence& where() const noexcept { return where_; }

private:
    dp_divergence where_;
};

// Throws the exception that matches a failed status, with dp_last_error() as its message.
inline void check(dp_status s) {
    if (s == DP_OK) return;
    const std::string msg = dp_last_error();
    switch (s) {
        case DP_ERR_INVALID_ARGUMENT:
        case DP_ERR_UNSUPPORTED: throw std::invalid_argument(msg);
        case DP_ERR_FORMAT: throw format_error(msg);
        case DP_ERR_IO: throw io_error(msg);
        case DP_ERR_STATE: throw state_error(msg);
        case DP_ERR_INTERRUPTED: throw interrupted(msg);
        case DP_ERR_DIVERGED: {
            dp_divergence d{};
            dp_last_divergence(&d);
            throw diverged(msg, d);
        }
        case DP_ERR_OUT_OF_MEMORY: throw out_of_memory(msg);
        default: throw std::runtime_error(msg);
    }
}

inline std::string version() { return dp_version(); }
inline void set_num_threads(int n) { check(dp_set_num_threads(n)); }
inline int num_threads() { return dp_get_num_threads(); }
inline void set_kernel_level(dp_kernel_level level) { check(dp_set_kernel_level(level)); }
inline dp_kernel_level kernel_level() { return dp_get_kernel_level(); }
inline dp_kernel_level kernel_family_level(dp_kernel_family f) { return dp_get_kernel_family_level(f); }

template <class T>
constexpr dp_dtype dtype_of() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double");
    return std::is_same_v<T, float> ? DP_FLOAT32 : DP_FLOAT64;
}

class Network {
public:
    // sizes [L + 1], activations [L], slopes [L] or empty (0.01 each).
    Network(const std::vector<std::size_t>& sizes, const std::vector<dp_activation>& activations,
            dp_loss loss, dp_dtype dtype = DP_FLOAT32, dp_init init = DP_INIT_GLOROT_UNIFORM,
            std::uint64_t seed = 0, const std::vector<double>& slopes = {}) {
        if (activations.size() + 1 != sizes.size())
            throw std::invalid_argument("activations: expected " + std::to_string(sizes.size() - 1) +
                                        " (one per layer), got " + std::to_string(activations.size()));
        if (!slopes.empty() && slopes.size() != activations.size())
            throw std::invalid_argument("slopes: expected one per layer");
        check(dp_net_create(&net_, sizes.size(), sizes.data(), activations.data(),
                            slopes.empty() ? nullptr : slopes.data(), loss, dtype, init, seed));
    }
    static Network load(const std::string& path) {
        dp_net* n = nullptr;
        check(dp_net_load(&n, path.c_str()));
        return Network(n);
    }
    static Network load_buffer(const void* data, std::size_t size) {
        dp_net* n = nullptr;
        check(dp_net_load_buffer(&n, data, size));
        return Network(n);
    }
    // Takes ownership of a handle from the C ABI.
    explicit Network(dp_net* net) noexcept : net_(net) {}
    Network(const Network& o) { check(dp_net_clone(o.net_, &net_)); }
    Network(Network&& o) noexcept : net_(std::exchange(o.net_, nullptr)) {}
    Network& operator=(Network o) noexcept {
        std::swap(net_, o.net_);
        return *this;
    }
    ~Network() { dp_net_destroy(net_); }

    dp_net* handle() const noexcept { return net_; }
    dp_net* release() noexcept { return std::exchange(net_, nullptr); }

    dp_dtype dtype() const { return dp_net_dtype(net_); }
    dp_loss loss_kind() const { return dp_net_loss_kind(net_); }
    dp_init init_kind() const { return dp_net_init_kind(net_); }
    std::size_t num_layers() const { return dp_net_num_layers(net_); }
    std::size_t size(std::size_t i) const { return dp_net_size(net_, i); }
    std::size_t n_in() const { return size(0); }
    std::size_t n_out() const { return size(num_layers()); }
    dp_activation activation(std::size_t layer) const { return dp_net_activation(net_, layer); }
    double slope(std::size_t layer) const { return dp_net_slope(net_, layer); }
    std::size_t num_params() const { return dp_net_num_params(net_); }
    std::pair<std::size_t, std::size_t> layer_offsets(std::size_t layer) const {
        std::size_t w = 0, b = 0;
        check(dp_net_layer_offsets(net_, layer, &w, &b));
        return {w, b};
    }
    void* params() { return dp_net_params(net_); }
    void* grads() { return dp_net_grads(net_); }
    void* velocity() { return dp_net_velocity(net_); }
    template <class T>
    T* params_as() { return static_cast<T*>(typed<T>(params())); }
    template <class T>
    T* grads_as() { return static_cast<T*>(typed<T>(grads())); }

    void reserve(std::size_t max_batch) { check(dp_net_reserve(net_, max_batch)); }
    void init(dp_init init, std::uint64_t seed) { check(dp_net_init(net_, init, seed)); }
    void seed(std::uint64_t seed) { check(dp_net_seed(net_, seed)); }

    // Untyped: buffers in the net's dtype.
    void forward(const void* x, std::size_t batch, void* out = nullptr) {
        check(dp_net_forward(net_, x, batch, out));
    }
    void predict_into(const void* x, std::size_t batch, void* (*out_for)(void*), void* user) const {
        check(dp_net_predict_into(net_, x, batch, out_for, user));
    }
    void predict(const void* x, std::size_t batch, void* out) const {
        check(dp_net_predict(net_, x, batch, out));
    }
    double loss(const void* x, std::size_t batch, dp_target kind, const void* y, double l2 = 0) const {
        double c = 0;
        check(dp_net_loss(net_, x, batch, kind, y, l2, &c));
        return c;
    }
    double backward(const void* x, std::size_t batch, dp_target kind, const void* y, double l2 = 0,
                    bool accumulate = false) {
        double c = 0;
        check(dp_net_backward(net_, x, batch, kind, y, l2, accumulate ? 1 : 0, &c));
        return c;
    }
    void backward_output_grad(const void* dc_da, std::size_t batch, bool accumulate = false) {
        check(dp_net_backward_output_grad(net_, dc_da, batch, accumulate ? 1 : 0));
    }
    void step(const dp_sgd& sgd) { check(dp_net_step(net_, &sgd)); }
    void step(const dp_optimizer& opt) { check(dp_net_step_with(net_, &opt)); }
    // Weighted loss and backward (sample_weight [batch] in the net's dtype, or nullptr).
    double loss(const void* x, std::size_t batch, dp_target kind, const void* y, const void* sample_weight,
                double l2) const {
        double c = 0;
        check(dp_net_loss_weighted(net_, x, batch, kind, y, sample_weight, l2, &c));
        return c;
    }
    double backward(const void* x, std::size_t batch, dp_target kind, const void* y, const void* sample_weight,
                    double l2, bool accumulate) {
        double c = 0;
        check(dp_net_backward_weighted(net_, x, batch, kind, y, sample_weight, l2, accumulate ? 1 : 0, &c));
        return c;
    }
    // backward then step, guarded; returns the loss before the step.
    double train_batch(const void* x, std::size_t batch, dp_target kind, const void* y, const dp_optimizer& opt,
                       const void* sample_weight = nullptr, double l2 = 0) {
        double c = 0;
        check(dp_net_train_batch(net_, x, batch, kind, y, sample_weight, l2, &opt, &c));
        return c;
    }
    // The full training loop (dp_net_fit): returns one record per completed epoch; *result (may be
    // null) what happened. Throws deltaprop::interrupted or deltaprop::diverged (after which
    // `history` cannot be returned: use the C call or on_epoch to keep the records).
    std::vector<dp_epoch_record> fit(const void* x, std::size_t n, dp_target kind, const void* y,
                                     const dp_fit_options& options, dp_fit_result* result = nullptr) {
        std::vector<dp_epoch_record> history(options.epochs);
        dp_fit_result r{};
        check(dp_net_fit(net_, x, n, kind, y, &options, history.data(), &r));
        history.resize(r.epochs_done);
        if (result) *result = r;
        return history;
    }
    struct OptimizerState {
        dp_optimizer_kind kind;
        std::uint64_t step;
        void* buffers[3];
    };
    OptimizerState optimizer_state() {
        OptimizerState s{};
        check(dp_net_optimizer_state(net_, &s.kind, &s.step, s.buffers));
        return s;
    }
    void reset_optimizer(dp_optimizer_kind kind) { check(dp_net_reset_optimizer(net_, kind)); }
    // Returns the epoch's mean loss; throws deltaprop::interrupted if cancel stopped it.
    double train_epoch(const void* x, std::size_t n, dp_target kind, const void* y,
                       std::size_t batch_size, const dp_sgd& sgd, bool shuffle = true,
                       dp_cancel_fn cancel = nullptr, void* user = nullptr) {
        double c = 0;
        check(dp_net_train_epoch(net_, x, n, kind, y, batch_size, &sgd, shuffle ? 1 : 0, cancel, user, &c));
        return c;
    }
    // epochs epochs, inputs validated once; returns each epoch's mean loss; throws
    // deltaprop::interrupted if cancel stopped it.
    std::vector<double> train(const void* x, std::size_t n, dp_target kind, const void* y,
                              std::size_t batch_size, const dp_sgd& sgd, std::size_t epochs,
                              bool shuffle = true, dp_cancel_fn cancel = nullptr, void* user = nullptr) {
        std::vector<double> losses(epochs);
        check(dp_net_train(net_, x, n, kind, y, batch_size, &sgd, shuffle ? 1 : 0, epochs, cancel, user,
                           losses.data(), nullptr));
        return losses;
    }

    // Typed conveniences: T must be the net's dtype.
    template <class T>
    std::vector<T> predict(const T* x, std::size_t batch) const {
        typed<T>(nullptr);
        std::vector<T> out(batch * n_out());
        predict(static_cast<const void*>(x), batch, static_cast<void*>(out.data()));
        return out;
    }
    template <class T>
    double train_epoch(const T* x, std::size_t n, const T* y, std::size_t batch_size, const dp_sgd& sgd,
                       bool shuffle = true) {
        typed<T>(nullptr);
        return train_epoch(static_cast<const void*>(x), n, DP_TARGET_VALUES, y, batch_size, sgd, shuffle);
    }

    void save(const std::string& path, bool with_optimizer = true) const {
        check(dp_net_save(net_, path.c_str(), with_optimizer ? DP_SAVE_OPTIMIZER : 0u));
    }
    std::vector<std::uint8_t> save_buffer(bool with_optimizer = true) const {
        const unsigned flags = with_optimizer ? DP_SAVE_OPTIMIZER : 0u;
        std::size_t size = 0;
        check(dp_net_save_buffer(net_, flags, nullptr, 0, &size));
        std::vector<std::uint8_t> out(size);
        check(dp_net_save_buffer(net_, flags, out.data(), out.size(), &size));
        return out;
    }

private:
    template <class T>
    void* typed(void* p) const {
        if (dtype_of<T>() != dtype())
            throw std::invalid_argument(std::string("dtype: the network holds ") +
                                        (dtype() == DP_FLOAT32 ? "float32" : "float64") +
                                        " values, the buffer another type");
        return p;
    }
    dp_net* net_ = nullptr;
};

}  // namespace deltaprop

#endif  // DELTAPROP_HPP
