# SPDX-License-Identifier: MIT
"""Gradients: the library against the numpy reference network, gradient_check, and worked examples."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp
from helpers import (DTYPES, HIDDEN, LOSS_OUTPUTS, assert_close, away_from_kinks, build,
                     layer_offsets, make_targets)
from reference import RefNet, targets

SIZES = ([3, 1, 5, 2], [7, 13, 1], [5, 4], [33, 65, 17])
SLOPE = 0.05


def _combos():
    for hidden in HIDDEN:
        for loss, output in LOSS_OUTPUTS:
            for sizes in SIZES:
                if output == "softmax" and sizes[-1] == 1:
                    continue  # softmax over a single output is constant
                if len(sizes) == 2 and hidden != "tanh":
                    continue  # no hidden layer: the hidden activation is irrelevant
                yield pytest.param(hidden, loss, output, sizes,
                                   id=f"{hidden}-{loss}-{output}-{'x'.join(map(str, sizes))}")


def _batches(sizes):
    return (1, 6, 37) if sizes[0] < 30 else (1, 70)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden,loss,output,sizes", list(_combos()))
def test_backward_matches_reference(hidden, loss, output, sizes, dtype):
    rng = np.random.default_rng(sum(sizes))
    net = build(dp, sizes, hidden, output, loss, dtype, seed=3, slope=SLOPE)
    assert net.dtype == np.dtype(dtype)
    L = len(sizes) - 1
    forms = ("onehot", "index") if loss == "cross_entropy" else ("onehot",)
    for batch in _batches(sizes):
        X = rng.normal(size=(batch, sizes[0])).astype(dtype)
        ref = away_from_kinks(net, X, margin=1e-3, slope=SLOPE)
        for form in forms:
            Y = make_targets(rng, loss, batch, sizes[-1], form)
            for l2 in (0.0, 0.4):
                cost, grads, deltas, zs, acts = ref.backward(X, Y, l2)
                what = f"batch={batch} target={form} l2={l2}"
                got = net.backward(X, Y, l2=l2)
                assert isinstance(got, float)
                assert_close(got, cost, dtype, "cost " + what)
                assert len(net.gradients) == L
                for l, ((dW, db), (rW, rb)) in enumerate(zip(net.gradients, grads)):
                    assert dW.dtype == np.dtype(dtype) and db.dtype == np.dtype(dtype)
                    assert_close(dW, rW, dtype, f"dW[{l}] {what}")
                    assert_close(db, rb, dtype, f"db[{l}] {what}")
                for l in range(L):
                    assert_close(net.z[l], zs[l], dtype, f"z[{l}] {what}")
                    assert_close(net.a[l], acts[l], dtype, f"a[{l}] {what}")
                    assert_close(net.deltas[l], deltas[l], dtype, f"delta[{l}] {what}")
                assert_close(net.grad, RefNet.flatten(grads), dtype, "flat grad " + what)
                assert_close(net.loss(X, Y, l2=l2), cost, dtype, "loss() " + what)
                assert_close(net.forward(X), acts[-1], dtype, "forward " + what)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_dimensional_targets_for_single_output(dtype):
    rng = np.random.default_rng(0)
    net = dp.Network([4, 3, 1], activation="tanh", dtype=dtype, seed=1)
    ref = RefNet.from_net(net)
    X = rng.normal(size=(5, 4))
    y = rng.normal(size=5)
    cost, grads, *_ = ref.backward(X, y.reshape(-1, 1))
    assert_close(net.backward(X, y), cost, dtype)
    assert_close(net.grad, RefNet.flatten(grads), dtype)
    net2 = dp.Network([4, 3, 1], activation="tanh", loss="binary_cross_entropy", dtype=dtype, seed=1)
    ref2 = RefNet.from_net(net2)
    yb = (y > 0).astype(np.float64)
    cost2, grads2, *_ = ref2.backward(X, yb.reshape(-1, 1))
    assert_close(net2.backward(X, yb), cost2, dtype)
    assert_close(net2.grad, RefNet.flatten(grads2), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_index_and_onehot_targets_agree(dtype):
    rng = np.random.default_rng(1)
    net = dp.Network([6, 9, 4], activation="sigmoid", loss="cross_entropy", dtype=dtype, seed=2)
    X = rng.normal(size=(11, 6))
    idx = rng.integers(0, 4, 11)
    c1 = net.backward(X, idx)
    g1 = net.grad.copy()
    c2 = net.backward(X, np.eye(4)[idx])
    assert_close(c1, c2, dtype)
    assert_close(net.grad, g1, dtype)
    # int32 and uint8 indices are integer class indices too
    for int_dtype in (np.int32, np.int64, np.uint8):
        assert_close(net.backward(X, idx.astype(int_dtype)), c1, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_per_layer_activation_list_and_slopes(dtype):
    rng = np.random.default_rng(2)
    acts = ["leaky_relu", "tanh", "leaky_relu", "identity"]
    slopes = [0.2, 0.01, 0.3, 0.01]
    net = dp.Network([5, 6, 4, 3, 2], activation=acts, slope=slopes, dtype=dtype, seed=4)
    assert net.activations == tuple(acts)
    X = rng.normal(size=(8, 5)).astype(dtype)
    ref = away_from_kinks(net, X, margin=1e-3, slope=slopes)
    Y = rng.normal(size=(8, 2))
    cost, grads, *_ = ref.backward(X, Y, 0.1)
    assert_close(net.backward(X, Y, l2=0.1), cost, dtype)
    assert_close(net.grad, RefNet.flatten(grads), dtype)


# --- gradient_check ------------------------------------------------------------------------------

def _well_conditioned_case(sizes, hidden, output, loss, batch, l2):
    """A deterministic float64 net + data on which float64 central differences are accurate.

    Rounding in the finite differences is ~1e-16 * (size of the intermediates) / eps, while the
    documented metric's floor is 1e-3 * max|n|: so the gradient must not be small, and the cost not
    large next to it. Targets are chosen away from the prediction (mse: prediction + noise; bce, ce:
    the wrong label), and data seeds are tried in a fixed order until, on the *reference* network,
    max|g| >= 0.1 and cost / max|g| < 10. No relu/leaky_relu z lies within 0.05 of its kink.
    """
    for seed in range(20):
        rng = np.random.default_rng(1000 + seed)
        net = build(dp, sizes, hidden, output, loss, "float64", seed=seed, slope=SLOPE)
        X = rng.normal(size=(batch, sizes[0]))
        ref = away_from_kinks(net, X, margin=0.05, slope=SLOPE)
        a = ref.predict(X)
        if loss == "mse":
            Y = a + 0.5 * rng.normal(size=a.shape)
        elif loss == "binary_cross_entropy":
            Y = (a < 0.5).astype(np.float64)
        else:
            Y = a.argmin(axis=1)
        cost, grads, *_ = ref.backward(X, Y, l2)
        g_max = np.abs(RefNet.flatten(grads)).max()
        if g_max >= 0.1 and cost / g_max < 10:
            return net, X, Y
    pytest.fail("no well-conditioned case found")


def _gc_combos():
    for hidden in HIDDEN:
        for loss, output in LOSS_OUTPUTS:
            for sizes in ([3, 1, 5, 2], [4, 6, 3], [7, 13, 1]):
                if output == "softmax" and sizes[-1] == 1:
                    continue
                yield pytest.param(hidden, loss, output, sizes,
                                   id=f"{hidden}-{loss}-{output}-{'x'.join(map(str, sizes))}")


@pytest.mark.parametrize("hidden,loss,output,sizes", list(_gc_combos()))
def test_gradient_check_float64(hidden, loss, output, sizes):
    L = len(sizes) - 1
    for batch, l2 in ((1, 0.0), (4, 0.3)):
        net, X, Y = _well_conditioned_case(sizes, hidden, output, loss, batch, l2)
        before = (net.params.copy(), net.grad.copy(), net.velocity.copy())
        net.backward(X, Y, l2=l2)
        grad_before = net.grad.copy()
        assert np.abs(net.grad).max() >= 0.1, "gradient is trivially small"
        gc = net.gradient_check(X, Y, l2=l2)
        assert gc.max_error < 1e-7, (batch, l2, gc)
        assert len(gc.layer_errors) == L
        assert max(gc.layer_errors) == pytest.approx(gc.max_error)
        assert 0 <= gc.worst_index < net.n_params
        assert 0 <= gc.worst_layer < L
        # does not change the net
        np.testing.assert_array_equal(net.params, before[0])
        np.testing.assert_array_equal(net.grad, grad_before)
        np.testing.assert_array_equal(net.velocity, before[2])


def test_gradient_check_default_eps_and_fields():
    rng = np.random.default_rng(3)
    net = dp.Network([3, 5, 2], activation="tanh", dtype="float64", seed=0)
    X = 0.5 * rng.normal(size=(4, 3))
    Y = rng.normal(size=(4, 2))
    gc = net.gradient_check(X, Y)
    assert gc.max_error < 1e-5
    assert gc == (gc.max_error, gc.layer_errors, gc.worst_index, gc.worst_layer)
    offsets = layer_offsets(net.sizes)
    start = offsets[gc.worst_layer][0]
    end = offsets[gc.worst_layer + 1][0] if gc.worst_layer + 1 < len(offsets) else net.n_params
    assert start <= gc.worst_index < end


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_check_runs_for_both_dtypes(dtype):
    rng = np.random.default_rng(5)
    net = dp.Network([4, 3, 3], activation="sigmoid", loss="cross_entropy", dtype=dtype, seed=1)
    X = rng.normal(size=(5, 4))
    y = rng.integers(0, 3, 5)
    gc = net.gradient_check(X, y)
    assert np.isfinite(gc.max_error) and gc.max_error >= 0
    assert all(np.isfinite(e) for e in gc.layer_errors)


# --- worked examples -----------------------------------------------------------------------------

def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_single_weight_derivative_by_hand():
    """dC0/dw_12 = 2 (a_1 - y_1) g'(z_1) a_2(L-1): output node j=0 ("1"), previous node k=1 ("2")."""
    net = dp.Network([3, 4, 2], activation="sigmoid", output="sigmoid", loss="mse",
                     dtype="float64", seed=11)
    x = np.array([0.3, -0.8, 0.5])
    y = np.array([0.9, 0.1])
    (W1, b1), (W2, b2) = net.weights
    a_prev = _sigmoid(W1 @ x + b1)        # a(L-1)
    z = W2 @ a_prev + b2                  # z(L)
    a = _sigmoid(z)                       # a(L)
    g_prime = a * (1.0 - a)               # sigmoid'(z) = g(z)(1 - g(z))
    by_hand = 2.0 * (a[0] - y[0]) * g_prime[0] * a_prev[1]
    c = net.backward(x[None, :], y[None, :])
    assert c == pytest.approx(((a - y) ** 2).sum(), rel=1e-12)
    assert net.gradients[-1][0][0, 1] == pytest.approx(by_hand, rel=1e-12, abs=1e-15)
    # same entry in the flat gradient: layer 2's W starts after layer 1's W and b
    w2_start = layer_offsets(net.sizes)[1][0]
    assert net.grad[w2_start + 0 * 4 + 1] == net.gradients[-1][0][0, 1]
    # and the bias gradient of that node is the same product without a_prev
    assert net.gradients[-1][1][0] == pytest.approx(2.0 * (a[0] - y[0]) * g_prime[0], rel=1e-12)


def test_ng_regularised_gradient():
    """Ng: Delta = sum over samples of delta a_prev^T; D = Delta/m + (lambda/m) W, D_bias = Delta_b/m."""
    rng = np.random.default_rng(6)
    sizes = [4, 5, 3]
    lam = 0.7
    m = 6
    net = dp.Network(sizes, activation="tanh", loss="mse", dtype="float64", seed=5)
    X = rng.normal(size=(m, 4))
    Y = rng.normal(size=(m, 3))
    Delta = [np.zeros((n_out, n_in)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    Delta_b = [np.zeros(n_out) for n_out in sizes[1:]]
    for i in range(m):
        net.backward(X[i:i + 1], Y[i:i + 1])
        for l in range(2):
            a_prev = X[i] if l == 0 else net.a[l - 1][0]
            delta = net.deltas[l][0]
            Delta[l] += np.outer(delta, a_prev)
            Delta_b[l] += delta
    net.backward(X, Y, l2=lam)
    for l, (dW, db) in enumerate(net.gradients):
        W = net.weights[l][0]
        np.testing.assert_allclose(dW, Delta[l] / m + (lam / m) * W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(db, Delta_b[l] / m, rtol=1e-12, atol=1e-14)
    # and the cost carries lambda/(2m) * sum W^2 (weights only)
    c0 = net.loss(X, Y)
    reg = lam / (2 * m) * sum((W ** 2).sum() for W, _ in net.weights)
    assert net.loss(X, Y, l2=lam) == pytest.approx(c0 + reg, rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_accumulate_adds(dtype):
    rng = np.random.default_rng(7)
    net = dp.Network([5, 7, 3], activation="tanh", dtype=dtype, seed=1)
    X1, X2 = rng.normal(size=(4, 5)), rng.normal(size=(9, 5))
    Y1, Y2 = rng.normal(size=(4, 3)), rng.normal(size=(9, 3))
    net.backward(X1, Y1, l2=0.2)
    g1 = net.grad.copy()
    net.backward(X2, Y2, l2=0.2)
    g2 = net.grad.copy()
    net.backward(X1, Y1, l2=0.2)
    net.backward(X2, Y2, l2=0.2, accumulate=True)
    assert_close(net.grad, g1.astype(np.float64) + g2, dtype)
    # without accumulate it overwrites
    net.backward(X2, Y2, l2=0.2)
    np.testing.assert_array_equal(net.grad, g2)


@pytest.mark.parametrize("output", ["identity", "sigmoid", "softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_from_output_grad_equals_backward_for_mse(dtype, output):
    rng = np.random.default_rng(8)
    net = dp.Network([5, 6, 3], activation="sigmoid", output=output, loss="mse", dtype=dtype, seed=2)
    X = rng.normal(size=(7, 5)).astype(dtype)
    Y = rng.normal(size=(7, 3))
    net.backward(X, Y)
    expected = net.grad.copy()
    a = net.forward(X)
    net.grad[...] = 123.0
    ret = net.backward_from_output_grad(2.0 * (a - Y.astype(dtype)))
    assert ret is None or isinstance(ret, float)
    assert_close(net.grad, expected, dtype)
    # accumulate adds here too
    net.backward_from_output_grad(2.0 * (a - Y.astype(dtype)), accumulate=True)
    assert_close(net.grad, 2.0 * expected.astype(np.float64), dtype)
    # against the reference for an arbitrary output gradient
    G = rng.normal(size=(7, 3))
    ref = RefNet.from_net(net)
    grads, *_ = ref.backward_from_output_grad(X, G)
    net.forward(X)
    net.backward_from_output_grad(G)
    assert_close(net.grad, RefNet.flatten(grads), dtype)


def test_targets_helper_onehot():
    np.testing.assert_array_equal(targets(np.array([2, 0]), 3, "cross_entropy"),
                                  [[0, 0, 1], [1, 0, 0]])
