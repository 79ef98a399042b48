// SPDX-License-Identifier: MIT
#pragma once
// The deltaprop model file: encode/decode of a network's description and buffers (docs/model-format.md),
// independent of the network class so it can be tested on its own.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace deltaprop::detail {

struct ModelRecord {
    std::uint32_t dtype = 1;              // 1 float32, 2 float64 (dp_dtype)
    std::uint32_t loss = 0;               // dp_loss
    std::uint32_t init = 0;               // dp_init
    std::vector<std::uint64_t> sizes;     // n_sizes >= 2, each >= 1
    std::vector<std::uint32_t> activations;  // [n_sizes - 1], dp_activation
    std::vector<double> slopes;           // [n_sizes - 1]
    std::vector<std::uint8_t> params;     // raw little-endian bytes, num_params * sizeof(dtype)
    bool has_optimizer = false;
    std::vector<std::uint8_t> velocity;   // state buffer 0 (SGD momentum buffer or Adam's exp_avg); same
                                          // size as params when has_optimizer
    std::array<std::uint64_t, 4> rng{};   // generator state, meaningful when has_optimizer
    // Format version 2 (meaningful when has_optimizer; all three at their defaults means version 1):
    std::uint32_t opt_kind = 0;                       // dp_optimizer_kind: 0 SGD, 1 Adam, 2 AdamW
    std::uint64_t opt_step = 0;                       // the optimizer's step count t
    std::vector<std::vector<std::uint8_t>> extra_state;  // Adam/AdamW: exp_avg_sq, then max_exp_avg_sq;
                                                         // each params.size() bytes
};

// CRC-32 as used by the model file's checksum (ISO-HDLC, as zlib/PNG: reflected polynomial 0xEDB88320,
// initial value and final xor 0xFFFFFFFF); crc32("123456789") == 0xCBF43926.
std::uint32_t crc32(const std::uint8_t* data, std::size_t size);

// Number of parameters of an architecture: sum over layers of n_out * n_in + n_out.
// Throws std::invalid_argument if that overflows 64 bits.
std::uint64_t count_params(const std::vector<std::uint64_t>& sizes);

// Serialise; the record must be consistent (params.size() == count_params * element size, velocity
// likewise when has_optimizer), else std::invalid_argument.
// Version 1 (byte for byte what 0.1 wrote) when has_optimizer is false, or when opt_kind == 0,
// opt_step == 0 and extra_state is empty; otherwise version 2, for which opt_kind must be <= 2 and
// extra_state must hold 0 (SGD) or 2 (Adam/AdamW) buffers of params.size() bytes each. Without
// has_optimizer, opt_kind, opt_step and extra_state are ignored (like velocity and rng):
// save(optimizer=false) writes no optimizer state at all.
std::vector<std::uint8_t> encode_model(const ModelRecord& rec);

// The format version encode_model writes for this record (1 or 2); does not check the record.
std::uint32_t model_format_version(const ModelRecord& rec);

// Parse and check everything (magic, version 1 or 2, byte order, sizes against the length and sane limits
// before any allocation, enum ranges, finite slopes, checksum). Throws std::invalid_argument with a
// message saying what is wrong ("model file truncated: ...", "checksum mismatch", ...).
ModelRecord decode_model(const std::uint8_t* data, std::size_t size);

// Write bytes to path atomically: path + ".tmp-<pid>-<counter>" (created exclusively), fsync, rename
// over path, fsync the directory. On failure the temp file is removed, the old file is left as it was,
// and std::system_error is thrown with the path in the message.
void write_file_atomic(const std::string& path, const std::vector<std::uint8_t>& bytes);
// Read a whole file; throws std::system_error on I/O failure, std::invalid_argument if larger than
// max_bytes.
std::vector<std::uint8_t> read_file(const std::string& path, std::size_t max_bytes);

}  // namespace deltaprop::detail
