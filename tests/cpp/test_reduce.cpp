// SPDX-License-Identifier: MIT
// dp_fit_options.reduce without MPI: p "ranks" are p threads, each fitting its own copy of a net, and
// the reduce function is an in-process gather (or sum) between them. The ordered reduction with
// replicated data must give bitwise the same parameters for 1, 2, 3 and 4 ranks; the sum the same on
// every rank; bad rank numbers are refused. With layer_ready (overlap) the gradient is exchanged layer
// by layer as each is announced, reduce then moves only the statistics, and the parameters are the
// same bits as without it (also with more ranks than chunks: ranks with nothing to compute); it is
// called from the thread that runs dp_net_fit, never from a pool worker.
#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "deltaprop/deltaprop.h"

static int passed = 0, failed = 0;

static void expect(bool ok, const char* what) {
    if (ok) {
        ++passed;
    } else {
        ++failed;
        std::printf("FAIL %s\n", what);
    }
}

// A barrier for p threads (C++17 has none).
class Barrier {
public:
    explicit Barrier(std::size_t p) : p_(p) {}
    void wait() {
        std::unique_lock<std::mutex> lk(mu_);
        const std::size_t gen = gen_;
        if (++count_ == p_) {
            count_ = 0;
            ++gen_;
            cv_.notify_all();
        } else {
            cv_.wait(lk, [&] { return gen != gen_; });
        }
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::size_t p_, count_ = 0, gen_ = 0;
};

// The in-process "communicator" shared by the p threads.
struct World {
    std::size_t p;
    Barrier barrier;
    std::vector<double> grads, stats;  // the gathered slots (doubles: the nets are float64)
    std::vector<double> layer;         // overlap, SUM: the layer sums
    explicit World(std::size_t ranks) : p(ranks), barrier(ranks) {}
};

struct Rank {
    World* world;
    dp_reduce_kind kind;
    bool overlap = false;
    std::size_t layers = 0, expect = 0, bad = 0;  // overlap: the next layer expected, contract breaches
    std::thread::id self;                         // the thread that called dp_net_fit
};

// Overlap: the in-process exchange of one layer's range of every slot, as soon as it is announced.
static void layer_ready(void* user, const dp_reduce_call* c, std::size_t layer, std::size_t begin, std::size_t end) {
    auto* r = static_cast<Rank*>(user);
    World& w = *r->world;
    double* g = static_cast<double*>(c->grads);
    const std::size_t np = c->n_params;
    static std::mutex add;
    if (layer != r->expect || begin >= end || end > np || std::this_thread::get_id() != r->self) ++r->bad;
    r->expect = layer - 1;
    w.barrier.wait();
    {
        std::lock_guard<std::mutex> lk(add);
        if (w.grads.size() < c->n_slots * np) w.grads.resize(c->n_slots * np);
        if (w.layer.size() != np) w.layer.assign(np, 0.0);
    }
    w.barrier.wait();
    if (r->kind == DP_REDUCE_ORDERED) {
        for (std::size_t k = c->first; k < c->first + c->count; ++k)
            std::memcpy(w.grads.data() + k * np + begin, g + k * np + begin, (end - begin) * sizeof(double));
    } else {
        std::lock_guard<std::mutex> lk(add);
        for (std::size_t i = begin; i < end; ++i) w.layer[i] += g[i];
    }
    w.barrier.wait();
    if (r->kind == DP_REDUCE_ORDERED) {
        for (std::size_t k = 0; k < c->n_slots; ++k)
            std::memcpy(g + k * np + begin, w.grads.data() + k * np + begin, (end - begin) * sizeof(double));
    } else {
        std::memcpy(g + begin, w.layer.data() + begin, (end - begin) * sizeof(double));
    }
    w.barrier.wait();
    if (r->kind == DP_REDUCE_SUM && layer == 0) {
        std::lock_guard<std::mutex> lk(add);
        std::fill(w.layer.begin(), w.layer.end(), 0.0);  // every rank has its copy: start afresh
    }
}

// Allgatherv in place (ORDERED) or Allreduce SUM (SUM) between the threads.
static int reduce(void* user, const dp_reduce_call* c) {
    auto* r = static_cast<Rank*>(user);
    World& w = *r->world;
    double* g = static_cast<double*>(c->grads);
    if (r->overlap && g) {  // every layer came and was exchanged: the statistics are left
        if (r->expect != std::size_t(-1)) ++r->bad;
        r->expect = r->layers - 1;
        g = nullptr;
    }
    const std::size_t np = c->n_params;
    static std::mutex add;
    w.barrier.wait();  // the previous call's readers are done
    if (r->kind == DP_REDUCE_ORDERED) {
        {
            std::lock_guard<std::mutex> lk(add);
            if (w.grads.size() < c->n_slots * np) w.grads.resize(c->n_slots * np);
            if (w.stats.size() < c->n_slots * 4) w.stats.resize(c->n_slots * 4);
        }
        w.barrier.wait();
        if (g) std::memcpy(w.grads.data() + c->first * np, g + c->first * np, c->count * np * sizeof(double));
        std::memcpy(w.stats.data() + c->first * 4, c->stats + c->first * 4, c->count * 4 * sizeof(double));
        w.barrier.wait();
        if (g) std::memcpy(g, w.grads.data(), c->n_slots * np * sizeof(double));
        std::memcpy(c->stats, w.stats.data(), c->n_slots * 4 * sizeof(double));
    } else {
        {
            std::lock_guard<std::mutex> lk(add);
            if (w.grads.size() != np + 4) w.grads.assign(np + 4, 0.0);
        }
        w.barrier.wait();
        {
            std::lock_guard<std::mutex> lk(add);
            for (std::size_t i = 0; g && i < np; ++i) w.grads[i] += g[i];
            for (std::size_t i = 0; i < 4; ++i) w.grads[np + i] += c->stats[i];
        }
        w.barrier.wait();
        for (std::size_t i = 0; g && i < np; ++i) g[i] = w.grads[i];
        for (std::size_t i = 0; i < 4; ++i) c->stats[i] = w.grads[np + i];
        w.barrier.wait();
        {
            std::lock_guard<std::mutex> lk(add);
            w.grads.clear();
        }
    }
    w.barrier.wait();
    return 0;
}

static const std::size_t kSizes[] = {3, 9, 5, 3};
static const dp_activation kActs[] = {DP_TANH, DP_RELU, DP_SOFTMAX};
static const std::size_t kN = 97;

static dp_net* make_net() {
    dp_net* net = nullptr;
    if (dp_net_create(&net, 4, kSizes, kActs, nullptr, DP_LOSS_CROSS_ENTROPY, DP_FLOAT64, DP_INIT_GLOROT_UNIFORM, 3) !=
        DP_OK)
        std::printf("dp_net_create: %s\n", dp_last_error());
    return net;
}

// Trains p copies of the net in p threads; returns each rank's parameters.
static std::vector<std::vector<double>> train(std::size_t p, dp_reduce_kind kind, dp_optimizer_kind opt,
                                              bool overlap = false) {
    std::vector<double> x(kN * 3);
    std::vector<std::int64_t> y(kN);
    unsigned s = 7;
    for (auto& v : x) v = double((s = s * 1103515245u + 12345u) >> 8 & 0xffff) / 32768.0 - 1.0;
    for (std::size_t i = 0; i < kN; ++i) y[i] = (x[3 * i] * x[3 * i + 1] > 0) + (x[3 * i + 2] > 0.5);
    World world(p);
    std::vector<std::vector<double>> params(p);
    std::vector<std::thread> threads;
    for (std::size_t r = 0; r < p; ++r) {
        threads.emplace_back([&, r] {
            dp_net* net = make_net();
            Rank me{&world, kind};
            me.overlap = overlap;
            me.self = std::this_thread::get_id();
            me.layers = me.expect = dp_net_num_layers(net) - 1;
            me.layers += 1;
            dp_fit_options o = dp_fit_options_default();
            o.epochs = 3;
            o.batch_size = 20;
            o.l2 = 1e-3;
            o.optimizer = dp_optimizer_default(opt);
            o.optimizer.clip_norm = 2.0;
            o.reduce = reduce;
            o.reduce_user = &me;
            o.reduce_kind = kind;
            o.rank = r;
            o.ranks = p;
            o.chunk_rows = 3;
            if (overlap) o.layer_ready = layer_ready;
            dp_epoch_record hist[3];
            const double* w = static_cast<const double*>(dp_net_params(net));
            const std::vector<double> before(w, w + dp_net_num_params(net));
            const bool ok = dp_net_fit(net, x.data(), kN, DP_TARGET_CLASSES, y.data(), &o, hist, nullptr) == DP_OK;
            if (!ok) std::printf("dp_net_fit (rank %zu of %zu): %s\n", r, p, dp_last_error());
            params[r].assign(w, w + dp_net_num_params(net));
            if (!ok || params[r] == before || me.bad) params[r].clear();  // never equal to a trained rank's
            dp_net_destroy(net);
        });
    }
    for (auto& t : threads) t.join();
    return params;
}

int main() {
    for (dp_optimizer_kind opt : {DP_OPTIM_SGD, DP_OPTIM_ADAM}) {
        const auto one = train(1, DP_REDUCE_ORDERED, opt);
        expect(!one[0].empty(), "one process trained");
        for (std::size_t p = 2; p <= 4; ++p) {
            const auto got = train(p, DP_REDUCE_ORDERED, opt);
            for (std::size_t r = 0; r < p; ++r)
                expect(got[r] == one[0], "ordered: a rank's parameters differ from one process's");
        }
        const auto sum = train(3, DP_REDUCE_SUM, opt);
        expect(!sum[0].empty() && sum[0] == sum[1] && sum[1] == sum[2], "sum: ranks differ");
        double diff = 0.0;
        for (std::size_t i = 0; i < sum[0].size(); ++i) diff = std::max(diff, std::abs(sum[0][i] - one[0][i]));
        expect(diff < 1e-9 && diff >= 0.0, "sum: far from the ordered result");
        // overlap: the same bits (ORDERED, 7 chunks a batch: 8 ranks leave one with nothing to compute)
        for (std::size_t p : {1, 2, 3, 8}) {
            const auto got = train(p, DP_REDUCE_ORDERED, opt, true);
            for (std::size_t r = 0; r < p; ++r)
                expect(got[r] == one[0], "ordered, overlap: a rank's parameters differ from one process's");
        }
        const auto sum_overlap = train(3, DP_REDUCE_SUM, opt, true);
        expect(!sum_overlap[0].empty() && sum_overlap[0] == sum_overlap[1] && sum_overlap[1] == sum_overlap[2],
               "sum, overlap: ranks differ");
        diff = 0.0;
        for (std::size_t i = 0; i < sum[0].size() && !sum_overlap[0].empty(); ++i)
            diff = std::max(diff, std::abs(sum_overlap[0][i] - sum[0][i]));
        expect(!sum_overlap[0].empty() && diff < 1e-12, "sum, overlap: far from the sum without it");
    }
    // refused: rank outside [0, ranks)
    dp_net* net = make_net();
    double x[3] = {0, 0, 0};
    std::int64_t y[1] = {0};
    dp_fit_options o = dp_fit_options_default();
    Rank me{nullptr, DP_REDUCE_ORDERED};
    o.reduce = reduce;
    o.reduce_user = &me;
    o.rank = 2;
    o.ranks = 2;
    expect(dp_net_fit(net, x, 1, DP_TARGET_CLASSES, y, &o, nullptr, nullptr) == DP_ERR_INVALID_ARGUMENT &&
               std::strstr(dp_last_error(), "rank") != nullptr,
           "rank >= ranks is refused");
    dp_net_destroy(net);
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
