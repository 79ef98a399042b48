# SPDX-License-Identifier: MIT
"""Kernel levels: DELTAPROP_KERNEL is honoured at start-up and by set_kernel_level("auto"), an invalid
value falls back to the automatic choice, and at every level the CPU has, training gives bitwise the same
result for any thread count."""
import os
import subprocess
import sys

import numpy as np
import pytest

import deltaprop as dp

LEVELS = ("portable", "avx2", "avx512")


def _levels_here():
    """The levels this CPU supports (set_kernel_level refuses the others)."""
    have = []
    try:
        for level in LEVELS:
            try:
                dp.set_kernel_level(level)
            except (ValueError, RuntimeError):
                continue
            have.append(level)
    finally:
        dp.set_kernel_level("auto")
    return have


def _in_subprocess(env_kernel):
    """get_kernel_level() at start-up, after forcing portable, and after returning to auto, in a fresh
    interpreter with DELTAPROP_KERNEL=env_kernel (None: unset)."""
    env = dict(os.environ)
    env.pop("DELTAPROP_KERNEL", None)
    if env_kernel is not None:
        env["DELTAPROP_KERNEL"] = env_kernel
    code = ("import deltaprop as dp; a = dp.get_kernel_level(); dp.set_kernel_level('portable'); "
            "b = dp.get_kernel_level(); dp.set_kernel_level('auto'); print(a, b, dp.get_kernel_level())")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize("level", LEVELS)
def test_env_level_is_honoured_by_auto(level):
    if level not in _levels_here():
        pytest.skip(f"this CPU has no {level} kernels")
    start, forced, back = _in_subprocess(level)
    assert start == level
    assert forced == "portable"
    assert back == level  # "auto" returns to DELTAPROP_KERNEL, not to the CPU's best


@pytest.mark.parametrize("value", ["avx3", "AVX2 ", "", "auto"])
def test_env_level_invalid_or_auto_means_automatic(value):
    automatic = _in_subprocess(None)
    assert automatic[1] == "portable" and automatic[0] == automatic[2]
    assert automatic[0] in LEVELS
    assert _in_subprocess(value) == automatic


def test_auto_never_above_the_cpu():
    have = _levels_here()
    assert dp.get_kernel_level() in have


def _train(level, threads):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(301, 37)).astype(np.float32)
    y = rng.integers(0, 5, 301)
    net = dp.Network([37, 67, 33, 5], activation="tanh", loss="cross_entropy", dtype="float32", seed=1)
    before = dp.get_num_threads()
    try:
        dp.set_kernel_level(level)
        dp.set_num_threads(threads)
        losses = net.fit(X, y, epochs=2, batch_size=64, lr=0.05, momentum=0.9, l2=1e-3, seed=2)
        pred = net.predict(X[:1])
    finally:
        dp.set_num_threads(before)
        dp.set_kernel_level("auto")
    return np.asarray(losses), net.params.copy(), pred


@pytest.mark.parametrize("level", LEVELS)
def test_bitwise_identical_for_any_thread_count(level):
    if level not in _levels_here():
        pytest.skip(f"this CPU has no {level} kernels")
    l1, p1, y1 = _train(level, 1)
    for threads in (2, 3):
        l2, p2, y2 = _train(level, threads)
        assert np.array_equal(l1, l2)
        assert np.array_equal(p1, p2)
        assert np.array_equal(y1, y2)


def test_a_misspelled_environment_variable_is_a_runtime_warning_at_import():
    code = ("import warnings\nwith warnings.catch_warnings(record=True) as w:\n    warnings.simplefilter('always')\n"
            "    import deltaprop\nprint([str(x.message) for x in w if x.category is RuntimeWarning])")
    for var, value in (("DELTAPROP_KERNEL", "avx3"), ("DELTAPROP_NUM_THREADS", "two")):
        env = dict(os.environ, **{var: value})
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
        assert var in out and value in out, out
    clean = {k: v for k, v in os.environ.items() if k not in ("DELTAPROP_KERNEL", "DELTAPROP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_kernel_levels_per_family():
    """get_kernel_levels: one build per family, never above the CPU or the forced level; elementwise at
    most avx2; get_kernel_level is the widest of them."""
    have = _levels_here()
    try:
        for forced in have + ["auto"]:
            dp.set_kernel_level(forced)
            fam = dp.get_kernel_levels()
            assert set(fam) == {"gemm_float32", "gemm_float64", "elementwise"}
            assert all(v in have for v in fam.values())
            order = ("portable", "avx2", "avx512")
            assert dp.get_kernel_level() == max(fam.values(), key=order.index)
            assert order.index(fam["elementwise"]) <= order.index("avx2")
            if forced != "auto":
                assert fam["gemm_float32"] == fam["gemm_float64"] == forced
                assert fam["elementwise"] == ("avx2" if forced == "avx512" else forced)
    finally:
        dp.set_kernel_level("auto")
