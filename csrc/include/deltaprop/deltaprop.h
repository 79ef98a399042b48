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
    DP_ERR_INTERNAL = 8
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

/* ---- library ---- */
DP_API const char* dp_version(void);                /* "0.1.0" */
DP_API const char* dp_status_string(dp_status status);
DP_API const char* dp_last_error(void);             /* message of the last failure on this thread, "" if none */
DP_API dp_sgd dp_sgd_default(void);                 /* lr 0.01, everything else 0 */

/* n >= 1 threads, or 0 for the default (DELTAPROP_NUM_THREADS, else the cores this process may use). */
DP_API dp_status dp_set_num_threads(int n);
DP_API int dp_get_num_threads(void);
/* Force a kernel level: every kernel family runs its best build at or below it; DP_ERR_UNSUPPORTED if
 * the CPU lacks it. DP_KERNEL_AUTO returns to the start-up choice (see dp_kernel_level). */
DP_API dp_status dp_set_kernel_level(dp_kernel_level level);
/* The level in use, never AUTO: the forced level, or (automatic) the widest build any family runs. */
DP_API dp_kernel_level dp_get_kernel_level(void);
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

/* Workspace of the last dp_net_forward/backward: z, a and delta of layer (0 <= layer < L), each
 * [batch, n_out(layer)]; any pointer argument may be NULL. delta is valid after a backward. */
DP_API dp_status dp_net_workspace(const dp_net* net, size_t layer, const void** z, const void** a,
                                  const void** delta, size_t* batch);

/* ---- model file (docs/model-format.md) ---- */
#define DP_SAVE_OPTIMIZER 1u /* include the momentum buffer and the generator state */
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
