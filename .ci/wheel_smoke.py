# SPDX-License-Identifier: MIT
"""Smoke test of an installed deltaprop wheel (run by .ci/wheel.sh in a fresh venv, outside the source
tree): import, versions, the portable build of the library, a short fit with Adam, save/load, and a C
program built against the wheel's CMake package (and pkg-config file, if pkg-config is installed)."""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np


def run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout}")
    return proc.stdout


def check(cond: bool, what: str) -> None:
    if not cond:
        sys.exit(f"wheel smoke test FAILED: {what}")
    print(f"ok: {what}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--examples", required=True, type=Path, help="the source tree's examples/ directory")
    p.add_argument("--sdist", type=Path, help="the sdist built beside the wheel, to check its contents")
    p.add_argument("--work", type=Path, help="a scratch directory (default: a new temporary one)")
    args = p.parse_args()
    if args.work is None:
        args.work = Path(tempfile.mkdtemp(prefix="deltaprop-smoke-"))

    import deltaprop as dp
    from deltaprop import _core

    pkg = Path(dp.__file__).resolve().parent
    check(Path(sys.prefix).resolve() in pkg.parents, f"deltaprop imported from the venv ({pkg})")
    version = importlib.metadata.version("deltaprop")
    check(version == dp.__version__ == _core.version(),
          f"versions agree: metadata {version}, __version__ {dp.__version__}, _core {_core.version()}")
    check((pkg / "py.typed").is_file() and (pkg / "_core.pyi").is_file(), "py.typed and _core.pyi shipped")

    # The wheel must run on any x86-64: only the run-time-dispatched kernel files may use AVX registers.
    lib = Path(dp.get_library_dir()) / "libdeltaprop.a"
    objdump = shutil.which("objdump")
    if objdump and lib.is_file() and sys.platform.startswith("linux") and platform.machine() == "x86_64":
        text = run([objdump, "-d", "--no-show-raw-insn", str(lib)])
        wide = {}
        for member, body in re.findall(r"^(\S+\.o):\s+file format.*?$(.*?)(?=^\S+\.o:\s+file format|\Z)", text,
                                       re.M | re.S):
            if "avx2" not in member and "avx512" not in member:
                wide[member] = len(re.findall(r"%[yz]mm", body))
        check(bool(wide) and not any(wide.values()),
              f"no ymm/zmm outside the AVX kernel files ({len(wide)} objects: {sum(wide.values())} uses)")

    X, y = dp.datasets.spirals(n_per_class=100, n_classes=3, seed=0)
    net = dp.Network([2, 32, 3], activation="tanh", loss="cross_entropy", seed=0)
    hist = net.fit(X, y, epochs=5, batch_size=32, optimizer=dp.optim.Adam(lr=1e-2), seed=0)
    check(len(hist) == 5 and hist[-1] < hist[0] and np.isfinite(hist[-1]),
          f"fit with Adam: loss {hist[0]:.4f} -> {hist[-1]:.4f} in 5 epochs ({dp.get_kernel_level()} kernels)")
    path = args.work / "net.dpm"
    net.save(path)
    back = dp.Network.load(path)
    check(np.array_equal(back.predict(X), net.predict(X)) and back.optimizer_state["kind"] == "adam",
          "save/load: identical predictions and Adam state")

    cmake = shutil.which("cmake")
    check(cmake is not None, "cmake on PATH")
    assert cmake is not None
    xor_c = (args.examples / "xor.c").resolve()
    project = args.work / "consumer"
    project.mkdir(parents=True, exist_ok=True)
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.15)\n"
        "project(wheel_consumer LANGUAGES C)\n"
        f"find_package(deltaprop {version} EXACT CONFIG REQUIRED)\n"
        f'add_executable(xor "{xor_c.as_posix()}")\n'
        "target_link_libraries(xor PRIVATE deltaprop::deltaprop)\n")
    build = args.work / "consumer-build"
    run([cmake, "-S", str(project), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         f"-Ddeltaprop_DIR={dp.get_cmake_dir()}"])
    run([cmake, "--build", str(build), "--config", "Release"])
    exe = next(p for p in (build / "xor", build / "xor.exe", build / "Release" / "xor.exe") if p.exists())
    out = run([str(exe)])
    check("accuracy: 1.00" in out, "examples/xor.c built with find_package(deltaprop) from the wheel: accuracy 1.00")

    pkg_config, cc = shutil.which("pkg-config"), shutil.which("cc")
    if pkg_config and cc:
        env = dict(os.environ, PKG_CONFIG_PATH=str(Path(dp.get_library_dir()) / "pkgconfig"))
        flags = run([pkg_config, "--cflags", "--libs", "deltaprop"], env=env).split()
        pc_exe = args.work / "xor-pc"
        run([cc, "-std=c99", str(xor_c), "-o", str(pc_exe), *flags])
        check("accuracy: 1.00" in run([str(pc_exe)]), "examples/xor.c built with pkg-config from the wheel")

    if args.sdist is not None:
        with tarfile.open(args.sdist) as tar:
            names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        needed = {"pyproject.toml", "CMakeLists.txt", "cmake/install.cmake", "csrc/include/deltaprop/deltaprop.h",
                  "csrc/bindings/module.cpp", "python/deltaprop/__init__.py", "python/deltaprop/_core.pyi",
                  "python/deltaprop/py.typed", "README.md"}
        check(needed <= names, f"the sdist holds the sources ({len(names)} files; missing: {sorted(needed - names)})")
    print(f"deltaprop {version} wheel smoke test passed")


if __name__ == "__main__":
    main()
