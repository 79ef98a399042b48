// SPDX-License-Identifier: MIT
// Every rule of the core, once: architecture, hyper-parameter ranges and their messages. The C ABI
// checks pointers and enums; the Python package converts types; both pass these messages through.
#include <cmath>
#include <limits>
#include <sstream>

#include "src/network.hpp"

namespace deltaprop::detail {

void fail(dp_status status, const std::string& message) { throw Error(status, message); }

namespace {

constexpr std::size_t kMaxWidth = std::size_t(1) << 24;
constexpr std::size_t kMaxLayers = 1024;

template <class... Args>
std::string cat(const Args&... args) {
    std::ostringstream s;
    (s << ... << args);
    return s.str();
}

[[noreturn]] void bad(const std::string& message) { fail(DP_ERR_INVALID_ARGUMENT, message); }

bool finite(double v) { return std::isfinite(v); }

void positive(const char* name, double v) {
    if (!(v > 0.0) || !finite(v)) bad(cat(name, ": expected a finite number > 0, got ", v));
}
void non_negative(const char* name, double v) {
    if (!(v >= 0.0) || !finite(v)) bad(cat(name, ": expected a finite number >= 0, got ", v));
}
void unit_interval(const char* name, double v) {  // [0, 1)
    if (!(v >= 0.0 && v < 1.0)) bad(cat(name, ": expected a number in [0, 1), got ", v));
}

}  // namespace

const char* activation_name(dp_activation a) {
    switch (a) {
        case DP_IDENTITY: return "identity";
        case DP_SIGMOID: return "sigmoid";
        case DP_TANH: return "tanh";
        case DP_RELU: return "relu";
        case DP_LEAKY_RELU: return "leaky_relu";
        case DP_SOFTMAX: return "softmax";
    }
    return "unknown";
}

const char* loss_name(dp_loss l) {
    switch (l) {
        case DP_LOSS_MSE: return "mse";
        case DP_LOSS_BINARY_CROSS_ENTROPY: return "binary_cross_entropy";
        case DP_LOSS_CROSS_ENTROPY: return "cross_entropy";
    }
    return "unknown";
}

const char* optimizer_name(dp_optimizer_kind k) {
    switch (k) {
        case DP_OPTIM_SGD: return "sgd";
        case DP_OPTIM_ADAM: return "adam";
        case DP_OPTIM_ADAMW: return "adamw";
    }
    return "unknown";
}

const char* phase_name(dp_phase p) {
    switch (p) {
        case DP_PHASE_FORWARD: return "forward";
        case DP_PHASE_LOSS: return "loss";
        case DP_PHASE_BACKWARD: return "backward";
        case DP_PHASE_UPDATE: return "update";
    }
    return "unknown";
}

void Arch::validate() const {
    if (dtype != DP_FLOAT32 && dtype != DP_FLOAT64)
        bad(cat("dtype: expected DP_FLOAT32 or DP_FLOAT64, got ", int(dtype)));
    if (sizes.size() < 2) bad(cat("sizes: expected at least 2 layer sizes (input and output), got ", sizes.size()));
    if (sizes.size() > kMaxLayers + 1) bad(cat("sizes: at most ", kMaxLayers + 1, " sizes, got ", sizes.size()));
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        if (sizes[i] < 1 || sizes[i] > kMaxWidth)
            bad(cat("sizes[", i, "]: expected a width in [1, ", kMaxWidth, "], got ", sizes[i]));
    }
    if (activations.size() != layers() || slopes.size() != layers()) bad("activations: expected one per layer");
    for (std::size_t l = 0; l < layers(); ++l) {
        const dp_activation act = activations[l];
        if (act < DP_IDENTITY || act > DP_SOFTMAX) bad(cat("activations[", l, "]: unknown activation ", int(act)));
        if (act == DP_SOFTMAX && l + 1 != layers())
            bad(cat("activations[", l, "]: softmax is allowed on the output layer only"));
        if (!finite(slopes[l])) bad(cat("slope[", l, "]: expected a finite number"));
    }
    if (loss < DP_LOSS_MSE || loss > DP_LOSS_CROSS_ENTROPY) bad(cat("loss: unknown loss ", int(loss)));
    if (init < DP_INIT_GLOROT_UNIFORM || init > DP_INIT_HE_NORMAL) bad(cat("init: unknown initialisation ", int(init)));
    const dp_activation out = activations.back();
    if (loss == DP_LOSS_CROSS_ENTROPY && out != DP_SOFTMAX)
        bad(cat("loss: cross_entropy needs a softmax output layer, got ", activation_name(out)));
    if (loss == DP_LOSS_BINARY_CROSS_ENTROPY && out != DP_SIGMOID)
        bad(cat("loss: binary_cross_entropy needs a sigmoid output layer, got ", activation_name(out)));
}

NetBase::NetBase(const Arch& arch) : arch_(arch) {
    arch_.validate();
    const std::size_t L = arch_.layers();
    w_off_.resize(L);
    b_off_.resize(L);
    std::size_t off = 0;
    for (std::size_t l = 0; l < L; ++l) {
        const std::size_t n_in = arch_.sizes[l], n_out = arch_.sizes[l + 1];
        if (n_in > (std::numeric_limits<std::size_t>::max() >> 8) / n_out) throw std::bad_alloc();
        w_off_[l] = off;
        off += n_out * n_in;
        b_off_[l] = off;
        off += n_out;
        if (off > (std::size_t(1) << 40)) bad("sizes: too many parameters");
    }
    n_params_ = off;
}

void check_batch(const char* what, std::size_t batch) {
    if (batch == 0) bad(cat(what, ": the batch is empty (0 samples)"));
    if (batch > (std::size_t(1) << 40)) bad(cat(what, ": batch of ", batch, " samples is too large"));
}

void check_l2(double l2) { non_negative("l2", l2); }

void check_sgd(const dp_sgd& s, bool for_step) {
    check_optimizer(optimizer_from_sgd(s));
    if (!for_step) check_l2(s.l2);
}

dp_optimizer optimizer_from_sgd(const dp_sgd& s) {
    dp_optimizer o = default_optimizer(DP_OPTIM_SGD);
    o.lr = s.lr;
    o.momentum = s.momentum;
    o.nesterov = s.nesterov;
    o.weight_decay = s.weight_decay;
    return o;
}

void check_optimizer(const dp_optimizer& o) {
    if (o.kind < DP_OPTIM_SGD || o.kind > DP_OPTIM_ADAMW) bad(cat("optimizer: unknown kind ", int(o.kind)));
    positive("lr", o.lr);
    non_negative("weight_decay", o.weight_decay);
    if (o.kind == DP_OPTIM_SGD) {
        unit_interval("momentum", o.momentum);
        if (o.nesterov && o.momentum == 0.0) bad("nesterov: Nesterov momentum needs momentum > 0, got momentum 0");
    } else {
        unit_interval("betas[0]", o.beta1);
        unit_interval("betas[1]", o.beta2);
        positive("eps", o.eps);
    }
    if (o.kind == DP_OPTIM_ADAMW && !(o.lr * o.weight_decay <= 1.0))
        bad(cat("weight_decay: lr * weight_decay must be at most 1 for AdamW (the decay factor 1 - lr * "
                "weight_decay would be negative), got ", o.lr * o.weight_decay));
    non_negative("clip_norm", o.clip_norm);
}

void check_schedule(const dp_schedule& s, double lr0) {
    switch (s.kind) {
        case DP_SCHEDULE_CONSTANT: break;
        case DP_SCHEDULE_INVERSE_SCALING:
            non_negative("power", s.power);
            positive("scale", s.scale);
            break;
        case DP_SCHEDULE_STEP:
            if (s.step_size < 1) bad(cat("step_size: expected an integer >= 1, got ", s.step_size));
            [[fallthrough]];
        case DP_SCHEDULE_EXPONENTIAL:
            if (!(s.gamma > 0.0 && s.gamma <= 1.0)) bad(cat("gamma: expected a number in (0, 1], got ", s.gamma));
            break;
        case DP_SCHEDULE_COSINE:
            if (s.t_max < 1) bad(cat("t_max: expected an integer >= 1, got ", s.t_max));
            non_negative("eta_min", s.eta_min);
            if (s.eta_min > lr0) bad(cat("eta_min: expected at most the initial rate ", lr0, ", got ", s.eta_min));
            break;
        case DP_SCHEDULE_PLATEAU:
            if (!(s.factor > 0.0 && s.factor < 1.0)) bad(cat("factor: expected a number in (0, 1), got ", s.factor));
            non_negative("threshold", s.threshold);
            non_negative("min_lr", s.min_lr);
            break;
        default: bad(cat("schedule: unknown kind ", int(s.kind)));
    }
}

void check_fit_options(const dp_fit_options& o, dp_loss loss) {
    if (o.batch_size == 0) bad("batch_size must be at least 1, got 0");
    check_l2(o.l2);
    check_optimizer(o.optimizer);
    check_schedule(o.schedule, o.optimizer.lr);
    if (o.monitor < DP_MONITOR_AUTO || o.monitor > DP_MONITOR_VAL_ACCURACY)
        bad(cat("monitor: unknown value ", int(o.monitor)));
    const bool val = o.x_val != nullptr;
    if ((o.monitor == DP_MONITOR_VAL_LOSS || o.monitor == DP_MONITOR_VAL_ACCURACY) && !val)
        bad("monitor: a validation metric needs validation data");
    if (o.monitor == DP_MONITOR_VAL_ACCURACY && loss == DP_LOSS_MSE)
        bad("monitor: val_accuracy is defined for classification losses (binary_cross_entropy, cross_entropy), not mse");
    non_negative("min_delta", o.min_delta);
    if (o.on_progress && !(o.progress_interval >= 0.0 && finite(o.progress_interval)))
        bad(cat("progress_interval: expected a finite number >= 0, got ", o.progress_interval));
    if (o.reduce) {
        if (o.reduce_kind != DP_REDUCE_ORDERED && o.reduce_kind != DP_REDUCE_SUM)
            bad(cat("reduce_kind: unknown value ", int(o.reduce_kind)));
        if (o.ranks == 0 || o.rank >= o.ranks)
            bad(cat("rank: expected 0 <= rank < ranks, got rank ", o.rank, " of ", o.ranks));
        if (o.sharded && o.steps_per_epoch == 0) bad("steps_per_epoch: sharded data needs at least 1 step per epoch");
    }
}

dp_optimizer default_optimizer(dp_optimizer_kind kind) {
    dp_optimizer o{};
    o.kind = kind;
    o.lr = kind == DP_OPTIM_SGD ? 0.01 : 1e-3;
    o.momentum = 0.0;
    o.nesterov = 0;
    o.weight_decay = kind == DP_OPTIM_ADAMW ? 1e-2 : 0.0;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    o.amsgrad = 0;
    o.eps_hat = 0;
    o.clip_norm = 0.0;
    return o;
}

dp_schedule default_schedule(dp_schedule_kind kind) {
    dp_schedule s{};
    s.kind = kind;
    s.per_step = kind == DP_SCHEDULE_INVERSE_SCALING ? 1 : 0;
    s.power = 0.5;
    s.scale = 1.0;
    s.gamma = 0.1;
    s.step_size = 1;
    s.t_max = 1;
    s.warmup = 0;
    s.eta_min = 0.0;
    s.factor = 0.1;
    s.patience = 10;
    s.cooldown = 0;
    s.threshold = 1e-4;
    s.threshold_abs = 0;
    s.min_lr = 0.0;
    return s;
}

dp_fit_options default_fit_options() {
    dp_fit_options o{};
    o.epochs = 1;
    o.batch_size = 32;
    o.shuffle = 1;
    o.l2 = 0.0;
    o.optimizer = default_optimizer(DP_OPTIM_SGD);
    o.schedule = default_schedule(DP_SCHEDULE_CONSTANT);
    o.val_kind = DP_TARGET_VALUES;
    o.monitor = DP_MONITOR_AUTO;
    o.patience = 10;
    o.min_delta = 0.0;
    o.restore_best = 1;
    o.progress_interval = 0.1;
    o.reduce_kind = DP_REDUCE_ORDERED;
    o.ranks = 1;
    return o;
}

}  // namespace deltaprop::detail
