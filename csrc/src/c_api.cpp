// SPDX-License-Identifier: MIT
// The C ABI: validate at the boundary, catch everything, return a status, keep the message per thread.
#include <cmath>
#include <cstring>
#include <new>
#include <string>
#include <system_error>

#include "deltaprop/deltaprop.h"
#include "kernels/dispatch.h"
#include "kernels/threadpool.h"
#include "src/model_file.hpp"
#include "src/network.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "deltaprop's model file code assumes a little-endian host (parameters are copied as stored)"
#endif

struct dp_net {
    std::unique_ptr<deltaprop::detail::NetBase> impl;
};

namespace {

using deltaprop::detail::Arch;
using deltaprop::detail::Error;
using deltaprop::detail::fail;

thread_local std::string g_last_error;
thread_local dp_divergence g_last_divergence;
thread_local bool g_has_divergence = false;

dp_status set_error(dp_status status, const char* message) {
    try {
        g_last_error = message;
    } catch (...) {
        // Out of memory while keeping the message: the status still tells.
    }
    return status;
}

template <class F>
dp_status guard(F&& f) noexcept {
    try {
        f();
        return DP_OK;
    } catch (const deltaprop::detail::Diverged& e) {
        g_last_divergence = e.where;
        g_has_divergence = true;
        return set_error(e.status, e.what());
    } catch (const Error& e) {
        return set_error(e.status, e.what());
    } catch (const deltaprop::detail::OutOfMemory& e) {
        return set_error(DP_ERR_OUT_OF_MEMORY, e.what());
    } catch (const std::bad_alloc&) {
        return set_error(DP_ERR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::system_error& e) {
        return set_error(DP_ERR_IO, e.what());
    } catch (const std::invalid_argument& e) {
        return set_error(DP_ERR_FORMAT, e.what());
    } catch (const std::exception& e) {
        return set_error(DP_ERR_INTERNAL, e.what());
    } catch (...) {
        return set_error(DP_ERR_INTERNAL, "unknown internal error");
    }
}

deltaprop::detail::NetBase& get(dp_net* net) {
    if (!net || !net->impl) fail(DP_ERR_INVALID_ARGUMENT, "net is NULL");
    return *net->impl;
}
const deltaprop::detail::NetBase& get(const dp_net* net) {
    if (!net || !net->impl) fail(DP_ERR_INVALID_ARGUMENT, "net is NULL");
    return *net->impl;
}
void need(const void* p, const char* name) {
    if (!p) fail(DP_ERR_INVALID_ARGUMENT, std::string(name) + " is NULL");
}

// An enum from C may hold any int; reading it as the C++ enum type is undefined outside the
// enumerators' range, so it is read as an int, range-checked, and only then converted.
template <class E>
E checked_enum(const E& value, int lo, int hi, const char* name) {
    static_assert(sizeof(E) == sizeof(int), "C enums are int-sized here");
    int v = 0;
    std::memcpy(&v, &value, sizeof v);
    if (v < lo || v > hi)
        fail(DP_ERR_INVALID_ARGUMENT, std::string(name) + ": unknown value " + std::to_string(v) +
                                          " (expected " + std::to_string(lo) + ".." + std::to_string(hi) + ")");
    return static_cast<E>(v);
}
dp_target target_kind(const dp_target& kind) {
    return checked_enum(kind, DP_TARGET_VALUES, DP_TARGET_CLASSES, "kind");
}

std::size_t elem_size(dp_dtype d) { return d == DP_FLOAT64 ? 8 : 4; }

// Copies of the option structs with every enum field range-checked (a C caller may put any int there).
dp_optimizer read_optimizer(const dp_optimizer* o) {
    need(o, "opt");
    dp_optimizer r = *o;
    r.kind = checked_enum(o->kind, DP_OPTIM_SGD, DP_OPTIM_ADAMW, "optimizer kind");
    return r;
}
dp_fit_options read_fit_options(const dp_fit_options* o) {
    need(o, "options");
    dp_fit_options r = *o;
    r.optimizer = read_optimizer(&o->optimizer);
    r.schedule.kind = checked_enum(o->schedule.kind, DP_SCHEDULE_CONSTANT, DP_SCHEDULE_PLATEAU, "schedule kind");
    r.monitor = checked_enum(o->monitor, DP_MONITOR_AUTO, DP_MONITOR_VAL_ACCURACY, "monitor");
    if (o->x_val) r.val_kind = target_kind(o->val_kind);
    return r;
}

// dp_net_train and dp_net_train_epoch: SGD epochs through the training loop.
dp_status train_sgd(dp_net* net, const void* x, size_t n, dp_target kind, const void* y, size_t batch_size,
                    const dp_sgd* sgd, int shuffle, size_t epochs, dp_cancel_fn cancel, void* user, double* losses,
                    size_t* epochs_done) {
    if (epochs_done) *epochs_done = 0;
    dp_status result = DP_OK;
    const dp_status s = guard([&] {
        auto& impl = get(net);
        need(sgd, "sgd");
        deltaprop::detail::check_sgd(*sgd, false);
        dp_fit_options o = deltaprop::detail::default_fit_options();
        o.epochs = epochs;
        o.batch_size = batch_size;
        o.shuffle = shuffle != 0;
        o.l2 = sgd->l2;
        o.optimizer = deltaprop::detail::optimizer_from_sgd(*sgd);
        o.cancel = cancel;
        o.user = user;
        std::vector<dp_epoch_record> history(losses ? epochs : 0);
        dp_fit_result res{};
        double partial = 0.0;
        try {
            result = impl.fit(x, n, target_kind(kind), y, o, losses ? history.data() : nullptr, &res, &partial);
        } catch (const deltaprop::detail::Diverged&) {
            for (std::size_t e = 0; losses && e < epochs; ++e) losses[e] = e < res.epochs_done ? history[e].loss : 0.0;
            if (epochs_done) *epochs_done = res.epochs_done;
            throw;
        }
        for (std::size_t e = 0; losses && e < res.epochs_done; ++e) losses[e] = history[e].loss;
        if (result == DP_ERR_INTERRUPTED) {
            // (NaN when it stopped between epochs)
            if (losses && res.epochs_done < epochs && !std::isnan(partial)) losses[res.epochs_done] = partial;
            set_error(result, "training interrupted by the cancel callback");
        }
        if (epochs_done) *epochs_done = res.epochs_done;
    });
    return s != DP_OK ? s : result;
}

deltaprop::detail::ModelRecord to_record(const deltaprop::detail::NetBase& impl, unsigned flags) {
    deltaprop::detail::ModelRecord rec;
    const Arch& arch = impl.arch();
    rec.dtype = arch.dtype;
    rec.loss = arch.loss;
    rec.init = arch.init;
    rec.sizes.assign(arch.sizes.begin(), arch.sizes.end());
    rec.activations.assign(arch.activations.begin(), arch.activations.end());
    rec.slopes = arch.slopes;
    auto& net = const_cast<deltaprop::detail::NetBase&>(impl);
    const std::size_t bytes = impl.num_params() * elem_size(arch.dtype);
    const auto* p = static_cast<const std::uint8_t*>(net.params());
    rec.params.assign(p, p + bytes);
    rec.has_optimizer = (flags & DP_SAVE_OPTIMIZER) != 0;
    if (rec.has_optimizer) {
        const deltaprop::detail::OptimizerView st = net.optimizer_state();
        const auto* v = static_cast<const std::uint8_t*>(st.buffers[0]);
        rec.velocity.assign(v, v + bytes);
        rec.rng = impl.rng().state();
        rec.opt_kind = static_cast<std::uint32_t>(st.kind);
        // SGD's step count changes nothing in its rule: not stored, so SGD files stay version 1
        // (readable by 0.1)
        rec.opt_step = st.kind == DP_OPTIM_SGD ? 0 : st.step;
        if (st.kind != DP_OPTIM_SGD) {
            for (int i = 1; i < 3; ++i) {
                const auto* b = static_cast<const std::uint8_t*>(st.buffers[i]);
                rec.extra_state.emplace_back(b, b + bytes);
            }
        }
    }
    return rec;
}

std::unique_ptr<deltaprop::detail::NetBase> from_record(const deltaprop::detail::ModelRecord& rec) {
    Arch arch;
    arch.dtype = static_cast<dp_dtype>(rec.dtype);
    arch.loss = static_cast<dp_loss>(rec.loss);
    arch.init = static_cast<dp_init>(rec.init);
    for (auto s : rec.sizes) arch.sizes.push_back(static_cast<std::size_t>(s));
    for (auto a : rec.activations) arch.activations.push_back(static_cast<dp_activation>(a));
    arch.slopes = rec.slopes;
    try {
        arch.validate();
    } catch (const Error& e) {
        fail(DP_ERR_FORMAT, std::string("model file describes an invalid network: ") + e.what());
    }
    auto impl = deltaprop::detail::make_empty_net(arch);
    const std::size_t bytes = impl->num_params() * elem_size(arch.dtype);
    if (rec.params.size() != bytes) fail(DP_ERR_FORMAT, "model file: parameter block has the wrong size");
    std::memcpy(impl->params(), rec.params.data(), bytes);
    if (rec.has_optimizer) {
        if (rec.velocity.size() != bytes) fail(DP_ERR_FORMAT, "model file: velocity block has the wrong size");
        if (rec.opt_kind > DP_OPTIM_ADAMW) fail(DP_ERR_FORMAT, "model file: unknown optimizer kind");
        const auto kind = static_cast<dp_optimizer_kind>(rec.opt_kind);
        if (kind != DP_OPTIM_SGD && rec.extra_state.size() != 2)
            fail(DP_ERR_FORMAT, "model file: Adam's state needs 2 extra buffers");
        impl->reset_optimizer(kind);
        deltaprop::detail::OptimizerView st = impl->optimizer_state();
        std::memcpy(st.buffers[0], rec.velocity.data(), bytes);
        for (std::size_t i = 0; i < rec.extra_state.size() && i < 2; ++i) {
            if (rec.extra_state[i].size() != bytes) fail(DP_ERR_FORMAT, "model file: a state block has the wrong size");
            std::memcpy(st.buffers[i + 1], rec.extra_state[i].data(), bytes);
        }
        impl->set_optimizer_step(rec.opt_step);
        impl->rng().set_state(rec.rng);
    } else {
        impl->rng().reseed(0);
    }
    return impl;
}

constexpr std::size_t kMaxModelFile = std::size_t(1) << 36;  // 64 GiB

}  // namespace

extern "C" {

// The version string from the header's DP_VERSION_* macros, the one place the version is written.
#define DP_STRINGIZE_(x) #x
#define DP_STRINGIZE(x) DP_STRINGIZE_(x)
const char* dp_version(void) {
    return DP_STRINGIZE(DP_VERSION_MAJOR) "." DP_STRINGIZE(DP_VERSION_MINOR) "." DP_STRINGIZE(DP_VERSION_PATCH);
}

const char* dp_status_string(dp_status status_in) {
    int raw = 0;
    std::memcpy(&raw, &status_in, sizeof raw);
    if (raw < DP_OK || raw > DP_ERR_DIVERGED) return "unknown status";
    switch (static_cast<dp_status>(raw)) {
        case DP_OK: return "ok";
        case DP_ERR_INVALID_ARGUMENT: return "invalid argument";
        case DP_ERR_OUT_OF_MEMORY: return "out of memory";
        case DP_ERR_IO: return "input/output error";
        case DP_ERR_FORMAT: return "bad model file format";
        case DP_ERR_STATE: return "call out of order";
        case DP_ERR_INTERRUPTED: return "interrupted";
        case DP_ERR_UNSUPPORTED: return "unsupported";
        case DP_ERR_INTERNAL: return "internal error";
        case DP_ERR_DIVERGED: return "training diverged";
    }
    return "unknown status";
}

const char* dp_last_error(void) { return g_last_error.c_str(); }

dp_optimizer dp_optimizer_default(dp_optimizer_kind kind) {
    int k = 0;
    std::memcpy(&k, &kind, sizeof k);
    return deltaprop::detail::default_optimizer(k == DP_OPTIM_ADAM ? DP_OPTIM_ADAM : k == DP_OPTIM_ADAMW ? DP_OPTIM_ADAMW : DP_OPTIM_SGD);
}

dp_schedule dp_schedule_default(dp_schedule_kind kind) {
    int k = 0;
    std::memcpy(&k, &kind, sizeof k);
    if (k < DP_SCHEDULE_CONSTANT || k > DP_SCHEDULE_PLATEAU) k = DP_SCHEDULE_CONSTANT;
    return deltaprop::detail::default_schedule(static_cast<dp_schedule_kind>(k));
}

dp_fit_options dp_fit_options_default(void) { return deltaprop::detail::default_fit_options(); }

dp_status dp_optimizer_check(const dp_optimizer* opt) {
    return guard([&] { deltaprop::detail::check_optimizer(read_optimizer(opt)); });
}

dp_status dp_schedule_check(const dp_schedule* schedule, double lr0) {
    return guard([&] {
        need(schedule, "schedule");
        dp_schedule s = *schedule;
        s.kind = checked_enum(schedule->kind, DP_SCHEDULE_CONSTANT, DP_SCHEDULE_PLATEAU, "schedule kind");
        deltaprop::detail::check_schedule(s, lr0);
    });
}

dp_status dp_last_divergence(dp_divergence* out) {
    if (!out) return set_error(DP_ERR_INVALID_ARGUMENT, "out is NULL");
    if (!g_has_divergence) return set_error(DP_ERR_STATE, "no divergence has been reported on this thread");
    *out = g_last_divergence;
    return DP_OK;
}

dp_sgd dp_sgd_default(void) {
    dp_sgd s;
    s.lr = 0.01;
    s.momentum = 0.0;
    s.nesterov = 0;
    s.weight_decay = 0.0;
    s.l2 = 0.0;
    return s;
}

dp_status dp_set_num_threads(int n) {
    return guard([&] {
        if (n < 0) fail(DP_ERR_INVALID_ARGUMENT, "n: expected a thread count >= 0, got " + std::to_string(n));
        if (n > 1024) fail(DP_ERR_INVALID_ARGUMENT, "n: at most 1024 threads, got " + std::to_string(n));
        deltaprop::kernels::set_num_threads(n);
    });
}

int dp_get_num_threads(void) { return deltaprop::kernels::num_threads(); }

dp_status dp_set_kernel_level(dp_kernel_level level_in) {
    return guard([&] {
        const dp_kernel_level level = checked_enum(level_in, DP_KERNEL_AUTO, DP_KERNEL_AVX512, "level");
        using deltaprop::kernels::Level;
        if (level == DP_KERNEL_AUTO) {
            deltaprop::kernels::set_auto();  // DELTAPROP_KERNEL if set, else per kernel family
            return;
        }
        if (!deltaprop::kernels::set_level(static_cast<Level>(level)))
            fail(DP_ERR_UNSUPPORTED, std::string("level: this CPU does not support the ") +
                                         (level == DP_KERNEL_AVX512 ? "avx512" : "avx2") + " kernels");
    });
}

dp_kernel_level dp_get_kernel_level(void) {
    return static_cast<dp_kernel_level>(deltaprop::kernels::level());
}

dp_kernel_level dp_get_kernel_family_level(dp_kernel_family family) {
    using deltaprop::kernels::Family;
    switch (family) {
        case DP_FAMILY_GEMM_FLOAT32: return static_cast<dp_kernel_level>(deltaprop::kernels::level(Family::gemm));
        case DP_FAMILY_ELEMENTWISE: return static_cast<dp_kernel_level>(deltaprop::kernels::level(Family::elementwise));
        case DP_FAMILY_GEMM_FLOAT64: return static_cast<dp_kernel_level>(deltaprop::kernels::level(Family::gemm_f64));
    }
    return DP_KERNEL_PORTABLE;
}

const char* dp_env_warning(void) { return deltaprop::kernels::env_warning(); }

dp_status dp_net_create(dp_net** out, size_t n_sizes, const size_t* sizes,
                        const dp_activation* activations, const double* slopes, dp_loss loss,
                        dp_dtype dtype, dp_init init, uint64_t seed) {
    return guard([&] {
        need(out, "out");
        if (n_sizes < 2)
            fail(DP_ERR_INVALID_ARGUMENT,
                 "n_sizes: expected at least 2 layer sizes (input and output), got " + std::to_string(n_sizes));
        need(sizes, "sizes");
        need(activations, "activations");
        if (n_sizes > 1025) fail(DP_ERR_INVALID_ARGUMENT, "n_sizes: at most 1025 layer sizes");
        Arch arch;
        arch.dtype = checked_enum(dtype, DP_FLOAT32, DP_FLOAT64, "dtype");
        arch.sizes.assign(sizes, sizes + n_sizes);
        for (size_t l = 0; l + 1 < n_sizes; ++l) {
            const std::string name = "activations[" + std::to_string(l) + "]";
            arch.activations.push_back(checked_enum(activations[l], DP_IDENTITY, DP_SOFTMAX, name.c_str()));
        }
        arch.slopes.assign(n_sizes - 1, 0.01);
        if (slopes) arch.slopes.assign(slopes, slopes + n_sizes - 1);
        arch.loss = checked_enum(loss, DP_LOSS_MSE, DP_LOSS_CROSS_ENTROPY, "loss");
        arch.init = checked_enum(init, DP_INIT_GLOROT_UNIFORM, DP_INIT_HE_NORMAL, "init");
        auto net = std::make_unique<dp_net>();
        net->impl = deltaprop::detail::make_net(arch, seed);
        *out = net.release();
    });
}

void dp_net_destroy(dp_net* net) { delete net; }

dp_status dp_net_clone(const dp_net* net, dp_net** out) {
    return guard([&] {
        need(out, "out");
        auto copy = std::make_unique<dp_net>();
        copy->impl = get(net).clone();
        *out = copy.release();
    });
}

dp_status dp_net_copy_state(dp_net* dst, const dp_net* src) {
    return guard([&] { get(dst).copy_state(get(src)); });
}

dp_status dp_net_reserve(dp_net* net, size_t max_batch) {
    return guard([&] { get(net).reserve(max_batch); });
}

dp_status dp_net_init(dp_net* net, dp_init init, uint64_t seed) {
    return guard([&] {
        get(net).initialize(checked_enum(init, DP_INIT_GLOROT_UNIFORM, DP_INIT_HE_NORMAL, "init"), seed);
    });
}

dp_status dp_net_seed(dp_net* net, uint64_t seed) {
    return guard([&] { get(net).rng().reseed(seed); });
}

dp_dtype dp_net_dtype(const dp_net* net) { return net->impl->arch().dtype; }
dp_loss dp_net_loss_kind(const dp_net* net) { return net->impl->arch().loss; }
dp_init dp_net_init_kind(const dp_net* net) { return net->impl->arch().init; }
size_t dp_net_num_layers(const dp_net* net) { return net->impl->arch().layers(); }
size_t dp_net_size(const dp_net* net, size_t i) {
    const auto& s = net->impl->arch().sizes;
    return i < s.size() ? s[i] : 0;
}
dp_activation dp_net_activation(const dp_net* net, size_t layer) {
    const auto& a = net->impl->arch().activations;
    return layer < a.size() ? a[layer] : DP_IDENTITY;
}
double dp_net_slope(const dp_net* net, size_t layer) {
    const auto& s = net->impl->arch().slopes;
    return layer < s.size() ? s[layer] : 0.0;
}
size_t dp_net_num_params(const dp_net* net) { return net->impl->num_params(); }

dp_status dp_net_layer_offsets(const dp_net* net, size_t layer, size_t* w_offset, size_t* b_offset) {
    return guard([&] {
        const auto& impl = get(net);
        if (layer >= impl.arch().layers())
            fail(DP_ERR_INVALID_ARGUMENT, "layer: index " + std::to_string(layer) + " is out of range [0, " +
                                              std::to_string(impl.arch().layers()) + ")");
        if (w_offset) *w_offset = impl.w_offset(layer);
        if (b_offset) *b_offset = impl.b_offset(layer);
    });
}

void* dp_net_params(dp_net* net) { return net->impl->params(); }
void* dp_net_grads(dp_net* net) { return net->impl->grads(); }
void* dp_net_velocity(dp_net* net) { return net->impl->velocity(); }

dp_status dp_net_forward(dp_net* net, const void* x, size_t batch, void* out) {
    return guard([&] { get(net).forward(x, batch, out); });
}

dp_status dp_net_predict(const dp_net* net, const void* x, size_t batch, void* out) {
    return guard([&] { get(net).predict(x, batch, out); });
}

dp_status dp_net_predict_into(const dp_net* net, const void* x, size_t batch, void* (*out_for)(void*),
                              void* user) {
    return guard([&] {
        struct Ctx {
            void* (*fn)(void*);
            void* user;
        } c{out_for, user};
        auto wrapped = [](void* p) -> void* {
            auto* c = static_cast<Ctx*>(p);
            void* out = c->fn(c->user);
            if (!out) deltaprop::detail::fail(DP_ERR_INVALID_ARGUMENT, "out_for returned NULL");
            return out;
        };
        get(net).predict_into(x, batch, out_for ? +wrapped : nullptr, &c);
    });
}

dp_status dp_net_loss(const dp_net* net, const void* x, size_t batch, dp_target kind, const void* y,
                      double l2, double* loss) {
    return dp_net_loss_weighted(net, x, batch, kind, y, nullptr, l2, loss);
}

dp_status dp_net_loss_weighted(const dp_net* net, const void* x, size_t batch, dp_target kind, const void* y,
                               const void* sample_weight, double l2, double* loss) {
    return guard([&] {
        need(loss, "loss");
        *loss = get(net).loss(x, batch, target_kind(kind), y, sample_weight, l2);
    });
}

dp_status dp_net_backward(dp_net* net, const void* x, size_t batch, dp_target kind, const void* y,
                          double l2, int accumulate, double* loss) {
    return dp_net_backward_weighted(net, x, batch, kind, y, nullptr, l2, accumulate, loss);
}

dp_status dp_net_backward_weighted(dp_net* net, const void* x, size_t batch, dp_target kind, const void* y,
                                   const void* sample_weight, double l2, int accumulate, double* loss) {
    return guard([&] {
        const double c = get(net).backward(x, batch, target_kind(kind), y, sample_weight, l2, accumulate != 0);
        if (loss) *loss = c;
    });
}

dp_status dp_net_backward_output_grad(dp_net* net, const void* dc_da, size_t batch, int accumulate) {
    return guard([&] { get(net).backward_output_grad(dc_da, batch, accumulate != 0); });
}

dp_status dp_net_step(dp_net* net, const dp_sgd* sgd) {
    return guard([&] {
        auto& impl = get(net);
        need(sgd, "sgd");
        deltaprop::detail::check_sgd(*sgd, true);
        impl.step(deltaprop::detail::optimizer_from_sgd(*sgd));
    });
}

dp_status dp_net_step_with(dp_net* net, const dp_optimizer* opt) {
    return guard([&] {
        auto& impl = get(net);
        impl.step(read_optimizer(opt));
    });
}

dp_status dp_net_train_batch(dp_net* net, const void* x, size_t batch, dp_target kind, const void* y,
                             const void* sample_weight, double l2, const dp_optimizer* opt, double* loss) {
    return guard([&] {
        auto& impl = get(net);
        const dp_optimizer o = read_optimizer(opt);
        const double c = impl.train_batch(x, batch, target_kind(kind), y, sample_weight, l2, o);
        if (loss) *loss = c;
    });
}

dp_status dp_net_optimizer_state(dp_net* net, dp_optimizer_kind* kind, uint64_t* step, void* buffers[3]) {
    return guard([&] {
        const deltaprop::detail::OptimizerView v = get(net).optimizer_state();
        if (kind) *kind = v.kind;
        if (step) *step = v.step;
        if (buffers)
            for (int i = 0; i < 3; ++i) buffers[i] = v.buffers[i];
    });
}

dp_status dp_net_reset_optimizer(dp_net* net, dp_optimizer_kind kind) {
    return guard([&] { get(net).reset_optimizer(checked_enum(kind, DP_OPTIM_SGD, DP_OPTIM_ADAMW, "kind")); });
}

dp_status dp_net_fit(dp_net* net, const void* x, size_t n, dp_target kind, const void* y,
                     const dp_fit_options* options, dp_epoch_record* history, dp_fit_result* result) {
    if (result) *result = dp_fit_result{0, 0, 0, 0};
    dp_status status = DP_OK;
    const dp_status s = guard([&] {
        auto& impl = get(net);
        const dp_fit_options o = read_fit_options(options);
        status = impl.fit(x, n, target_kind(kind), y, o, history, result, nullptr);
        if (status == DP_ERR_INTERRUPTED) set_error(status, "training interrupted by the cancel callback");
    });
    return s != DP_OK ? s : status;
}

dp_status dp_net_train_epoch(dp_net* net, const void* x, size_t n, dp_target kind, const void* y,
                             size_t batch_size, const dp_sgd* sgd, int shuffle, dp_cancel_fn cancel,
                             void* user, double* mean_loss) {
    double loss = 0.0;
    const dp_status s = train_sgd(net, x, n, kind, y, batch_size, sgd, shuffle, 1, cancel, user, &loss, nullptr);
    if (mean_loss && (s == DP_OK || s == DP_ERR_INTERRUPTED)) *mean_loss = loss;
    return s;
}

dp_status dp_net_train(dp_net* net, const void* x, size_t n, dp_target kind, const void* y,
                       size_t batch_size, const dp_sgd* sgd, int shuffle, size_t epochs,
                       dp_cancel_fn cancel, void* user, double* losses, size_t* epochs_done) {
    return train_sgd(net, x, n, kind, y, batch_size, sgd, shuffle, epochs, cancel, user, losses, epochs_done);
}

dp_status dp_net_workspace(const dp_net* net, size_t layer, const void** z, const void** a,
                           const void** delta, size_t* batch) {
    return guard([&] { get(net).workspace(layer, z, a, delta, batch); });
}

dp_status dp_net_save(const dp_net* net, const char* path, unsigned flags) {
    return guard([&] {
        const auto& impl = get(net);
        need(path, "path");
        if (flags & ~DP_SAVE_OPTIMIZER) fail(DP_ERR_INVALID_ARGUMENT, "flags: unknown flag bits");
        deltaprop::detail::write_file_atomic(path, deltaprop::detail::encode_model(to_record(impl, flags)));
    });
}

dp_status dp_net_load(dp_net** out, const char* path) {
    return guard([&] {
        need(out, "out");
        need(path, "path");
        const auto bytes = deltaprop::detail::read_file(path, kMaxModelFile);
        std::unique_ptr<deltaprop::detail::NetBase> impl;
        try {
            impl = from_record(deltaprop::detail::decode_model(bytes.data(), bytes.size()));
        } catch (const std::invalid_argument& e) {
            fail(DP_ERR_FORMAT, std::string(path) + ": " + e.what());
        }
        auto net = std::make_unique<dp_net>();
        net->impl = std::move(impl);
        *out = net.release();
    });
}

dp_status dp_net_save_buffer(const dp_net* net, unsigned flags, void* buf, size_t capacity,
                             size_t* size) {
    return guard([&] {
        const auto& impl = get(net);
        need(size, "size");
        if (flags & ~DP_SAVE_OPTIMIZER) fail(DP_ERR_INVALID_ARGUMENT, "flags: unknown flag bits");
        const auto bytes = deltaprop::detail::encode_model(to_record(impl, flags));
        *size = bytes.size();
        if (!buf) return;
        if (capacity < bytes.size())
            fail(DP_ERR_INVALID_ARGUMENT, "capacity: the model needs " + std::to_string(bytes.size()) +
                                              " bytes, the buffer has " + std::to_string(capacity));
        std::memcpy(buf, bytes.data(), bytes.size());
    });
}

dp_status dp_net_load_buffer(dp_net** out, const void* buf, size_t size) {
    return guard([&] {
        need(out, "out");
        need(buf, "buf");
        auto net = std::make_unique<dp_net>();
        net->impl = from_record(deltaprop::detail::decode_model(static_cast<const std::uint8_t*>(buf), size));
        *out = net.release();
    });
}

}  // extern "C"
