// SPDX-License-Identifier: MIT
#pragma once
// Tuning constants: every number chosen by measurement rather than by a rule, in one place beside the
// instruction-set configuration (dispatch.h). Each states what it trades, its unit, and the benchmark
// that re-derives it (benchmarks/README.md has the commands and the figures, with the CPU they came
// from). Not here: the GEMM's cache blocking (kc, mc, nc), derived from the cache sizes in
// gemm_impl.h (make_blocking), and its register blocking and small-shape limits, per instruction set
// in the Cfg structs of gemm_portable.cpp, gemm_avx2.cpp and gemm_avx512.cpp; `gemm_bench levels`
// re-derives both.
//
// None of them depends on the thread count. Those marked "results" fix the order of a sum: changing
// one changes results in the last bits (for every thread count alike). The others change only speed.
//
// Plain constants and no standard-library templates: the instruction-set units (gemm_avx2.cpp, ...)
// include this header (see gemm_impl.h).
#include <cstddef>

namespace deltaprop::kernels::tuning {

// ---- thread pool (threadpool.cpp) ----

// Workers spin this long after a job before sleeping on a condition variable: a spinning worker starts
// the next job at once, a sleeping one needs a wake-up that costs more than a small job, while spinning
// burns a core other processes could use. Microseconds. Re-derive: `benchmarks/run.py --only W1,W4`
// (batch-1 predict latency, online training: back-to-back small jobs), and the "other processes
// used" line it prints.
constexpr long kSpinMicroseconds = 1000;

// A participant done with its own range of tasks waits this long for the others to finish theirs
// before taking their tasks: taking a task moves its data to another core (cross-core transfers
// dominate small jobs), waiting idles a core when the others were delayed. Microseconds. Re-derive:
// `benchmarks/run.py --only W1,W3` (batch-1 latency, wide training), with `benchmarks/vcpu_pingpong.cpp`
// to know the cost of a cross-core transfer at the time.
constexpr long kStealDelayMicroseconds = 2;

// The caller, done with its share, spins this many pause instructions waiting for the workers before
// it yields its core between checks. Pause instructions. Re-derive: `benchmarks/run.py --only W1,W4`.
constexpr unsigned kCallerPauses = 4096;

// ---- elementwise kernels (elementwise.cpp, elementwise_impl.h) ----

// A pass over an array (activations, their derivatives, the SGD step) is split over the pool in tasks
// of about this many elements: large enough to repay handing a task to another core, small enough to
// share a layer between the cores. Elements. Re-derive: `benchmarks/run.py --only W1,W3`.
constexpr std::size_t kGrain = 32768;

// db = column sums of delta run over this many columns at a time, summed down the rows in registers and
// L1 (a stack buffer of this many elements). Columns. Re-derive: `benchmarks/kernel_levels.py` (the dW
// rows include db).
constexpr std::size_t kColumnSumChunk = 256;

// ---- GEMM (gemm_impl.h) ----

// Work below this many flops per task is not worth handing to another thread (direct kernels).
// Flops. Re-derive: `gemm_bench levels 1` against `gemm_bench levels 2`, and `benchmarks/run.py --only W1`.
constexpr double kMinTaskFlops = 2.0e5;
// The same for a task of the packed GEMM, which also packs its share. Flops. Re-derive: as kMinTaskFlops.
constexpr double kMinPackedTaskFlops = 1.0e6;
// At most this many tasks per product: more only adds hand-offs. Tasks. Re-derive: `gemm_bench levels`.
constexpr std::size_t kMaxTasks = 64;
// A panel of op(B) is packed in parallel in tasks of this many elements. Elements. Re-derive:
// `gemm_bench levels` (the W3 shapes).
constexpr std::size_t kPackGrain = 8192;
// Fewer row blocks of C than this make a small batch: its K blocks are kSmallBatchKcFactor times
// longer (the packed op(B) sliver is re-read by only a few micro-tiles) and it is cut into tasks by
// columns of C, each packing its own chunk of op(B), instead of by rows. Row blocks. Re-derive:
// `gemm_bench levels` (the W1 shapes at batch 64).
constexpr std::size_t kFewRowBlocks = 8;
constexpr std::size_t kSmallBatchKcFactor = 4;
// A small batch's column chunks are halved until there are this many (while each keeps
// kMinPackedTaskFlops). Tasks. Re-derive: `gemm_bench levels`.
constexpr std::size_t kColumnTasks = 8;
// A mini-batch parameter gradient (dW = delta^T x) is cut into at most this many row blocks of dW.
// Tasks. Re-derive: `gemm_bench levels` (the dW rows), `benchmarks/run.py --only W1`.
constexpr std::size_t kParamRowTasks = 8;
// A full-batch parameter gradient (long K, small C) splits K: with K of at least kSplitMinK and C of
// at most kSplitMaxC elements, into kSplitParts ranges whose partial products are summed in order, by
// at most kSplitSumBlocks row blocks of C. Splitting shares among the cores a product whose C is too
// small to cut, at the cost of kSplitParts copies of C. K, parts, elements, blocks.
// Results. Re-derive: `gemm_bench w` (the W2 products), `benchmarks/run.py --only W2`.
constexpr std::size_t kSplitMinK = 2048, kSplitParts = 8;
constexpr std::size_t kSplitMaxC = std::size_t(1) << 16;
constexpr std::size_t kSplitSumBlocks = 8;
// The epilogue (bias, activation, ...) runs on groups of this many finished slivers of C: rows long
// enough to stream well, short enough to still be in L1. Slivers. Re-derive: `gemm_bench levels`.
constexpr std::size_t kEpilogueSlivers = 8;
// Rows of B read in place that the micro-kernel prefetches ahead: enough to cover memory latency,
// few enough not to evict what it is using. Rows. Re-derive: `gemm_bench levels`.
constexpr std::size_t kPrefetchRows = 24;
// The direct (axpy) kernel re-reads op(B) once per few rows of op(A): only while op(B) stays in L2.
// Bytes of op(B). Re-derive: `gemm_bench levels` (the W1 dX shapes).
constexpr std::size_t kAxpyMaxBBytes = std::size_t(512) << 10;

// ---- memory (memory.cpp) ----

// Allocations of at least this many bytes are aligned to 2 MiB and advised as huge pages: fewer TLB
// misses on large weights and activations, against up to 2 MiB of waste per allocation. Bytes.
// Re-derive: `benchmarks/run.py --only W3`.
constexpr std::size_t kHugePageMinBytes = std::size_t(512) << 10;

// ---- network (csrc/src: network.cpp, loss.hpp, checks.hpp) ----

// One sample through two layers in one parallel job (forward_pair): about one task per this many flops
// of the first layer, in groups of kPairRows rows, at most kPairMaxParts tasks. More tasks share the
// weights' reading between the cores; each costs a hand-off and a partial row summed afterwards.
// Results. Flops, rows, tasks. Re-derive: `benchmarks/run.py --only W1` (batch-1 predict latency).
constexpr double kPairTaskFlops = 2.0e5;
constexpr std::size_t kPairRows = 8;
constexpr std::size_t kPairMaxParts = 16;

// Passes over the parameter buffer (the Adam step, the gradient norm of clip_norm, summing the
// reduction's slots) run on the pool in chunks of this many parameters. Results (the norm). Parameters.
// Re-derive: `benchmarks/training.py` (Adam).
constexpr std::size_t kParamChunk = 16384;

// The search for NaN or infinity in an input or a gradient (the divergence guard) runs on the pool
// in chunks of this many elements. Elements. Re-derive: `benchmarks/training.py` (the guard's cost).
constexpr std::size_t kFiniteChunk = std::size_t(1) << 16;

// The output loss of a batch is cut into at most kLossMaxChunks chunks of at least kLossMinChunkRows
// rows, summed in order: enough to share a large batch, few enough hand-offs for a small one. Results.
// Chunks, rows. Re-derive: `benchmarks/run.py --only W1,W3`.
constexpr std::size_t kLossMaxChunks = 64;
constexpr std::size_t kLossMinChunkRows = 512;
// binary_cross_entropy's softplus runs vectorised over pieces of this many elements (two stack buffers
// of doubles in a pool task): long enough for the vector loop, small enough for the stack and L1.
// Elements. Re-derive: `benchmarks/run.py --only W2`.
constexpr std::size_t kLossPiece = 512;

// Validation loss and accuracy are computed over pieces of this many rows: bounds the scratch
// (2 x rows x n_out) while each piece stays long enough to share. Results. Rows. Re-derive: no
// benchmark times validation alone; `benchmarks/run.py --only W1` with validation_data added to its fit.
constexpr std::size_t kEvalRows = 1024;

// ---- training loop (train.cpp) ----

// A shuffled batch is gathered on the pool in kGatherParts row ranges once it reaches
// kGatherParallelBytes (below, one thread copies it faster than a hand-off); the thread of each range
// prefetches the same range of the next batch: whole rows while the batch is at most
// kGatherWholeRowsBytes (it fits comfortably in L2), else the first kGatherHeadBytes of each row (the
// hardware prefetcher follows a row once it is being read). Bytes, parts. Re-derive:
// `benchmarks/run.py --only W1,W3` (W1's shuffled against its in-order training).
constexpr std::size_t kGatherParallelBytes = std::size_t(32) << 10;
constexpr std::size_t kGatherParts = 8;
constexpr std::size_t kGatherWholeRowsBytes = std::size_t(256) << 10;
constexpr std::size_t kGatherHeadBytes = 256;

// The loop looks at the clock (for progress, time limits and Ctrl-C) about once a millisecond: the
// number of batches between readings doubles while they come less than kClockMinMicroseconds apart
// (up to kClockMaxStride batches) and halves while they come more than kClockMaxMicroseconds apart.
// Reading the clock every batch costs online training a few percent. Microseconds, batches.
// Re-derive: `benchmarks/run.py --only W4`.
constexpr long kClockMinMicroseconds = 500;
constexpr long kClockMaxMicroseconds = 2000;
constexpr unsigned kClockMaxStride = 4096;

}  // namespace deltaprop::kernels::tuning
