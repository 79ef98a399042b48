// SPDX-License-Identifier: MIT
// The deltaprop model file (docs/model-format.md). Every integer is written and read byte by byte in
// little-endian order, so the file is the same on every platform and no struct is ever dumped.
#include "src/model_file.hpp"

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <system_error>

#if defined(_WIN32)
#  include <io.h>
#  include <process.h>
#  include <windows.h>
#else
#  include <fcntl.h>
#  include <sys/stat.h>
#  include <unistd.h>
#endif

namespace deltaprop::detail {

static_assert(std::numeric_limits<double>::is_iec559, "the model file stores IEEE-754 binary64 slopes");

namespace {

constexpr std::uint8_t kMagic[8] = {'D', 'P', 'M', 'O', 'D', 'E', 'L', 0};
constexpr std::uint32_t kVersion1 = 1;  // what 0.1 wrote and still the version of every file that fits it
constexpr std::uint32_t kVersion2 = 2;  // adds the extended optimizer state section (flag bit 1)
constexpr std::uint32_t kByteOrderMark = 0x01020304u;  // stored as 04 03 02 01
constexpr std::uint32_t kFlagOptimizer = 1u;
constexpr std::uint32_t kFlagExtendedOptimizer = 2u;  // version 2 only, and only with kFlagOptimizer
constexpr std::uint32_t kKnownFlagsV1 = kFlagOptimizer;
constexpr std::uint32_t kKnownFlagsV2 = kFlagOptimizer | kFlagExtendedOptimizer;
constexpr std::uint64_t kMaxSizes = 1025;  // 1024 dense layers, as dp_net_create allows
constexpr std::uint64_t kMaxWidth = std::uint64_t{1} << 24;
constexpr std::size_t kHeaderBytes = 40;  // magic .. n_sizes
constexpr std::size_t kRngBytes = 4 * 8;
constexpr std::size_t kExtendedHeaderBytes = 4 + 4 + 8;  // opt_kind, n_extra, opt_step
constexpr std::size_t kChecksumBytes = 4;

// dp_* enum ranges, repeated here so this file does not depend on the public header's values silently.
constexpr std::uint32_t kDtypeF32 = 1, kDtypeF64 = 2;
constexpr std::uint32_t kMaxLoss = 2, kMaxInit = 2, kMaxActivation = 5;
constexpr std::uint32_t kLossBce = 1, kLossCe = 2;
constexpr std::uint32_t kActSigmoid = 1, kActSoftmax = 5;
// dp_optimizer_kind: 0 sgd, 1 adam, 2 adamw (extra_buffers_of says what each keeps in the file).
constexpr std::uint32_t kOptSgd = 0, kMaxOptKind = 2;

// ---- CRC-32 (ISO-HDLC / zlib / PNG): reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF ----
// Slicing by 8: t[0] is the bytewise table, t[k][i] = CRC of byte i followed by k zero bytes, so eight
// input bytes are folded with eight lookups.
struct Crc32Table {
    std::uint32_t t[8][256];
};

constexpr Crc32Table make_crc32_table() {
    Crc32Table table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1u) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
        table.t[0][i] = c;
    }
    for (int k = 1; k < 8; ++k)
        for (std::uint32_t i = 0; i < 256; ++i) {
            const std::uint32_t prev = table.t[k - 1][i];
            table.t[k][i] = (prev >> 8) ^ table.t[0][prev & 0xFFu];
        }
    return table;
}

constexpr Crc32Table kCrcTable = make_crc32_table();

// ---- little-endian writer / reader ----
class Writer {
public:
    explicit Writer(std::size_t capacity) { out_.reserve(capacity); }
    void bytes(const std::uint8_t* p, std::size_t n) { out_.insert(out_.end(), p, p + n); }
    void u32(std::uint32_t v) {
        for (int i = 0; i < 4; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
    void u64(std::uint64_t v) {
        for (int i = 0; i < 8; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
    void f64(double v) {
        std::uint64_t bits;
        std::memcpy(&bits, &v, 8);
        u64(bits);
    }
    std::vector<std::uint8_t>& result() { return out_; }

private:
    std::vector<std::uint8_t> out_;
};

std::uint32_t load_u32(const std::uint8_t* p) {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

std::uint64_t load_u64(const std::uint8_t* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

double load_f64(const std::uint8_t* p) {
    const std::uint64_t bits = load_u64(p);
    double v;
    std::memcpy(&v, &bits, 8);
    return v;
}

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

[[noreturn]] void fail_truncated(std::uint64_t expected, std::size_t got) {
    fail("model file truncated: expected " + std::to_string(expected) + " bytes, got " +
         std::to_string(got));
}

// a * b and a + b, or false on uint64 overflow.
bool mul_ok(std::uint64_t a, std::uint64_t b, std::uint64_t* r) {
    if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
    *r = a * b;
    return true;
}

bool add_ok(std::uint64_t a, std::uint64_t b, std::uint64_t* r) {
    if (b > std::numeric_limits<std::uint64_t>::max() - a) return false;
    *r = a + b;
    return true;
}

std::size_t element_bytes(std::uint32_t dtype) { return dtype == kDtypeF64 ? 8 : 4; }

// State buffers after velocity: none for SGD; Adam and AdamW keep exp_avg_sq and max_exp_avg_sq.
std::uint32_t extra_buffers_of(std::uint32_t opt_kind) { return opt_kind == kOptSgd ? 0u : 2u; }

const char* optimizer_name(std::uint32_t kind) {
    static const char* const names[] = {"sgd", "adam", "adamw"};
    return kind <= kMaxOptKind ? names[kind] : "?";
}

// Which optional sections a file has; the offsets and the length follow from these and the sizes.
struct Sections {
    bool optimizer = false;  // flag bit 0: velocity and generator
    bool extended = false;   // flag bit 1: extended header and n_extra state buffers (version 2)
    std::uint32_t n_extra = 0;
};

// Bytes of the parameter-sized payloads (params, velocity, extra state), or throws on overflow.
std::uint64_t payload_bytes(std::uint64_t n_params, std::size_t elem, const Sections& s) {
    const std::uint64_t n_buffers = 1 + (s.optimizer ? 1 : 0) + (s.extended ? s.n_extra : 0);
    std::uint64_t param_bytes = 0, total = 0;
    if (!mul_ok(n_params, elem, &param_bytes) || !mul_ok(param_bytes, n_buffers, &total))
        fail("model file describes more parameters than this machine can address");
    return total;
}

// Offset of the extended header: right after the generator state. Throws on overflow.
std::uint64_t extended_header_at(std::uint64_t n_sizes, std::uint64_t n_params, std::size_t elem) {
    const std::uint64_t n_layers = n_sizes - 1;
    Sections s;
    s.optimizer = true;
    std::uint64_t at = kHeaderBytes + 8 * n_sizes + 4 * n_layers + 8 * n_layers;  // n_sizes <= 1025
    if (!add_ok(at, payload_bytes(n_params, elem, s), &at) || !add_ok(at, kRngBytes, &at))
        fail("model file describes more parameters than this machine can address");
    return at;
}

// Bytes of an encoded file with this description, or throws on overflow.
std::uint64_t encoded_size(std::uint64_t n_sizes, std::uint64_t n_params, std::size_t elem,
                           const Sections& s) {
    const std::uint64_t n_layers = n_sizes - 1;
    std::uint64_t total = kHeaderBytes + 8 * n_sizes + 4 * n_layers + 8 * n_layers;  // no overflow
    const std::uint64_t fixed = (s.optimizer ? kRngBytes : 0) + (s.extended ? kExtendedHeaderBytes : 0) +
                                kChecksumBytes;
    if (!add_ok(total, payload_bytes(n_params, elem, s), &total) || !add_ok(total, fixed, &total))
        fail("model file describes more parameters than this machine can address");
    return total;
}

const char* activation_name(std::uint32_t a) {
    static const char* const names[] = {"identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"};
    return a <= kMaxActivation ? names[a] : "?";
}

}  // namespace

std::uint32_t crc32(const std::uint8_t* data, std::size_t size) {
    const auto& t = kCrcTable.t;
    std::uint32_t c = 0xFFFFFFFFu;
    std::size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        const std::uint8_t* d = data + i;
        const std::uint32_t lo = c ^ (std::uint32_t{d[0]} | std::uint32_t{d[1]} << 8 |
                                      std::uint32_t{d[2]} << 16 | std::uint32_t{d[3]} << 24);
        c = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
            t[3][d[4]] ^ t[2][d[5]] ^ t[1][d[6]] ^ t[0][d[7]];
    }
    for (; i < size; ++i) c = t[0][(c ^ data[i]) & 0xFFu] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

std::uint64_t count_params(const std::vector<std::uint64_t>& sizes) {
    std::uint64_t total = 0;
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
        std::uint64_t w = 0, layer = 0;  // n_out * n_in + n_out
        if (!mul_ok(sizes[l + 1], sizes[l], &w) || !add_ok(w, sizes[l + 1], &layer) ||
            !add_ok(total, layer, &total))
            throw std::invalid_argument("number of parameters overflows 64 bits");
    }
    return total;
}

std::uint32_t model_format_version(const ModelRecord& rec) {
    const bool extended = rec.has_optimizer &&
                          (rec.opt_kind != kOptSgd || rec.opt_step != 0 || !rec.extra_state.empty());
    return extended ? kVersion2 : kVersion1;
}

std::vector<std::uint8_t> encode_model(const ModelRecord& rec) {
    if (rec.dtype != kDtypeF32 && rec.dtype != kDtypeF64)
        fail("encode_model: dtype must be 1 (float32) or 2 (float64), got " + std::to_string(rec.dtype));
    if (rec.sizes.size() < 2 || rec.sizes.size() > kMaxSizes)
        fail("encode_model: need 2 to 1025 sizes, got " + std::to_string(rec.sizes.size()));
    const std::size_t n_layers = rec.sizes.size() - 1;
    if (rec.activations.size() != n_layers || rec.slopes.size() != n_layers)
        fail("encode_model: activations and slopes need one entry per layer (" + std::to_string(n_layers) +
             ")");
    const std::size_t elem = element_bytes(rec.dtype);
    const std::uint64_t n_params = count_params(rec.sizes);
    if (rec.params.size() / elem != n_params || rec.params.size() % elem != 0)
        fail("encode_model: params has " + std::to_string(rec.params.size()) + " bytes, expected " +
             std::to_string(n_params) + " elements of " + std::to_string(elem) + " bytes");
    if (rec.has_optimizer && rec.velocity.size() != rec.params.size())
        fail("encode_model: velocity must have as many bytes as params");
    // Without the optimizer flag nothing of the optimizer is written (opt_kind, opt_step and
    // extra_state are ignored): the file is version 1.
    const std::uint32_t version = model_format_version(rec);
    Sections sec;
    sec.optimizer = rec.has_optimizer;
    sec.extended = version == kVersion2;
    if (sec.extended) {
        if (rec.opt_kind > kMaxOptKind)
            fail("encode_model: opt_kind must be 0 (sgd), 1 (adam) or 2 (adamw), got " +
                 std::to_string(rec.opt_kind));
        sec.n_extra = extra_buffers_of(rec.opt_kind);
        if (rec.extra_state.size() != sec.n_extra)
            fail(std::string("encode_model: optimizer ") + optimizer_name(rec.opt_kind) + " needs " +
                 std::to_string(sec.n_extra) + " extra state buffers, got " +
                 std::to_string(rec.extra_state.size()));
        for (std::size_t k = 0; k < rec.extra_state.size(); ++k)
            if (rec.extra_state[k].size() != rec.params.size())
                fail("encode_model: extra_state[" + std::to_string(k) + "] has " +
                     std::to_string(rec.extra_state[k].size()) + " bytes, expected as many as params (" +
                     std::to_string(rec.params.size()) + ")");
    }
    const std::uint64_t total = encoded_size(rec.sizes.size(), n_params, elem, sec);
    if (total > std::numeric_limits<std::size_t>::max()) fail("encode_model: model too large");

    Writer w(static_cast<std::size_t>(total));
    w.bytes(kMagic, sizeof kMagic);
    w.u32(version);
    w.u32(kByteOrderMark);
    w.u32(rec.dtype);
    w.u32(rec.loss);
    w.u32(rec.init);
    w.u32((sec.optimizer ? kFlagOptimizer : 0u) | (sec.extended ? kFlagExtendedOptimizer : 0u));
    w.u64(rec.sizes.size());
    for (std::uint64_t s : rec.sizes) w.u64(s);
    for (std::uint32_t a : rec.activations) w.u32(a);
    for (double s : rec.slopes) w.f64(s);
    w.bytes(rec.params.data(), rec.params.size());
    if (sec.optimizer) {
        w.bytes(rec.velocity.data(), rec.velocity.size());
        for (std::uint64_t r : rec.rng) w.u64(r);
    }
    if (sec.extended) {
        w.u32(rec.opt_kind);
        w.u32(sec.n_extra);
        w.u64(rec.opt_step);
        for (const auto& buf : rec.extra_state) w.bytes(buf.data(), buf.size());
    }
    std::vector<std::uint8_t>& out = w.result();
    w.u32(crc32(out.data(), out.size()));
    return std::move(out);
}

ModelRecord decode_model(const std::uint8_t* data, std::size_t size) {
    if (size == 0) fail("model file is empty");
    if (data == nullptr) fail("model buffer is NULL");
    // Magic first, on whatever prefix exists, so a foreign file is called foreign, not truncated.
    if (std::memcmp(data, kMagic, size < sizeof kMagic ? size : sizeof kMagic) != 0)
        fail("not a deltaprop model file (bad magic)");
    if (size < 12) fail_truncated(kHeaderBytes, size);
    const std::uint32_t version = load_u32(data + 8);
    if (version != kVersion1 && version != kVersion2)
        fail("unsupported model format version " + std::to_string(version) + " (this build reads 1 and 2)");
    if (size < kHeaderBytes) fail_truncated(kHeaderBytes, size);
    const std::uint32_t bom = load_u32(data + 12);
    if (bom != kByteOrderMark)
        fail(bom == 0x04030201u ? "model file has the wrong byte order (written big-endian)"
                                : "model file has a bad byte-order mark");

    const std::uint32_t dtype = load_u32(data + 16);
    const std::uint32_t loss = load_u32(data + 20);
    const std::uint32_t init = load_u32(data + 24);
    const std::uint32_t flags = load_u32(data + 28);
    const std::uint64_t n_sizes = load_u64(data + 32);
    if (dtype != kDtypeF32 && dtype != kDtypeF64)
        fail("model file: unknown dtype " + std::to_string(dtype) + " (expected 1 or 2)");
    if (loss > kMaxLoss) fail("model file: unknown loss " + std::to_string(loss));
    if (init > kMaxInit) fail("model file: unknown init " + std::to_string(init));
    if (version == kVersion1 && (flags & kFlagExtendedOptimizer) != 0)
        fail("model file: unknown flags " + std::to_string(flags) +
             " (bit 1, extended optimizer state, needs format version 2; this file says version 1)");
    if ((flags & ~(version == kVersion1 ? kKnownFlagsV1 : kKnownFlagsV2)) != 0)
        fail("model file: unknown flags " + std::to_string(flags));
    if ((flags & kFlagExtendedOptimizer) != 0 && (flags & kFlagOptimizer) == 0)
        fail("model file: flags " + std::to_string(flags) +
             " set bit 1 (extended optimizer state) without bit 0 (optimizer state)");
    if (n_sizes < 2 || n_sizes > kMaxSizes)
        fail("model file: n_sizes " + std::to_string(n_sizes) + " is outside [2, 1025]");
    const std::uint64_t n_layers = n_sizes - 1;
    Sections sec;
    sec.optimizer = (flags & kFlagOptimizer) != 0;
    sec.extended = (flags & kFlagExtendedOptimizer) != 0;

    // The description (sizes, activations, slopes) has a bounded length; check it is there.
    const std::size_t sizes_at = kHeaderBytes;
    const std::size_t acts_at = sizes_at + 8 * n_sizes;
    const std::size_t slopes_at = acts_at + 4 * n_layers;
    const std::size_t params_at = slopes_at + 8 * n_layers;
    if (size < params_at) fail_truncated(params_at, size);
    for (std::uint64_t i = 0; i < n_sizes; ++i) {
        const std::uint64_t s = load_u64(data + sizes_at + 8 * i);
        if (s < 1 || s > kMaxWidth)
            fail("model file: size " + std::to_string(i) + " is " + std::to_string(s) +
                 ", outside [1, 2^24]");
    }
    for (std::uint64_t l = 0; l < n_layers; ++l) {
        const std::uint32_t a = load_u32(data + acts_at + 4 * l);
        if (a > kMaxActivation)
            fail("model file: unknown activation " + std::to_string(a) + " for layer " + std::to_string(l));
    }

    // Sizes are now bounded (<= 1025 widths of <= 2^24): compute the exact length before allocating.
    std::vector<std::uint64_t> sizes(static_cast<std::size_t>(n_sizes));
    for (std::size_t i = 0; i < sizes.size(); ++i) sizes[i] = load_u64(data + sizes_at + 8 * i);
    const std::uint64_t n_params = count_params(sizes);
    const std::size_t elem = element_bytes(dtype);
    // The extended header sits at a known offset after the generator; its n_extra completes the length.
    std::uint32_t opt_kind = kOptSgd;
    std::uint64_t opt_step = 0;
    std::size_t ext_at = 0;
    if (sec.extended) {
        const std::uint64_t at = extended_header_at(n_sizes, n_params, elem);
        if (at > size || size - at < kExtendedHeaderBytes) fail_truncated(at + kExtendedHeaderBytes, size);
        ext_at = static_cast<std::size_t>(at);
        opt_kind = load_u32(data + ext_at);
        const std::uint32_t n_extra = load_u32(data + ext_at + 4);
        opt_step = load_u64(data + ext_at + 8);
        if (opt_kind > kMaxOptKind)
            fail("model file: unknown optimizer kind " + std::to_string(opt_kind) +
                 " (expected 0 sgd, 1 adam or 2 adamw)");
        if (n_extra != extra_buffers_of(opt_kind))
            fail(std::string("model file: optimizer ") + optimizer_name(opt_kind) + " keeps " +
                 std::to_string(extra_buffers_of(opt_kind)) + " extra state buffers, the file says " +
                 std::to_string(n_extra));
        sec.n_extra = n_extra;
    }
    const std::uint64_t total = encoded_size(n_sizes, n_params, elem, sec);
    if (size < total) fail_truncated(total, size);
    if (size > total)
        fail("model file has " + std::to_string(size - total) + " unexpected trailing bytes (expected " +
             std::to_string(total) + " bytes, got " + std::to_string(size) + ")");
    const std::size_t body = static_cast<std::size_t>(total) - kChecksumBytes;
    if (crc32(data, body) != load_u32(data + body)) fail("model file checksum mismatch");

    // Semantic checks: the file must describe a network dp_net_create would accept.
    for (std::uint64_t l = 0; l < n_layers; ++l) {
        const double s = load_f64(data + slopes_at + 8 * l);
        if (!std::isfinite(s)) fail("model file: slope of layer " + std::to_string(l) + " is not finite");
        const std::uint32_t a = load_u32(data + acts_at + 4 * l);
        if (a == kActSoftmax && l + 1 != n_layers)
            fail("model file: softmax on hidden layer " + std::to_string(l) + " (output layer only)");
    }
    const std::uint32_t out_act = load_u32(data + acts_at + 4 * (n_layers - 1));
    if (loss == kLossCe && out_act != kActSoftmax)
        fail(std::string("model file: cross_entropy needs a softmax output, got ") + activation_name(out_act));
    if (loss == kLossBce && out_act != kActSigmoid)
        fail(std::string("model file: binary_cross_entropy needs a sigmoid output, got ") +
             activation_name(out_act));

    const std::size_t param_bytes = static_cast<std::size_t>(n_params) * elem;
    const std::size_t rng_at = params_at + 2 * param_bytes;  // meaningful with the optimizer flag
    if (sec.optimizer) {
        // xoshiro256** never leaves the all-zero state: a shuffle would then draw zeros (and rejection
        // sampling would never finish).
        const std::uint8_t* r = data + rng_at;
        bool all_zero = true;
        for (std::size_t k = 0; k < kRngBytes; ++k) all_zero = all_zero && r[k] == 0;
        if (all_zero) fail("model file: generator state is all zero");
    }

    ModelRecord rec;
    rec.dtype = dtype;
    rec.loss = loss;
    rec.init = init;
    rec.sizes = std::move(sizes);
    rec.activations.resize(static_cast<std::size_t>(n_layers));
    rec.slopes.resize(static_cast<std::size_t>(n_layers));
    for (std::size_t l = 0; l < n_layers; ++l) {
        rec.activations[l] = load_u32(data + acts_at + 4 * l);
        rec.slopes[l] = load_f64(data + slopes_at + 8 * l);
    }
    rec.params.assign(data + params_at, data + params_at + param_bytes);
    rec.has_optimizer = sec.optimizer;
    if (sec.optimizer) {
        const std::uint8_t* v = data + params_at + param_bytes;
        rec.velocity.assign(v, v + param_bytes);
        for (int k = 0; k < 4; ++k) rec.rng[k] = load_u64(data + rng_at + 8 * k);
    }
    if (sec.extended) {
        rec.opt_kind = opt_kind;
        rec.opt_step = opt_step;
        rec.extra_state.resize(sec.n_extra);
        const std::uint8_t* x = data + ext_at + kExtendedHeaderBytes;
        for (std::uint32_t k = 0; k < sec.n_extra; ++k, x += param_bytes)
            rec.extra_state[k].assign(x, x + param_bytes);
    }
    return rec;
}

// ---- files ----
namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

std::string parent_dir(const std::string& path) {
    const std::size_t slash = path.find_last_of("/\\");
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::atomic<unsigned long long> g_tmp_counter{0};

}  // namespace

#if defined(_WIN32)

void write_file_atomic(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    const std::string tmp = path + ".tmp-" + std::to_string(_getpid()) + "-" +
                            std::to_string(g_tmp_counter.fetch_add(1));
    std::FILE* f = std::fopen(tmp.c_str(), "wbx");
    if (f == nullptr) throw_errno(errno, "cannot create '" + tmp + "' to save '" + path + "'");
    bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    ok = std::fflush(f) == 0 && ok;
    ok = _commit(_fileno(f)) == 0 && ok;
    int err = errno;
    ok = std::fclose(f) == 0 && ok;
    if (!ok) {
        std::remove(tmp.c_str());
        throw_errno(err ? err : EIO, "cannot write '" + tmp + "' to save '" + path + "'");
    }
    if (!MoveFileExA(tmp.c_str(), path.c_str(), MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
        std::remove(tmp.c_str());
        throw std::system_error(static_cast<int>(GetLastError()), std::system_category(),
                                "cannot rename '" + tmp + "' over '" + path + "'");
    }
}

#else

void write_file_atomic(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    const std::string tmp = path + ".tmp-" + std::to_string(static_cast<long long>(::getpid())) + "-" +
                            std::to_string(g_tmp_counter.fetch_add(1));
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) throw_errno(errno, "cannot create '" + tmp + "' to save '" + path + "'");
    auto abandon = [&](int err, const std::string& what) {
        if (fd >= 0) ::close(fd);
        ::unlink(tmp.c_str());
        throw_errno(err, what);
    };
    const std::uint8_t* p = bytes.data();
    std::size_t left = bytes.size();
    while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            abandon(errno, "cannot write '" + tmp + "' to save '" + path + "'");
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) abandon(errno, "cannot sync '" + tmp + "' to save '" + path + "'");
    const int closed = ::close(fd);
    fd = -1;
    if (closed != 0) abandon(errno, "cannot close '" + tmp + "' to save '" + path + "'");
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        abandon(errno, "cannot rename '" + tmp + "' over '" + path + "'");
    // Make the rename durable. A directory we may not open (no read permission) is left to the system;
    // file systems that cannot sync directories report EINVAL, which is not an error here.
    const std::string dir = parent_dir(path);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        const int synced = ::fsync(dfd);
        const int err = errno;
        ::close(dfd);
        if (synced != 0 && err != EINVAL && err != ENOTSUP && err != EBADF)
            throw_errno(err, "cannot sync directory '" + dir + "' after saving '" + path + "'");
    }
}

#endif

std::vector<std::uint8_t> read_file(const std::string& path, std::size_t max_bytes) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) throw_errno(errno, "cannot open '" + path + "'");
    std::vector<std::uint8_t> out;
    std::size_t chunk = 1 << 16;
#if !defined(_WIN32)
    struct stat st;
    if (::fstat(::fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
        if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
            std::fclose(f);
            throw std::invalid_argument("'" + path + "' is larger than the limit of " +
                                        std::to_string(max_bytes) + " bytes");
        }
        chunk = static_cast<std::size_t>(st.st_size) + 1;  // one read to the end, one to see EOF
    }
#endif
    for (;;) {
        const std::size_t at = out.size();
        const std::size_t room = max_bytes - at;  // at <= max_bytes here
        std::size_t want = chunk;
        if (room < std::numeric_limits<std::size_t>::max() && want > room + 1) want = room + 1;
        try {
            out.resize(at + want);
        } catch (...) {
            std::fclose(f);
            throw;
        }
        errno = 0;
        const std::size_t got = std::fread(out.data() + at, 1, want, f);
        out.resize(at + got);
        if (got < want) {
            if (std::ferror(f)) {
                const int err = errno ? errno : EIO;
                std::fclose(f);
                throw_errno(err, "cannot read '" + path + "'");
            }
            break;  // EOF
        }
        if (out.size() > max_bytes) {
            std::fclose(f);
            throw std::invalid_argument("'" + path + "' is larger than the limit of " +
                                        std::to_string(max_bytes) + " bytes");
        }
        if (chunk < (std::size_t{1} << 26)) chunk *= 2;
    }
    std::fclose(f);
    return out;
}

}  // namespace deltaprop::detail
