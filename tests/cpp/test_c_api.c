/* SPDX-License-Identifier: MIT */
/* The public C ABI (csrc/include/deltaprop/deltaprop.h), exercised from a file compiled as C99:
 * statuses and messages of every error path (with the net left bit-identical), save/load, the cancel
 * callback, kernel levels, XOR training and bitwise determinism across thread counts. */
#include "deltaprop/deltaprop.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#  define DP_TEST_ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define DP_TEST_ASAN 1
#  endif
#endif
#ifndef DP_TEST_ASAN
#  define DP_TEST_ASAN 0
#endif

/* ---- tiny harness ---- */
static int g_passed = 0, g_failed = 0, g_case_ok = 1;

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            printf("  FAILED line %d: %s\n", __LINE__, #cond);            \
            g_case_ok = 0;                                                \
        }                                                                 \
    } while (0)

#define CHECK_OK(expr)                                                                            \
    do {                                                                                          \
        dp_status st_ = (expr);                                                                   \
        if (st_ != DP_OK) {                                                                       \
            printf("  FAILED line %d: %s -> %s (%s)\n", __LINE__, #expr, dp_status_string(st_),   \
                   dp_last_error());                                                              \
            g_case_ok = 0;                                                                        \
        }                                                                                         \
    } while (0)

static void run(const char* name, void (*fn)(void)) {
    g_case_ok = 1;
    fn();
    printf("%s %s\n", g_case_ok ? "ok  " : "FAIL", name);
    if (g_case_ok)
        ++g_passed;
    else
        ++g_failed;
}

/* ---- buffers in a net's dtype ---- */
static size_t elem_size(dp_dtype dtype) { return dtype == DP_FLOAT64 ? 8 : 4; }

static void* alloc_values(dp_dtype dtype, size_t n) { return calloc(n ? n : 1, elem_size(dtype)); }

static void set_value(void* buf, dp_dtype dtype, size_t i, double v) {
    if (dtype == DP_FLOAT64)
        ((double*)buf)[i] = v;
    else
        ((float*)buf)[i] = (float)v;
}

static double get_value(const void* buf, dp_dtype dtype, size_t i) {
    return dtype == DP_FLOAT64 ? ((const double*)buf)[i] : (double)((const float*)buf)[i];
}

/* Deterministic values in [-1, 1) (splitmix64). */
static uint64_t g_rng = 12345;
static double next_uniform(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
}

static void* random_values(dp_dtype dtype, size_t n) {
    void* buf = alloc_values(dtype, n);
    size_t i;
    for (i = 0; i < n; ++i) set_value(buf, dtype, i, next_uniform());
    return buf;
}

/* ---- snapshots: a failed call must leave params, grads and velocity bit-identical ---- */
typedef struct {
    dp_net* net;
    size_t bytes;
    unsigned char *p, *g, *v;
} snapshot;

static unsigned char* copy_bytes(const void* src, size_t n) {
    unsigned char* d = (unsigned char*)malloc(n ? n : 1);
    if (n) memcpy(d, src, n);
    return d;
}

static void snap_take(snapshot* s, dp_net* net) {
    s->net = net;
    s->bytes = net ? dp_net_num_params(net) * elem_size(dp_net_dtype(net)) : 0;
    s->p = net ? copy_bytes(dp_net_params(net), s->bytes) : NULL;
    s->g = net ? copy_bytes(dp_net_grads(net), s->bytes) : NULL;
    s->v = net ? copy_bytes(dp_net_velocity(net), s->bytes) : NULL;
}

static int snap_same(const snapshot* s) {
    if (!s->net) return 1;
    return memcmp(s->p, dp_net_params(s->net), s->bytes) == 0 &&
           memcmp(s->g, dp_net_grads(s->net), s->bytes) == 0 &&
           memcmp(s->v, dp_net_velocity(s->net), s->bytes) == 0;
}

static void snap_free(snapshot* s) {
    free(s->p);
    free(s->g);
    free(s->v);
}

/* Before each expected failure, leave a known message behind, so we can tell the failing call set its
 * own message (rather than an old one still being there). */
#define SENTINEL "dp-sentinel-no-such-dir"
static int g_sentinel_works = 0;
static void reset_error(void) {
    dp_net* dummy = NULL;
    dp_net_load(&dummy, "/" SENTINEL "/x.dpm");
    dp_net_destroy(dummy);
}

static void check_failure(const snapshot* s, dp_status want, dp_status got, const char* expr, int line) {
    const char* msg = dp_last_error();
    if (got != want) {
        printf("  FAILED line %d: %s -> %s, expected %s\n", line, expr, dp_status_string(got),
               dp_status_string(want));
        g_case_ok = 0;
        return;
    }
    if (!msg || !msg[0] || (g_sentinel_works && strstr(msg, SENTINEL))) {
        printf("  FAILED line %d: %s set no message of its own (\"%s\")\n", line, expr, msg ? msg : "(null)");
        g_case_ok = 0;
    }
    if (!snap_same(s)) {
        printf("  FAILED line %d: %s changed the net's buffers\n", line, expr);
        g_case_ok = 0;
    }
}

#define EXPECT_STATUS(want, net, expr)                          \
    do {                                                        \
        snapshot s_;                                            \
        dp_status st_;                                          \
        snap_take(&s_, (net));                                  \
        reset_error();                                          \
        st_ = (expr);                                           \
        check_failure(&s_, (want), st_, #expr, __LINE__);       \
        snap_free(&s_);                                         \
    } while (0)

#define EXPECT_INVALID(net, expr) EXPECT_STATUS(DP_ERR_INVALID_ARGUMENT, net, expr)

/* ---- nets used by several tests ---- */
static dp_net* make_net(dp_dtype dtype, dp_loss loss, uint64_t seed) {
    /* 3-5-4 (-2 for mse/bce, -3 softmax for cross_entropy) */
    size_t sizes[3] = {3, 5, 2};
    dp_activation acts[2] = {DP_TANH, DP_IDENTITY};
    dp_net* net = NULL;
    if (loss == DP_LOSS_BINARY_CROSS_ENTROPY) acts[1] = DP_SIGMOID;
    if (loss == DP_LOSS_CROSS_ENTROPY) {
        acts[1] = DP_SOFTMAX;
        sizes[2] = 3;
    }
    if (dp_net_create(&net, 3, sizes, acts, NULL, loss, dtype, DP_INIT_GLOROT_UNIFORM, seed) != DP_OK) {
        printf("  cannot create a test net: %s\n", dp_last_error());
        return NULL;
    }
    return net;
}

/* ---- tests ---- */
static void test_library(void) {
    int s;
    const char* seen[9];
    char version[32];
    dp_sgd d = dp_sgd_default();
    /* dp_version() is the header's DP_VERSION_* (tests/test_version.py checks the other copies) */
    snprintf(version, sizeof version, "%d.%d.%d", DP_VERSION_MAJOR, DP_VERSION_MINOR, DP_VERSION_PATCH);
    CHECK(strcmp(dp_version(), version) == 0);
    CHECK(dp_last_error() != NULL && dp_last_error()[0] == '\0'); /* no failure yet on this thread */
    for (s = DP_OK; s <= DP_ERR_INTERNAL; ++s) {
        const char* str = dp_status_string((dp_status)s);
        int k;
        CHECK(str != NULL && str[0] != '\0');
        seen[s] = str;
        for (k = 0; k < s; ++k) CHECK(str && seen[k] && strcmp(str, seen[k]) != 0);
    }
    CHECK(dp_status_string((dp_status)99) != NULL);
    CHECK(d.lr == 0.01 && d.momentum == 0.0 && d.nesterov == 0 && d.weight_decay == 0.0 && d.l2 == 0.0);
    dp_net_destroy(NULL);
    reset_error();
    g_sentinel_works = strstr(dp_last_error(), SENTINEL) != NULL;
    CHECK(dp_last_error()[0] != '\0');
    EXPECT_INVALID(NULL, dp_set_num_threads(-1));
    EXPECT_INVALID(NULL, dp_set_kernel_level((dp_kernel_level)9));
    EXPECT_INVALID(NULL, dp_set_kernel_level((dp_kernel_level)-1));
}

static void test_create_and_architecture(void) {
    size_t sizes[4] = {4, 6, 5, 3};
    dp_activation acts[3] = {DP_RELU, DP_LEAKY_RELU, DP_SOFTMAX};
    double slopes[3] = {0.0, 0.2, 0.0};
    dp_net* net = NULL;
    size_t w = 99, b = 99;
    CHECK_OK(dp_net_create(&net, 4, sizes, acts, slopes, DP_LOSS_CROSS_ENTROPY, DP_FLOAT64,
                           DP_INIT_HE_UNIFORM, 7));
    if (!net) return;
    CHECK(dp_net_dtype(net) == DP_FLOAT64);
    CHECK(dp_net_loss_kind(net) == DP_LOSS_CROSS_ENTROPY);
    CHECK(dp_net_num_layers(net) == 3);
    CHECK(dp_net_size(net, 0) == 4 && dp_net_size(net, 3) == 3 && dp_net_size(net, 4) == 0);
    CHECK(dp_net_activation(net, 1) == DP_LEAKY_RELU && dp_net_activation(net, 2) == DP_SOFTMAX);
    CHECK(dp_net_slope(net, 1) == 0.2);
    CHECK(dp_net_num_params(net) == (size_t)(4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3));
    CHECK_OK(dp_net_layer_offsets(net, 0, &w, &b));
    CHECK(w == 0 && b == 24);
    CHECK_OK(dp_net_layer_offsets(net, 2, &w, &b));
    CHECK(w == 30 + 35 && b == 30 + 35 + 15);
    {
        /* biases start at zero; weights do not */
        const double* p = (const double*)dp_net_params(net);
        int nonzero = 0;
        size_t i;
        for (i = 0; i < 24; ++i) nonzero += p[i] != 0.0;
        CHECK(nonzero > 20);
        for (i = 24; i < 30; ++i) CHECK(p[i] == 0.0);
    }
    {
        /* the same seed gives the same weights; another seed others */
        dp_net* twin = NULL;
        dp_net* other = NULL;
        const size_t bytes = dp_net_num_params(net) * 8;
        CHECK_OK(dp_net_create(&twin, 4, sizes, acts, slopes, DP_LOSS_CROSS_ENTROPY, DP_FLOAT64,
                               DP_INIT_HE_UNIFORM, 7));
        CHECK_OK(dp_net_create(&other, 4, sizes, acts, slopes, DP_LOSS_CROSS_ENTROPY, DP_FLOAT64,
                               DP_INIT_HE_UNIFORM, 8));
        if (twin && other) {
            CHECK(memcmp(dp_net_params(net), dp_net_params(twin), bytes) == 0);
            CHECK(memcmp(dp_net_params(net), dp_net_params(other), bytes) != 0);
        }
        dp_net_destroy(twin);
        dp_net_destroy(other);
    }
    dp_net_destroy(net);
}

static void test_create_errors(void) {
    size_t sizes[3] = {3, 4, 2};
    size_t zero_mid[3] = {3, 0, 2};
    size_t zero_in[3] = {0, 4, 2};
    dp_activation ok_acts[2] = {DP_TANH, DP_IDENTITY};
    dp_activation soft_hidden[2] = {DP_SOFTMAX, DP_SOFTMAX};
    dp_activation sig_out[2] = {DP_TANH, DP_SIGMOID};
    dp_activation soft_out[2] = {DP_TANH, DP_SOFTMAX};
    dp_activation bad_act[2] = {(dp_activation)6, DP_IDENTITY};
    dp_activation neg_act[2] = {DP_TANH, (dp_activation)-1};
    double nan_slopes[2] = {NAN, 0.01};
    double inf_slopes[2] = {0.01, INFINITY};
    dp_net* out = NULL;

    EXPECT_INVALID(NULL, dp_net_create(NULL, 3, sizes, ok_acts, NULL, DP_LOSS_MSE, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, NULL, ok_acts, NULL, DP_LOSS_MSE, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, NULL, NULL, DP_LOSS_MSE, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 0, sizes, ok_acts, NULL, DP_LOSS_MSE, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 1, sizes, ok_acts, NULL, DP_LOSS_MSE, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, zero_mid, ok_acts, NULL, DP_LOSS_MSE, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, zero_in, ok_acts, NULL, DP_LOSS_MSE, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, soft_hidden, NULL, DP_LOSS_CROSS_ENTROPY,
                                       DP_FLOAT32, DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, sig_out, NULL, DP_LOSS_CROSS_ENTROPY, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, soft_out, NULL, DP_LOSS_BINARY_CROSS_ENTROPY,
                                       DP_FLOAT32, DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, ok_acts, NULL, DP_LOSS_BINARY_CROSS_ENTROPY,
                                       DP_FLOAT32, DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, bad_act, NULL, DP_LOSS_MSE, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, neg_act, NULL, DP_LOSS_MSE, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, ok_acts, NULL, (dp_loss)3, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, ok_acts, NULL, (dp_loss)-1, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, ok_acts, NULL, DP_LOSS_MSE, (dp_dtype)0,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, ok_acts, NULL, DP_LOSS_MSE, (dp_dtype)3,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, ok_acts, NULL, DP_LOSS_MSE, DP_FLOAT32,
                                       (dp_init)3, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, ok_acts, nan_slopes, DP_LOSS_MSE, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_create(&out, 3, sizes, ok_acts, inf_slopes, DP_LOSS_MSE, DP_FLOAT32,
                                       DP_INIT_GLOROT_UNIFORM, 1));
#if !DP_TEST_ASAN
    {
        /* 2^48 parameters (1 PiB): refused cleanly, not a crash (ASan would abort on the attempt) */
        size_t huge[3] = {(size_t)1 << 24, (size_t)1 << 24, 1};
        dp_status st;
        reset_error();
        st = dp_net_create(&out, 3, huge, ok_acts, NULL, DP_LOSS_MSE, DP_FLOAT32, DP_INIT_GLOROT_UNIFORM, 1);
        CHECK(st == DP_ERR_OUT_OF_MEMORY || st == DP_ERR_INVALID_ARGUMENT);
        CHECK(dp_last_error()[0] != '\0' && !strstr(dp_last_error(), SENTINEL));
    }
#endif
    CHECK(out == NULL); /* nothing handed out by a failed create */
}

/* Every INVALID_ARGUMENT path of the compute calls, for one dtype. */
static void compute_errors(dp_dtype dtype) {
    dp_net* net = make_net(dtype, DP_LOSS_MSE, 3);
    dp_net* ce = make_net(dtype, DP_LOSS_CROSS_ENTROPY, 4);
    const size_t batch = 4;
    void* x = random_values(dtype, batch * 3);
    void* y = random_values(dtype, batch * 2);
    void* x_nan = random_values(dtype, batch * 3);
    void* x_inf = random_values(dtype, batch * 3);
    void* y_nan = random_values(dtype, batch * 2);
    void* out = alloc_values(dtype, batch * 3);
    void* dc_da = random_values(dtype, batch * 2);
    int64_t classes[4] = {0, 2, 1, 0};
    int64_t too_big[4] = {0, 1, 2, 3};
    int64_t negative[4] = {0, -1, 1, 2};
    dp_sgd sgd = dp_sgd_default();
    dp_sgd bad;
    double loss = 0.0;
    const void *z = NULL, *a = NULL, *delta = NULL;
    size_t wb = 0;
    if (!net || !ce) goto done;
    set_value(x_nan, dtype, 3 * 3 + 2, NAN); /* only in the last row */
    set_value(x_inf, dtype, 1, -INFINITY);
    set_value(y_nan, dtype, 2 * 3 + 1, NAN);

    /* a fresh net has run no forward: backward from dC/da is out of order */
    EXPECT_STATUS(DP_ERR_STATE, net, dp_net_backward_output_grad(net, dc_da, batch, 0));

    /* NULL net */
    EXPECT_INVALID(NULL, dp_net_forward(NULL, x, batch, out));
    EXPECT_INVALID(NULL, dp_net_predict(NULL, x, batch, out));
    EXPECT_INVALID(NULL, dp_net_loss(NULL, x, batch, DP_TARGET_VALUES, y, 0.0, &loss));
    EXPECT_INVALID(NULL, dp_net_backward(NULL, x, batch, DP_TARGET_VALUES, y, 0.0, 0, &loss));
    EXPECT_INVALID(NULL, dp_net_backward_output_grad(NULL, dc_da, batch, 0));
    EXPECT_INVALID(NULL, dp_net_step(NULL, &sgd));
    EXPECT_INVALID(NULL, dp_net_train_epoch(NULL, x, batch, DP_TARGET_VALUES, y, 2, &sgd, 0, NULL, NULL, NULL));
    EXPECT_INVALID(NULL, dp_net_reserve(NULL, 8));
    EXPECT_INVALID(NULL, dp_net_init(NULL, DP_INIT_GLOROT_UNIFORM, 1));
    EXPECT_INVALID(NULL, dp_net_seed(NULL, 1));
    EXPECT_INVALID(NULL, dp_net_layer_offsets(NULL, 0, &wb, &wb));
    EXPECT_INVALID(NULL, dp_net_workspace(NULL, 0, &z, &a, &delta, &wb));

    /* NULL buffers, empty batches, non-finite inputs */
    EXPECT_INVALID(net, dp_net_forward(net, NULL, batch, out));
    EXPECT_INVALID(net, dp_net_forward(net, x, 0, out));
    EXPECT_INVALID(net, dp_net_forward(net, x_nan, batch, out));
    EXPECT_INVALID(net, dp_net_forward(net, x_inf, batch, out));
    EXPECT_INVALID(net, dp_net_predict(net, NULL, batch, out));
    EXPECT_INVALID(net, dp_net_predict(net, x, batch, NULL));
    EXPECT_INVALID(net, dp_net_predict(net, x, 0, out));
    EXPECT_INVALID(net, dp_net_predict(net, x_nan, batch, out));
    EXPECT_INVALID(net, dp_net_loss(net, x, batch, DP_TARGET_VALUES, y, 0.0, NULL));
    EXPECT_INVALID(net, dp_net_loss(net, x, batch, DP_TARGET_VALUES, NULL, 0.0, &loss));
    EXPECT_INVALID(net, dp_net_loss(net, x, 0, DP_TARGET_VALUES, y, 0.0, &loss));
    EXPECT_INVALID(net, dp_net_loss(net, x_nan, batch, DP_TARGET_VALUES, y, 0.0, &loss));
    EXPECT_INVALID(net, dp_net_loss(net, x, batch, DP_TARGET_VALUES, y_nan, 0.0, &loss));
    EXPECT_INVALID(net, dp_net_loss(net, x, batch, (dp_target)2, y, 0.0, &loss));
    EXPECT_INVALID(net, dp_net_loss(net, x, batch, DP_TARGET_VALUES, y, -1.0, &loss));
    EXPECT_INVALID(net, dp_net_loss(net, x, batch, DP_TARGET_VALUES, y, NAN, &loss));
    EXPECT_INVALID(net, dp_net_backward(net, NULL, batch, DP_TARGET_VALUES, y, 0.0, 0, &loss));
    EXPECT_INVALID(net, dp_net_backward(net, x, batch, DP_TARGET_VALUES, NULL, 0.0, 0, &loss));
    EXPECT_INVALID(net, dp_net_backward(net, x, 0, DP_TARGET_VALUES, y, 0.0, 0, &loss));
    EXPECT_INVALID(net, dp_net_backward(net, x_nan, batch, DP_TARGET_VALUES, y, 0.0, 0, &loss));
    EXPECT_INVALID(net, dp_net_backward(net, x, batch, DP_TARGET_VALUES, y_nan, 0.0, 0, &loss));
    EXPECT_INVALID(net, dp_net_backward(net, x, batch, (dp_target)7, y, 0.0, 0, &loss));
    EXPECT_INVALID(net, dp_net_backward(net, x, batch, DP_TARGET_VALUES, y, -0.5, 0, &loss));
    EXPECT_INVALID(net, dp_net_backward(net, x, batch, DP_TARGET_VALUES, y, NAN, 0, &loss));

    /* class indices out of range (cross_entropy net with 3 outputs, and mse as one-hot) */
    CHECK_OK(dp_net_loss(ce, x, batch, DP_TARGET_CLASSES, classes, 0.0, &loss));
    EXPECT_INVALID(ce, dp_net_loss(ce, x, batch, DP_TARGET_CLASSES, too_big, 0.0, &loss));
    EXPECT_INVALID(ce, dp_net_loss(ce, x, batch, DP_TARGET_CLASSES, negative, 0.0, &loss));
    EXPECT_INVALID(ce, dp_net_backward(ce, x, batch, DP_TARGET_CLASSES, too_big, 0.0, 0, &loss));
    EXPECT_INVALID(ce, dp_net_backward(ce, x, batch, DP_TARGET_CLASSES, negative, 0.0, 0, &loss));
    EXPECT_INVALID(ce, dp_net_train_epoch(ce, x, batch, DP_TARGET_CLASSES, too_big, 1, &sgd, 0, NULL, NULL,
                                          NULL));
    EXPECT_INVALID(net, dp_net_backward(net, x, batch, DP_TARGET_CLASSES, classes, 0.0, 0, &loss)); /* 2 >= n_out 2 */

    /* SGD settings */
    CHECK_OK(dp_net_backward(net, x, batch, DP_TARGET_VALUES, y, 0.0, 0, &loss));
    EXPECT_INVALID(net, dp_net_step(net, NULL));
    bad = sgd; bad.lr = 0.0;
    EXPECT_INVALID(net, dp_net_step(net, &bad));
    bad = sgd; bad.lr = -0.1;
    EXPECT_INVALID(net, dp_net_step(net, &bad));
    bad = sgd; bad.lr = NAN;
    EXPECT_INVALID(net, dp_net_step(net, &bad));
    bad = sgd; bad.lr = INFINITY;
    EXPECT_INVALID(net, dp_net_step(net, &bad));
    bad = sgd; bad.momentum = -0.1;
    EXPECT_INVALID(net, dp_net_step(net, &bad));
    bad = sgd; bad.momentum = 1.0;
    EXPECT_INVALID(net, dp_net_step(net, &bad));
    bad = sgd; bad.momentum = NAN;
    EXPECT_INVALID(net, dp_net_step(net, &bad));
    bad = sgd; bad.nesterov = 1; /* momentum 0 */
    EXPECT_INVALID(net, dp_net_step(net, &bad));
    bad = sgd; bad.weight_decay = -1e-4;
    EXPECT_INVALID(net, dp_net_step(net, &bad));
    bad = sgd; bad.weight_decay = NAN;
    EXPECT_INVALID(net, dp_net_step(net, &bad));
    bad = sgd; bad.l2 = -1.0;
    EXPECT_INVALID(net, dp_net_train_epoch(net, x, batch, DP_TARGET_VALUES, y, 2, &bad, 0, NULL, NULL, NULL));
    bad = sgd; bad.lr = 0.0;
    EXPECT_INVALID(net, dp_net_train_epoch(net, x, batch, DP_TARGET_VALUES, y, 2, &bad, 0, NULL, NULL, NULL));
    bad = sgd; bad.momentum = 0.0; bad.nesterov = 1;
    EXPECT_INVALID(net, dp_net_train_epoch(net, x, batch, DP_TARGET_VALUES, y, 2, &bad, 0, NULL, NULL, NULL));

    /* train_epoch arguments; a bad value in the last row must fail before the first step */
    EXPECT_INVALID(net, dp_net_train_epoch(net, NULL, batch, DP_TARGET_VALUES, y, 2, &sgd, 0, NULL, NULL, NULL));
    EXPECT_INVALID(net, dp_net_train_epoch(net, x, batch, DP_TARGET_VALUES, NULL, 2, &sgd, 0, NULL, NULL, NULL));
    EXPECT_INVALID(net, dp_net_train_epoch(net, x, 0, DP_TARGET_VALUES, y, 2, &sgd, 0, NULL, NULL, NULL));
    EXPECT_INVALID(net, dp_net_train_epoch(net, x, batch, DP_TARGET_VALUES, y, 0, &sgd, 0, NULL, NULL, NULL));
    EXPECT_INVALID(net, dp_net_train_epoch(net, x, batch, DP_TARGET_VALUES, y, 2, NULL, 0, NULL, NULL, NULL));
    EXPECT_INVALID(net, dp_net_train_epoch(net, x, batch, (dp_target)5, y, 2, &sgd, 0, NULL, NULL, NULL));
    EXPECT_INVALID(net, dp_net_train_epoch(net, x_nan, batch, DP_TARGET_VALUES, y, 1, &sgd, 0, NULL, NULL, NULL));
    EXPECT_INVALID(net, dp_net_train_epoch(net, x, batch, DP_TARGET_VALUES, y_nan, 1, &sgd, 1, NULL, NULL, NULL));
    /* dp_net_train validates before its first epoch */
    EXPECT_INVALID(net, dp_net_train(net, x_nan, batch, DP_TARGET_VALUES, y, 1, &sgd, 0, 3, NULL, NULL, NULL, NULL));
    EXPECT_INVALID(net, dp_net_train(net, x, batch, DP_TARGET_VALUES, y_nan, 2, &sgd, 1, 3, NULL, NULL, NULL, NULL));
    EXPECT_INVALID(net, dp_net_train(net, x, batch, DP_TARGET_VALUES, y, 0, &sgd, 0, 3, NULL, NULL, NULL, NULL));
    EXPECT_INVALID(net, dp_net_train(net, x, batch, DP_TARGET_VALUES, y, 2, NULL, 0, 3, NULL, NULL, NULL, NULL));
    EXPECT_INVALID(NULL, dp_net_train(NULL, x, batch, DP_TARGET_VALUES, y, 2, &sgd, 0, 3, NULL, NULL, NULL, NULL));

    /* backward from dC/da: after a forward, bad arguments */
    CHECK_OK(dp_net_forward(net, x, batch, out));
    EXPECT_INVALID(net, dp_net_backward_output_grad(net, NULL, batch, 0));
    EXPECT_INVALID(net, dp_net_backward_output_grad(net, dc_da, 0, 0));
    {
        snapshot s;
        dp_status st;
        snap_take(&s, net);
        st = dp_net_backward_output_grad(net, dc_da, batch - 1, 0); /* not the forward's batch */
        CHECK(st == DP_ERR_INVALID_ARGUMENT || st == DP_ERR_STATE);
        CHECK(snap_same(&s));
        snap_free(&s);
    }
    CHECK_OK(dp_net_backward_output_grad(net, dc_da, batch, 0));

    /* layer indices, init enums, flags and capacities */
    EXPECT_INVALID(net, dp_net_layer_offsets(net, 2, &wb, &wb));
    EXPECT_INVALID(net, dp_net_layer_offsets(net, (size_t)-1, &wb, &wb));
    EXPECT_INVALID(net, dp_net_workspace(net, 2, &z, &a, &delta, &wb));
    EXPECT_INVALID(net, dp_net_init(net, (dp_init)3, 1));
    EXPECT_INVALID(net, dp_net_init(net, (dp_init)-1, 1));
    {
        size_t need = 0, got = 0;
        unsigned char* buf;
        size_t i;
        int untouched = 1;
        dp_net* copy = NULL;
        CHECK_OK(dp_net_save_buffer(net, DP_SAVE_OPTIMIZER, NULL, 0, &need)); /* size query */
        CHECK(need > 0);
        buf = (unsigned char*)malloc(need);
        memset(buf, 0xAB, need);
        EXPECT_INVALID(net, dp_net_save_buffer(net, DP_SAVE_OPTIMIZER, buf, need - 1, &got));
        for (i = 0; i < need; ++i) untouched &= buf[i] == 0xAB;
        CHECK(untouched);
        CHECK(got == need); /* the size needed is reported even when the buffer is too small */
        EXPECT_INVALID(net, dp_net_save_buffer(net, DP_SAVE_OPTIMIZER, buf, need, NULL));
        EXPECT_INVALID(net, dp_net_save_buffer(net, 2u, buf, need, &got));
        EXPECT_INVALID(net, dp_net_save(net, "test_c_api_never.dpm", 4u));
        EXPECT_INVALID(net, dp_net_save(net, NULL, 0));
        EXPECT_INVALID(NULL, dp_net_save(NULL, "test_c_api_never.dpm", 0));
        EXPECT_INVALID(NULL, dp_net_save_buffer(NULL, 0, buf, need, &got));
        EXPECT_INVALID(NULL, dp_net_load(NULL, "test_c_api_never.dpm"));
        EXPECT_INVALID(NULL, dp_net_load(&copy, NULL));
        EXPECT_INVALID(NULL, dp_net_load_buffer(NULL, buf, need));
        EXPECT_INVALID(NULL, dp_net_load_buffer(&copy, NULL, need));
        EXPECT_INVALID(NULL, dp_net_clone(net, NULL));
        EXPECT_INVALID(NULL, dp_net_clone(NULL, &copy));
        CHECK(copy == NULL);
        free(buf);
    }
done:
    dp_net_destroy(net);
    dp_net_destroy(ce);
    free(x); free(y); free(x_nan); free(x_inf); free(y_nan); free(out); free(dc_da);
}

static void test_errors_float32(void) { compute_errors(DP_FLOAT32); }
static void test_errors_float64(void) { compute_errors(DP_FLOAT64); }

static void test_io_and_format_errors(void) {
    dp_net* net = make_net(DP_FLOAT32, DP_LOSS_MSE, 5);
    dp_net* loaded = NULL;
    unsigned char garbage[64];
    unsigned char* buf = NULL;
    size_t need = 0, i;
    if (!net) return;
    remove("test_c_api_missing.dpm");
    EXPECT_STATUS(DP_ERR_IO, NULL, dp_net_load(&loaded, "test_c_api_missing.dpm"));
    CHECK(strstr(dp_last_error(), "test_c_api_missing.dpm") != NULL);
    EXPECT_STATUS(DP_ERR_IO, net, dp_net_save(net, "test_c_api_no_such_dir/net.dpm", 0));
    CHECK(strstr(dp_last_error(), "test_c_api_no_such_dir") != NULL);
    for (i = 0; i < sizeof garbage; ++i) garbage[i] = (unsigned char)(i * 37 + 11);
    EXPECT_STATUS(DP_ERR_FORMAT, NULL, dp_net_load_buffer(&loaded, garbage, sizeof garbage));
    EXPECT_STATUS(DP_ERR_FORMAT, NULL, dp_net_load_buffer(&loaded, garbage, 0));
    CHECK_OK(dp_net_save_buffer(net, 0, NULL, 0, &need));
    buf = (unsigned char*)malloc(need);
    CHECK_OK(dp_net_save_buffer(net, 0, buf, need, &need));
    for (i = 0; i < need; i += 7) EXPECT_STATUS(DP_ERR_FORMAT, NULL, dp_net_load_buffer(&loaded, buf, i));
    EXPECT_STATUS(DP_ERR_FORMAT, NULL, dp_net_load_buffer(&loaded, buf, need - 1));
    buf[need / 2] ^= 0x10;
    EXPECT_STATUS(DP_ERR_FORMAT, NULL, dp_net_load_buffer(&loaded, buf, need));
    buf[need / 2] ^= 0x10;
    CHECK_OK(dp_net_load_buffer(&loaded, buf, need));
    dp_net_destroy(loaded);
    loaded = NULL;
    {
        /* a garbage file on disk is a format error, not an I/O error */
        FILE* f = fopen("test_c_api_garbage.dpm", "wb");
        CHECK(f != NULL);
        if (f) {
            fwrite(garbage, 1, sizeof garbage, f);
            fclose(f);
            EXPECT_STATUS(DP_ERR_FORMAT, NULL, dp_net_load(&loaded, "test_c_api_garbage.dpm"));
            remove("test_c_api_garbage.dpm");
        }
    }
    CHECK(loaded == NULL);
    free(buf);
    dp_net_destroy(net);
}

/* ---- cancel callback ---- */
typedef struct {
    dp_net* net;
    int calls;
    int stop_at;       /* return 1 on this call */
    size_t bytes;
    unsigned char* at_stop; /* params when the callback asked to stop */
} cancel_state;

static int cancel_cb(void* user) {
    cancel_state* c = (cancel_state*)user;
    ++c->calls;
    if (c->calls == c->stop_at) {
        c->at_stop = copy_bytes(dp_net_params(c->net), c->bytes);
        return 1;
    }
    return 0;
}

static void test_cancel(void) {
    const dp_dtype dtype = DP_FLOAT64;
    dp_net* net = make_net(dtype, DP_LOSS_MSE, 11);
    dp_net* ref = NULL;
    const size_t n = 8, bs = 2;
    void* x = random_values(dtype, n * 3);
    void* y = random_values(dtype, n * 2);
    dp_sgd sgd = dp_sgd_default();
    cancel_state c;
    unsigned char* before;
    size_t bytes, k;
    int matched = -1;
    double mean_loss = 0.0;
    dp_status st;
    if (!net) return;
    sgd.lr = 0.1;
    sgd.momentum = 0.5;
    bytes = dp_net_num_params(net) * elem_size(dtype);
    before = copy_bytes(dp_net_params(net), bytes);
    CHECK_OK(dp_net_clone(net, &ref));
    c.net = net;
    c.calls = 0;
    c.stop_at = 3;
    c.bytes = bytes;
    c.at_stop = NULL;
    st = dp_net_train_epoch(net, x, n, DP_TARGET_VALUES, y, bs, &sgd, 0, cancel_cb, &c, &mean_loss);
    CHECK(st == DP_ERR_INTERRUPTED);
    CHECK(dp_last_error()[0] != '\0');
    CHECK(c.calls == 3); /* not called again after asking to stop */
    CHECK(c.at_stop != NULL);
    if (c.at_stop && ref) {
        /* nothing changed after the stop, and the completed steps are kept (not rolled back) */
        CHECK(memcmp(c.at_stop, dp_net_params(net), bytes) == 0);
        CHECK(memcmp(before, dp_net_params(net), bytes) != 0);
        /* the kept weights are those of k whole steps, k = 2 or 3 depending on whether the callback
         * also runs before the first batch: replay the batches by hand with backward + step */
        for (k = 0; k < n / bs; ++k) {
            const char* xb = (const char*)x + k * bs * 3 * elem_size(dtype);
            const char* yb = (const char*)y + k * bs * 2 * elem_size(dtype);
            CHECK_OK(dp_net_backward(ref, xb, bs, DP_TARGET_VALUES, yb, sgd.l2, 0, NULL));
            CHECK_OK(dp_net_step(ref, &sgd));
            if (memcmp(dp_net_params(ref), dp_net_params(net), bytes) == 0) matched = (int)k + 1;
        }
        CHECK(matched == 2 || matched == 3);
    }
    /* a callback that never stops lets the epoch finish */
    c.calls = 0;
    c.stop_at = -1;
    CHECK_OK(dp_net_train_epoch(net, x, n, DP_TARGET_VALUES, y, bs, &sgd, 1, cancel_cb, &c, &mean_loss));
    CHECK(c.calls >= 3);
    CHECK(mean_loss > 0.0 && isfinite(mean_loss));
    free(c.at_stop);
    free(before);
    free(x);
    free(y);
    dp_net_destroy(ref);
    dp_net_destroy(net);
}

/* dp_net_train over E epochs is E calls of dp_net_train_epoch, bit for bit (losses too); a cancel
 * between epochs reports the complete epochs. */
static void test_train_epochs(void) {
    const dp_dtype dtype = DP_FLOAT32;
    dp_net* net = make_net(dtype, DP_LOSS_MSE, 17);
    dp_net* ref = NULL;
    const size_t n = 10, bs = 3, epochs = 4;
    void* x = random_values(dtype, n * 3);
    void* y = random_values(dtype, n * 2);
    dp_sgd sgd = dp_sgd_default();
    double losses[4] = {0, 0, 0, 0}, loss = 0.0;
    size_t done = 99, e, bytes;
    cancel_state c;
    if (!net) return;
    sgd.lr = 0.05;
    sgd.momentum = 0.9;
    bytes = dp_net_num_params(net) * elem_size(dtype);
    CHECK_OK(dp_net_clone(net, &ref));
    if (!ref) goto done;
    CHECK_OK(dp_net_seed(net, 5));
    CHECK_OK(dp_net_seed(ref, 5));
    CHECK_OK(dp_net_train(net, x, n, DP_TARGET_VALUES, y, bs, &sgd, 1, epochs, NULL, NULL, losses, &done));
    CHECK(done == epochs);
    for (e = 0; e < epochs; ++e) {
        CHECK_OK(dp_net_train_epoch(ref, x, n, DP_TARGET_VALUES, y, bs, &sgd, 1, NULL, NULL, &loss));
        CHECK(loss == losses[e]);
    }
    CHECK(losses[epochs - 1] < losses[0]);
    CHECK(memcmp(dp_net_params(ref), dp_net_params(net), bytes) == 0);
    CHECK(memcmp(dp_net_velocity(ref), dp_net_velocity(net), bytes) == 0);
    /* zero epochs: validates, changes nothing */
    CHECK_OK(dp_net_train(net, x, n, DP_TARGET_VALUES, y, bs, &sgd, 1, 0, NULL, NULL, NULL, &done));
    CHECK(done == 0);
    CHECK(memcmp(dp_net_params(ref), dp_net_params(net), bytes) == 0);
    /* a cancel on the 2nd call (batches of 10 = 1 per epoch: calls come between epochs) */
    c.net = net;
    c.calls = 0;
    c.stop_at = 2;
    c.bytes = bytes;
    c.at_stop = NULL;
    CHECK(dp_net_train(net, x, n, DP_TARGET_VALUES, y, n, &sgd, 0, epochs, cancel_cb, &c, NULL, &done) ==
          DP_ERR_INTERRUPTED);
    CHECK(done == 2);
    CHECK(c.calls == 2);
    free(c.at_stop);
done:
    free(x);
    free(y);
    dp_net_destroy(ref);
    dp_net_destroy(net);
}

static void test_kernel_levels(void) {
    dp_kernel_level level;
    int supported = 0;
    CHECK_OK(dp_set_kernel_level(DP_KERNEL_AUTO));
    CHECK(dp_get_kernel_level() != DP_KERNEL_AUTO);
    for (level = DP_KERNEL_PORTABLE; level <= DP_KERNEL_AVX512; level = (dp_kernel_level)(level + 1)) {
        dp_status st = dp_set_kernel_level(level);
        CHECK(st == DP_OK || st == DP_ERR_UNSUPPORTED);
        if (st == DP_OK) {
            ++supported;
            CHECK(dp_get_kernel_level() == level);
        } else {
            CHECK(dp_last_error()[0] != '\0');
        }
    }
    CHECK(dp_set_kernel_level(DP_KERNEL_PORTABLE) == DP_OK); /* always available */
    CHECK(supported >= 1);
    CHECK_OK(dp_set_kernel_level(DP_KERNEL_AUTO));
}

static int same_predictions(dp_net* a, dp_net* b, const void* x, size_t batch) {
    const dp_dtype dtype = dp_net_dtype(a);
    const size_t n_out = dp_net_size(a, dp_net_num_layers(a));
    void* pa = alloc_values(dtype, batch * n_out);
    void* pb = alloc_values(dtype, batch * n_out);
    int same = dp_net_predict(a, x, batch, pa) == DP_OK && dp_net_predict(b, x, batch, pb) == DP_OK &&
               memcmp(pa, pb, batch * n_out * elem_size(dtype)) == 0;
    free(pa);
    free(pb);
    return same;
}

static long file_size(const char* path) {
    long n = -1;
    FILE* f = fopen(path, "rb");
    if (!f) return -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    fclose(f);
    return n;
}

static void save_load_round_trip(dp_dtype dtype, dp_loss loss) {
    dp_net* net = make_net(dtype, loss, 21);
    dp_net *from_file = NULL, *from_buf = NULL, *again = NULL;
    const size_t batch = 9;
    void* x = random_values(dtype, batch * 3);
    void* y = random_values(dtype, batch * 3);
    int64_t classes[9] = {0, 1, 2, 2, 1, 0, 0, 1, 2};
    const dp_target kind = loss == DP_LOSS_CROSS_ENTROPY ? DP_TARGET_CLASSES : DP_TARGET_VALUES;
    const void* target = kind == DP_TARGET_CLASSES ? (const void*)classes : y;
    dp_sgd sgd = dp_sgd_default();
    size_t bytes, need = 0, i;
    unsigned char* buf;
    if (!net) goto done;
    for (i = 0; i < batch * 3; ++i) set_value(y, dtype, i, 0.5 + 0.4 * get_value(y, dtype, i));
    sgd.lr = 0.05;
    sgd.momentum = 0.9;
    /* train a little so that the velocity and the generator have moved */
    for (i = 0; i < 3; ++i)
        CHECK_OK(dp_net_train_epoch(net, x, batch, kind, target, 4, &sgd, 1, NULL, NULL, NULL));
    bytes = dp_net_num_params(net) * elem_size(dtype);

    CHECK_OK(dp_net_save(net, "test_c_api_model.dpm", DP_SAVE_OPTIMIZER));
    CHECK_OK(dp_net_save(net, "test_c_api_model.dpm", DP_SAVE_OPTIMIZER)); /* over an existing file */
    CHECK_OK(dp_net_load(&from_file, "test_c_api_model.dpm"));
    CHECK_OK(dp_net_save_buffer(net, DP_SAVE_OPTIMIZER, NULL, 0, &need));
    CHECK(file_size("test_c_api_model.dpm") == (long)need);
    buf = (unsigned char*)malloc(need);
    CHECK_OK(dp_net_save_buffer(net, DP_SAVE_OPTIMIZER, buf, need, &need));
    CHECK_OK(dp_net_load_buffer(&from_buf, buf, need));
    if (from_file && from_buf) {
        CHECK(dp_net_dtype(from_file) == dtype && dp_net_loss_kind(from_file) == loss);
        CHECK(dp_net_num_layers(from_file) == 2 && dp_net_size(from_file, 2) == dp_net_size(net, 2));
        CHECK(dp_net_activation(from_file, 0) == DP_TANH);
        CHECK(memcmp(dp_net_params(from_file), dp_net_params(net), bytes) == 0);
        CHECK(memcmp(dp_net_velocity(from_file), dp_net_velocity(net), bytes) == 0);
        CHECK(memcmp(dp_net_params(from_buf), dp_net_params(net), bytes) == 0);
        CHECK(same_predictions(net, from_file, x, batch));
        CHECK(same_predictions(net, from_buf, x, batch));
        /* with optimizer and generator state, training continues identically (shuffled) */
        CHECK_OK(dp_net_train_epoch(net, x, batch, kind, target, 4, &sgd, 1, NULL, NULL, NULL));
        CHECK_OK(dp_net_train_epoch(from_file, x, batch, kind, target, 4, &sgd, 1, NULL, NULL, NULL));
        CHECK(memcmp(dp_net_params(from_file), dp_net_params(net), bytes) == 0);
    }
    /* without the optimizer: same predictions, smaller file, zero velocity */
    {
        size_t small = 0;
        CHECK_OK(dp_net_save_buffer(net, 0, NULL, 0, &small));
        CHECK(small + bytes + 32 == need);
        CHECK_OK(dp_net_save(net, "test_c_api_model.dpm", 0));
        CHECK_OK(dp_net_load(&again, "test_c_api_model.dpm"));
        if (again) {
            unsigned char* zero = (unsigned char*)calloc(bytes, 1);
            CHECK(same_predictions(net, again, x, batch));
            CHECK(memcmp(dp_net_velocity(again), zero, bytes) == 0);
            free(zero);
        }
    }
    remove("test_c_api_model.dpm");
    free(buf);
done:
    dp_net_destroy(net);
    dp_net_destroy(from_file);
    dp_net_destroy(from_buf);
    dp_net_destroy(again);
    free(x);
    free(y);
}

static void test_save_load(void) {
    save_load_round_trip(DP_FLOAT32, DP_LOSS_MSE);
    save_load_round_trip(DP_FLOAT64, DP_LOSS_MSE);
    save_load_round_trip(DP_FLOAT32, DP_LOSS_CROSS_ENTROPY);
    save_load_round_trip(DP_FLOAT64, DP_LOSS_BINARY_CROSS_ENTROPY);
}

static void test_clone(void) {
    dp_net* net = make_net(DP_FLOAT32, DP_LOSS_MSE, 31);
    dp_net* copy = NULL;
    void* x = random_values(DP_FLOAT32, 5 * 3);
    void* y = random_values(DP_FLOAT32, 5 * 2);
    dp_sgd sgd = dp_sgd_default();
    size_t bytes;
    unsigned char* before;
    if (!net) return;
    bytes = dp_net_num_params(net) * 4;
    CHECK_OK(dp_net_clone(net, &copy));
    if (!copy) goto done;
    before = copy_bytes(dp_net_params(net), bytes);
    CHECK(same_predictions(net, copy, x, 5));
    CHECK_OK(dp_net_train_epoch(copy, x, 5, DP_TARGET_VALUES, y, 2, &sgd, 1, NULL, NULL, NULL));
    CHECK(memcmp(before, dp_net_params(net), bytes) == 0);
    CHECK(memcmp(before, dp_net_params(copy), bytes) != 0);
    free(before);
done:
    dp_net_destroy(copy);
    dp_net_destroy(net);
    free(x);
    free(y);
}

static void test_workspace_and_output_grad(void) {
    dp_net* net = make_net(DP_FLOAT64, DP_LOSS_MSE, 41);
    dp_net* twin = NULL;
    const size_t batch = 6;
    void* x = random_values(DP_FLOAT64, batch * 3);
    void* y = random_values(DP_FLOAT64, batch * 2);
    double out[12], dc_da[12], loss = 0.0;
    const void *z = NULL, *a = NULL;
    size_t wb = 0, i, bytes;
    if (!net) return;
    CHECK_OK(dp_net_clone(net, &twin));
    CHECK_OK(dp_net_forward(net, x, batch, out));
    CHECK_OK(dp_net_workspace(net, 1, &z, &a, NULL, &wb));
    CHECK(wb == batch && a != NULL);
    if (a) CHECK(memcmp(a, out, sizeof out) == 0);
    /* mse: dC0/da = 2 (a - y); backward from it equals backward from the targets */
    for (i = 0; i < batch * 2; ++i) dc_da[i] = 2.0 * (out[i] - ((double*)y)[i]);
    CHECK_OK(dp_net_backward_output_grad(net, dc_da, batch, 0));
    CHECK_OK(dp_net_backward(twin, x, batch, DP_TARGET_VALUES, y, 0.0, 0, &loss));
    bytes = dp_net_num_params(net) * 8;
    if (twin) {
        const double* g1 = (const double*)dp_net_grads(net);
        const double* g2 = (const double*)dp_net_grads(twin);
        double worst = 0.0;
        for (i = 0; i < bytes / 8; ++i) {
            const double d = fabs(g1[i] - g2[i]);
            if (d > worst) worst = d;
        }
        CHECK(worst < 1e-12);
    }
    dp_net_destroy(twin);
    dp_net_destroy(net);
    free(x);
    free(y);
}

static void test_xor(void) {
    size_t sizes[3] = {2, 8, 1};
    dp_activation acts[2] = {DP_TANH, DP_SIGMOID};
    float x[8] = {0, 0, 0, 1, 1, 0, 1, 1}, y[4] = {0, 1, 1, 0}, out[4];
    dp_net* net = NULL;
    dp_sgd sgd = dp_sgd_default();
    double loss = 1.0;
    int e, i, correct = 0;
    sgd.lr = 0.5;
    CHECK_OK(dp_net_create(&net, 3, sizes, acts, NULL, DP_LOSS_BINARY_CROSS_ENTROPY, DP_FLOAT32,
                           DP_INIT_GLOROT_UNIFORM, 42));
    if (!net) return;
    for (e = 0; e < 3000; ++e)
        CHECK_OK(dp_net_train_epoch(net, x, 4, DP_TARGET_VALUES, y, 4, &sgd, 0, NULL, NULL, &loss));
    CHECK_OK(dp_net_predict(net, x, 4, out));
    for (i = 0; i < 4; ++i) correct += (out[i] > 0.5f) == (y[i] > 0.5f);
    printf("  xor: loss %.5f, outputs %.3f %.3f %.3f %.3f\n", loss, out[0], out[1], out[2], out[3]);
    CHECK(correct == 4);
    CHECK(loss < 0.1);
    dp_net_destroy(net);
}

/* Train one net per thread count; the parameters must be bitwise identical. */
static unsigned char* train_with_threads(int threads, dp_dtype dtype, size_t* bytes) {
    /* large enough that the kernels split the work; odd widths and a short last batch (509 = 5*100+9) */
    size_t sizes[4] = {100, 257, 129, 10};
    dp_activation acts[3] = {DP_RELU, DP_TANH, DP_SOFTMAX};
    const size_t n = 509;
    dp_net* net = NULL;
    void* x;
    int64_t* y = (int64_t*)malloc(n * sizeof(int64_t));
    dp_sgd sgd = dp_sgd_default();
    unsigned char* result = NULL;
    size_t i;
    int e;
    g_rng = 777;
    x = random_values(dtype, n * 100);
    for (i = 0; i < n; ++i) y[i] = (int64_t)(i * 7 % 10);
    sgd.lr = 0.05;
    sgd.momentum = 0.9;
    sgd.nesterov = 1;
    sgd.weight_decay = 1e-4;
    sgd.l2 = 0.01;
    CHECK_OK(dp_set_num_threads(threads));
    CHECK(dp_get_num_threads() == threads);
    CHECK_OK(dp_net_create(&net, 4, sizes, acts, NULL, DP_LOSS_CROSS_ENTROPY, dtype, DP_INIT_HE_UNIFORM, 5));
    if (net) {
        for (e = 0; e < 2; ++e)
            CHECK_OK(dp_net_train_epoch(net, x, n, DP_TARGET_CLASSES, y, 100, &sgd, 1, NULL, NULL, NULL));
        *bytes = dp_net_num_params(net) * elem_size(dtype);
        result = copy_bytes(dp_net_params(net), *bytes);
    }
    dp_net_destroy(net);
    free(x);
    free(y);
    return result;
}

static void test_threads_deterministic(void) {
    dp_dtype dtype;
    for (dtype = DP_FLOAT32; dtype <= DP_FLOAT64; dtype = (dp_dtype)(dtype + 1)) {
        size_t b1 = 0, b2 = 0;
        unsigned char* one = train_with_threads(1, dtype, &b1);
        unsigned char* two = train_with_threads(2, dtype, &b2);
        CHECK(one && two && b1 == b2);
        if (one && two && b1 == b2) CHECK(memcmp(one, two, b1) == 0);
        free(one);
        free(two);
    }
    CHECK_OK(dp_set_num_threads(0));
    CHECK(dp_get_num_threads() >= 1);
}

/* dp_net_predict_into: the same outputs as dp_net_predict, bit for bit (batch 1 through a layer pair
 * whose work starts before the buffer is asked for, and larger batches), with 1 and 2 threads; the
 * callback runs once, after validation; a NULL buffer fails the call. */
typedef struct {
    void* buf;
    int calls;
} into_ctx;
static void* give_buffer(void* user) {
    into_ctx* c = (into_ctx*)user;
    ++c->calls;
    return c->buf;
}

static void test_predict_into(void) {
    const size_t sizes[4] = {784, 256, 128, 10};
    const dp_activation acts[3] = {DP_RELU, DP_TANH, DP_SOFTMAX};
    const size_t batches[3] = {1, 2, 5};
    int threads;
    dp_dtype dtype;
    for (dtype = DP_FLOAT32; dtype <= DP_FLOAT64; dtype = (dp_dtype)(dtype + 1)) {
        dp_net* net = NULL;
        CHECK_OK(dp_net_create(&net, 4, sizes, acts, NULL, DP_LOSS_CROSS_ENTROPY, dtype, DP_INIT_HE_NORMAL, 3));
        if (!net) continue;
        for (threads = 1; threads <= 2; ++threads) {
            size_t b;
            CHECK_OK(dp_set_num_threads(threads));
            for (b = 0; b < 3; ++b) {
                const size_t batch = batches[b], n = batch * 10;
                void* x = random_values(dtype, batch * 784);
                void* want = alloc_values(dtype, n);
                void* got = alloc_values(dtype, n);
                into_ctx c;
                c.buf = got;
                c.calls = 0;
                CHECK_OK(dp_net_predict(net, x, batch, want));
                CHECK_OK(dp_net_predict_into(net, x, batch, give_buffer, &c));
                CHECK(c.calls == 1);
                CHECK(memcmp(want, got, n * elem_size(dtype)) == 0);
                /* a NULL buffer: the call fails, after the one request */
                c.buf = NULL;
                c.calls = 0;
                CHECK(dp_net_predict_into(net, x, batch, give_buffer, &c) == DP_ERR_INVALID_ARGUMENT);
                CHECK(c.calls == 1);
                /* invalid input: fails before asking */
                set_value(x, dtype, batch * 784 - 1, NAN);
                CHECK(dp_net_predict_into(net, x, batch, give_buffer, &c) == DP_ERR_INVALID_ARGUMENT);
                CHECK(c.calls == 1);
                CHECK(dp_net_predict_into(net, x, batch, NULL, &c) == DP_ERR_INVALID_ARGUMENT);
                free(x);
                free(want);
                free(got);
            }
        }
        dp_net_destroy(net);
    }
    CHECK_OK(dp_set_num_threads(0));
}

/* ==== training API of issue 11: optimizers, weighted losses, dp_net_fit, the divergence guard ==== */

/* A 3-5-2 float64 mse net, x [n, 3] and y [n, 2] in [-1, 1). */
static void train_data(size_t n, double** x, double** y) {
    *x = (double*)random_values(DP_FLOAT64, n * 3);
    *y = (double*)random_values(DP_FLOAT64, n * 2);
}

static int same_state(dp_net* a, dp_net* b) {
    dp_optimizer_kind ka, kb;
    uint64_t sa, sb;
    void *ba[3], *bb[3];
    size_t bytes = dp_net_num_params(a) * elem_size(dp_net_dtype(a));
    int i;
    if (dp_net_optimizer_state(a, &ka, &sa, ba) != DP_OK || dp_net_optimizer_state(b, &kb, &sb, bb) != DP_OK)
        return 0;
    if (ka != kb || sa != sb) return 0;
    if (memcmp(dp_net_params(a), dp_net_params(b), bytes) != 0) return 0;
    for (i = 0; i < 3; ++i) {
        if ((ba[i] == NULL) != (bb[i] == NULL)) return 0;
        if (ba[i] && memcmp(ba[i], bb[i], bytes) != 0) return 0;
    }
    return 1;
}

/* Copies of the params and the 3 optimizer buffers, to compare after a failing call. */
typedef struct {
    size_t bytes;
    dp_optimizer_kind kind;
    uint64_t step;
    unsigned char* p;
    unsigned char* b[3];
} opt_snapshot;

static void opt_snap_take(opt_snapshot* s, dp_net* net) {
    void* bufs[3];
    int i;
    s->bytes = dp_net_num_params(net) * elem_size(dp_net_dtype(net));
    dp_net_optimizer_state(net, &s->kind, &s->step, bufs);
    s->p = copy_bytes(dp_net_params(net), s->bytes);
    for (i = 0; i < 3; ++i) s->b[i] = bufs[i] ? copy_bytes(bufs[i], s->bytes) : NULL;
}

static int opt_snap_same(const opt_snapshot* s, dp_net* net) {
    void* bufs[3];
    dp_optimizer_kind kind;
    uint64_t step;
    int i;
    if (dp_net_optimizer_state(net, &kind, &step, bufs) != DP_OK) return 0;
    if (kind != s->kind || step != s->step || memcmp(s->p, dp_net_params(net), s->bytes) != 0) return 0;
    for (i = 0; i < 3; ++i) {
        if ((bufs[i] == NULL) != (s->b[i] == NULL)) return 0;
        if (bufs[i] && memcmp(bufs[i], s->b[i], s->bytes) != 0) return 0;
    }
    return 1;
}

static void opt_snap_free(opt_snapshot* s) {
    int i;
    free(s->p);
    for (i = 0; i < 3; ++i) free(s->b[i]);
}

static void test_optimizer_defaults_and_checks(void) {
    dp_optimizer sgd = dp_optimizer_default(DP_OPTIM_SGD), adam = dp_optimizer_default(DP_OPTIM_ADAM);
    dp_optimizer adamw = dp_optimizer_default(DP_OPTIM_ADAMW), bad;
    dp_schedule cos = dp_schedule_default(DP_SCHEDULE_COSINE);
    dp_fit_options fo = dp_fit_options_default();
    CHECK(sgd.kind == DP_OPTIM_SGD && sgd.lr == 0.01 && sgd.momentum == 0.0 && sgd.clip_norm == 0.0);
    CHECK(adam.kind == DP_OPTIM_ADAM && adam.lr == 1e-3 && adam.beta1 == 0.9 && adam.beta2 == 0.999 &&
          adam.eps == 1e-8 && adam.weight_decay == 0.0 && adam.amsgrad == 0 && adam.eps_hat == 0);
    CHECK(adamw.kind == DP_OPTIM_ADAMW && adamw.weight_decay == 1e-2);
    CHECK(fo.epochs == 1 && fo.batch_size == 32 && fo.shuffle && fo.optimizer.kind == DP_OPTIM_SGD &&
          fo.optimizer.lr == 0.01 && fo.schedule.kind == DP_SCHEDULE_CONSTANT);
    CHECK_OK(dp_optimizer_check(&sgd));
    CHECK_OK(dp_optimizer_check(&adam));
    CHECK_OK(dp_optimizer_check(&adamw));
    bad = adam;
    bad.beta1 = 1.0;
    EXPECT_INVALID(NULL, dp_optimizer_check(&bad));
    CHECK(strstr(dp_last_error(), "beta") != NULL); /* "betas[0]", the Python name */
    bad = adam;
    bad.eps = 0.0;
    EXPECT_INVALID(NULL, dp_optimizer_check(&bad));
    CHECK(strstr(dp_last_error(), "eps") != NULL);
    bad = sgd;
    bad.lr = -1.0;
    EXPECT_INVALID(NULL, dp_optimizer_check(&bad));
    CHECK(strstr(dp_last_error(), "lr") != NULL);
    bad = sgd;
    bad.clip_norm = -1.0;
    EXPECT_INVALID(NULL, dp_optimizer_check(&bad));
    CHECK(strstr(dp_last_error(), "clip_norm") != NULL);
    bad = sgd;
    bad.kind = (dp_optimizer_kind)7;
    EXPECT_INVALID(NULL, dp_optimizer_check(&bad));
    EXPECT_INVALID(NULL, dp_optimizer_check(NULL));
    cos.t_max = 10;
    CHECK_OK(dp_schedule_check(&cos, 0.1));
    cos.eta_min = 0.5; /* above lr0 */
    EXPECT_INVALID(NULL, dp_schedule_check(&cos, 0.1));
    CHECK(strstr(dp_last_error(), "eta_min") != NULL);
    cos.eta_min = 0.0;
    cos.t_max = 0;
    EXPECT_INVALID(NULL, dp_schedule_check(&cos, 0.1));
    CHECK(strstr(dp_last_error(), "t_max") != NULL);
}

/* Adam's equations (deltaprop.h) in C against dp_net_step_with, 50 steps, float64. */
static void test_step_with_adam_formula(void) {
    dp_net* net = make_net(DP_FLOAT64, DP_LOSS_MSE, 21);
    dp_optimizer adam = dp_optimizer_default(DP_OPTIM_ADAM);
    size_t np_, i;
    int t;
    double *w, *m, *v, *vmax, *x, *y, worst = 0.0;
    dp_optimizer_kind kind;
    uint64_t step;
    void* bufs[3];
    if (!net) return;
    adam.lr = 0.01;
    adam.amsgrad = 1;
    adam.weight_decay = 0.05;
    np_ = dp_net_num_params(net);
    w = (double*)copy_bytes(dp_net_params(net), np_ * 8);
    m = (double*)calloc(np_, 8);
    v = (double*)calloc(np_, 8);
    vmax = (double*)calloc(np_, 8);
    train_data(8, &x, &y);
    for (t = 1; t <= 50; ++t) {
        const double* g = (const double*)dp_net_grads(net);
        const double bc1 = 1.0 - pow(adam.beta1, t), bc2 = 1.0 - pow(adam.beta2, t);
        CHECK_OK(dp_net_backward(net, x, 8, DP_TARGET_VALUES, y, 0.0, 0, NULL));
        for (i = 0; i < np_; ++i) {
            const double gi = g[i] + adam.weight_decay * w[i];
            m[i] = m[i] + (1.0 - adam.beta1) * (gi - m[i]);
            v[i] = adam.beta2 * v[i] + (1.0 - adam.beta2) * gi * gi;
            if (v[i] > vmax[i]) vmax[i] = v[i];
            w[i] -= adam.lr / bc1 * m[i] / (sqrt(vmax[i]) / sqrt(bc2) + adam.eps);
        }
        CHECK_OK(dp_net_step_with(net, &adam));
        for (i = 0; i < np_; ++i) {
            const double got = ((const double*)dp_net_params(net))[i];
            const double err = fabs(got - w[i]) / (fabs(w[i]) > 1e-3 ? fabs(w[i]) : 1e-3);
            if (err > worst) worst = err;
        }
    }
    CHECK(worst < 1e-12);
    CHECK_OK(dp_net_optimizer_state(net, &kind, &step, bufs));
    CHECK(kind == DP_OPTIM_ADAM && step == 50 && bufs[0] && bufs[1] && bufs[2]);
    if (bufs[2]) CHECK(fabs(((double*)bufs[2])[0] - vmax[0]) <= 1e-12 * fabs(vmax[0]));
    /* a step of another kind starts afresh: SGD state, no Adam buffers */
    {
        dp_optimizer sgd = dp_optimizer_default(DP_OPTIM_SGD);
        sgd.momentum = 0.9;
        CHECK_OK(dp_net_step_with(net, &sgd));
        CHECK_OK(dp_net_optimizer_state(net, &kind, &step, bufs));
        CHECK(kind == DP_OPTIM_SGD && bufs[0] == dp_net_velocity(net) && bufs[1] == NULL && bufs[2] == NULL);
        /* first momentum step: v = g */
        CHECK(memcmp(dp_net_velocity(net), dp_net_grads(net), np_ * 8) == 0);
    }
    CHECK_OK(dp_net_reset_optimizer(net, DP_OPTIM_ADAMW));
    CHECK_OK(dp_net_optimizer_state(net, &kind, &step, bufs));
    CHECK(kind == DP_OPTIM_ADAMW && step == 0 && bufs[0] && ((double*)bufs[0])[0] == 0.0);
    EXPECT_INVALID(net, dp_net_reset_optimizer(net, (dp_optimizer_kind)9));
    free(w);
    free(m);
    free(v);
    free(vmax);
    free(x);
    free(y);
    dp_net_destroy(net);
}

/* Weighted loss and backward: all-ones weights are bitwise the unweighted calls; bad weights fail
 * with nothing changed; train_batch is backward_weighted then step_with, bit for bit. */
static void test_weighted_and_train_batch(void) {
    dp_dtype dtype;
    for (dtype = DP_FLOAT32; dtype <= DP_FLOAT64; dtype = (dp_dtype)(dtype + 1)) {
        dp_net* net = make_net(dtype, DP_LOSS_MSE, 22);
        dp_net* twin = NULL;
        const size_t n = 6;
        void* x = random_values(dtype, n * 3);
        void* y = random_values(dtype, n * 2);
        void* ones = alloc_values(dtype, n);
        void* w = alloc_values(dtype, n);
        unsigned char* g = NULL;
        size_t i, bytes;
        double l1 = 0, l2v = 0;
        dp_optimizer adam = dp_optimizer_default(DP_OPTIM_ADAM);
        if (!net) continue;
        bytes = dp_net_num_params(net) * elem_size(dtype);
        for (i = 0; i < n; ++i) {
            set_value(ones, dtype, i, 1.0);
            set_value(w, dtype, i, (double)(i % 3));
        }
        CHECK_OK(dp_net_loss(net, x, n, DP_TARGET_VALUES, y, 0.1, &l1));
        CHECK_OK(dp_net_loss_weighted(net, x, n, DP_TARGET_VALUES, y, ones, 0.1, &l2v));
        CHECK(l1 == l2v);
        CHECK_OK(dp_net_backward(net, x, n, DP_TARGET_VALUES, y, 0.1, 0, &l1));
        g = copy_bytes(dp_net_grads(net), bytes);
        CHECK_OK(dp_net_backward_weighted(net, x, n, DP_TARGET_VALUES, y, ones, 0.1, 0, &l2v));
        CHECK(l1 == l2v && memcmp(g, dp_net_grads(net), bytes) == 0);
        CHECK_OK(dp_net_backward_weighted(net, x, n, DP_TARGET_VALUES, y, NULL, 0.1, 0, &l2v));
        CHECK(l1 == l2v && memcmp(g, dp_net_grads(net), bytes) == 0);
        /* bad weights */
        set_value(w, dtype, 2, -1.0);
        EXPECT_INVALID(net, dp_net_backward_weighted(net, x, n, DP_TARGET_VALUES, y, w, 0.0, 0, NULL));
        CHECK(strstr(dp_last_error(), "sample_weight") != NULL);
        EXPECT_INVALID(net, dp_net_train_batch(net, x, n, DP_TARGET_VALUES, y, w, 0.0, &adam, NULL));
        set_value(w, dtype, 2, NAN);
        EXPECT_INVALID(net, dp_net_loss_weighted(net, x, n, DP_TARGET_VALUES, y, w, 0.0, &l1));
        for (i = 0; i < n; ++i) set_value(w, dtype, i, 0.0);
        EXPECT_INVALID(net, dp_net_backward_weighted(net, x, n, DP_TARGET_VALUES, y, w, 0.0, 0, NULL));
        for (i = 0; i < n; ++i) set_value(w, dtype, i, (double)(i % 3));
        /* train_batch == backward_weighted + step_with */
        CHECK_OK(dp_net_clone(net, &twin));
        if (twin) {
            for (i = 0; i < 4; ++i) {
                double la = 0, lb = 0;
                CHECK_OK(dp_net_train_batch(net, x, n, DP_TARGET_VALUES, y, w, 0.05, &adam, &la));
                CHECK_OK(dp_net_backward_weighted(twin, x, n, DP_TARGET_VALUES, y, w, 0.05, 0, &lb));
                CHECK_OK(dp_net_step_with(twin, &adam));
                CHECK(la == lb);
            }
            CHECK(same_state(net, twin));
        }
        /* a bad optimizer fails with nothing changed */
        adam.beta2 = 1.5;
        EXPECT_INVALID(net, dp_net_train_batch(net, x, n, DP_TARGET_VALUES, y, NULL, 0.0, &adam, NULL));
        EXPECT_INVALID(net, dp_net_step_with(net, &adam));
        EXPECT_INVALID(net, dp_net_step_with(net, NULL));
        free(g);
        free(x);
        free(y);
        free(ones);
        free(w);
        dp_net_destroy(twin);
        dp_net_destroy(net);
    }
}

typedef struct {
    int calls;
    size_t stop_at;
    dp_epoch_record seen[8];
} epoch_ctx;

static int on_epoch_cb(void* user, const dp_epoch_record* r) {
    epoch_ctx* c = (epoch_ctx*)user;
    if (c->calls < 8) c->seen[c->calls] = *r;
    ++c->calls;
    return r->epoch == c->stop_at;
}

/* dp_net_fit: equals train_batch over the same batches (shuffle off) bit for bit; records, validation,
 * a schedule, on_epoch stopping, bad options. */
static void test_fit(void) {
    const size_t n = 10, bs = 4, epochs = 3;
    double *x, *y, *xv, *yv;
    dp_net* net = make_net(DP_FLOAT64, DP_LOSS_MSE, 23);
    dp_net* twin = NULL;
    dp_fit_options o = dp_fit_options_default();
    dp_epoch_record hist[8];
    dp_fit_result res;
    size_t e, s;
    if (!net) return;
    train_data(n, &x, &y);
    train_data(5, &xv, &yv);
    CHECK_OK(dp_net_clone(net, &twin));
    o.epochs = epochs;
    o.batch_size = bs;
    o.shuffle = 0;
    o.optimizer = dp_optimizer_default(DP_OPTIM_ADAMW);
    o.optimizer.lr = 0.01;
    o.optimizer.amsgrad = 1;
    o.l2 = 0.02;
    o.schedule = dp_schedule_default(DP_SCHEDULE_EXPONENTIAL);
    o.schedule.gamma = 0.5;
    o.schedule.per_step = 0;
    o.x_val = xv;
    o.n_val = 5;
    o.val_kind = DP_TARGET_VALUES;
    o.y_val = yv;
    CHECK_OK(dp_net_fit(net, x, n, DP_TARGET_VALUES, y, &o, hist, &res));
    CHECK(res.epochs_done == epochs && res.best_epoch == epochs - 1 && !res.stopped_early && !res.interrupted);
    for (e = 0; e < epochs && twin; ++e) {
        dp_optimizer opt = o.optimizer;
        opt.lr = 0.01 * pow(0.5, (double)e);
        CHECK(hist[e].epoch == e && fabs(hist[e].lr - opt.lr) <= 1e-15 && isfinite(hist[e].loss));
        CHECK(isfinite(hist[e].val_loss) && isnan(hist[e].val_accuracy));
        for (s = 0; s < n; s += bs) {
            const size_t b = s + bs <= n ? bs : n - s;
            CHECK_OK(dp_net_train_batch(twin, x + s * 3, b, DP_TARGET_VALUES, y + s * 2, NULL, 0.02, &opt, NULL));
        }
    }
    if (twin) CHECK(same_state(net, twin));
    {
        double vl = 0;
        /* the validation loss includes fit's l2 term (lambda / (2 n_val) sum W^2), as the training loss */
        CHECK_OK(dp_net_loss(net, xv, 5, DP_TARGET_VALUES, yv, 0.02, &vl));
        CHECK(fabs(vl - hist[epochs - 1].val_loss) <= 1e-12 * vl);
    }
    /* on_epoch: records as written, returning non-zero stops */
    {
        epoch_ctx c;
        memset(&c, 0, sizeof c);
        c.stop_at = 1;
        o.epochs = 6;
        o.on_epoch = on_epoch_cb;
        o.user = &c;
        CHECK_OK(dp_net_fit(net, x, n, DP_TARGET_VALUES, y, &o, hist, &res));
        CHECK(c.calls == 2 && res.epochs_done == 2 && res.stopped_early);
        CHECK(c.seen[1].epoch == 1 && c.seen[1].loss == hist[1].loss && c.seen[1].val_loss == hist[1].val_loss);
        o.on_epoch = NULL;
        o.user = NULL;
    }
    /* bad options: nothing changed */
    o.batch_size = 0;
    EXPECT_INVALID(net, dp_net_fit(net, x, n, DP_TARGET_VALUES, y, &o, hist, &res));
    CHECK(strstr(dp_last_error(), "batch_size") != NULL);
    o.batch_size = bs;
    o.optimizer.beta1 = -0.5;
    EXPECT_INVALID(net, dp_net_fit(net, x, n, DP_TARGET_VALUES, y, &o, hist, &res));
    o.optimizer.beta1 = 0.9;
    o.schedule.gamma = 0.0;
    EXPECT_INVALID(net, dp_net_fit(net, x, n, DP_TARGET_VALUES, y, &o, hist, &res));
    o.schedule.gamma = 0.5;
    o.monitor = DP_MONITOR_VAL_ACCURACY; /* mse has no accuracy */
    EXPECT_INVALID(net, dp_net_fit(net, x, n, DP_TARGET_VALUES, y, &o, hist, &res));
    o.monitor = DP_MONITOR_AUTO;
    EXPECT_INVALID(net, dp_net_fit(net, x, n, DP_TARGET_VALUES, y, NULL, hist, &res));
    free(x);
    free(y);
    free(xv);
    free(yv);
    dp_net_destroy(twin);
    dp_net_destroy(net);
}

/* The guard: DP_ERR_DIVERGED with where (dp_last_divergence), params and optimizer state as before. */
static void test_divergence(void) {
    dp_divergence d;
    dp_net* net = make_net(DP_FLOAT64, DP_LOSS_MSE, 24);
    dp_optimizer adam = dp_optimizer_default(DP_OPTIM_ADAM), sgd = dp_optimizer_default(DP_OPTIM_SGD);
    double *x, *y;
    size_t i, np_;
    opt_snapshot s;
    dp_status st;
    CHECK(dp_last_divergence(&d) == DP_ERR_STATE); /* none yet on this thread */
    EXPECT_INVALID(NULL, dp_last_divergence(NULL));
    if (!net) return;
    np_ = dp_net_num_params(net);
    train_data(4, &x, &y);
    for (i = 0; i < 3; ++i) CHECK_OK(dp_net_train_batch(net, x, 4, DP_TARGET_VALUES, y, NULL, 0.0, &adam, NULL));
    /* update: a rate beyond the float64 range times a finite gradient */
    for (i = 0; i < 8; ++i) y[i] = 50.0 * (i % 2 ? 1 : -1);
    sgd.lr = 1e308;
    opt_snap_take(&s, net);
    st = dp_net_train_batch(net, x, 4, DP_TARGET_VALUES, y, NULL, 0.0, &sgd, NULL);
    CHECK(st == DP_ERR_DIVERGED);
    CHECK(strstr(dp_last_error(), "update") != NULL);
    CHECK(dp_last_divergence(&d) == DP_OK && d.phase == DP_PHASE_UPDATE && d.epoch == 0 && d.batch == 0);
    CHECK(opt_snap_same(&s, net)); /* the Adam state is back although the step was SGD's */
    /* step_with: an infinite gradient */
    ((double*)dp_net_grads(net))[np_ - 1] = INFINITY;
    CHECK(dp_net_step_with(net, &adam) == DP_ERR_DIVERGED);
    CHECK(opt_snap_same(&s, net));
    opt_snap_free(&s);
    /* loss: outputs finite, (a - y)^2 overflows */
    y[0] = 1e200;
    opt_snap_take(&s, net);
    CHECK(dp_net_train_batch(net, x, 4, DP_TARGET_VALUES, y, NULL, 0.0, &adam, NULL) == DP_ERR_DIVERGED);
    CHECK(strstr(dp_last_error(), "loss") != NULL);
    CHECK(dp_last_divergence(&d) == DP_OK && d.phase == DP_PHASE_LOSS);
    CHECK(opt_snap_same(&s, net));
    /* in dp_net_fit: the same row in the second batch; the first step is kept */
    {
        dp_fit_options o = dp_fit_options_default();
        dp_epoch_record hist[2];
        dp_fit_result res;
        dp_net* twin = NULL;
        double *x2, *y2;
        train_data(4, &x2, &y2);
        y2[2 * 2] = 1e200; /* row 2: batch 1 with batches of 2 */
        CHECK_OK(dp_net_clone(net, &twin));
        o.epochs = 2;
        o.batch_size = 2;
        o.shuffle = 0;
        o.optimizer = adam;
        CHECK(dp_net_fit(net, x2, 4, DP_TARGET_VALUES, y2, &o, hist, &res) == DP_ERR_DIVERGED);
        CHECK(res.epochs_done == 0);
        CHECK(dp_last_divergence(&d) == DP_OK && d.phase == DP_PHASE_LOSS && d.epoch == 0 && d.batch == 1);
        if (twin) {
            CHECK_OK(dp_net_train_batch(twin, x2, 2, DP_TARGET_VALUES, y2, NULL, 0.0, &adam, NULL));
            CHECK(same_state(net, twin));
        }
        dp_net_destroy(twin);
        free(x2);
        free(y2);
    }
    opt_snap_free(&s);
    free(x);
    free(y);
    dp_net_destroy(net);
}

/* dp_fit_options.layer_ready with a one-process reduce: off by default; called once per layer per
 * step, from the last layer down, with that layer's range (dp_net_layer_offsets) and reduce's slot
 * information, before reduce; the range is final when announced (a copy taken then equals the slots
 * reduce gets); and the parameters are bitwise those of a fit without it. */
typedef struct {
    dp_net* net;
    size_t layers, expect, calls, reduces, bad, n_params;
    size_t first, count, n_slots;
    double* copy; /* [n_slots, n_params] as each layer was announced */
} overlap_ctx;

static void layer_ready_cb(void* user, const dp_reduce_call* c, size_t layer, size_t begin, size_t end) {
    overlap_ctx* o = (overlap_ctx*)user;
    size_t w_off = 0, b_off = 0, k;
    if (dp_net_layer_offsets(o->net, layer, &w_off, &b_off) != DP_OK) ++o->bad;
    if (layer != o->expect || begin != w_off || end != b_off + dp_net_size(o->net, layer + 1)) ++o->bad;
    if (c->grads == NULL || c->n_params != o->n_params || c->n_slots > 8) ++o->bad;
    o->expect = layer - 1; /* wraps below 0: reduce checks every layer came */
    o->first = c->first;
    o->count = c->count;
    o->n_slots = c->n_slots;
    for (k = 0; k < c->n_slots && k < 8 && c->grads; ++k)
        memcpy(o->copy + k * o->n_params + begin, (const double*)c->grads + k * o->n_params + begin,
               (end - begin) * sizeof(double));
    ++o->calls;
}

static int overlap_reduce_cb(void* user, const dp_reduce_call* c) {
    overlap_ctx* o = (overlap_ctx*)user;
    if (c->grads == NULL) return 0;
    ++o->reduces;
    if (o->copy) { /* the hook is on: every layer came, with the same slots */
        if (o->expect != (size_t)-1 || c->first != o->first || c->count != o->count || c->n_slots != o->n_slots)
            ++o->bad;
        if (memcmp(o->copy, c->grads, c->n_slots * c->n_params * sizeof(double)) != 0) ++o->bad;
        o->expect = o->layers - 1;
    }
    return 0;
}

static void test_fit_layer_ready(void) {
    const size_t n = 23;
    double *x, *y;
    int kind;
    dp_fit_options o = dp_fit_options_default();
    CHECK(o.layer_ready == NULL);
    train_data(n, &x, &y);
    for (kind = 0; kind < 2; ++kind) {
        dp_net* plain = make_net(DP_FLOAT64, DP_LOSS_MSE, 5);
        dp_net* hooked = NULL;
        overlap_ctx a, b;
        if (!plain) break;
        CHECK_OK(dp_net_clone(plain, &hooked));
        if (!hooked) {
            dp_net_destroy(plain);
            break;
        }
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        o.epochs = 2;
        o.batch_size = 8;
        o.optimizer = dp_optimizer_default(DP_OPTIM_ADAM);
        o.reduce = overlap_reduce_cb;
        o.reduce_kind = kind == 0 ? DP_REDUCE_ORDERED : DP_REDUCE_SUM;
        o.chunk_rows = 3; /* ORDERED: 3 chunks (2 for the last batch of 7 rows) */
        a.net = plain;
        o.reduce_user = &a;
        CHECK_OK(dp_net_fit(plain, x, n, DP_TARGET_VALUES, y, &o, NULL, NULL));
        b.net = hooked;
        b.layers = dp_net_num_layers(hooked);
        b.expect = b.layers - 1;
        b.n_params = dp_net_num_params(hooked);
        b.copy = (double*)calloc(8 * b.n_params, sizeof(double));
        o.reduce_user = &b;
        o.layer_ready = layer_ready_cb;
        CHECK_OK(dp_net_fit(hooked, x, n, DP_TARGET_VALUES, y, &o, NULL, NULL));
        CHECK(b.bad == 0 && b.reduces == 6 && a.reduces == 6 && b.calls == 6 * b.layers);
        CHECK(memcmp(dp_net_params(plain), dp_net_params(hooked), b.n_params * sizeof(double)) == 0);
        o.layer_ready = NULL;
        free(b.copy);
        dp_net_destroy(hooked);
        dp_net_destroy(plain);
    }
    free(x);
    free(y);
}

int main(void) {
    run("library: version, statuses, defaults", test_library);
    run("create and architecture getters", test_create_and_architecture);
    run("create: invalid arguments", test_create_errors);
    run("compute: invalid arguments (float32)", test_errors_float32);
    run("compute: invalid arguments (float64)", test_errors_float64);
    run("io and format errors", test_io_and_format_errors);
    run("cancel callback interrupts, keeps completed steps", test_cancel);
    run("train: epochs in one call equal epoch calls", test_train_epochs);
    run("kernel levels", test_kernel_levels);
    run("save/load round trips (file and buffer)", test_save_load);
    run("clone is deep", test_clone);
    run("workspace and backward from dC/da", test_workspace_and_output_grad);
    run("xor 2-8-1 reaches 100%", test_xor);
    run("bitwise identical with 1 and 2 threads", test_threads_deterministic);
    run("predict_into equals predict", test_predict_into);
    run("optimizers: defaults and checks", test_optimizer_defaults_and_checks);
    run("step_with: Adam's equations, state, change of kind", test_step_with_adam_formula);
    run("weighted loss/backward, train_batch", test_weighted_and_train_batch);
    run("fit: equals train_batch steps, validation, schedule, on_epoch", test_fit);
    run("divergence guard: status, where, state restored", test_divergence);
    run("fit: layer_ready (overlap) announces final layer ranges, same bits", test_fit_layer_ready);
    printf("c_api: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
