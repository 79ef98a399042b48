# SPDX-License-Identifier: MIT
"""Rough edges a new user hit (issue 14): clear errors instead of leaked internals or silent changes."""
from __future__ import annotations

import os

import numpy as np
import pytest

import deltaprop as dp


def test_huge_widths_and_thread_counts_are_refused_by_name(restore_threads):
    with pytest.raises(ValueError, match=r"sizes\[0\]: expected a width in \[1, 16777216\], got 18446744073709551616"):
        dp.Network([2**64, 2])
    with pytest.raises(ValueError, match=r"sizes\[1\].*got 16777217"):
        dp.Network([2, 2**24 + 1])
    for n in (2**40, 10**6, 1025):
        with pytest.raises(ValueError, match=rf"n: at most 1024 threads, got {n}"):
            dp.set_num_threads(n)
    dp.set_num_threads(1024)
    assert dp.get_num_threads() == 1024


def test_float64_values_that_overflow_float32_are_named():
    net = dp.Network([3, 4, 2], seed=0)
    X = np.ones((5, 3))
    X[2, 1] = 1e300
    with pytest.raises(ValueError, match=r"X: values overflow float32 \(largest magnitude 1e\+300"):
        net.predict(X)
    Y = np.zeros((5, 2))
    Y[0, 0] = -1e60
    with pytest.raises(ValueError, match=r"Y: values overflow float32"):
        net.backward(np.ones((5, 3)), Y)


def test_missing_or_unreadable_model_files_raise_the_errno_class(tmp_path):
    missing = tmp_path / "nope.dpm"
    with pytest.raises(FileNotFoundError) as e:
        dp.Network.load(missing)
    assert e.value.filename == str(missing)
    with pytest.raises(IsADirectoryError):
        dp.Network.load(tmp_path)
    net = dp.Network([2, 2], seed=0)
    with pytest.raises(FileNotFoundError) as e:
        net.save(tmp_path / "no-such-dir" / "m.dpm")
    assert e.value.filename.endswith("m.dpm")


def test_soft_targets_accepted_and_invalid_ones_refused():
    X = np.random.default_rng(0).normal(size=(4, 3))
    bce = dp.Network([3, 2], loss="binary_cross_entropy", dtype="float64", seed=0)
    bce.backward(X, np.full((4, 2), 0.3))  # soft targets in [0, 1]
    before = bce.params.copy()
    with pytest.raises(ValueError, match=r"binary_cross_entropy targets must lie in \[0, 1\], got 1.5 at row 1"):
        bce.fit(X, np.array([[0, 1], [1.5, 0], [0, 0], [1, 1]]), epochs=1)
    assert bce.params.tobytes() == before.tobytes()
    ce = dp.Network([3, 3], loss="cross_entropy", dtype="float64", seed=0)
    ce.backward(X, np.full((4, 3), 1 / 3))  # label-smoothed rows
    with pytest.raises(ValueError, match=r"cross_entropy target rows must be probabilities.*row 2 sums to 2"):
        ce.backward(X, np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=float))


def test_help_lists_the_names():
    doc = dp.Network.__doc__
    for name in dp.ACTIVATIONS + dp.LOSSES + dp.INITS:
        assert name in doc


def test_out_of_memory_names_what_and_how_many_bytes():
    # in a subprocess: should the allocation ever succeed lazily, only that process would suffer
    import subprocess
    import sys

    code = ("import deltaprop as dp\ntry:\n    dp.Network([2**24, 2**15])\nexcept MemoryError as e:\n"
            "    print('MemoryError:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "MemoryError: out of memory allocating the parameters, gradients and momentum buffer (" in out
    assert "bytes)" in out
