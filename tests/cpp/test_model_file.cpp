// SPDX-License-Identifier: MIT
// Tests of the model file (csrc/src/model_file.cpp, docs/model-format.md): round trips, the exact byte
// layout of versions 1 and 2, rejection of every truncation, of random byte flips and of every single
// corrupted byte, allocation-free rejection of huge headers, and the atomic file writer.
#include "src/model_file.hpp"

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#if !defined(_WIN32)
#  include <sys/resource.h>
#  include <unistd.h>
#endif

namespace fs = std::filesystem;
using deltaprop::detail::ModelRecord;
using Bytes = std::vector<std::uint8_t>;

// ---- largest single allocation, to show that huge headers are rejected without allocating ----
static std::atomic<std::size_t> g_largest_alloc{0};

static void* counted_alloc(std::size_t n) {
    std::size_t prev = g_largest_alloc.load();
    while (n > prev && !g_largest_alloc.compare_exchange_weak(prev, n)) {
    }
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

// ---- tiny harness ----
static int g_passed = 0, g_failed = 0;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (!(cond)) {                                                            \
            std::printf("  FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
            ok = false;                                                           \
        }                                                                         \
    } while (0)

static void run(const char* name, bool (*fn)()) {
    bool ok = false;
    try {
        ok = fn();
    } catch (const std::exception& e) {
        std::printf("  FAILED %s: unexpected exception: %s\n", name, e.what());
    }
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", name);
    (ok ? g_passed : g_failed)++;
}

// Deterministic generator (splitmix64), so failures reproduce everywhere.
struct Rng {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
};

static ModelRecord make_record(std::uint32_t dtype, bool optimizer, std::vector<std::uint64_t> sizes,
                               std::uint64_t seed) {
    ModelRecord rec;
    rec.dtype = dtype;
    rec.loss = 0;
    rec.init = 1;
    rec.sizes = std::move(sizes);
    const std::size_t L = rec.sizes.size() - 1;
    for (std::size_t l = 0; l < L; ++l) {
        rec.activations.push_back(static_cast<std::uint32_t>(l % 5));  // identity..leaky_relu
        rec.slopes.push_back(0.01 * static_cast<double>(l + 1));
    }
    const std::size_t bytes = deltaprop::detail::count_params(rec.sizes) * (dtype == 2 ? 8 : 4);
    Rng rng{seed};
    for (std::size_t i = 0; i < bytes; ++i) rec.params.push_back(static_cast<std::uint8_t>(rng.next()));
    rec.has_optimizer = optimizer;
    if (optimizer) {
        for (std::size_t i = 0; i < bytes; ++i) rec.velocity.push_back(static_cast<std::uint8_t>(rng.next()));
        for (auto& r : rec.rng) r = rng.next();
    }
    return rec;
}

// A record with version 2 optimizer state: kind 0 (SGD, no extra buffers), 1 (Adam) or 2 (AdamW).
static ModelRecord make_record_v2(std::uint32_t dtype, std::uint32_t kind, std::uint64_t step,
                                  std::vector<std::uint64_t> sizes, std::uint64_t seed) {
    ModelRecord rec = make_record(dtype, true, std::move(sizes), seed);
    rec.opt_kind = kind;
    rec.opt_step = step;
    Rng rng{seed ^ 0xA5A5A5A5ull};
    for (int k = 0; k < (kind == 0 ? 0 : 2); ++k) {
        std::vector<std::uint8_t> buf(rec.params.size());
        for (auto& x : buf) x = static_cast<std::uint8_t>(rng.next());
        rec.extra_state.push_back(std::move(buf));
    }
    return rec;
}

static bool same(const ModelRecord& a, const ModelRecord& b) {
    if (a.slopes.size() != b.slopes.size()) return false;
    for (std::size_t i = 0; i < a.slopes.size(); ++i)
        if (std::memcmp(&a.slopes[i], &b.slopes[i], sizeof(double)) != 0) return false;
    return a.dtype == b.dtype && a.loss == b.loss && a.init == b.init && a.sizes == b.sizes &&
           a.activations == b.activations && a.params == b.params && a.has_optimizer == b.has_optimizer &&
           (!a.has_optimizer || (a.velocity == b.velocity && a.rng == b.rng && a.opt_kind == b.opt_kind &&
                                 a.opt_step == b.opt_step && a.extra_state == b.extra_state));
}

// Runs decode and returns the std::invalid_argument message, or "" if it was accepted.
// Any other exception type is reported as "WRONG EXCEPTION".
static std::string reject_message(const Bytes& b) {
    try {
        deltaprop::detail::decode_model(b.data(), b.size());
    } catch (const std::invalid_argument& e) {
        std::string m = e.what();
        return m.empty() ? std::string("(empty message)") : m;
    } catch (...) {
        return "WRONG EXCEPTION";
    }
    return "";
}

static bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// The accessors check their bounds, so a file of an unexpected shape fails the test instead of
// corrupting memory.
static void need(const Bytes& b, std::size_t at, std::size_t n) {
    if (at > b.size() || b.size() - at < n)
        throw std::out_of_range("test edits bytes " + std::to_string(at) + ".." + std::to_string(at + n) +
                                " of a " + std::to_string(b.size()) + "-byte file");
}
static void put_u32(Bytes& b, std::size_t at, std::uint32_t v) {
    need(b, at, 4);
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
static void put_u64(Bytes& b, std::size_t at, std::uint64_t v) {
    need(b, at, 8);
    for (int i = 0; i < 8; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
static std::uint32_t get_u32(const Bytes& b, std::size_t at) {
    need(b, at, 4);
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | b[at + i];
    return v;
}
static std::uint64_t get_u64(const Bytes& b, std::size_t at) {
    need(b, at, 8);
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | b[at + i];
    return v;
}
// Recompute the trailing checksum after a deliberate edit, so the edit itself is what gets judged.
static void reseal(Bytes& b) {
    put_u32(b, b.size() - 4, deltaprop::detail::crc32(b.data(), b.size() - 4));
}

// ---- tests ----
static bool test_crc32_vector() {
    bool ok = true;
    const char* v = "123456789";
    CHECK(deltaprop::detail::crc32(reinterpret_cast<const std::uint8_t*>(v), 9) == 0xCBF43926u);
    CHECK(deltaprop::detail::crc32(nullptr, 0) == 0u);
    const std::uint8_t zero = 0;
    CHECK(deltaprop::detail::crc32(&zero, 1) == 0xD202EF8Du);
    return ok;
}

static bool test_count_params() {
    bool ok = true;
    using deltaprop::detail::count_params;
    CHECK(count_params({2, 8, 1}) == 2 * 8 + 8 + 8 * 1 + 1);
    CHECK(count_params({784, 256, 10}) == 784 * 256 + 256 + 256 * 10 + 10);
    bool threw = false;
    try {
        count_params({std::uint64_t{1} << 40, std::uint64_t{1} << 40});
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    CHECK(threw);
    return ok;
}

static bool test_round_trip() {
    bool ok = true;
    std::uint64_t seed = 1;
    for (std::uint32_t dtype : {1u, 2u})
        for (bool opt : {false, true}) {
            const ModelRecord rec = make_record(dtype, opt, {3, 7, 1, 4}, seed++);
            const Bytes b = deltaprop::detail::encode_model(rec);
            const ModelRecord back = deltaprop::detail::decode_model(b.data(), b.size());
            CHECK(same(rec, back));
            CHECK(deltaprop::detail::encode_model(back) == b);
        }
    // Parameters may hold any bit pattern (NaN, Inf, denormals): no finiteness check on them.
    ModelRecord rec = make_record(1, false, {1, 1}, 9);
    const float odd[2] = {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()};
    std::memcpy(rec.params.data(), odd, sizeof odd);
    const Bytes b = deltaprop::detail::encode_model(rec);
    CHECK(same(rec, deltaprop::detail::decode_model(b.data(), b.size())));
    return ok;
}

// The byte layout documented in docs/model-format.md, pinned field by field.
static bool test_layout() {
    bool ok = true;
    ModelRecord rec = make_record(2, true, {2, 3, 1}, 5);
    rec.loss = 1;
    rec.init = 2;
    rec.activations = {2, 1};
    rec.slopes = {0.25, -1.5};
    const Bytes b = deltaprop::detail::encode_model(rec);
    const std::size_t P = 2 * 3 + 3 + 3 * 1 + 1;
    const std::size_t expected = 40 + 8 * 3 + 4 * 2 + 8 * 2 + 2 * 8 * P + 32 + 4;
    CHECK(b.size() == expected);
    if (b.size() != expected) return ok;
    CHECK(std::memcmp(b.data(), "DPMODEL\0", 8) == 0);
    const std::uint8_t head[32] = {'D', 'P', 'M', 'O', 'D', 'E', 'L', 0,  1, 0, 0, 0, 4, 3, 2, 1,
                                   2,   0,   0,   0,   1,   0,   0,   0,  2, 0, 0, 0, 1, 0, 0, 0};
    CHECK(std::memcmp(b.data(), head, 32) == 0);
    CHECK(b[32] == 3 && b[33] == 0);                       // n_sizes
    CHECK(b[40] == 2 && b[48] == 3 && b[56] == 1);         // sizes
    CHECK(get_u32(b, 64) == 2 && get_u32(b, 68) == 1);     // activations
    const std::uint8_t quarter[8] = {0, 0, 0, 0, 0, 0, 0xD0, 0x3F};  // 0.25 = 0x3FD0000000000000
    CHECK(std::memcmp(b.data() + 72, quarter, 8) == 0);
    CHECK(std::memcmp(b.data() + 88, rec.params.data(), rec.params.size()) == 0);
    CHECK(std::memcmp(b.data() + 88 + 8 * P, rec.velocity.data(), rec.velocity.size()) == 0);
    CHECK(b[88 + 16 * P] == static_cast<std::uint8_t>(rec.rng[0]));
    CHECK(get_u32(b, b.size() - 4) == deltaprop::detail::crc32(b.data(), b.size() - 4));
    return ok;
}

// Files of every shape the writer produces: version 1 without and with optimizer state, version 2 with
// SGD (a step count, no extra buffers), Adam and AdamW, in both dtypes.
static std::vector<Bytes> sample_files(std::vector<std::uint64_t> sizes, std::uint64_t seed) {
    std::vector<Bytes> files;
    for (std::uint32_t dtype : {1u, 2u}) {
        files.push_back(deltaprop::detail::encode_model(make_record(dtype, false, sizes, seed++)));
        files.push_back(deltaprop::detail::encode_model(make_record(dtype, true, sizes, seed++)));
        for (std::uint32_t kind : {0u, 1u, 2u})
            files.push_back(
                deltaprop::detail::encode_model(make_record_v2(dtype, kind, 1000 + kind, sizes, seed++)));
    }
    return files;
}

static bool test_every_truncation() {
    bool ok = true;
    for (const Bytes& full : sample_files({2, 3, 2}, 11)) {
        int accepted = 0, wrong = 0;
        for (std::size_t n = 0; n < full.size(); ++n) {
            // A copy of exactly n bytes, so a read past the end would show up under sanitizers.
            const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
            const std::string m = reject_message(cut);
            if (m.empty()) ++accepted;
            if (m == "WRONG EXCEPTION") ++wrong;
            if (n >= 40 && !contains(m, "truncated")) {
                std::printf("  length %zu: %s\n", n, m.c_str());
                ++wrong;
            }
        }
        CHECK(accepted == 0);
        CHECK(wrong == 0);
        // Messages say what was expected and what was found.
        const Bytes cut(full.begin(), full.end() - 1);
        const std::string m = reject_message(cut);
        const std::string want = "model file truncated: expected " + std::to_string(full.size()) +
                                 " bytes, got " + std::to_string(full.size() - 1);
        CHECK(m == want);
    }
    return ok;
}

static bool test_random_byte_flips() {
    bool ok = true;
    Rng rng{0xDE17A};
    int accepted = 0, wrong = 0, trials = 0;
    for (const Bytes& full : sample_files({4, 5, 3}, 20)) {
        for (int i = 0; i < 1000; ++i, ++trials) {
            Bytes b = full;
            const std::size_t at = static_cast<std::size_t>(rng.next() % b.size());
            const std::uint8_t x = static_cast<std::uint8_t>(1 + rng.next() % 255);  // never 0
            b[at] ^= x;
            const std::string m = reject_message(b);
            if (m.empty()) ++accepted;
            if (m == "WRONG EXCEPTION") ++wrong;
        }
    }
    CHECK(trials == 10000);  // 10 files
    CHECK(accepted == 0);
    CHECK(wrong == 0);
    // Appending a byte is rejected as trailing data.
    Bytes longer = deltaprop::detail::encode_model(make_record(1, false, {2, 2}, 3));
    longer.push_back(0);
    CHECK(contains(reject_message(longer), "trailing"));
    return ok;
}

static bool test_header_errors() {
    bool ok = true;
    const Bytes good = deltaprop::detail::encode_model(make_record(1, false, {2, 3, 1}, 7));
    auto edited = [&](std::size_t at, std::uint32_t v) {
        Bytes b = good;
        put_u32(b, at, v);
        reseal(b);
        return reject_message(b);
    };
    CHECK(reject_message(Bytes{}) == "model file is empty");
    CHECK(reject_message(Bytes{'P', 'K', 3, 4}) == "not a deltaprop model file (bad magic)");
    CHECK(reject_message(Bytes{'D', 'P'}) == "model file truncated: expected 40 bytes, got 2");
    Bytes text(200, 'x');
    CHECK(reject_message(text) == "not a deltaprop model file (bad magic)");
    CHECK(edited(8, 7) == "unsupported model format version 7 (this build reads 1 and 2)");
    CHECK(edited(8, 0) == "unsupported model format version 0 (this build reads 1 and 2)");
    CHECK(edited(8, 3) == "unsupported model format version 3 (this build reads 1 and 2)");
    CHECK(contains(edited(12, 0x04030201u), "byte order"));
    CHECK(contains(edited(12, 0x01020305u), "byte-order mark"));
    CHECK(contains(edited(16, 0), "dtype"));
    CHECK(contains(edited(16, 3), "dtype"));
    CHECK(contains(edited(20, 3), "loss"));
    CHECK(contains(edited(24, 3), "init"));
    CHECK(contains(edited(28, 2), "flags"));
    CHECK(contains(edited(64, 6), "activation"));
    CHECK(contains(edited(64, 5), "softmax"));  // softmax on a hidden layer
    CHECK(contains(edited(20, 2), "cross_entropy needs a softmax output"));
    Bytes bce = good;  // binary_cross_entropy with a tanh output
    put_u32(bce, 20, 1);
    put_u32(bce, 68, 2);
    reseal(bce);
    CHECK(contains(reject_message(bce), "binary_cross_entropy needs a sigmoid output"));
    put_u32(bce, 68, 1);  // ... and with the sigmoid output it needs
    reseal(bce);
    CHECK(reject_message(bce).empty());
    Bytes b = good;
    b[b.size() - 1] ^= 0x80;
    CHECK(reject_message(b) == "model file checksum mismatch");
    // A non-finite slope is rejected even with a valid checksum.
    for (double bad : {std::nan(""), HUGE_VAL, -HUGE_VAL}) {
        Bytes s = good;
        std::uint64_t bits;
        std::memcpy(&bits, &bad, 8);
        put_u64(s, 40 + 3 * 8 + 2 * 4, bits);
        reseal(s);
        CHECK(contains(reject_message(s), "slope"));
    }
    // n_sizes outside [2, 1025] and widths outside [1, 2^24].
    for (std::uint64_t n : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{1026}, ~std::uint64_t{0}}) {
        Bytes s = good;
        put_u64(s, 32, n);
        CHECK(contains(reject_message(s), "n_sizes"));
    }
    for (std::uint64_t w : {std::uint64_t{0}, (std::uint64_t{1} << 24) + 1, ~std::uint64_t{0}}) {
        Bytes s = good;
        put_u64(s, 48, w);
        CHECK(contains(reject_message(s), "outside [1, 2^24]"));
    }
    // An all-zero generator state (a fixed point of xoshiro256**) is rejected.
    ModelRecord zr = make_record(1, true, {2, 2}, 4);
    zr.rng = {0, 0, 0, 0};
    const Bytes z = deltaprop::detail::encode_model(zr);
    CHECK(contains(reject_message(z), "generator state"));
    // A valid edit with a correct checksum is accepted: the checks are not over-eager.
    Bytes v = good;
    put_u32(v, 24, 2);  // init he_normal
    reseal(v);
    CHECK(reject_message(v).empty());
    return ok;
}

static bool test_huge_header_no_allocation() {
    bool ok = true;
    // sizes {2^24, 2^24} in a 100-byte file: 2^48 parameters claimed.
    Bytes b(100, 0);
    std::memcpy(b.data(), "DPMODEL\0", 8);
    put_u32(b, 8, 1);
    put_u32(b, 12, 0x01020304u);
    put_u32(b, 16, 1);
    put_u64(b, 32, 2);
    put_u64(b, 40, std::uint64_t{1} << 24);
    put_u64(b, 48, std::uint64_t{1} << 24);
    const std::size_t before = g_largest_alloc.exchange(0);
    std::string m = reject_message(b);
    CHECK(contains(m, "truncated"));
    CHECK(g_largest_alloc.load() < 4096);
    // 1025 sizes of 2^24 each with the optimizer flag: the largest total the limits allow.
    Bytes c(40 + 8 * 1025 + 12 * 1024 + 4, 0);
    std::memcpy(c.data(), "DPMODEL\0", 8);
    put_u32(c, 8, 1);
    put_u32(c, 12, 0x01020304u);
    put_u32(c, 16, 2);
    put_u32(c, 28, 1);
    put_u64(c, 32, 1025);
    for (int i = 0; i < 1025; ++i) put_u64(c, 40 + 8 * i, std::uint64_t{1} << 24);
    g_largest_alloc.store(0);
    m = reject_message(c);
    CHECK(contains(m, "truncated"));
    CHECK(g_largest_alloc.load() < 64 * 1024);
    g_largest_alloc.store(before);
    return ok;
}

// ---- format version 2: extended optimizer state ----
static bool test_version_choice() {
    bool ok = true;
    using deltaprop::detail::encode_model;
    using deltaprop::detail::model_format_version;
    // Optimizer state at its version 1 defaults (SGD, step 0, no extra buffers): version 1.
    const ModelRecord v1 = make_record(1, true, {3, 4, 2}, 31);
    CHECK(model_format_version(v1) == 1);
    const Bytes b1 = encode_model(v1);
    CHECK(get_u32(b1, 8) == 1 && get_u32(b1, 28) == 1);
    // Any of the three fields away from its default: version 2, flags 3.
    ModelRecord step = v1;
    step.opt_step = 1;
    ModelRecord adam = make_record_v2(1, 1, 0, {3, 4, 2}, 31);
    ModelRecord adamw = make_record_v2(1, 2, 0, {3, 4, 2}, 31);
    for (const ModelRecord* r : {&step, &adam, &adamw}) {
        CHECK(model_format_version(*r) == 2);
        const Bytes b = encode_model(*r);
        CHECK(get_u32(b, 8) == 2 && get_u32(b, 28) == 3);
        // Everything before the extended section is the version 1 file with its optimizer state,
        // apart from the version and flag words.
        Bytes head(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(b1.size() - 4));
        put_u32(head, 8, 1);
        put_u32(head, 28, 1);
        ModelRecord same_v1 = *r;
        same_v1.opt_kind = 0;
        same_v1.opt_step = 0;
        same_v1.extra_state.clear();
        const Bytes ref = encode_model(same_v1);
        CHECK(Bytes(ref.begin(), ref.end() - 4) == head);
    }
    // Without the optimizer flag the optimizer fields are ignored: the version 1 file without state.
    ModelRecord none = adam;
    none.has_optimizer = false;
    CHECK(model_format_version(none) == 1);
    const Bytes bn = encode_model(none);
    CHECK(bn == encode_model(make_record(1, false, {3, 4, 2}, 31)));
    CHECK(get_u32(bn, 8) == 1 && get_u32(bn, 28) == 0);
    const ModelRecord back = deltaprop::detail::decode_model(bn.data(), bn.size());
    CHECK(!back.has_optimizer && back.opt_kind == 0 && back.opt_step == 0 && back.extra_state.empty());
    return ok;
}

static bool test_round_trip_v2() {
    bool ok = true;
    std::uint64_t seed = 40;
    for (std::uint32_t dtype : {1u, 2u})
        for (std::uint32_t kind : {0u, 1u, 2u})
            for (std::uint64_t step : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{123456789},
                                       ~std::uint64_t{0}}) {
                if (kind == 0 && step == 0) continue;  // that is version 1
                const ModelRecord rec = make_record_v2(dtype, kind, step, {3, 7, 1, 4}, seed++);
                const Bytes b = deltaprop::detail::encode_model(rec);
                CHECK(get_u32(b, 8) == 2);
                const ModelRecord back = deltaprop::detail::decode_model(b.data(), b.size());
                CHECK(same(rec, back));
                CHECK(back.extra_state.size() == (kind == 0 ? 0u : 2u));
                CHECK(deltaprop::detail::encode_model(back) == b);
            }
    // A version 1 file decodes with the version 2 fields at their defaults.
    const Bytes v1 = deltaprop::detail::encode_model(make_record(2, true, {2, 2}, 3));
    const ModelRecord back = deltaprop::detail::decode_model(v1.data(), v1.size());
    CHECK(back.has_optimizer && back.opt_kind == 0 && back.opt_step == 0 && back.extra_state.empty());
    // State buffers may hold any bit pattern.
    ModelRecord odd = make_record_v2(1, 1, 5, {1, 1}, 9);
    const float bits[2] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()};
    std::memcpy(odd.extra_state[1].data(), bits, sizeof bits);
    const Bytes b = deltaprop::detail::encode_model(odd);
    CHECK(same(odd, deltaprop::detail::decode_model(b.data(), b.size())));
    return ok;
}

// The extended section of docs/model-format.md, pinned byte by byte.
static bool test_layout_v2() {
    bool ok = true;
    for (std::uint32_t dtype : {1u, 2u}) {
        ModelRecord rec = make_record_v2(dtype, 2, 0x0102030405060708ull, {2, 3, 1}, 5);
        rec.loss = 1;
        rec.init = 2;
        rec.activations = {2, 1};
        rec.slopes = {0.25, -1.5};
        const Bytes b = deltaprop::detail::encode_model(rec);
        const std::size_t e = dtype == 2 ? 8 : 4;
        const std::size_t P = 2 * 3 + 3 + 3 * 1 + 1;
        const std::size_t H = 40 + 20 * 3 - 12;  // 88
        const std::size_t E = H + 2 * P * e + 32;
        const std::size_t expected = E + 16 + 2 * P * e + 4;
        CHECK(b.size() == expected);
        if (b.size() != expected) continue;
        const std::uint8_t head[32] = {'D', 'P', 'M', 'O', 'D', 'E', 'L', 0,  2, 0, 0, 0, 4, 3, 2, 1,
                                       static_cast<std::uint8_t>(dtype), 0, 0, 0,  1, 0, 0, 0,
                                       2, 0, 0, 0,  3, 0, 0, 0};
        CHECK(std::memcmp(b.data(), head, 32) == 0);
        CHECK(get_u64(b, 32) == 3);
        CHECK(get_u64(b, 40) == 2 && get_u64(b, 48) == 3 && get_u64(b, 56) == 1);
        CHECK(get_u32(b, 64) == 2 && get_u32(b, 68) == 1);
        CHECK(std::memcmp(b.data() + H, rec.params.data(), P * e) == 0);
        CHECK(std::memcmp(b.data() + H + P * e, rec.velocity.data(), P * e) == 0);
        for (int k = 0; k < 4; ++k) CHECK(get_u64(b, H + 2 * P * e + 8 * k) == rec.rng[k]);
        const std::uint8_t ext[16] = {2, 0, 0, 0,  2, 0, 0, 0,  8, 7, 6, 5, 4, 3, 2, 1};
        CHECK(std::memcmp(b.data() + E, ext, 16) == 0);
        CHECK(std::memcmp(b.data() + E + 16, rec.extra_state[0].data(), P * e) == 0);
        CHECK(std::memcmp(b.data() + E + 16 + P * e, rec.extra_state[1].data(), P * e) == 0);
        CHECK(get_u32(b, b.size() - 4) == deltaprop::detail::crc32(b.data(), b.size() - 4));
    }
    // SGD with a step count: the extended header and no buffers.
    const ModelRecord sgd = make_record_v2(1, 0, 7, {2, 2}, 6);
    const Bytes s = deltaprop::detail::encode_model(sgd);
    const std::size_t P = 2 * 2 + 2, E = 40 + 20 * 2 - 12 + 2 * P * 4 + 32;
    CHECK(s.size() == E + 16 + 4);
    const std::uint8_t ext[16] = {0, 0, 0, 0,  0, 0, 0, 0,  7, 0, 0, 0, 0, 0, 0, 0};
    if (s.size() == E + 20) CHECK(std::memcmp(s.data() + E, ext, 16) == 0);
    // The example of docs/model-format.md: 2-8-1 float32 with Adam state is 668 bytes.
    CHECK(deltaprop::detail::encode_model(make_record_v2(1, 1, 1, {2, 8, 1}, 7)).size() == 668);
    return ok;
}

// Every byte of every sample file, with each of its 8 bits flipped, all of them flipped and a random
// non-zero mask, is rejected; a byte inside the parameters, the state buffers, the generator, the step
// count or the checksum is caught by the checksum (nothing before it can tell).
static bool test_every_byte_corrupted() {
    bool ok = true;
    int accepted = 0, wrong = 0, not_checksum = 0;
    long trials = 0;
    Rng rng{0xB17E};
    const std::size_t P = 2 * 3 + 3 + 3 * 2 + 2;  // sizes {2, 3, 2}
    const std::size_t H = 40 + 20 * 3 - 12;
    for (const Bytes& full : sample_files({2, 3, 2}, 60)) {
        const std::size_t e = get_u32(full, 16) == 2 ? 8 : 4;
        const bool extended = get_u32(full, 28) == 3;
        const std::size_t ext_at = H + 2 * P * e + 32;
        for (std::size_t at = 0; at < full.size(); ++at)
            for (int k = 0; k < 10; ++k, ++trials) {
                const unsigned x = k < 8 ? 1u << k : k == 8 ? 0xFFu : 1u + rng.next() % 255;
                Bytes b = full;
                b[at] ^= static_cast<std::uint8_t>(x);
                const std::string m = reject_message(b);
                if (m.empty()) ++accepted;
                if (m == "WRONG EXCEPTION") ++wrong;
                // opt_kind and n_extra are read before the checksum; everything else after H is data.
                const bool kind_or_count = extended && at >= ext_at && at < ext_at + 8;
                if (at >= H && !kind_or_count && m != "model file checksum mismatch") {
                    if (not_checksum++ < 5) std::printf("  byte %zu ^ %u: %s\n", at, x, m.c_str());
                }
            }
    }
    std::printf("  %ld corrupted files\n", trials);
    CHECK(trials > 30000);
    CHECK(accepted == 0);
    CHECK(wrong == 0);
    CHECK(not_checksum == 0);
    return ok;
}

static bool test_v2_reject_rules() {
    bool ok = true;
    const ModelRecord rec = make_record_v2(1, 1, 42, {2, 3, 1}, 8);
    const Bytes good = deltaprop::detail::encode_model(rec);
    const std::size_t P = 2 * 3 + 3 + 3 + 1, H = 88, E = H + 2 * P * 4 + 32;
    CHECK(reject_message(good).empty());
    auto edited = [&](const Bytes& base, std::size_t at, std::uint32_t v) {
        Bytes b = base;
        put_u32(b, at, v);
        reseal(b);
        return reject_message(b);
    };
    // Version 3 and up are not read.
    CHECK(edited(good, 8, 3) == "unsupported model format version 3 (this build reads 1 and 2)");
    // Flag bit 1 in a version 1 file (as a 0.1 reader would see a version 2 file's flags).
    CHECK(edited(good, 8, 1) ==
          "model file: unknown flags 3 (bit 1, extended optimizer state, needs format version 2; "
          "this file says version 1)");
    const Bytes v1 = deltaprop::detail::encode_model(make_record(1, false, {2, 3, 1}, 8));
    CHECK(contains(edited(v1, 28, 2), "needs format version 2"));
    // Bit 1 without bit 0.
    CHECK(edited(good, 28, 2) ==
          "model file: flags 2 set bit 1 (extended optimizer state) without bit 0 (optimizer state)");
    // Unknown bits in a version 2 file.
    CHECK(edited(good, 28, 7) == "model file: unknown flags 7");
    CHECK(edited(good, 28, 0x80000003u) == "model file: unknown flags 2147483651");
    // Unknown optimizer kind.
    CHECK(edited(good, E, 3) == "model file: unknown optimizer kind 3 (expected 0 sgd, 1 adam or 2 adamw)");
    CHECK(contains(edited(good, E, 0xFFFFFFFFu), "unknown optimizer kind 4294967295"));
    // n_extra inconsistent with the kind.
    CHECK(edited(good, E + 4, 0) == "model file: optimizer adam keeps 2 extra state buffers, the file says 0");
    CHECK(contains(edited(good, E + 4, 1), "the file says 1"));
    CHECK(contains(edited(good, E + 4, 3), "the file says 3"));
    CHECK(contains(edited(good, E + 4, 0xFFFFFFFFu), "the file says 4294967295"));
    CHECK(edited(good, E, 0) == "model file: optimizer sgd keeps 0 extra state buffers, the file says 2");
    // AdamW <-> Adam keeps the same length: accepted (the kind is data, checked by the checksum).
    const std::string as_adamw = edited(good, E, 2);
    CHECK(as_adamw.empty());
    // The extended header itself cut off: truncated, naming the bytes needed to read it.
    const Bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(E + 15));
    CHECK(reject_message(cut) ==
          "model file truncated: expected " + std::to_string(E + 16) + " bytes, got " + std::to_string(E + 15));
    // Past it, the exact length.
    const Bytes cut2(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(E + 16));
    CHECK(reject_message(cut2) == "model file truncated: expected " + std::to_string(good.size()) +
                                      " bytes, got " + std::to_string(E + 16));
    Bytes longer = good;
    longer.push_back(0);
    CHECK(reject_message(longer) == "model file has 1 unexpected trailing bytes (expected " +
                                        std::to_string(good.size()) + " bytes, got " +
                                        std::to_string(good.size() + 1) + ")");
    // A version 2 file whose SGD state has no extra buffers but claims Adam's: the length no longer
    // matches once n_extra is made consistent.
    const Bytes sgd = deltaprop::detail::encode_model(make_record_v2(1, 0, 9, {2, 3, 1}, 8));
    Bytes sgd_as_adam = sgd;
    put_u32(sgd_as_adam, E, 1);
    put_u32(sgd_as_adam, E + 4, 2);
    CHECK(contains(reject_message(sgd_as_adam), "truncated"));
    // The order of the checks: kind and n_extra before the length, the length before the checksum.
    Bytes order = good;
    put_u32(order, E, 9);
    order.pop_back();
    CHECK(contains(reject_message(order), "unknown optimizer kind 9"));
    Bytes order2 = good;
    order2[H] ^= 1;  // a parameter byte: checksum
    order2.push_back(0);
    CHECK(contains(reject_message(order2), "trailing"));
    // Checksum over the extended section too.
    for (std::size_t at : {E + 8, E + 15, E + 16, good.size() - 5}) {
        Bytes b = good;
        b[at] ^= 0x10;
        CHECK(reject_message(b) == "model file checksum mismatch");
    }
    // The generator check still applies in version 2.
    ModelRecord zr = rec;
    zr.rng = {0, 0, 0, 0};
    CHECK(contains(reject_message(deltaprop::detail::encode_model(zr)), "generator state is all zero"));
    // Layouts the writer never produces but that are well defined are read: a version 2 file
    // without flag bit 1 (the version 1 layout) and one with SGD, step 0 and no buffers (which
    // encodes back as version 1).
    ModelRecord plain = make_record(1, true, {2, 3, 1}, 8);
    Bytes v2_plain = deltaprop::detail::encode_model(plain);
    put_u32(v2_plain, 8, 2);
    reseal(v2_plain);
    CHECK(reject_message(v2_plain).empty());
    Bytes sgd0 = sgd;
    put_u64(sgd0, E + 8, 0);
    reseal(sgd0);
    CHECK(reject_message(sgd0).empty());
    if (reject_message(sgd0).empty()) {
        const ModelRecord r0 = deltaprop::detail::decode_model(sgd0.data(), sgd0.size());
        CHECK(deltaprop::detail::encode_model(r0) == deltaprop::detail::encode_model(plain));
    }
    return ok;
}

template <class F>
static std::string encode_error(F edit) {
    ModelRecord rec = make_record_v2(1, 1, 3, {2, 3, 1}, 8);
    edit(rec);
    try {
        deltaprop::detail::encode_model(rec);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

static bool test_v2_encoder_checks() {
    bool ok = true;
    CHECK(encode_error([](ModelRecord&) {}).empty());
    CHECK(encode_error([](ModelRecord& r) { r.opt_kind = 3; }) ==
          "encode_model: opt_kind must be 0 (sgd), 1 (adam) or 2 (adamw), got 3");
    CHECK(encode_error([](ModelRecord& r) { r.extra_state.pop_back(); }) ==
          "encode_model: optimizer adam needs 2 extra state buffers, got 1");
    CHECK(encode_error([](ModelRecord& r) { r.extra_state.clear(); }) ==
          "encode_model: optimizer adam needs 2 extra state buffers, got 0");
    CHECK(encode_error([](ModelRecord& r) { r.opt_kind = 0; }) ==
          "encode_model: optimizer sgd needs 0 extra state buffers, got 2");
    CHECK(encode_error([](ModelRecord& r) { r.extra_state[1].pop_back(); }) ==
          "encode_model: extra_state[1] has 51 bytes, expected as many as params (52)");
    CHECK(encode_error([](ModelRecord& r) { r.velocity.pop_back(); }) ==
          "encode_model: velocity must have as many bytes as params");
    // Without the optimizer flag the same inconsistencies are ignored (nothing of them is written).
    CHECK(encode_error([](ModelRecord& r) {
              r.has_optimizer = false;
              r.opt_kind = 9;
              r.extra_state.pop_back();
          }).empty());
    return ok;
}

static bool test_huge_header_v2_no_allocation() {
    bool ok = true;
    // 1025 sizes of 2^24 with flags 3: the extended header would sit far past the end.
    Bytes c(40 + 8 * 1025 + 12 * 1024 + 4, 0);
    std::memcpy(c.data(), "DPMODEL\0", 8);
    put_u32(c, 8, 2);
    put_u32(c, 12, 0x01020304u);
    put_u32(c, 16, 2);
    put_u32(c, 28, 3);
    put_u64(c, 32, 1025);
    for (int i = 0; i < 1025; ++i) put_u64(c, 40 + 8 * i, std::uint64_t{1} << 24);
    const std::size_t before = g_largest_alloc.exchange(0);
    const std::string m = reject_message(c);
    CHECK(contains(m, "truncated"));
    CHECK(g_largest_alloc.load() < 64 * 1024);
    g_largest_alloc.store(before);
    return ok;
}

// ---- files ----
static fs::path make_temp_dir(const char* tag) {
    static int n = 0;
    fs::path d = fs::temp_directory_path() /
                 ("dp-model-file-" + std::string(tag) + "-" + std::to_string(static_cast<long long>(::getpid())) +
                  "-" + std::to_string(n++));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

static int count_entries(const fs::path& d) {
    int n = 0;
    for (const auto& e : fs::directory_iterator(d)) {
        (void)e;
        ++n;
    }
    return n;
}

static bool test_atomic_write_replaces() {
    bool ok = true;
    const fs::path d = make_temp_dir("replace");
    const std::string path = (d / "net.dpm").string();
    const Bytes one = deltaprop::detail::encode_model(make_record(1, false, {2, 3}, 1));
    const Bytes two = deltaprop::detail::encode_model(make_record(2, true, {5, 4, 3}, 2));
    deltaprop::detail::write_file_atomic(path, one);
    CHECK(deltaprop::detail::read_file(path, 1 << 20) == one);
    deltaprop::detail::write_file_atomic(path, two);
    CHECK(deltaprop::detail::read_file(path, 1 << 20) == two);
    deltaprop::detail::write_file_atomic(path, Bytes{});
    CHECK(deltaprop::detail::read_file(path, 1 << 20).empty());
    CHECK(count_entries(d) == 1);  // no temp files left behind
    // A relative path (no directory part) works too.
    const fs::path cwd = fs::current_path();
    fs::current_path(d);
    deltaprop::detail::write_file_atomic("rel.dpm", one);
    fs::current_path(cwd);
    CHECK(deltaprop::detail::read_file((d / "rel.dpm").string(), 1 << 20) == one);
    CHECK(count_entries(d) == 2);
    fs::remove_all(d);
    return ok;
}

template <class F>
static bool throws_system_error_naming(F f, const std::string& name) {
    try {
        f();
    } catch (const std::system_error& e) {
        if (contains(e.what(), name.c_str())) return true;
        std::printf("  message lacks '%s': %s\n", name.c_str(), e.what());
        return false;
    } catch (const std::exception& e) {
        std::printf("  wrong exception: %s\n", e.what());
        return false;
    }
    return false;
}

static bool test_atomic_write_failures() {
    bool ok = true;
    const fs::path d = make_temp_dir("fail");
    const Bytes old_bytes = deltaprop::detail::encode_model(make_record(1, false, {2, 3}, 1));
    const Bytes new_bytes = deltaprop::detail::encode_model(make_record(1, false, {60, 60}, 2));
    const std::string path = (d / "net.dpm").string();
    deltaprop::detail::write_file_atomic(path, old_bytes);

    // Missing directory.
    const std::string missing = (d / "no-such-dir" / "net.dpm").string();
    CHECK(throws_system_error_naming([&] { deltaprop::detail::write_file_atomic(missing, new_bytes); }, missing));

#if !defined(_WIN32)
    // Unwritable directory (skipped when running as root, which ignores the mode bits).
    fs::permissions(d, fs::perms::owner_read | fs::perms::owner_exec);
    if (::access(d.c_str(), W_OK) != 0) {
        CHECK(throws_system_error_naming([&] { deltaprop::detail::write_file_atomic(path, new_bytes); }, path));
    } else {
        std::printf("  (running as root: the read-only directory case is covered by the cases below)\n");
    }
    fs::permissions(d, fs::perms::owner_all);
    CHECK(deltaprop::detail::read_file(path, 1 << 20) == old_bytes);
    CHECK(count_entries(d) == 1);

    // A write that fails half way (file size limit): old file intact, temp file removed.
    std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved;
    ::getrlimit(RLIMIT_FSIZE, &saved);
    struct rlimit small = saved;
    small.rlim_cur = 1000;
    if (::setrlimit(RLIMIT_FSIZE, &small) == 0) {
        CHECK(new_bytes.size() > 1000);
        CHECK(throws_system_error_naming([&] { deltaprop::detail::write_file_atomic(path, new_bytes); }, path));
        ::setrlimit(RLIMIT_FSIZE, &saved);
        CHECK(deltaprop::detail::read_file(path, 1 << 20) == old_bytes);
        CHECK(count_entries(d) == 1);
    } else {
        std::printf("  (setrlimit unavailable: write-failure case skipped)\n");
    }
    std::signal(SIGXFSZ, SIG_DFL);
#endif

    // The rename fails (the target is a non-empty directory): the temp file is removed.
    const fs::path target_dir = d / "is-a-dir";
    fs::create_directories(target_dir / "child");
    CHECK(throws_system_error_naming(
        [&] { deltaprop::detail::write_file_atomic(target_dir.string(), new_bytes); }, target_dir.string()));
    CHECK(count_entries(d) == 2);  // net.dpm and is-a-dir
    CHECK(fs::is_directory(target_dir / "child"));
    fs::remove_all(d);
    return ok;
}

static bool test_read_file() {
    bool ok = true;
    const fs::path d = make_temp_dir("read");
    const std::string missing = (d / "missing.dpm").string();
    CHECK(throws_system_error_naming([&] { deltaprop::detail::read_file(missing, 100); }, missing));
    const std::string path = (d / "data.bin").string();
    Bytes data(300000);
    Rng rng{77};
    for (auto& x : data) x = static_cast<std::uint8_t>(rng.next());
    deltaprop::detail::write_file_atomic(path, data);
    CHECK(deltaprop::detail::read_file(path, data.size()) == data);
    CHECK(deltaprop::detail::read_file(path, std::numeric_limits<std::size_t>::max()) == data);
    bool too_large = false;
    try {
        deltaprop::detail::read_file(path, data.size() - 1);
    } catch (const std::invalid_argument& e) {
        too_large = contains(e.what(), path.c_str());
    }
    CHECK(too_large);
#if !defined(_WIN32)
    CHECK(throws_system_error_naming([&] { deltaprop::detail::read_file(d.string(), 100); }, d.string()));
    // A non-regular file with unknown size goes through the chunked path and still sees the limit.
    if (fs::exists("/dev/zero")) {
        bool limited = false;
        try {
            deltaprop::detail::read_file("/dev/zero", 100000);
        } catch (const std::invalid_argument&) {
            limited = true;
        }
        CHECK(limited);
    }
#endif
    fs::remove_all(d);
    return ok;
}

int main() {
    run("crc32 test vectors", test_crc32_vector);
    run("count_params and overflow", test_count_params);
    run("round trip float32/float64 with and without optimizer", test_round_trip);
    run("byte layout", test_layout);
    run("every truncation rejected", test_every_truncation);
    run("10000 random byte flips rejected", test_random_byte_flips);
    run("header errors and messages", test_header_errors);
    run("huge header rejected without allocating", test_huge_header_no_allocation);
    run("version 1 unless the optimizer state needs version 2", test_version_choice);
    run("version 2 round trips: sgd with a step, adam, adamw, both dtypes", test_round_trip_v2);
    run("version 2 byte layout of the extended section", test_layout_v2);
    run("every byte of v1 and v2 files corrupted", test_every_byte_corrupted);
    run("version 2 reject rules, messages and order", test_v2_reject_rules);
    run("version 2 encoder checks", test_v2_encoder_checks);
    run("huge version 2 header rejected without allocating", test_huge_header_v2_no_allocation);
    run("atomic write replaces, leaves no temp files", test_atomic_write_replaces);
    run("atomic write failures keep the old file", test_atomic_write_failures);
    run("read_file errors and limits", test_read_file);
    std::printf("model_file: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
