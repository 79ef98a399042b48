/* SPDX-License-Identifier: MIT */
/*
 * deltaprop C ABI: dense networks trained by backpropagation, over raw buffers.
 *
 * Data layout
 *   - Activations, inputs, targets and outputs are row-major [batch, features] (numpy's default).
 *   - All parameters of a network live in one contiguous buffer: for each layer l = 0..L-1,
 *     W(l) as [n_out, n_in] row-major (W[j][k] joins input k to output j), then b(l) as [n_out].
 *     The gradient buffer and the momentum (velocity) buffer have exactly the same layout.
 *   - Every floating-point buffer passed to a net has the net's dtype (float or double).
 *     Class-index targets are int64_t [batch].
 *
 * Ownership and threading
 *   - dp_net_create / dp_net_load / dp_net_clone allocate a net; dp_net_destroy frees it.
 *   - Pointers returned by dp_net_params, dp_net_grads, dp_net_velocity and dp_net_workspace stay
 *     valid for the net's life (a workspace outgrown by a larger batch is kept, stale, until then).
 *   - One net may be used by one thread at a time, except dp_net_predict and dp_net_loss, which only
 *     read the net and may run concurrently with each other on one net.
 *   - The library keeps a process-wide pool of worker threads (dp_set_num_threads). Results are bitwise
 *     identical for any thread count.
 *
 * Errors
 *   - Every fallible call returns a dp_status; DP_OK is 0. dp_last_error() gives the message of the
 *     last failure on the calling thread. A failed call leaves parameters, gradients and optimizer state
 *     unchanged. The library never aborts, exits or prints.
 *
 * Usage
 *     size_t sizes[] = {2, 8, 1};
 *     dp_activation acts[] = {DP_TANH, DP_SIGMOID};
 *     dp_net* net = NULL;
 *     if (dp_net_create(&net, 3, sizes, acts, NULL, DP_LOSS_BINARY_CROSS_ENTROPY, DP_FLOAT32,
 *                       DP_INIT_GLOROT_UNIFORM, 42) != DP_OK) { puts(dp_last_error()); return 1; }
 *     float x[8] = {0,0, 0,1, 1,0, 1,1}, y[4] = {0, 1, 1, 0}, out[4];
 *     dp_sgd sgd = dp_sgd_default(); sgd.lr = 0.5;
 *     for (int e = 0; e < 2000; ++e)
 *         dp_net_train_epoch(net, x, 4, DP_TARGET_VALUES, y, 4, &sgd, 0, NULL, NULL, NULL);
 *     dp_net_predict(net, x, 4, out);
 *     dp_net_destroy(net);
 */
#ifndef DELTAPROP_H
#define DELTAPROP_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(DELTAPROP_SHARED)
#  ifdef DELTAPROP_BUILDING
#    define DP_API __declspec(dllexport)
#  else
#    define DP_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__)
#  define DP_API __attribute__((visibility("default")))
#else
#  define DP_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The version of deltaprop: the one place it is written. CMake (project VERSION, the package version
   file, pkg-config), pyproject.toml (scikit-build-core's regex provider), dp_version() and Python's
   deltaprop.__version__ all read these three lines; keep their form "#define DP_VERSION_X <digits>". */
#define DP_VERSION_MAJOR 0
#define DP_VERSION_MINOR 1
#define DP_VERSION_PATCH 0

typedef struct dp_net dp_net;

typedef enum dp_status {
    DP_OK = 0,
    DP_ERR_INVALID_ARGUMENT = 1, /* a bad shape, value, name or pointer */
    DP_ERR_OUT_OF_MEMORY = 2,
    DP_ERR_IO = 3,               /* a file could not be opened, read, written or renamed */
    DP_ERR_FORMAT = 4,           /* a model file or buffer is truncated, corrupted or foreign */
    DP_ERR_STATE = 5,            /* the call needs an earlier one (e.g. backward from dC/da before forward) */
    DP_ERR_INTERRUPTED = 6,      /* the cancel callback asked to stop */
    DP_ERR_UNSUPPORTED = 7,      /* e.g. a kernel level this CPU lacks */
    DP_ERR_INTERNAL = 8,
    DP_ERR_DIVERGED = 9          /* training produced NaN or infinity; the net is as before that step
                                    (dp_last_divergence tells where) */
} dp_status;

typedef enum dp_dtype { DP_FLOAT32 = 1, DP_FLOAT64 = 2 } dp_dtype;

typedef enum dp_activation {
    DP_IDENTITY = 0,
    DP_SIGMOID = 1,
    DP_TANH = 2,
    DP_RELU = 3,
    DP_LEAKY_RELU = 4, /* slope for z < 0 given per layer, default 0.01 */
    DP_SOFTMAX = 5     /* output layer only */
} dp_activation;

typedef enum dp_loss {
    DP_LOSS_MSE = 0,                  /* C0 = sum_j (a_j - y_j)^2, C = mean of C0 over the batch */
    DP_LOSS_BINARY_CROSS_ENTROPY = 1, /* sigmoid output; summed over outputs, mean over samples */
    DP_LOSS_CROSS_ENTROPY = 2         /* softmax output; one-hot rows or class indices */
} dp_loss;

typedef enum dp_init {
    DP_INIT_GLOROT_UNIFORM = 0, /* U(-e, e), e = sqrt(6 / (n_in + n_out)) */
    DP_INIT_HE_UNIFORM = 1,     /* U(-e, e), e = sqrt(6 / n_in) */
    DP_INIT_HE_NORMAL = 2       /* N(0, 2 / n_in) */
} dp_init;

typedef enum dp_target {
    DP_TARGET_VALUES = 0,  /* y: the net's dtype, [batch, n_out] */
    DP_TARGET_CLASSES = 1  /* y: int64_t [batch], 0 <= y < n_out; cross_entropy (or mse/bce as one-hot) */
} dp_target;

typedef enum dp_kernel_level {
    DP_KERNEL_AUTO = 0, /* DELTAPROP_KERNEL=portable|avx2|avx512 if set (and the CPU has it), else per
                           kernel family (GEMM, elementwise) the fastest build on this CPU, which is not
                           always the widest (AVX2 GEMM on AMD Zen 4) */
    DP_KERNEL_PORTABLE = 1,
    DP_KERNEL_AVX2 = 2,
    DP_KERNEL_AVX512 = 3
} dp_kernel_level;

/* The kernel families, each running its own build (dp_get_kernel_family_level). */
typedef enum dp_kernel_family {
    DP_FAMILY_GEMM_FLOAT32 = 0, /* float32 matrix products */
    DP_FAMILY_ELEMENTWISE = 1,  /* activations, losses, updates (no avx512 build: at most avx2) */
    DP_FAMILY_GEMM_FLOAT64 = 2  /* float64 matrix products */
} dp_kernel_family;

/* Gradient descent. w <- w - lr * u, where g = grad + weight_decay * w,
 * v <- momentum * v + g, u = g + momentum * v (nesterov) or v (momentum > 0) or g (momentum == 0). */
typedef struct dp_sgd {
    double lr;           /* > 0, finite */
    double momentum;     /* in [0, 1) */
    int nesterov;        /* non-zero: Nesterov momentum (needs momentum > 0) */
    double weight_decay; /* >= 0, applied to every parameter in the step */
    double l2;           /* >= 0, the lambda of lambda/(2m) sum W^2 in the loss (weights only) */
} dp_sgd;

/* Called between mini-batches of dp_net_train_epoch; return non-zero to stop (DP_ERR_INTERRUPTED). */
typedef int (*dp_cancel_fn)(void* user);

/* ---- optimizers (PyTorch's rules of the same names; README "Optimizers") ----
 * t counts the optimizer's steps on this net (1 at the first step); g = grad.
 *   SGD:   g += weight_decay w; v = momentum v + g; w -= lr (g | v | g + momentum v), as dp_sgd.
 *   Adam:  g += weight_decay w;                       (L2 penalty folded into the gradient)
 *   AdamW: w *= 1 - lr weight_decay;                  (decoupled weight decay)
 *   both:  m = m + (1 - beta1)(g - m); v = beta2 v + (1 - beta2) g^2; vmax = max(vmax, v) (amsgrad);
 *          w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)      (eps_hat == 0)
 *          w -= lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)        (eps_hat != 0,
 *          Kingma & Ba's efficient form, as Keras and scikit-learn; sqrt(vmax) for v with amsgrad).
 * The state lives in the net beside the parameters, each buffer in the parameter layout:
 *   SGD: [0] momentum buffer (dp_net_velocity); Adam/AdamW: [0] m, [1] v, [2] vmax (amsgrad).
 * A step with an optimizer of another kind than the net's state starts the state afresh (zeros, t = 0). */
typedef enum dp_optimizer_kind { DP_OPTIM_SGD = 0, DP_OPTIM_ADAM = 1, DP_OPTIM_ADAMW = 2 } dp_optimizer_kind;

typedef struct dp_optimizer {
    dp_optimizer_kind kind;
    double lr;           /* > 0, finite */
    double momentum;     /* SGD: in [0, 1) */
    int nesterov;        /* SGD: Nesterov momentum (needs momentum > 0) */
    double weight_decay; /* >= 0 */
    double beta1, beta2; /* Adam/AdamW: each in [0, 1) */
    double eps;          /* Adam/AdamW: > 0 */
    int amsgrad;         /* Adam/AdamW: use the running maximum of v */
    int eps_hat;         /* Adam/AdamW: eps added before the bias correction (see above) */
    double clip_norm;    /* > 0: first scale the whole gradient to at most this global L2 norm, as
                            torch.nn.utils.clip_grad_norm_ (factor clip_norm / (norm + 1e-6)); 0: off */
} dp_optimizer;

/* Learning-rate schedules: the rate of an optimizer step is lr0 (the optimizer's lr) scaled as below,
 * k = the number of units completed in this dp_net_fit call: optimizer steps if per_step, else epochs.
 *   CONSTANT          lr0
 *   INVERSE_SCALING   lr0 / (1 + scale k)^power
 *   STEP              lr0 gamma^floor(k / step_size)
 *   EXPONENTIAL       lr0 gamma^k
 *   COSINE            k < warmup: lr0 (k + 1) / warmup; then with c = k - warmup <= t_max:
 *                     eta_min + (lr0 - eta_min)(1 + cos(pi c / t_max)) / 2; eta_min after t_max
 *   PLATEAU           per epoch: when the monitored value has not improved (by threshold, relative
 *                     unless threshold_abs) for more than patience epochs, lr = max(lr factor, min_lr),
 *                     then cooldown epochs without counting (PyTorch's ReduceLROnPlateau, mode min) */
typedef enum dp_schedule_kind {
    DP_SCHEDULE_CONSTANT = 0,
    DP_SCHEDULE_INVERSE_SCALING = 1,
    DP_SCHEDULE_STEP = 2,
    DP_SCHEDULE_EXPONENTIAL = 3,
    DP_SCHEDULE_COSINE = 4,
    DP_SCHEDULE_PLATEAU = 5
} dp_schedule_kind;

typedef struct dp_schedule {
    dp_schedule_kind kind;
    int per_step;            /* 1: k counts optimizer steps; 0: epochs (PLATEAU: always epochs) */
    double power, scale;     /* INVERSE_SCALING: power >= 0, scale > 0 */
    double gamma;            /* STEP, EXPONENTIAL: in (0, 1]; PLATEAU uses factor */
    size_t step_size;        /* STEP: >= 1 */
    size_t t_max, warmup;    /* COSINE: t_max >= 1 */
    double eta_min;          /* COSINE: in [0, lr0] */
    double factor;           /* PLATEAU: in (0, 1) */
    size_t patience, cooldown;
    double threshold;        /* PLATEAU: >= 0 */
    int threshold_abs;       /* PLATEAU: absolute instead of relative threshold */
    double min_lr;           /* PLATEAU: >= 0 */
} dp_schedule;

/* What early stopping and the PLATEAU schedule watch. AUTO: validation loss with validation data,
 * else the training loss. */
typedef enum dp_monitor {
    DP_MONITOR_AUTO = 0,
    DP_MONITOR_LOSS = 1,
    DP_MONITOR_VAL_LOSS = 2,
    DP_MONITOR_VAL_ACCURACY = 3 /* higher is better; classification losses only */
} dp_monitor;

/* One epoch of dp_net_fit. Values that do not apply are NaN (val_* without validation data;
 * val_accuracy for mse). Accuracy: argmax of the outputs equals the class (cross_entropy), or each
 * output thresholded at 0.5 equals its target thresholded at 0.5 (binary_cross_entropy, over all outputs). */
typedef struct dp_epoch_record {
    size_t epoch;        /* 0-based, counted within the call */
    double loss;         /* weighted mean training loss over the epoch's steps */
    double val_loss, val_accuracy; /* val_loss: the cost as dp_net_loss gives it (l2 term included) */
    double lr;           /* the rate of the epoch's last step */
    double seconds;      /* wall time of the epoch, validation included */
} dp_epoch_record;

typedef struct dp_progress {
    size_t epoch, epochs;     /* 0-based epoch, and the number asked for */
    size_t batch, batches;    /* batches done in this epoch, and per epoch */
    size_t samples;           /* samples done in this epoch */
    double loss;              /* mean loss of the epoch so far */
    double seconds;           /* since the epoch started */
} dp_progress;

typedef int (*dp_epoch_fn)(void* user, const dp_epoch_record* record); /* non-zero: stop training */
typedef void (*dp_progress_fn)(void* user, const dp_progress* progress);

/* ---- data-parallel training (docs/distributed.md) ----
 * The library never talks to other processes: with dp_fit_options.reduce set, dp_net_fit runs one step
 * of every global batch on each of `ranks` processes, hands this process's gradient SUMS (not means) to
 * reduce, which combines them across processes (e.g. with MPI collectives) and hands back the same
 * values on every process; every process then applies the same update.
 *   DP_REDUCE_ORDERED (reproducible): the gradient sums are written to slots of a buffer
 *     [n_slots, num_params]; this process fills slots [first, first + count), reduce fills the others
 *     (a gather: MPI_Allgatherv in place), and every process adds the slots up in slot order. With
 *     replicated data a slot is a chunk of chunk_rows rows of the global batch (chunks are cut by the
 *     batch alone; process r of p owns chunks [C r / p, C (r + 1) / p) of the C chunks), so the result
 *     is bitwise identical for any number of processes and threads; with sharded data a slot is a
 *     process's share (identical on every process, for any threads).
 *   DP_REDUCE_SUM (fast): one slot holding this process's sum (with replicated data, of rows
 *     [b r / p, b (r + 1) / p) of a batch of b rows); reduce replaces it by the sum over all processes
 *     (MPI_Allreduce, MPI_SUM): identical on every process, not across process counts.
 * stats [n_slots, 4] (doubles) go along with the same slots and the same operation: per slot the loss
 * sum and the weight sum (rows, or the sum of the sample weights), then a value reduce may use for
 * itself (deltaprop's Python layer agrees on stopping through it), then 0. The cost of the step is
 * sum(gradients) / sum(weights) + the l2 term. Validation with sharded data calls reduce once per epoch
 * with grads NULL, n_params 0 and stats (loss sum, weight sum, correct, predictions) per slot.
 * reduce returns non-zero to stop training before this step's update (DP_ERR_INTERRUPTED); it must
 * return the same on every process. With reduce set, dp_net_fit does not call cancel between batches
 * (stop through reduce), the divergence guard locates a failure from the reduced values only (so every
 * process stops at the same step), and every process must call dp_net_fit with the same options
 * (except rank, and the data and its size with sharded data). */
typedef enum dp_reduce_kind { DP_REDUCE_ORDERED = 0, DP_REDUCE_SUM = 1 } dp_reduce_kind;

typedef struct dp_reduce_call {
    void* grads;         /* [n_slots, n_params], the net's dtype; NULL for validation statistics */
    double* stats;       /* [n_slots, 4] */
    size_t n_params;
    size_t n_slots;      /* ORDERED: chunks of this batch (replicated) or ranks (sharded); SUM: 1 */
    size_t first, count; /* the slots this process filled */
    size_t batch;        /* the global batch in the epoch (0-based); (size_t)-1 for validation */
} dp_reduce_call;

typedef int (*dp_reduce_fn)(void* reduce_user, const dp_reduce_call* call);

/* Overlap (dp_fit_options.layer_ready, may be NULL): called during each step's backward pass, once per
 * layer as soon as that layer's gradient is final on this process, so that its reduction can start
 * while the layers below are still computed (non-blocking collectives, completed by reduce).
 *   - Layers come from the last (l = L-1) down to 0, each exactly once per step, on every process
 *     (a process with no rows in the step has zeros in its slots and calls it for every layer at once).
 *   - [begin, end) is layer l's range in a slot: W(l) then b(l), contiguous (dp_net_layer_offsets);
 *     in slot k it is grads[k * n_params + begin, k * n_params + end). call is what reduce gets
 *     (grads, n_slots, first, count, batch; stats are not final yet: reduce carries them).
 *   - ORDERED with several slots on this process: the layer is final after the last slot's backward,
 *     so the calls come during the backward pass of the last of them.
 *   - The range may be changed in place (e.g. by a collective receiving into it) until reduce
 *     returns; reduce is then called as without layer_ready and must complete (wait for) everything
 *     started here before it returns. It is called from the thread that called dp_net_fit, never from
 *     a worker of the library's pool, and not for the validation call (grads NULL).
 * It has no return value: a failure must be carried to every process by the step's reduce. */
typedef void (*dp_layer_fn)(void* reduce_user, const dp_reduce_call* call, size_t layer, size_t begin, size_t end);

typedef struct dp_fit_options {
    size_t epochs;
    size_t batch_size;          /* >= 1; larger than n means the full batch */
    int shuffle;                /* reshuffle every epoch with the net's generator */
    double l2;                  /* >= 0: lambda of lambda/(2m) sum W^2 (m = batch size or its weight sum) */
    dp_optimizer optimizer;
    dp_schedule schedule;
    const void* sample_weight;  /* [n] in the net's dtype, each >= 0, or NULL (all 1) */
    /* validation data (x_val NULL: none): x_val [n_val, n_0], y_val as y with val_kind, w_val [n_val] or NULL */
    const void* x_val;
    size_t n_val;
    dp_target val_kind;
    const void* y_val;
    const void* w_val;
    /* early stopping: stop when the monitored value has not improved by more than min_delta for
       patience epochs; restore_best puts back the parameters and optimizer state of the best epoch */
    int early_stopping;
    dp_monitor monitor;
    size_t patience;
    double min_delta;           /* >= 0 */
    int restore_best;
    dp_cancel_fn cancel;        /* between batches and epochs (DP_ERR_INTERRUPTED); may be NULL */
    dp_epoch_fn on_epoch;       /* after each epoch; may be NULL */
    dp_progress_fn on_progress; /* at most once per progress_interval seconds; may be NULL */
    double progress_interval;   /* default 0.1 */
    void* user;                 /* passed to cancel, on_epoch and on_progress */
    /* data-parallel training (above); reduce NULL: this process alone */
    dp_reduce_fn reduce;
    void* reduce_user;
    dp_reduce_kind reduce_kind;
    size_t rank, ranks;         /* this process, 0 <= rank < ranks */
    int sharded;                /* 0: every process passes the same data (replicated) and the global batches
                                   are those of one process; 1: x is this process's shard, cut into
                                   steps_per_epoch contiguous parts of its own shuffle, one per global batch */
    size_t steps_per_epoch;     /* sharded: global batches per epoch, the same on every process */
    size_t chunk_rows;          /* replicated ORDERED: rows per chunk; 0: ceil(batch_size / 8) */
    /* overlap of the reduction with the backward pass (above); NULL (the default): reduce gets the whole
       gradient at the end of the backward pass. Used only with reduce. */
    dp_layer_fn layer_ready;
} dp_fit_options;

typedef struct dp_fit_result {
    size_t epochs_done;  /* records written */
    size_t best_epoch;   /* epoch of the best monitored value (early stopping), else the last */
    int stopped_early;   /* early stopping or on_epoch ended training */
    int interrupted;     /* cancel ended training (the status is then DP_ERR_INTERRUPTED) */
} dp_fit_result;

/* Where training diverged (after DP_ERR_DIVERGED on this thread). */
typedef enum dp_phase { DP_PHASE_FORWARD = 0, DP_PHASE_LOSS = 1, DP_PHASE_BACKWARD = 2, DP_PHASE_UPDATE = 3 } dp_phase;
typedef struct dp_divergence {
    size_t epoch, batch;  /* 0-based; both 0 outside dp_net_fit */
    dp_phase phase;
    size_t layer;         /* 0-based dense layer (0 for the loss phase) */
    size_t unit;          /* first offending output unit of that layer */
} dp_divergence;

/* ---- library ---- */
DP_API const char* dp_version(void);                /* "MAJOR.MINOR.PATCH" of DP_VERSION_* */
DP_API const char* dp_status_string(dp_status status);
DP_API const char* dp_last_error(void);             /* message of the last failure on this thread, "" if none */
DP_API dp_sgd dp_sgd_default(void);                 /* lr 0.01, everything else 0 */
DP_API dp_optimizer dp_optimizer_default(dp_optimizer_kind kind); /* PyTorch's defaults (SGD: lr 0.01) */
DP_API dp_schedule dp_schedule_default(dp_schedule_kind kind);
DP_API dp_fit_options dp_fit_options_default(void);  /* 1 epoch, batch 32, shuffle, SGD lr 0.01, constant */
DP_API dp_status dp_last_divergence(dp_divergence* out); /* DP_ERR_STATE if none on this thread */
/* The rules for an optimizer, and a schedule for the initial rate lr0, without training:
 * DP_ERR_INVALID_ARGUMENT with a message naming the field, as dp_net_fit would return. */
DP_API dp_status dp_optimizer_check(const dp_optimizer* opt);
DP_API dp_status dp_schedule_check(const dp_schedule* schedule, double lr0);

/* n >= 1 threads, or 0 for the default (DELTAPROP_NUM_THREADS, else the cores this process may use). */
DP_API dp_status dp_set_num_threads(int n);
DP_API int dp_get_num_threads(void);
/* Force a kernel level: every kernel family runs its best build at or below it; DP_ERR_UNSUPPORTED if
 * the CPU lacks it. DP_KERNEL_AUTO returns to the start-up choice (see dp_kernel_level). */
DP_API dp_status dp_set_kernel_level(dp_kernel_level level);
/* The level in use, never AUTO: the forced level, or (automatic) the widest build any family runs. */
DP_API dp_kernel_level dp_get_kernel_level(void);
/* The build one kernel family runs now (never AUTO); DP_KERNEL_PORTABLE for an unknown family. */
DP_API dp_kernel_level dp_get_kernel_family_level(dp_kernel_family family);
/* NULL if DELTAPROP_KERNEL and DELTAPROP_NUM_THREADS are unset or valid; else a static message, one line
 * per variable, naming the value that was ignored or clamped and what is used instead. The library
 * never prints it. */
DP_API const char* dp_env_warning(void);

/* ---- lifecycle ---- */
/* sizes [n_sizes] (n_sizes >= 2, each >= 1): n_sizes - 1 dense layers.
 * activations [n_sizes - 1]; slopes [n_sizes - 1] or NULL (leaky_relu slope per layer, 0.01 if NULL).
 * Returns DP_ERR_INVALID_ARGUMENT for softmax off the output layer, cross_entropy without a softmax
 * output, binary_cross_entropy without a sigmoid output. */
DP_API dp_status dp_net_create(dp_net** out, size_t n_sizes, const size_t* sizes,
                               const dp_activation* activations, const double* slopes, dp_loss loss,
                               dp_dtype dtype, dp_init init, uint64_t seed);
DP_API void dp_net_destroy(dp_net* net); /* NULL is a no-op */
DP_API dp_status dp_net_clone(const dp_net* net, dp_net** out); /* deep copy, optimizer and rng state too */
/* Copy the parameters, the optimizer state (kind, step, buffers) and the shuffle generator of src into
 * dst, a net of the same architecture and dtype (DP_ERR_INVALID_ARGUMENT otherwise; dst unchanged). For
 * starting every process of data-parallel training from one process's state (dp_net_save_buffer,
 * a broadcast, dp_net_load_buffer, then this). */
DP_API dp_status dp_net_copy_state(dp_net* dst, const dp_net* src);
/* Reserve the workspace for batches up to max_batch; forward/backward/step then allocate nothing.
 * Calls with a larger batch reserve more on their own. */
DP_API dp_status dp_net_reserve(dp_net* net, size_t max_batch);
/* Re-initialise the parameters (zero biases) from seed, clear momentum, and seed the shuffle generator. */
DP_API dp_status dp_net_init(dp_net* net, dp_init init, uint64_t seed);
/* Seed the generator that dp_net_train_epoch shuffles with. */
DP_API dp_status dp_net_seed(dp_net* net, uint64_t seed);

/* ---- architecture (net must be valid) ---- */
DP_API dp_dtype dp_net_dtype(const dp_net* net);
DP_API dp_loss dp_net_loss_kind(const dp_net* net);
DP_API dp_init dp_net_init_kind(const dp_net* net);            /* the initialisation last used */
DP_API size_t dp_net_num_layers(const dp_net* net);            /* dense layers L = n_sizes - 1 */
DP_API size_t dp_net_size(const dp_net* net, size_t i);        /* width of layer i, 0 <= i <= L; 0 if out of range */
DP_API dp_activation dp_net_activation(const dp_net* net, size_t layer); /* 0 <= layer < L */
DP_API double dp_net_slope(const dp_net* net, size_t layer);
DP_API size_t dp_net_num_params(const dp_net* net);
/* Offsets (in elements) of W(layer) and b(layer) in the parameter buffer. */
DP_API dp_status dp_net_layer_offsets(const dp_net* net, size_t layer, size_t* w_offset, size_t* b_offset);
DP_API void* dp_net_params(dp_net* net);   /* [num_params], the net's dtype */
DP_API void* dp_net_grads(dp_net* net);    /* [num_params] */
DP_API void* dp_net_velocity(dp_net* net); /* [num_params] momentum buffer */

/* ---- compute ---- */
/* Forward pass into the workspace (kept for backward and for inspection). x [batch, n_0];
 * out [batch, n_L] or NULL. */
DP_API dp_status dp_net_forward(dp_net* net, const void* x, size_t batch, void* out);
/* Forward pass that does not touch the workspace: out [batch, n_L]. Thread-safe on one net. */
DP_API dp_status dp_net_predict(const dp_net* net, const void* x, size_t batch, void* out);
/* dp_net_predict with the output buffer asked for once the work is under way: out_for(user) is called
 * once, on the calling thread, after x is validated and the first layers have been handed to the
 * thread pool, and returns out [batch, n_out] (for callers whose buffer takes a while to make). If it
 * returns NULL the call fails with DP_ERR_INVALID_ARGUMENT; nothing is written. */
DP_API dp_status dp_net_predict_into(const dp_net* net, const void* x, size_t batch,
                                     void* (*out_for)(void* user), void* user);
/* Loss of the batch (plus l2/(2*batch) * sum W^2) without touching the workspace. */
DP_API dp_status dp_net_loss(const dp_net* net, const void* x, size_t batch, dp_target kind,
                             const void* y, double l2, double* loss);
/* Forward, loss and backward: fills the gradient buffer with the batch-mean gradient
 * (dW = delta^T x / batch + (l2 / batch) W, db = mean of delta), overwriting it, or adding to it if
 * accumulate is non-zero. loss may be NULL. */
DP_API dp_status dp_net_backward(dp_net* net, const void* x, size_t batch, dp_target kind,
                                 const void* y, double l2, int accumulate, double* loss);
/* Backward from a caller-supplied per-sample dC0/da(L), dc_da [batch, n_L], after dp_net_forward with
 * the same batch. Gradients are the mean over the batch, as for dp_net_backward. */
DP_API dp_status dp_net_backward_output_grad(dp_net* net, const void* dc_da, size_t batch,
                                             int accumulate);
/* One SGD update from the gradient buffer (sgd->l2 is ignored here: it belongs to backward). */
DP_API dp_status dp_net_step(dp_net* net, const dp_sgd* sgd);
/* One epoch of mini-batch SGD over x [n, n_0] and y: shuffled with the net's generator if shuffle,
 * batches of batch_size (the last may be smaller). cancel (may be NULL) is called between batches.
 * mean_loss (may be NULL) receives the sample-weighted mean of the batch losses. */
DP_API dp_status dp_net_train_epoch(dp_net* net, const void* x, size_t n, dp_target kind,
                                    const void* y, size_t batch_size, const dp_sgd* sgd, int shuffle,
                                    dp_cancel_fn cancel, void* user, double* mean_loss);
/* epochs epochs of dp_net_train_epoch, validating x and y once (so the inputs are read once, not once
 * an epoch). losses [epochs] (may be NULL) receives each epoch's mean loss (after an interruption, the
 * interrupted epoch's partial mean at index *epochs_done); epochs_done (may be NULL) the number of
 * complete epochs. cancel is also called between epochs. epochs == 0 validates and trains nothing.
 * Returns DP_OK, DP_ERR_INTERRUPTED (the completed steps kept) or a validation error (nothing changed). */
DP_API dp_status dp_net_train(dp_net* net, const void* x, size_t n, dp_target kind, const void* y,
                              size_t batch_size, const dp_sgd* sgd, int shuffle, size_t epochs,
                              dp_cancel_fn cancel, void* user, double* losses, size_t* epochs_done);

/* ---- weighted losses, optimizers and the full training loop ---- */
/* dp_net_loss and dp_net_backward with per-sample weights sample_weight [batch] (the net's dtype,
 * >= 0, not all 0; NULL: all 1): the cost is sum_i w_i C0_i / sum_i w_i + l2/(2 sum_i w_i) sum W^2, and
 * the gradient that of this cost. With all weights 1 the results equal the unweighted calls bit for bit. */
DP_API dp_status dp_net_loss_weighted(const dp_net* net, const void* x, size_t batch, dp_target kind,
                                      const void* y, const void* sample_weight, double l2, double* loss);
DP_API dp_status dp_net_backward_weighted(dp_net* net, const void* x, size_t batch, dp_target kind,
                                          const void* y, const void* sample_weight, double l2,
                                          int accumulate, double* loss);
/* One update from the gradient buffer with opt (clip_norm applied first). DP_ERR_DIVERGED if the
 * gradient or the updated parameters or state are not finite: nothing changed then. */
DP_API dp_status dp_net_step_with(dp_net* net, const dp_optimizer* opt);
/* dp_net_backward_weighted then dp_net_step_with, guarded: on DP_ERR_DIVERGED (phase forward, loss,
 * backward or update) the parameters and optimizer state are as before the call. loss may be NULL. */
DP_API dp_status dp_net_train_batch(dp_net* net, const void* x, size_t batch, dp_target kind,
                                    const void* y, const void* sample_weight, double l2,
                                    const dp_optimizer* opt, double* loss);
/* The optimizer state: its kind, step count t, and up to 3 buffers [num_params] (see dp_optimizer);
 * buffers[i] is NULL for a buffer the kind does not use. Pointers stay valid for the net's life. */
DP_API dp_status dp_net_optimizer_state(dp_net* net, dp_optimizer_kind* kind, uint64_t* step,
                                        void* buffers[3]);
/* Clears the optimizer state and sets its kind (t = 0). */
DP_API dp_status dp_net_reset_optimizer(dp_net* net, dp_optimizer_kind kind);
/* Training as users of PyTorch/Keras expect: options->epochs epochs of mini-batches with the optimizer
 * and schedule, sample weights, validation each epoch, early stopping, callbacks and a divergence guard,
 * all inside the library (inputs validated once). history [options->epochs] (may be NULL) receives one
 * record per completed epoch; result (may be NULL) what happened. Returns DP_OK, DP_ERR_INTERRUPTED
 * (completed steps kept), DP_ERR_DIVERGED (parameters and optimizer state as before the failing
 * step; history holds the completed epochs) or a validation error (nothing changed). */
DP_API dp_status dp_net_fit(dp_net* net, const void* x, size_t n, dp_target kind, const void* y,
                            const dp_fit_options* options, dp_epoch_record* history,
                            dp_fit_result* result);

/* Workspace of the last dp_net_forward/backward: z, a and delta of layer (0 <= layer < L), each
 * [batch, n_out(layer)]; any pointer argument may be NULL. delta is valid after a backward. */
DP_API dp_status dp_net_workspace(const dp_net* net, size_t layer, const void** z, const void** a,
                                  const void** delta, size_t* batch);

/* ---- model file (docs/model-format.md) ---- */
#define DP_SAVE_OPTIMIZER 1u /* include the optimizer state (kind, step, buffers) and the generator state */
/* Atomic: writes path.tmp-XXXX beside path, syncs it, renames it over path. */
DP_API dp_status dp_net_save(const dp_net* net, const char* path, unsigned flags);
DP_API dp_status dp_net_load(dp_net** out, const char* path);
/* In memory: writes at most capacity bytes to buf (may be NULL), *size receives the bytes needed.
 * DP_ERR_INVALID_ARGUMENT if capacity is too small (nothing written then). */
DP_API dp_status dp_net_save_buffer(const dp_net* net, unsigned flags, void* buf, size_t capacity,
                                    size_t* size);
DP_API dp_status dp_net_load_buffer(dp_net** out, const void* buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* DELTAPROP_H */
