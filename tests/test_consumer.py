# SPDX-License-Identifier: MIT
"""The core embedded from outside: the installed CMake package, the pip package's CMake and pkg-config
files, and a model saved from Python predicted by a C++ program bit for bit."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CONSUMER = REPO / "tests" / "consumer"
EXAMPLES = REPO / "examples"


def _which_any(*names):
    return next((shutil.which(n) for n in names if n and shutil.which(n)), None)


CMAKE = shutil.which("cmake")
CC = _which_any(os.environ.get("CC"), "cc", "gcc", "clang")
CXX = _which_any(os.environ.get("CXX"), "c++", "g++", "clang++")
NINJA = shutil.which("ninja")

pytestmark = pytest.mark.skipif(
    not (CMAKE and CC and CXX and (REPO / "CMakeLists.txt").is_file()),
    reason="needs cmake, a C and a C++ compiler, and the source tree",
)


def _run(cmd, **kwargs):
    """Run a command; on failure show its output in the assertion message."""
    proc = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} -> {proc.returncode}\n{proc.stdout}"
    return proc.stdout


def _configure_build(src, build, *defines):
    gen = ["-G", "Ninja"] if NINJA else []
    _run([CMAKE, "-S", src, "-B", build, *gen, "-DCMAKE_BUILD_TYPE=Release",
          f"-DCMAKE_C_COMPILER={CC}", f"-DCMAKE_CXX_COMPILER={CXX}", *defines])
    _run([CMAKE, "--build", build, "-j", "2"])


def _exe(build, name):
    return Path(build) / name


def _check_xor(build):
    for name in ("xor_c", "xor_cpp"):
        out = _run([_exe(build, name)])
        assert "accuracy: 1.00" in out, out


@pytest.fixture(scope="module")
def installed_prefix(tmp_path_factory):
    """The core built with plain CMake, installed, then moved (the tree must be relocatable)."""
    root = tmp_path_factory.mktemp("core")
    _configure_build(REPO, root / "build", "-DDELTAPROP_BUILD_TESTS=OFF",
                     "-DDELTAPROP_BUILD_PYTHON=OFF", "-DDELTAPROP_INSTALL=ON")
    _run([CMAKE, "--install", root / "build", "--prefix", root / "staged"])
    prefix = root / "prefix"
    shutil.move(str(root / "staged"), str(prefix))
    return prefix


@pytest.fixture(scope="module")
def installed_consumer(installed_prefix, tmp_path_factory):
    build = tmp_path_factory.mktemp("consumer-installed")
    _configure_build(CONSUMER, build, f"-DCMAKE_PREFIX_PATH={installed_prefix}")
    return build


@pytest.fixture(scope="module")
def dp():
    return pytest.importorskip("deltaprop")


@pytest.fixture(scope="module")
def pip_cmake_dir(dp):
    cmake_dir = Path(dp.get_cmake_dir())
    out = _run([sys.executable, "-m", "deltaprop", "--cmakedir"])
    assert Path(out.strip()) == cmake_dir
    assert (cmake_dir / "deltaprop-config.cmake").is_file(), cmake_dir
    return cmake_dir


@pytest.fixture(scope="module")
def pip_consumer(pip_cmake_dir, tmp_path_factory):
    build = tmp_path_factory.mktemp("consumer-pip")
    _configure_build(CONSUMER, build, f"-DCMAKE_PREFIX_PATH={pip_cmake_dir}")
    return build


def test_installed_package_consumer(installed_prefix, installed_consumer):
    assert (installed_prefix / "include" / "deltaprop" / "deltaprop.h").is_file()
    _check_xor(installed_consumer)


def test_installed_package_version_rules(installed_prefix, tmp_path):
    """0.x: find_package(deltaprop 0.1) takes 0.1.y, and refuses a request for 0.2 or 1.0."""
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.15)\n"
        "project(versions LANGUAGES C)\n"
        "foreach(v 0.2 1.0)\n"
        "  find_package(deltaprop ${v} CONFIG QUIET)\n"
        "  if(deltaprop_FOUND)\n"
        "    message(FATAL_ERROR \"deltaprop ${deltaprop_VERSION} accepted for ${v}\")\n"
        "  endif()\n"
        "endforeach()\n"
        "find_package(deltaprop 0.1 CONFIG REQUIRED)\n"
        "message(STATUS \"found deltaprop ${deltaprop_VERSION}\")\n")
    out = _run([CMAKE, "-S", tmp_path, "-B", tmp_path / "build", f"-DCMAKE_C_COMPILER={CC}",
                f"-DCMAKE_PREFIX_PATH={installed_prefix}"])
    assert "found deltaprop 0.1." in out


def test_pip_package_consumer(dp, pip_consumer):
    pkg = Path(dp.__file__).resolve().parent
    assert (pkg / "include" / "deltaprop" / "deltaprop.h").is_file()
    assert (pkg / "lib" / "libdeltaprop.a").is_file()
    _check_xor(pip_consumer)


def test_pkg_config_c_program(pip_cmake_dir, tmp_path):
    pkg_config = shutil.which("pkg-config") or shutil.which("pkgconf")
    if pkg_config is None:
        pytest.skip("needs pkg-config")
    env = dict(os.environ, PKG_CONFIG_PATH=str(pip_cmake_dir.parent.parent / "pkgconfig"))
    flags = _run([pkg_config, "--cflags", "--libs", "deltaprop"], env=env).split()
    exe = tmp_path / "xor"
    _run([CC, "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", EXAMPLES / "xor.c", "-o", exe,
          *flags])
    assert "accuracy: 1.00" in _run([exe])


def _trained(dp, dtype, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 3))
    if dtype == "float32":
        net = dp.Network([3, 7, 2], activation="tanh", loss="mse", dtype=dtype, seed=seed)
        Y = np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]], axis=1)
    else:
        net = dp.Network([3, 6, 5, 4], activation="sigmoid", loss="cross_entropy", dtype=dtype,
                         seed=seed)
        Y = rng.integers(0, 4, size=40)
    net.fit(X, Y, epochs=5, batch_size=8, lr=0.1, momentum=0.9, seed=seed)
    return net


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cpp_predict_matches_python(dp, dtype, installed_consumer, pip_consumer, tmp_path):
    net = _trained(dp, dtype, seed=11)
    model = tmp_path / f"model-{dtype}.dpm"
    net.save(str(model))

    np_dtype = np.dtype(dtype)
    X = np.random.default_rng(5).uniform(-3, 3, size=(9, 3)).astype(np_dtype)
    X[0, 0] = 0.0
    X[1, 1] = -1e-30
    fmt = "%.9g" if np_dtype == np.float32 else "%.17g"
    inp = tmp_path / "input.txt"
    with open(inp, "w") as f:
        f.write(f"{X.shape[0]} {X.shape[1]}\n")
        for row in X:
            f.write(" ".join(fmt % v for v in row) + "\n")
    expected = net.predict(X)
    assert expected.dtype == np_dtype

    for build in (pip_consumer, installed_consumer):
        out = _run([_exe(build, "predict"), model, inp])
        got = np.array([[float(v) for v in line.split()] for line in out.splitlines() if line.strip()])
        assert got.shape == expected.shape, out
        got = got.astype(np_dtype)  # exact: each printed value round-trips to its float
        mismatch = np.argwhere(got != expected)
        assert mismatch.size == 0, f"{build.name}: C++ {got[tuple(mismatch[0])]!r} != Python " \
                                   f"{expected[tuple(mismatch[0])]!r} at {tuple(mismatch[0])}"


def test_onnx_classifier_runs_from_c(dp, pip_consumer, tmp_path):
    """examples/onnx_to_c: a PyTorch classifier exported to ONNX, imported, saved, and run by a C program."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    _run([sys.executable, EXAMPLES / "onnx_to_c" / "train_export.py", tmp_path])
    model = tmp_path / "classifier.dpm"
    out = _run([_exe(pip_consumer, "onnx_classify"), model, tmp_path / "points.txt"])
    rows = [line.split() for line in out.splitlines() if line.strip()]
    classes = np.array([int(r[0]) for r in rows])
    probabilities = np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float32)
    torch_probabilities = np.loadtxt(tmp_path / "torch_probabilities.txt", dtype=np.float32)
    assert probabilities.shape == torch_probabilities.shape == (20, 3), out
    np.testing.assert_allclose(probabilities, torch_probabilities, rtol=1e-5, atol=1e-6)
    assert np.array_equal(classes, probabilities.argmax(axis=1))
    # the C program computes exactly what the Python package computes from the same file
    points = np.loadtxt(tmp_path / "points.txt", skiprows=1, dtype=np.float32)
    assert probabilities.tobytes() == dp.Network.load(str(model)).predict(points).tobytes()
