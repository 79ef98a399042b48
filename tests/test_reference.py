# SPDX-License-Identifier: MIT
"""The numpy reference network itself, checked against central differences (no deltaprop needed)."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import HIDDEN, LOSS_OUTPUTS, make_targets
from reference import RefNet, activate, derivative, push_away_from_kinks, relative_error


@pytest.mark.parametrize("name", ["identity", "sigmoid", "tanh", "relu", "leaky_relu"])
def test_reference_derivatives(name):
    z = np.array([[-2.5, -0.7, -0.1, 0.2, 0.9, 3.0]])
    h = 1e-6
    numeric = (activate(name, z + h, 0.1) - activate(name, z - h, 0.1)) / (2 * h)
    np.testing.assert_allclose(derivative(name, z, 0.1), numeric, rtol=1e-8, atol=1e-10)


def test_reference_softmax_rows_sum_to_one():
    z = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    a = activate("softmax", z)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    assert np.isfinite(a).all()


def _combos():
    for hidden in HIDDEN:
        for loss, output in LOSS_OUTPUTS:
            for sizes in ([3, 1, 5, 2], [7, 13, 1], [4, 6, 3], [5, 4]):
                if output == "softmax" and sizes[-1] == 1:
                    continue  # softmax over one output is constant
                yield pytest.param(hidden, loss, output, sizes,
                                   id=f"{hidden}-{loss}-{output}-{'x'.join(map(str, sizes))}")


@pytest.mark.parametrize("hidden,loss,output,sizes", list(_combos()))
def test_reference_backward_matches_central_differences(hidden, loss, output, sizes):
    rng = np.random.default_rng(7)
    L = len(sizes) - 1
    ref = RefNet.random(sizes, [hidden] * (L - 1) + [output], loss, rng, slope=0.05)
    for batch in (1, 5):
        X = 0.5 * rng.normal(size=(batch, sizes[0]))
        assert push_away_from_kinks(ref, X, margin=0.05)
        for target in ("onehot", "index"):
            Y = make_targets(rng, loss, batch, sizes[-1], target)
            for l2 in (0.0, 0.3):
                _, grads, deltas, zs, acts = ref.backward(X, Y, l2)
                g = RefNet.flatten(grads)
                n = ref.numerical_gradient(X, Y, eps=1e-5, l2=l2)
                assert relative_error(g, n).max() < 1e-5
                assert [d.shape for d in deltas] == [(batch, s) for s in sizes[1:]]


def test_reference_flat_layout_roundtrip():
    ref = RefNet.random([3, 4, 2], ["tanh", "identity"])
    p = ref.params()
    assert p.size == 3 * 4 + 4 + 4 * 2 + 2
    np.testing.assert_array_equal(p[:12].reshape(4, 3), ref.W[0])
    np.testing.assert_array_equal(p[12:16], ref.b[0])
    ref.set_params(p * 2)
    np.testing.assert_array_equal(ref.params(), 2 * p)
