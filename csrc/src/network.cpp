// SPDX-License-Identifier: MIT
#include "src/network.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <sstream>
#include <type_traits>

#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/memory.h"
#include "kernels/threadpool.h"

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

// ---- aligned storage: one allocation, 64-byte aligned, zero-filled ----
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
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { kernels::free_bytes(p_); }
    T* data() { return p_; }
    const T* data() const { return p_; }
    std::size_t size() const { return n_; }

private:
    T* p_ = nullptr;
    std::size_t n_ = 0;
};

kernels::Act kact(dp_activation a) { return static_cast<kernels::Act>(a); }

inline void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
}

// True if p[0..n) holds no NaN or infinity (x - x is 0 exactly for finite x); branch-free, so it
// vectorises.
template <class T>
bool all_finite(const T* p, std::size_t n) {
    int ok = 1;
    for (std::size_t i = 0; i < n; ++i) ok &= int(p[i] - p[i] == T(0));
    return ok != 0;
}

template <class T>
void check_finite(const char* name, const T* p, std::size_t rows, std::size_t cols) {
    const std::size_t n = rows * cols;
    constexpr std::size_t kChunk = std::size_t(1) << 16;
    const std::size_t chunks = (n + kChunk - 1) / kChunk;
    std::atomic<bool> bad{false};
    kernels::parallel_for(chunks, [&](std::size_t c) {
        if (!bad.load(std::memory_order_relaxed) &&
            !all_finite(p + c * kChunk, std::min(kChunk, n - c * kChunk)))
            bad.store(true, std::memory_order_relaxed);
    });
    if (!bad.load()) return;
    for (std::size_t i = 0; i < n; ++i) {
        if (!std::isfinite(p[i]))
            fail(DP_ERR_INVALID_ARGUMENT, cat(name, " contains NaN or infinity (at row ", i / cols,
                                              ", column ", i % cols, ")"));
    }
}

// One dense layer forward: z = in W^T + b, a = g(z). Bias and activation run in the GEMM's epilogue on
// each finished block while it is in cache; softmax, which needs whole rows, runs after the GEMM.
// a may equal z.
template <class T>
void dense_forward(dp_activation act, T slope, const T* in, std::size_t batch, std::size_t n_in,
                   std::size_t n_out, const T* W, const T* b, T* z, T* a) {
    if (act == DP_SOFTMAX) {
        kernels::gemm<T>(false, true, batch, n_out, n_in, T(1), in, n_in, W, n_in, T(0), z, n_out);
        kernels::bias_activation(kact(act), slope, b, z, a, batch, n_out);
        return;
    }
    struct Ctx {
        kernels::Act act;
        T slope;
        const T* b;
        T *z, *a;
        std::size_t ld;
    } ctx{kact(act), slope, b, z, a, n_out};
    const kernels::Epilogue ep{[](void* p, std::size_t i0, std::size_t i1, std::size_t j0,
                                  std::size_t j1) {
                                   const auto* c = static_cast<const Ctx*>(p);
                                   const std::size_t o = i0 * c->ld + j0;
                                   kernels::bias_activation_block(c->act, c->slope, c->b + j0, c->z + o,
                                                                  c->a + o, c->ld, i1 - i0, j1 - j0);
                               },
                               &ctx};
    kernels::gemm<T>(false, true, batch, n_out, n_in, T(1), in, n_in, W, n_in, T(0), z, n_out, &ep);
}

// delta_in = delta W (.) g'(z_in), the activation derivative in the GEMM's epilogue. z_in, a_in and
// delta_in are [batch, n_in]; g is not softmax (hidden layers only).
template <class T>
void dense_backward_delta(dp_activation act, T slope, const T* delta, std::size_t batch,
                          std::size_t n_in, std::size_t n_out, const T* W, const T* z_in,
                          const T* a_in, T* delta_in) {
    struct Ctx {
        kernels::Act act;
        T slope;
        const T *z, *a;
        T* d;
        std::size_t ld;
    } ctx{kact(act), slope, z_in, a_in, delta_in, n_in};
    const kernels::Epilogue ep{[](void* p, std::size_t i0, std::size_t i1, std::size_t j0,
                                  std::size_t j1) {
                                   const auto* c = static_cast<const Ctx*>(p);
                                   const std::size_t o = i0 * c->ld + j0;
                                   kernels::mul_activation_grad_block(c->act, c->slope, c->z + o,
                                                                      c->a + o, c->d + o, c->ld,
                                                                      i1 - i0, j1 - j0);
                               },
                               &ctx};
    kernels::gemm<T>(false, false, batch, n_in, n_out, T(1), delta, n_out, W, n_in, T(0), delta_in, n_in,
                     act == DP_IDENTITY ? nullptr : &ep);
}

void check_batch(const char* what, std::size_t batch) {
    if (batch == 0) fail(DP_ERR_INVALID_ARGUMENT, cat(what, ": the batch is empty (0 samples)"));
    if (batch > (std::size_t(1) << 40))
        fail(DP_ERR_INVALID_ARGUMENT, cat(what, ": batch of ", batch, " samples is too large"));
}

template <class T>
void check_targets(dp_target kind, const void* y, std::size_t batch, std::size_t n_out) {
    if (!y) fail(DP_ERR_INVALID_ARGUMENT, "Y is NULL");
    if (kind == DP_TARGET_VALUES) {
        check_finite("Y", static_cast<const T*>(y), batch, n_out);
    } else if (kind == DP_TARGET_CLASSES) {
        const auto* c = static_cast<const std::int64_t*>(y);
        for (std::size_t i = 0; i < batch; ++i) {
            if (c[i] < 0 || static_cast<std::uint64_t>(c[i]) >= n_out)
                fail(DP_ERR_INVALID_ARGUMENT, cat("Y: class index ", c[i], " at row ", i,
                                                  " is out of range [0, ", n_out, ")"));
        }
    } else {
        fail(DP_ERR_INVALID_ARGUMENT, cat("kind: unknown target kind ", int(kind)));
    }
}

// output_loss over rows [r0, r1).
template <class T>
double output_loss_rows(const Arch& arch, const T* z, const T* a, std::size_t r0, std::size_t r1,
                        dp_target kind, const void* y, T* delta) {
    const std::size_t n = arch.n_out();
    const dp_activation act = arch.activations.back();
    const T* yv = kind == DP_TARGET_VALUES ? static_cast<const T*>(y) : nullptr;
    const auto* yc = kind == DP_TARGET_CLASSES ? static_cast<const std::int64_t*>(y) : nullptr;
    auto target = [&](std::size_t r, std::size_t c) -> T {
        return yv ? yv[r * n + c] : T(yc[r] == std::int64_t(c) ? 1 : 0);
    };
    double total = 0.0;
    const double* sp = nullptr;  // binary cross-entropy: softplus(z) of the rows, vectorised
    if (arch.loss == DP_LOSS_BINARY_CROSS_ENTROPY) {
        thread_local std::vector<double> buf;
        const std::size_t m = (r1 - r0) * n;
        if (buf.size() < 2 * m) buf.resize(2 * m);
        for (std::size_t i = 0; i < m; ++i) buf[m + i] = double(z[r0 * n + i]);
        kernels::softplus(buf.data() + m, buf.data(), m);
        sp = buf.data();
    }
    for (std::size_t r = r0; r < r1; ++r) {
        const T* zr = z + r * n;
        const T* ar = a + r * n;
        T* dr = delta ? delta + r * n : nullptr;
        switch (arch.loss) {
            case DP_LOSS_MSE:  // C0 = sum_j (a_j - y_j)^2, dC0/da_j = 2 (a_j - y_j)
                for (std::size_t c = 0; c < n; ++c) {
                    const T d = ar[c] - target(r, c);
                    total += double(d) * double(d);
                    if (dr) dr[c] = T(2) * d;
                }
                break;
            case DP_LOSS_BINARY_CROSS_ENTROPY:  // C0 = sum_j softplus(z_j) - y_j z_j, delta = a - y
                for (std::size_t c = 0; c < n; ++c) {
                    const T t = target(r, c);
                    total += sp[(r - r0) * n + c] - double(t) * double(zr[c]);
                    if (dr) dr[c] = ar[c] - t;
                }
                break;
            case DP_LOSS_CROSS_ENTROPY: {  // C0 = -sum_j y_j (z_j - logsumexp z), delta = a - y
                double m = zr[0];
                for (std::size_t c = 1; c < n; ++c) m = std::max(m, double(zr[c]));
                double s = 0.0;
                for (std::size_t c = 0; c < n; ++c) s += std::exp(double(zr[c]) - m);
                const double lse = m + std::log(s);
                for (std::size_t c = 0; c < n; ++c) {
                    const T t = target(r, c);
                    if (t != T(0)) total -= double(t) * (double(zr[c]) - lse);
                    if (dr) dr[c] = ar[c] - t;
                }
                break;
            }
        }
    }
    if (delta && arch.loss == DP_LOSS_MSE) {
        // delta = dC0/da (.) g'(z); softmax needs its Jacobian.
        const std::size_t o = r0 * n;
        if (act == DP_SOFTMAX)
            kernels::softmax_backward(a + o, delta + o, r1 - r0, n);
        else
            kernels::mul_activation_grad(kact(act), T(arch.slopes.back()), z + o, a + o, delta + o,
                                         r1 - r0, n);
    }
    return total;
}

// Loss of one batch from the output pre-activations z and activations a, summed over samples (the
// caller divides by the batch). If delta is not null it receives dC0/dz(L) per sample. Rows are cut
// into at most 64 chunks (the cut depends only on the batch) summed in order on the thread pool.
template <class T>
double output_loss(const Arch& arch, const T* z, const T* a, std::size_t batch, dp_target kind,
                   const void* y, T* delta) {
    constexpr std::size_t kMaxChunks = 64;
    const std::size_t rows = std::max<std::size_t>(512, (batch + kMaxChunks - 1) / kMaxChunks);
    const std::size_t chunks = (batch + rows - 1) / rows;
    double part[kMaxChunks];
    kernels::parallel_for(chunks, [&](std::size_t c) {
        part[c] = output_loss_rows(arch, z, a, c * rows, std::min(batch, (c + 1) * rows), kind, y, delta);
    });
    double total = 0.0;
    for (std::size_t c = 0; c < chunks; ++c) total += part[c];
    return total;
}

template <class T>
class Net final : public NetBase {
public:
    explicit Net(const Arch& arch)
        : NetBase(arch), params_(n_params_), grads_(n_params_), velocity_(n_params_) {}
    Net(const Net& o)
        : NetBase(o), params_(o.params_), grads_(o.grads_), velocity_(o.velocity_) {
        has_forward_ = false;
        has_delta_ = false;
    }

    void* params() override { return params_.data(); }
    void* grads() override { return grads_.data(); }
    void* velocity() override { return velocity_.data(); }
    std::unique_ptr<NetBase> clone() const override { return std::make_unique<Net>(*this); }

    void initialize(dp_init init, std::uint64_t seed) override {
        if (init < DP_INIT_GLOROT_UNIFORM || init > DP_INIT_HE_NORMAL)
            fail(DP_ERR_INVALID_ARGUMENT, cat("init: unknown initialisation ", int(init)));
        rng_.reseed(seed);
        T* p = params_.data();
        std::fill(p, p + n_params_, T(0));
        for (std::size_t l = 0; l < arch_.layers(); ++l) {
            const double n_in = double(arch_.sizes[l]), n_out = double(arch_.sizes[l + 1]);
            T* W = p + w_off_[l];
            const std::size_t count = arch_.sizes[l] * arch_.sizes[l + 1];
            if (init == DP_INIT_HE_NORMAL) {
                const double sd = std::sqrt(2.0 / n_in);
                for (std::size_t i = 0; i < count; ++i) W[i] = T(sd * rng_.normal());
            } else {
                const double e = init == DP_INIT_GLOROT_UNIFORM ? std::sqrt(6.0 / (n_in + n_out))
                                                                : std::sqrt(6.0 / n_in);
                for (std::size_t i = 0; i < count; ++i) W[i] = T((2.0 * rng_.uniform() - 1.0) * e);
            }
        }
        std::fill(grads_.data(), grads_.data() + n_params_, T(0));
        std::fill(velocity_.data(), velocity_.data() + n_params_, T(0));
        arch_.init = init;
        has_forward_ = has_delta_ = false;
    }

    void reserve(std::size_t max_batch) override {
        if (ws_ && max_batch <= ws_->cap) return;
        check_batch("max_batch", max_batch);
        const std::size_t cap = ws_ ? std::max(max_batch, 2 * ws_->cap) : max_batch;
        auto ws = std::make_unique<Workspace>(arch_, cap);  // may throw bad_alloc: nothing changed
        if (ws_) {
            // Keep the old workspace alive: pointers handed out earlier stay valid (and stale).
            retired_.push_back(std::move(ws_));
        }
        ws_ = std::move(ws);
        has_forward_ = has_delta_ = false;
    }

    void forward(const void* x, std::size_t batch, void* out) override {
        check_batch("X", batch);
        if (!x) fail(DP_ERR_INVALID_ARGUMENT, "X is NULL");
        check_finite("X", static_cast<const T*>(x), batch, arch_.n_in());
        reserve(batch);
        std::memcpy(ws_->x.data(), x, batch * arch_.n_in() * sizeof(T));
        forward_impl(ws_->x.data(), batch);
        if (out) std::memcpy(out, a(arch_.layers() - 1), batch * arch_.n_out() * sizeof(T));
    }

    void predict(const void* x, std::size_t batch, void* out) const override {
        check_batch("X", batch);
        if (!x) fail(DP_ERR_INVALID_ARGUMENT, "X is NULL");
        if (!out) fail(DP_ERR_INVALID_ARGUMENT, "out is NULL");
        check_finite("X", static_cast<const T*>(x), batch, arch_.n_in());
        predict_impl(static_cast<const T*>(x), batch, static_cast<T*>(out), nullptr);
    }

    void predict_into(const void* x, std::size_t batch, void* (*out_for)(void*), void* user) const override {
        check_batch("X", batch);
        if (!x) fail(DP_ERR_INVALID_ARGUMENT, "X is NULL");
        if (!out_for) fail(DP_ERR_INVALID_ARGUMENT, "out_for is NULL");
        check_finite("X", static_cast<const T*>(x), batch, arch_.n_in());
        predict_impl(static_cast<const T*>(x), batch, nullptr, nullptr, out_for, user);
    }

    double loss(const void* x, std::size_t batch, dp_target kind, const void* y,
                double l2) const override {
        check_batch("X", batch);
        if (!x) fail(DP_ERR_INVALID_ARGUMENT, "X is NULL");
        check_finite("X", static_cast<const T*>(x), batch, arch_.n_in());
        check_targets<T>(kind, y, batch, arch_.n_out());
        check_l2(l2);
        const std::size_t n = batch * arch_.n_out();
        T* out_a = scratch(1, 2 * n);
        T* out_z = out_a + n;
        predict_impl(static_cast<const T*>(x), batch, out_a, out_z);
        const double c = output_loss(arch_, out_z, out_a, batch, kind, y, static_cast<T*>(nullptr));
        return c / double(batch) + l2_penalty(l2, batch);
    }

    double backward(const void* x, std::size_t batch, dp_target kind, const void* y, double l2,
                    bool accumulate) override {
        check_batch("X", batch);
        if (!x) fail(DP_ERR_INVALID_ARGUMENT, "X is NULL");
        check_finite("X", static_cast<const T*>(x), batch, arch_.n_in());
        check_targets<T>(kind, y, batch, arch_.n_out());
        check_l2(l2);
        reserve(batch);
        std::memcpy(ws_->x.data(), x, batch * arch_.n_in() * sizeof(T));
        return backward_batch(ws_->x.data(), batch, kind, y, l2, accumulate);
    }

    void backward_output_grad(const void* dc_da, std::size_t batch, bool accumulate) override {
        if (!has_forward_)
            fail(DP_ERR_STATE, "backward from an output gradient needs a forward pass first");
        if (batch != batch_)
            fail(DP_ERR_INVALID_ARGUMENT, cat("grad: batch of ", batch,
                                              " rows does not match the last forward's ", batch_));
        if (!dc_da) fail(DP_ERR_INVALID_ARGUMENT, "grad is NULL");
        const std::size_t L = arch_.layers();
        check_finite("grad", static_cast<const T*>(dc_da), batch, arch_.n_out());
        T* d = delta(L - 1);
        std::memcpy(d, dc_da, batch * arch_.n_out() * sizeof(T));
        if (arch_.activations.back() == DP_SOFTMAX)
            kernels::softmax_backward(a(L - 1), d, batch, arch_.n_out());
        else
            kernels::mul_activation_grad(kact(arch_.activations.back()), T(arch_.slopes.back()),
                                         z(L - 1), a(L - 1), d, batch, arch_.n_out());
        backpropagate(batch, 0.0, accumulate);
    }

    void step(const dp_sgd& sgd) override {
        check_sgd(sgd, true);
        kernels::sgd_step(n_params_, T(sgd.lr), T(sgd.momentum), sgd.nesterov != 0,
                          T(sgd.weight_decay), grads_.data(), params_.data(), velocity_.data());
    }

    dp_status train(const void* x, std::size_t n, dp_target kind, const void* y, std::size_t batch_size,
                    const dp_sgd& sgd, bool shuffle, std::size_t epochs, dp_cancel_fn cancel, void* user,
                    double* losses, std::size_t* epochs_done) override {
        if (epochs_done) *epochs_done = 0;
        check_batch("X", n);
        if (!x) fail(DP_ERR_INVALID_ARGUMENT, "X is NULL");
        if (batch_size == 0) fail(DP_ERR_INVALID_ARGUMENT, "batch_size must be at least 1, got 0");
        check_sgd(sgd, false);
        check_finite("X", static_cast<const T*>(x), n, arch_.n_in());
        check_targets<T>(kind, y, n, arch_.n_out());
        const std::size_t bs = std::min(batch_size, n);
        reserve(bs);
        if (shuffle && perm_.size() < n) perm_.resize(n);  // may throw: nothing changed yet
        // validated once: from here on nothing fails
        for (std::size_t e = 0; e < epochs; ++e) {
            double mean = 0.0;
            const dp_status st = run_epoch(static_cast<const T*>(x), n, kind, y, bs, sgd, shuffle, cancel,
                                           user, &mean);
            if (losses) losses[e] = mean;
            if (st != DP_OK) return st;
            if (epochs_done) *epochs_done = e + 1;
            if (cancel && e + 1 < epochs && cancel(user)) return DP_ERR_INTERRUPTED;
        }
        return DP_OK;
    }

    dp_status train_epoch(const void* x, std::size_t n, dp_target kind, const void* y,
                          std::size_t batch_size, const dp_sgd& sgd, bool shuffle,
                          dp_cancel_fn cancel, void* user, double* mean_loss) override {
        return train(x, n, kind, y, batch_size, sgd, shuffle, 1, cancel, user, mean_loss, nullptr);
    }

    // One epoch over validated inputs (bs <= n, workspace reserved, perm_ sized).
    dp_status run_epoch(const T* X, std::size_t n, dp_target kind, const void* y, std::size_t bs,
                        const dp_sgd& sgd, bool shuffle, dp_cancel_fn cancel, void* user,
                        double* mean_loss) {
        const std::size_t n_in = arch_.n_in(), n_out = arch_.n_out();
        if (shuffle) {
            for (std::size_t i = 0; i < n; ++i) perm_[i] = i;
            for (std::size_t i = n - 1; i > 0; --i) std::swap(perm_[i], perm_[rng_.below(i + 1)]);
        }
        // plain SGD on single samples: each layer's update is fused with its gradient
        const bool online = sgd.momentum == 0.0 && sgd.weight_decay == 0.0 && sgd.l2 == 0.0;
        double total = 0.0;
        std::size_t done = 0;
        for (std::size_t start = 0; start < n; start += bs) {
            const std::size_t b = std::min(bs, n - start);
            const T* xb;
            const void* yb;
            if (shuffle) {
                // the next batch's rows are scattered over X: start fetching them now, whole if the
                // batch fits comfortably in L2, else their heads (the hardware prefetcher follows a
                // row once it is being read)
                // The copy is cut into fixed row ranges on the thread pool; each range's thread also
                // prefetches the same range of the next batch, which it copies next time (the pool
                // gives a task index to the same thread from call to call).
                const std::size_t next = start + b, next_b = std::min(bs, n - std::min(n, next));
                const std::size_t row_bytes = n_in * sizeof(T);
                const std::size_t head =
                    bs * row_bytes <= (std::size_t(256) << 10) ? row_bytes : std::min<std::size_t>(row_bytes, 256);
                const std::size_t parts = bs * row_bytes >= (std::size_t(32) << 10) ? 8 : 1;
                T* xw = ws_->x.data();
                kernels::parallel_for(parts, [&](std::size_t t) {
                    for (std::size_t i = next + t * next_b / parts; i < next + (t + 1) * next_b / parts; ++i) {
                        const char* row = reinterpret_cast<const char*>(X + perm_[i] * n_in);
                        for (std::size_t off = 0; off < head; off += 64) prefetch(row + off);
                    }
                    for (std::size_t i = t * b / parts; i < (t + 1) * b / parts; ++i)
                        std::memcpy(xw + i * n_in, X + perm_[start + i] * n_in, row_bytes);
                });
                xb = xw;
                if (kind == DP_TARGET_VALUES) {
                    const T* Y = static_cast<const T*>(y);
                    T* yw = ws_->y.data();
                    for (std::size_t i = 0; i < b; ++i)
                        std::memcpy(yw + i * n_out, Y + perm_[start + i] * n_out, n_out * sizeof(T));
                    yb = yw;
                } else {
                    const auto* Y = static_cast<const std::int64_t*>(y);
                    std::int64_t* yw = ws_->classes.data();
                    for (std::size_t i = 0; i < b; ++i) yw[i] = Y[perm_[start + i]];
                    yb = yw;
                }
            } else {
                xb = X + start * n_in;
                yb = kind == DP_TARGET_VALUES
                         ? static_cast<const void*>(static_cast<const T*>(y) + start * n_out)
                         : static_cast<const void*>(static_cast<const std::int64_t*>(y) + start);
            }
            if (b == 1 && online) {
                total += online_step(xb, kind, yb, T(sgd.lr));
            } else {
                total += backward_batch(xb, b, kind, yb, sgd.l2, false, &sgd) * double(b);
            }
            done += b;
            if (cancel && done < n && cancel(user)) {
                if (mean_loss) *mean_loss = total / double(done);
                return DP_ERR_INTERRUPTED;
            }
        }
        if (mean_loss) *mean_loss = total / double(n);
        return DP_OK;
    }

    void workspace(std::size_t layer, const void** zp, const void** ap, const void** dp,
                   std::size_t* batch) const override {
        if (layer >= arch_.layers())
            fail(DP_ERR_INVALID_ARGUMENT,
                 cat("layer: index ", layer, " is out of range [0, ", arch_.layers(), ")"));
        if (!has_forward_) fail(DP_ERR_STATE, "no forward pass has been run yet");
        if (zp) *zp = z(layer);
        if (ap) *ap = a(layer);
        if (dp) *dp = has_delta_ ? delta(layer) : nullptr;
        if (batch) *batch = batch_;
    }

private:
    struct Workspace {
        std::size_t cap;
        std::vector<std::size_t> off;  // [L]: offset of layer l in z, a, delta
        Buffer<T> z, a, delta, x, y;
        Buffer<std::int64_t> classes;
        static std::size_t total(const Arch& arch, std::size_t cap) {
            std::size_t s = 0;
            for (std::size_t l = 1; l < arch.sizes.size(); ++l) s += arch.sizes[l];
            if (s > std::numeric_limits<std::size_t>::max() / 4 / sizeof(T) / cap) throw std::bad_alloc();
            return s * cap;
        }
        Workspace(const Arch& arch, std::size_t c)
            : cap(c),
              off(layer_offsets(arch, c)),
              z(total(arch, c)),
              a(total(arch, c)),
              delta(total(arch, c)),
              x(c * arch.n_in()),
              y(c * arch.n_out()),
              classes(c) {}
        static std::vector<std::size_t> layer_offsets(const Arch& arch, std::size_t cap) {
            std::vector<std::size_t> off(arch.layers());
            std::size_t s = 0;
            for (std::size_t l = 0; l < arch.layers(); ++l) {
                off[l] = s;
                s += arch.sizes[l + 1] * cap;
            }
            return off;
        }
    };

    T* z(std::size_t l) const { return const_cast<T*>(ws_->z.data()) + ws_->off[l]; }
    T* a(std::size_t l) const { return const_cast<T*>(ws_->a.data()) + ws_->off[l]; }
    T* delta(std::size_t l) const { return const_cast<T*>(ws_->delta.data()) + ws_->off[l]; }
    const T* W(std::size_t l) const { return params_.data() + w_off_[l]; }
    const T* b(std::size_t l) const { return params_.data() + b_off_[l]; }

    std::size_t max_width() const {
        return *std::max_element(arch_.sizes.begin() + 1, arch_.sizes.end());
    }

    double l2_penalty(double l2, std::size_t batch) const {
        if (l2 == 0.0) return 0.0;
        double s = 0.0;
        for (std::size_t l = 0; l < arch_.layers(); ++l) {
            const T* w = W(l);
            const std::size_t count = arch_.sizes[l] * arch_.sizes[l + 1];
            for (std::size_t i = 0; i < count; ++i) s += double(w[i]) * double(w[i]);
        }
        return l2 / (2.0 * double(batch)) * s;
    }

    // Per-thread scratch: 0 for predict's layer ping-pong, 1 for loss's outputs, 2 for the partial sums
    // of forward_pair.
    static T* scratch(int which, std::size_t n) {
        thread_local std::vector<T> bufs[3];
        constexpr std::size_t pad = 64 / sizeof(T);  // room to start on a cache line
        if (bufs[which].size() < n + pad) bufs[which].resize(n + pad);
        const auto p = reinterpret_cast<std::uintptr_t>(bufs[which].data());
        return reinterpret_cast<T*>((p + 63) / 64 * 64);
    }

    // z(l) = in W(l)^T + b(l), a(l) = g(z(l)), for every layer, into the workspace.
    void forward_impl(const T* x, std::size_t batch) {
        const T* in = x;
        for (std::size_t l = 0; l < arch_.layers(); ++l) {
            const std::size_t n_in = arch_.sizes[l], n_out = arch_.sizes[l + 1];
            if (batch == 1 && pair_parts(l) > 1) {
                T* a2 = nullptr;
                forward_pair(l, in, z(l), a(l), [&](T*& z2, T*& a2r) { z2 = z(l + 1), a2r = a(l + 1); }, &a2);
                in = a(++l);
                continue;
            }
            dense_forward(arch_.activations[l], T(arch_.slopes[l]), in, batch, n_in, n_out, W(l), b(l),
                          z(l), a(l));
            in = a(l);
        }
        x_ = x;
        batch_ = batch;
        has_forward_ = true;
        has_delta_ = false;
    }

    // The same forward pass through thread-local ping-pong buffers; z_out (may be null) receives
    // the output layer's pre-activations. out_for (if not null; out is then null): asked for out once the
    // first layer's work has been handed out (predict_into).
    void predict_impl(const T* x, std::size_t batch, T* out, T* z_out, void* (*out_for)(void*) = nullptr,
                      void* user = nullptr) const {
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
            dense_forward(arch_.activations[l], T(arch_.slopes[l]), in, batch, n_in, n_out, W(l), b(l),
                          zl, al);
            in = al;
            std::swap(ping, pong);
        }
    }

    // forward_pair's task count for layers l and l + 1: fixed by the shape (never by the thread count),
    // about one per 2e5 flops of layer l, in whole groups of 8 rows; 1: no pair (also for the last layer).
    std::size_t pair_parts(std::size_t l) const {
        if (l + 1 >= arch_.layers() || arch_.activations[l] == DP_SOFTMAX) return 1;
        const std::size_t n_in = arch_.sizes[l], n_out = arch_.sizes[l + 1];
        const std::size_t by_flops = std::size_t(2.0 * double(n_in) * double(n_out) / 2.0e5);
        return std::max<std::size_t>(1, std::min({by_flops, (n_out + 7) / 8, std::size_t(16)}));
    }

    // One sample through layers l and l + 1 in one parallel job (matrix-vector products, bound by reading
    // the weights). Task t computes its rows [r0, r1) of a(l) = g(W(l) in + b(l)) into mid, then its share
    // W(l+1)[:, r0:r1] a(l)[r0:r1] of z(l+1) into partial row t. After the join, z(l+1) = the partial rows
    // summed in task order, then b(l+1) and g. Each thread reads only its rows of W(l) and its columns of
    // W(l+1), and nobody waits between the two layers. forward (batch 1) and predict both take this
    // path, so their outputs stay identical. a1 may equal z1. outputs(z2, a2) sets where z(l+1) and
    // a(l+1) go; it runs while the workers start (and may throw: the job is finished first); a2 may
    // equal z2, and they may alias in (they are written after the join). *a2_out receives a2.
    template <class Outputs>
    void forward_pair(std::size_t l, const T* in, T* z1, T* a1, Outputs&& outputs, T** a2_out) const {
        const std::size_t n1 = arch_.sizes[l + 1], n2 = arch_.sizes[l + 2];
        const std::size_t parts = pair_parts(l);
        const std::size_t rows = ((n1 + parts - 1) / parts + 7) / 8 * 8;
        const std::size_t tasks = (n1 + rows - 1) / rows;
        T* part = scratch(2, tasks * n2);
        // captured by value (48 bytes: the job carries them to the workers in its own cache line)
        const Net* self = this;
        const auto lr = std::uint32_t(l), rs = std::uint32_t(rows);
        const auto task = [self, in, z1, a1, part, lr, rs](std::size_t t) {
            self->pair_task(lr, rs, t, in, z1, a1, part);
        };
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
        kernels::bias_activation(kact(arch_.activations[l + 1]), T(arch_.slopes[l + 1]), b(l + 1), z2, a2,
                                 1, n2);
    }

    // Task t of forward_pair: rows [t rows, t rows + rows) of layer l, and their share of layer l + 1.
    void pair_task(std::size_t l, std::size_t rows, std::size_t t, const T* in, T* z1, T* a1, T* part) const {
        const std::size_t n0 = arch_.sizes[l], n1 = arch_.sizes[l + 1], n2 = arch_.sizes[l + 2];
        const std::size_t r0 = t * rows, r = std::min(rows, n1 - r0);
        dense_forward(arch_.activations[l], T(arch_.slopes[l]), in, 1, n0, r, W(l) + r0 * n0, b(l) + r0,
                      z1 + r0, a1 + r0);
        kernels::gemm<T>(false, true, 1, n2, r, T(1), a1 + r0, r, W(l + 1) + r0, n1, T(0), part + t * n2, n2);
    }

    // Forward, loss and the full backward pass for x (kept valid by the caller) and targets y.
    // update (may be null): the SGD step, fused into the backward pass (see backpropagate).
    double backward_batch(const T* x, std::size_t batch, dp_target kind, const void* y, double l2,
                          bool accumulate, const dp_sgd* update = nullptr) {
        forward_impl(x, batch);
        const std::size_t L = arch_.layers();
        const double c = output_loss(arch_, z(L - 1), a(L - 1), batch, kind, y, delta(L - 1));
        const double penalty = l2_penalty(l2, batch);  // of the weights before the step
        backpropagate(batch, l2, accumulate, update);
        return c / double(batch) + penalty;
    }

    // One sample, plain SGD: forward, loss, then from the top layer down: delta(l-1) from the old W(l),
    // then dW(l) = delta(l) a(l-1)^T, db(l) = delta(l) and W(l) -= lr dW(l), b(l) -= lr db(l). The same
    // numbers as backward_batch followed by sgd_step. Returns the sample's loss.
    double online_step(const T* x, dp_target kind, const void* y, T lr) {
        forward_impl(x, 1);
        const std::size_t L = arch_.layers();
        const double c = output_loss(arch_, z(L - 1), a(L - 1), 1, kind, y, delta(L - 1));
        for (std::size_t l = L; l-- > 0;) {
            const std::size_t n_in = arch_.sizes[l], n_out = arch_.sizes[l + 1];
            if (l > 0)
                dense_backward_delta(arch_.activations[l - 1], T(arch_.slopes[l - 1]), delta(l), 1, n_in,
                                     n_out, W(l), z(l - 1), a(l - 1), delta(l - 1));
            kernels::online_update(n_out, n_in, lr, delta(l), l == 0 ? x_ : a(l - 1),
                                   grads_.data() + w_off_[l], params_.data() + w_off_[l],
                                   grads_.data() + b_off_[l], params_.data() + b_off_[l]);
        }
        has_delta_ = true;
        return c;
    }

    // From delta(L-1) down: dW(l) = delta(l)^T a(l-1) / batch + (l2/batch) W(l), db(l) = mean delta(l),
    // delta(l-1) = delta(l) W(l) (.) g'(z(l-1)). With update (training, not accumulating): delta(l-1)
    // first, from the old W(l), then W(l) takes its SGD step block by block in the epilogue of the dW
    // GEMM, while each block of dW is in cache; the same arithmetic as backward followed by sgd_step.
    void backpropagate(std::size_t batch, double l2, bool accumulate, const dp_sgd* update = nullptr) {
        const T inv = T(1.0 / double(batch));
        const T beta = accumulate ? T(1) : T(0);
        const T l2coef = T(l2 / double(batch));
        for (std::size_t l = arch_.layers(); l-- > 0;) {
            const std::size_t n_in = arch_.sizes[l], n_out = arch_.sizes[l + 1];
            const T* in = l == 0 ? x_ : a(l - 1);
            T* dW = grads_.data() + w_off_[l];
            T* db = grads_.data() + b_off_[l];
            if (update && l > 0)
                dense_backward_delta(arch_.activations[l - 1], T(arch_.slopes[l - 1]), delta(l), batch,
                                     n_in, n_out, W(l), z(l - 1), a(l - 1), delta(l - 1));
            if (update) {
                struct Ctx {
                    std::size_t ld;
                    T l2coef, lr, momentum, weight_decay;
                    bool nesterov;
                    T *dW, *W, *v;
                } ctx{n_in,
                      l2coef,
                      T(update->lr),
                      T(update->momentum),
                      T(update->weight_decay),
                      update->nesterov != 0,
                      dW,
                      params_.data() + w_off_[l],
                      velocity_.data() + w_off_[l]};
                const kernels::Epilogue ep{
                    [](void* p, std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1) {
                        const auto* c = static_cast<const Ctx*>(p);
                        const std::size_t o = i0 * c->ld + j0;
                        kernels::param_update_block(i1 - i0, j1 - j0, c->ld, c->l2coef, c->lr,
                                                    c->momentum, c->nesterov, c->weight_decay,
                                                    c->dW + o, c->W + o, c->v + o);
                    },
                    &ctx};
                kernels::gemm<T>(true, false, n_out, n_in, batch, inv, delta(l), n_out, in, n_in, T(0),
                                 dW, n_in, &ep);
                kernels::column_sums(delta(l), batch, n_out, inv, false, db);
                const std::size_t bo = b_off_[l];
                kernels::sgd_step(n_out, T(update->lr), T(update->momentum), update->nesterov != 0,
                                  T(update->weight_decay), db, params_.data() + bo,
                                  velocity_.data() + bo);
                continue;
            }
            kernels::gemm<T>(true, false, n_out, n_in, batch, inv, delta(l), n_out, in, n_in, beta, dW,
                             n_in);
            if (l2 != 0.0) kernels::axpy(n_out * n_in, l2coef, W(l), dW);
            kernels::column_sums(delta(l), batch, n_out, inv, accumulate, db);
            if (l > 0)
                dense_backward_delta(arch_.activations[l - 1], T(arch_.slopes[l - 1]), delta(l), batch,
                                     n_in, n_out, W(l), z(l - 1), a(l - 1), delta(l - 1));
        }
        has_delta_ = true;
    }

    Buffer<T> params_, grads_, velocity_;
    std::unique_ptr<Workspace> ws_;
    std::vector<std::unique_ptr<Workspace>> retired_;
    std::vector<std::size_t> perm_;
    const T* x_ = nullptr;
    std::size_t batch_ = 0;
    bool has_forward_ = false, has_delta_ = false;
};

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

void Arch::validate() const {
    if (dtype != DP_FLOAT32 && dtype != DP_FLOAT64)
        fail(DP_ERR_INVALID_ARGUMENT, cat("dtype: expected DP_FLOAT32 or DP_FLOAT64, got ", int(dtype)));
    if (sizes.size() < 2)
        fail(DP_ERR_INVALID_ARGUMENT,
             cat("sizes: expected at least 2 layer sizes (input and output), got ", sizes.size()));
    if (sizes.size() > kMaxLayers + 1)
        fail(DP_ERR_INVALID_ARGUMENT, cat("sizes: at most ", kMaxLayers + 1, " sizes, got ", sizes.size()));
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        if (sizes[i] < 1 || sizes[i] > kMaxWidth)
            fail(DP_ERR_INVALID_ARGUMENT, cat("sizes[", i, "]: expected a width in [1, ", kMaxWidth,
                                              "], got ", sizes[i]));
    }
    if (activations.size() != layers() || slopes.size() != layers())
        fail(DP_ERR_INVALID_ARGUMENT, "activations: expected one per layer");
    for (std::size_t l = 0; l < layers(); ++l) {
        const dp_activation act = activations[l];
        if (act < DP_IDENTITY || act > DP_SOFTMAX)
            fail(DP_ERR_INVALID_ARGUMENT, cat("activations[", l, "]: unknown activation ", int(act)));
        if (act == DP_SOFTMAX && l + 1 != layers())
            fail(DP_ERR_INVALID_ARGUMENT,
                 cat("activations[", l, "]: softmax is allowed on the output layer only"));
        if (!std::isfinite(slopes[l]))
            fail(DP_ERR_INVALID_ARGUMENT, cat("slope[", l, "]: expected a finite number"));
    }
    if (loss < DP_LOSS_MSE || loss > DP_LOSS_CROSS_ENTROPY)
        fail(DP_ERR_INVALID_ARGUMENT, cat("loss: unknown loss ", int(loss)));
    if (init < DP_INIT_GLOROT_UNIFORM || init > DP_INIT_HE_NORMAL)
        fail(DP_ERR_INVALID_ARGUMENT, cat("init: unknown initialisation ", int(init)));
    const dp_activation out = activations.back();
    if (loss == DP_LOSS_CROSS_ENTROPY && out != DP_SOFTMAX)
        fail(DP_ERR_INVALID_ARGUMENT, cat("loss: cross_entropy needs a softmax output layer, got ",
                                          activation_name(out)));
    if (loss == DP_LOSS_BINARY_CROSS_ENTROPY && out != DP_SIGMOID)
        fail(DP_ERR_INVALID_ARGUMENT, cat("loss: binary_cross_entropy needs a sigmoid output layer, got ",
                                          activation_name(out)));
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
        if (off > (std::size_t(1) << 40)) fail(DP_ERR_INVALID_ARGUMENT, "sizes: too many parameters");
    }
    n_params_ = off;
}

void check_l2(double l2) {
    if (!(l2 >= 0.0) || !std::isfinite(l2))
        fail(DP_ERR_INVALID_ARGUMENT, cat("l2: expected a finite number >= 0, got ", l2));
}

void check_sgd(const dp_sgd& s, bool for_step) {
    if (!(s.lr > 0.0) || !std::isfinite(s.lr))
        fail(DP_ERR_INVALID_ARGUMENT, cat("lr: expected a finite number > 0, got ", s.lr));
    if (!(s.momentum >= 0.0 && s.momentum < 1.0))
        fail(DP_ERR_INVALID_ARGUMENT, cat("momentum: expected a number in [0, 1), got ", s.momentum));
    if (s.nesterov && s.momentum == 0.0)
        fail(DP_ERR_INVALID_ARGUMENT, "nesterov: Nesterov momentum needs momentum > 0, got momentum 0");
    if (!(s.weight_decay >= 0.0) || !std::isfinite(s.weight_decay))
        fail(DP_ERR_INVALID_ARGUMENT,
             cat("weight_decay: expected a finite number >= 0, got ", s.weight_decay));
    if (!for_step) check_l2(s.l2);
}

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
