#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Memory and UB checks of the C/C++ core, from a fresh clone: bash .ci/sanitize.sh
#  1. core + ctest tests + the consumer examples built with -DDELTAPROP_SANITIZE=ON (ASan + UBSan);
#     ctest and the examples must run clean (any report fails the run);
#  2. the C example built normally and run under valgrind (definite leaks and memory errors fail).
# Kernel levels: ctest's test_kernels runs the GEMM at every level the CPU has (so ASan/UBSan check the
# AVX-512 kernels on a CPU with AVX-512), and the examples run once more with DELTAPROP_KERNEL=avx512
# there (auto may choose AVX2 kernels on such a CPU). Valgrind does NOT check the AVX-512 kernels:
# it emulates no AVX-512 (up to at least 3.22; cpuid under valgrind reports none), so under valgrind the
# library runs its avx2 kernels (or portable ones), whatever the real CPU has.
# Installs cmake, a compiler, pkg-config and valgrind with apt-get when they are missing.
# SANITIZE_WORK=<dir> keeps the build trees there (default: a temporary directory, removed at exit).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="${JOBS:-2}"

# ---- tools ----
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need cmake cmake
need cc gcc
need c++ g++
need pkg-config pkg-config
need valgrind valgrind
if ((${#missing[@]})); then
  echo "== installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)

if [ -n "${SANITIZE_WORK:-}" ]; then
  WORK="$SANITIZE_WORK"
  mkdir -p "$WORK"
else
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/deltaprop-sanitize.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
fi
echo "== work dir: $WORK"

SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -g"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="report_objects=1"

# Runs a program, shows its output, and fails if it exits non-zero or a sanitizer reported anything.
run_clean() {
  local log="$WORK/run.log"
  echo "-- $*"
  if ! "$@" >"$log" 2>&1; then
    cat "$log"
    echo "FAILED: $*" >&2
    exit 1
  fi
  cat "$log"
  if grep -Eq "runtime error:|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer" "$log"; then
    echo "FAILED (sanitizer report): $*" >&2
    exit 1
  fi
}

# pkg-config flags of an installed prefix (lib or lib64 or lib/<triplet>).
pc_flags() {
  local pc
  pc="$(find "$1" -name deltaprop.pc -print -quit)"
  PKG_CONFIG_PATH="$(dirname "$pc")" pkg-config --cflags --libs deltaprop
}

# Writes a small float32 and float64 model with the C ABI and an input file for examples/predict.
make_models() {  # $1: C flags + libs for the generator, $2: output dir
  local dir="$2"
  cat >"$dir/make_models.c" <<'C'
#include <deltaprop/deltaprop.h>
#include <stdio.h>
int main(int argc, char** argv) {
    const size_t sizes[] = {3, 5, 2};
    const dp_activation acts[] = {DP_TANH, DP_IDENTITY};
    const dp_dtype dtypes[] = {DP_FLOAT32, DP_FLOAT64};
    int i;
    if (argc != 3) return 2;
    for (i = 0; i < 2; ++i) {
        dp_net* net = NULL;
        if (dp_net_create(&net, 3, sizes, acts, NULL, DP_LOSS_MSE, dtypes[i], DP_INIT_GLOROT_UNIFORM,
                          7) != DP_OK ||
            dp_net_save(net, argv[1 + i], DP_SAVE_OPTIMIZER) != DP_OK) {
            fprintf(stderr, "%s\n", dp_last_error());
            dp_net_destroy(net);
            return 1;
        }
        dp_net_destroy(net);
    }
    return 0;
}
C
  # shellcheck disable=SC2086
  cc -std=c99 "$dir/make_models.c" -o "$dir/make_models" $1
  run_clean "$dir/make_models" "$dir/model32.dpm" "$dir/model64.dpm"
  printf '4 3\n0 0 0\n1 -2 0.5\n-1e-3 3.25 7\n0.1 0.2 0.3\n' >"$dir/input.txt"
}

# ---- 1. ASan + UBSan ----
echo "== sanitized build of the core and the ctest tests"
cmake -S "$REPO" -B "$WORK/san-build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDELTAPROP_SANITIZE=ON -DDELTAPROP_BUILD_TESTS=ON -DDELTAPROP_BUILD_PYTHON=OFF
cmake --build "$WORK/san-build" -j "$JOBS"
echo "== ctest (sanitized)"
ctest --test-dir "$WORK/san-build" --output-on-failure -j "$JOBS" | tee "$WORK/ctest.log"
if grep -Eq "runtime error:|AddressSanitizer|LeakSanitizer" "$WORK/ctest.log"; then
  echo "FAILED: sanitizer report in ctest output" >&2
  exit 1
fi
cmake --install "$WORK/san-build" --prefix "$WORK/san-prefix" >/dev/null

echo "== sanitized consumer examples"
cmake -S "$REPO/tests/consumer" -B "$WORK/san-consumer" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_PREFIX_PATH="$WORK/san-prefix" \
  -DCMAKE_C_FLAGS="$SAN_FLAGS" -DCMAKE_CXX_FLAGS="$SAN_FLAGS" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined"
cmake --build "$WORK/san-consumer" -j "$JOBS"
run_clean "$WORK/san-consumer/xor_c"
run_clean "$WORK/san-consumer/xor_cpp"
make_models "$SAN_FLAGS $(pc_flags "$WORK/san-prefix")" \
  "$WORK/san-consumer"
run_clean "$WORK/san-consumer/predict" "$WORK/san-consumer/model32.dpm" "$WORK/san-consumer/input.txt"
run_clean "$WORK/san-consumer/predict" "$WORK/san-consumer/model64.dpm" "$WORK/san-consumer/input.txt"
run_clean "$WORK/san-consumer/onnx_classify" "$WORK/san-consumer/model32.dpm" "$WORK/san-consumer/input.txt"
run_clean "$WORK/san-consumer/onnx_classify" "$WORK/san-consumer/model64.dpm" "$WORK/san-consumer/input.txt"
if grep -q avx512f /proc/cpuinfo 2>/dev/null; then
  echo "== sanitized examples on the AVX-512 kernels"
  run_clean env DELTAPROP_KERNEL=avx512 "$WORK/san-consumer/xor_c"
  run_clean env DELTAPROP_KERNEL=avx512 "$WORK/san-consumer/predict" "$WORK/san-consumer/model32.dpm" \
    "$WORK/san-consumer/input.txt"
fi
# An error path: a missing model file must fail cleanly (exit 1, a message, no report).
if "$WORK/san-consumer/predict" "$WORK/missing.dpm" "$WORK/san-consumer/input.txt" >"$WORK/err.log" 2>&1; then
  echo "FAILED: predict accepted a missing model file" >&2
  exit 1
fi
cat "$WORK/err.log"
if grep -Eq "runtime error:|AddressSanitizer|LeakSanitizer" "$WORK/err.log"; then
  echo "FAILED (sanitizer report): predict on a missing model file" >&2
  exit 1
fi

# ---- 2. valgrind on the normally built C example ----
echo "== plain build for valgrind"
cmake -S "$REPO" -B "$WORK/build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDELTAPROP_BUILD_TESTS=OFF -DDELTAPROP_BUILD_PYTHON=OFF
cmake --build "$WORK/build" -j "$JOBS"
cmake --install "$WORK/build" --prefix "$WORK/prefix" >/dev/null
# shellcheck disable=SC2046
cc -std=c99 -g -O1 "$REPO/examples/xor.c" -o "$WORK/xor" $(pc_flags "$WORK/prefix")
echo "== valgrind ./xor (valgrind hides AVX-512: this checks the avx2 or portable kernels only)"
if ! valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    "$WORK/xor" >"$WORK/valgrind.log" 2>&1; then
  cat "$WORK/valgrind.log"
  echo "FAILED: valgrind" >&2
  exit 1
fi
grep -E "accuracy:|ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable|All heap blocks" \
  "$WORK/valgrind.log"
echo "== sanitize: all clean"
