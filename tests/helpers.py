# SPDX-License-Identifier: MIT
"""Shared helpers for the pytest suite (imported by the test modules)."""
from __future__ import annotations

import numpy as np

from reference import RefNet, push_away_from_kinks

# (loss, output activation) pairs that are valid: mse with any output, bce needs
# sigmoid, cross_entropy needs softmax.
HIDDEN = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
LOSS_OUTPUTS = (
    [("mse", out) for out in ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax")]
    + [("binary_cross_entropy", "sigmoid"), ("cross_entropy", "softmax")]
)
DTYPES = ("float32", "float64")


def snapshot(net):
    """Copies of everything a failing call must leave untouched."""
    return {
        "params": net.params.copy(),
        "grad": net.grad.copy(),
        "velocity": net.velocity.copy(),
    }


def assert_unchanged(net, snap):
    for name, before in snap.items():
        after = getattr(net, name)
        assert after.dtype == before.dtype, name
        # bit-identical, NaN-safe
        assert after.tobytes() == before.tobytes(), f"{name} changed by a failing call"


def tolerances(dtype):
    """(rtol, atol-scale) for comparing the library against the float64 reference."""
    return (1e-9, 1e-11) if np.dtype(dtype) == np.float64 else (2e-4, 2e-5)


def assert_close(actual, expected, dtype, what=""):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    rtol, atol = tolerances(dtype)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def make_targets(rng, loss, batch, n_out, target="onehot"):
    """Random targets valid for `loss`; target="index" gives class indices for cross_entropy."""
    if loss == "cross_entropy":
        idx = rng.integers(0, n_out, batch)
        if target == "index":
            return idx
        return np.eye(n_out)[idx]
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, (batch, n_out)).astype(np.float64)
    return rng.normal(size=(batch, n_out))


def build(dp, sizes, hidden, output, loss, dtype, seed=0, slope=0.01):
    """A Network whose last layer is `output` and all others `hidden`."""
    L = len(sizes) - 1
    acts = [hidden] * (L - 1) + [output]
    return dp.Network(sizes, activation=acts, loss=loss, dtype=dtype, seed=seed, slope=slope)


def away_from_kinks(net, X, margin=0.05, slope=0.01):
    """Shift relu/leaky_relu biases of `net` so no |z| < margin on X; returns the matching RefNet."""
    ref = RefNet.from_net(net, slope)
    assert push_away_from_kinks(ref, X, margin)
    for l, (_, b) in enumerate(net.weights):
        b[...] = ref.b[l]
    return RefNet.from_net(net, slope)


def layer_offsets(sizes):
    """Start of W and b of each layer in the flat parameter vector."""
    out, i = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        out.append((i, i + n_in * n_out))
        i += n_in * n_out + n_out
    return out
