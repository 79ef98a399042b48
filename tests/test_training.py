# SPDX-License-Identifier: MIT
"""Optimiser steps against their written formulas, fit(), and learning real problems."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp
from helpers import DTYPES, assert_close


def _problem(dtype, seed=0, n=24):
    rng = np.random.default_rng(seed)
    net = dp.Network([5, 8, 3], activation="tanh", dtype=dtype, seed=seed)
    X = rng.normal(size=(n, 5)).astype(dtype)
    Y = rng.normal(size=(n, 3)).astype(dtype)
    return net, X, Y


# --- step ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lr", [0.1, 0.37, 1e-3])
def test_sgd_step_is_w_minus_lr_grad_bitwise(dtype, lr):
    net, X, Y = _problem(dtype)
    net.backward(X, Y)
    w0 = net.params.copy()
    g = net.grad.copy()
    t = np.dtype(dtype).type
    expected = w0 - t(lr) * g  # numpy, same dtype: one multiply and one subtract, each rounded
    assert expected.dtype == np.dtype(dtype)
    net.step(lr)
    np.testing.assert_array_equal(net.params, expected)
    np.testing.assert_array_equal(net.grad, g)  # step does not modify the gradient


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,nesterov,weight_decay", [
    (0.9, False, 0.0), (0.9, True, 0.0), (0.0, False, 0.05), (0.5, True, 0.1), (0.3, False, 0.02),
])
def test_momentum_nesterov_weight_decay_formulas(dtype, momentum, nesterov, weight_decay):
    net, X, Y = _problem(dtype, seed=1)
    lr = 0.05
    w = net.params.astype(np.float64)
    v = np.zeros_like(w)
    np.testing.assert_array_equal(net.velocity, 0.0)
    for _ in range(6):
        net.backward(X, Y)
        g = net.grad.astype(np.float64) + weight_decay * w  # g = grad + weight_decay * w
        v = momentum * v + g                                  # v = momentum * v + g
        u = g + momentum * v if nesterov else (v if momentum else g)
        w = w - lr * u                                        # w -= lr * u
        net.step(lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
        assert_close(net.params, w, dtype, "params")
        if momentum:
            assert_close(net.velocity, v, dtype, "velocity")
        w = net.params.astype(np.float64)  # follow the library's rounding in float32
        if momentum:
            v = net.velocity.astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_decay_applies_to_biases_too(dtype):
    net, X, Y = _problem(dtype, seed=2)
    net.grad[...] = 0.0
    for _, b in net.weights:
        b[...] = 1.0
    w0 = net.params.astype(np.float64)
    net.step(0.1, weight_decay=0.5)
    assert_close(net.params, w0 - 0.1 * 0.5 * w0, dtype)
    for _, b in net.weights:
        assert_close(b, np.full(b.shape, 0.95), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_train_batch_is_backward_then_step(dtype):
    a, X, Y = _problem(dtype, seed=3)
    b = a.copy()
    for _ in range(3):
        la = a.train_batch(X, Y, lr=0.1, momentum=0.9, nesterov=True, l2=0.2, weight_decay=0.01)
        lb = b.backward(X, Y, l2=0.2)
        b.step(0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
        assert la == lb
        np.testing.assert_array_equal(a.params, b.params)
        np.testing.assert_array_equal(a.velocity, b.velocity)
        np.testing.assert_array_equal(a.grad, b.grad)


# --- fit -----------------------------------------------------------------------------------------

def _linear(n=64, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    Y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    net = dp.Network([3, 1], loss="mse", dtype=dtype, seed=seed)
    return net, X, Y


def test_fit_full_batch_losses_decrease():
    net, X, Y = _linear()
    start = net.loss(X, Y)
    losses = net.fit(X, Y, epochs=30, batch_size=None, lr=0.05)
    assert isinstance(losses, list) and len(losses) == 30
    assert all(isinstance(x, float) for x in losses)
    # full batch: the epoch loss is the loss before that epoch's single step
    assert losses[0] == pytest.approx(start, rel=1e-12)
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert net.loss(X, Y) < losses[-1]


@pytest.mark.parametrize("batch_size", [1, 7, 32, None, 1000])
def test_fit_batch_sizes(batch_size):
    net, X, Y = _linear(n=50)
    losses = net.fit(X, Y, epochs=15, batch_size=batch_size, lr=0.02, momentum=0.5, seed=0)
    assert len(losses) == 15
    assert losses[-1] < 0.2 * losses[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation,loss", [("sigmoid", "mse"), ("relu", "cross_entropy"),
                                             ("tanh", "binary_cross_entropy")])
@pytest.mark.parametrize("batch_size,opt", [
    (1, {}),
    (1, dict(momentum=0.9)),
    (7, {}),
    (7, dict(momentum=0.8, nesterov=True, weight_decay=1e-3, l2=0.5)),
    (25, dict(momentum=0.5, l2=1.0)),
])
def test_fit_equals_train_batch_loop_bitwise(dtype, activation, loss, batch_size, opt):
    """The native loop fuses each layer's SGD step into its backward pass; that is the same arithmetic
    as backward then step, batch after batch: parameters, momentum, gradients and losses bit for bit."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(25, 6))
    if loss == "cross_entropy":
        Y = rng.integers(0, 4, 25)
    else:
        Y = (rng.random((25, 4)) < 0.5).astype(float)
    net = dp.Network([6, 9, 5, 4], activation=activation, loss=loss, dtype=dtype, seed=2)
    other = net.copy()
    losses = net.fit(X, Y, epochs=2, batch_size=batch_size, lr=0.05, shuffle=False, **opt)
    expected = []
    for _ in range(2):
        total = 0.0
        for i in range(0, 25, batch_size):
            xb, yb = X[i:i + batch_size], Y[i:i + batch_size]
            total += other.train_batch(xb, yb, lr=0.05, **opt) * len(xb)
        expected.append(total / 25)
    assert net.params.tobytes() == other.params.tobytes()
    assert net.velocity.tobytes() == other.velocity.tobytes()
    assert net.grad.tobytes() == other.grad.tobytes()
    np.testing.assert_allclose(losses, expected, rtol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 16])
def test_fit_without_shuffle_equals_train_batch_loop(batch_size):
    """Epoch loss = sample-weighted mean of the batch losses; same updates as train_batch."""
    net, X, Y = _linear(n=40)
    other = net.copy()
    losses = net.fit(X, Y, epochs=2, batch_size=batch_size, lr=0.01, momentum=0.9, shuffle=False)
    expected = []
    for _ in range(2):
        total = 0.0
        for i in range(0, 40, batch_size):
            xb, yb = X[i:i + batch_size], Y[i:i + batch_size]
            total += other.train_batch(xb, yb, lr=0.01, momentum=0.9) * len(xb)
        expected.append(total / 40)
    np.testing.assert_allclose(losses, expected, rtol=1e-12)
    np.testing.assert_allclose(net.params, other.params, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shuffle", [False, True])
def test_fit_in_one_native_call_equals_fit_epoch_by_epoch(dtype, shuffle):
    """Without a callback fit runs every epoch in one native call (inputs validated once); with one it
    calls the core once an epoch. Both give the same parameters, momentum and losses bit for bit."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(600, 7)).astype(dtype)
    Y = (rng.random((600, 3)) < 0.5).astype(dtype)
    net = dp.Network([7, 11, 3], activation="sigmoid", loss="binary_cross_entropy", dtype=dtype, seed=4)
    other = net.copy()
    kw = dict(epochs=4, batch_size=None if not shuffle else 64, lr=0.5, momentum=0.5, l2=0.1,
              shuffle=shuffle, seed=9)
    losses = net.fit(X, Y, **kw)
    seen = []
    expected = other.fit(X, Y, callback=lambda e, l: seen.append(e), **kw)
    assert seen == [0, 1, 2, 3]
    assert losses == expected
    assert losses[-1] < losses[0]
    assert net.params.tobytes() == other.params.tobytes()
    assert net.velocity.tobytes() == other.velocity.tobytes()


def test_fit_validates_every_input_before_the_first_epoch():
    net, X, Y = _linear(n=40)
    before = net.params.copy()
    X = X.copy()
    X[-1, 0] = np.nan
    with pytest.raises(ValueError, match=r"\bX\b.*NaN"):
        net.fit(X, Y, epochs=3, batch_size=8, lr=0.01)
    assert net.params.tobytes() == before.tobytes()
    assert net.fit(X, Y, epochs=0) == []


def test_fit_callback_per_epoch_and_early_stop():
    net, X, Y = _linear()
    calls = []
    losses = net.fit(X, Y, epochs=5, lr=0.01, callback=lambda e, l: calls.append((e, l)))
    assert len(calls) == 5
    assert [l for _, l in calls] == losses
    epochs = [e for e, _ in calls]
    assert epochs == sorted(epochs) and len(set(epochs)) == 5

    net2, _, _ = _linear()
    seen = []

    def stop_after_three(epoch, loss):
        seen.append(epoch)
        return len(seen) >= 3

    losses2 = net2.fit(X, Y, epochs=10, lr=0.01, callback=stop_after_three)
    assert len(seen) == 3
    assert len(losses2) == 3


def test_fit_callback_exception_propagates_and_keeps_completed_steps():
    """Deterministic stand-in for Ctrl-C: an exception raised between epochs ends fit with the
    weights of the last completed step (a real SIGINT cannot be delivered without timing)."""
    net, X, Y = _linear()
    twin = net.copy()

    def interrupt(epoch, loss):
        if len(seen) == 1:
            raise KeyboardInterrupt
        seen.append(epoch)

    seen = []
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=10, batch_size=16, lr=0.01, seed=3, callback=interrupt)
    twin.fit(X, Y, epochs=2, batch_size=16, lr=0.01, seed=3)
    np.testing.assert_array_equal(net.params, twin.params)


def test_fit_seed_reproducible():
    net, X, Y = _linear(n=100)
    a, b, c = net.copy(), net.copy(), net.copy()
    la = a.fit(X, Y, epochs=3, batch_size=8, lr=0.01, seed=7)
    lb = b.fit(X, Y, epochs=3, batch_size=8, lr=0.01, seed=7)
    c.fit(X, Y, epochs=3, batch_size=8, lr=0.01, seed=8)
    assert la == lb
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)


def test_fit_with_1d_class_indices():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 2))
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0).astype(np.int64)
    net = dp.Network([2, 16, 3], activation="tanh", loss="cross_entropy", seed=0)
    losses = net.fit(X, y, epochs=60, batch_size=16, lr=0.1, momentum=0.9, seed=0)
    assert losses[-1] < losses[0]
    assert (net.predict(X).argmax(axis=1) == y).mean() > 0.9


@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_count_does_not_change_results(dtype, restore_threads):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 64))
    y = rng.integers(0, 10, 300)
    results = []
    for n in (1, 2, 3):
        dp.set_num_threads(n)
        assert dp.get_num_threads() == n
        net = dp.Network([64, 96, 48, 10], activation="relu", loss="cross_entropy", dtype=dtype,
                         seed=0)
        losses = net.fit(X, y, epochs=3, batch_size=100, lr=0.05, momentum=0.9, seed=1)
        net.backward(X, y, l2=0.1)
        results.append((net.params.tobytes(), net.grad.tobytes(), net.predict(X).tobytes(), losses))
    assert results[0] == results[1] == results[2]


def test_ctrl_c_stops_fit_between_batches_keeping_the_last_completed_step():
    """SIGINT during a long native fit raises KeyboardInterrupt; the parameters are exactly those after
    some number k >= 1 of complete steps (found by replaying the steps with train_batch)."""
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGINT"):
        pytest.skip("needs SIGINT delivered to the main thread")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2048, 64)).astype(np.float32)
    y = rng.integers(0, 10, 2048)
    net = dp.Network([64, 256, 10], activation="relu", loss="cross_entropy", seed=0)
    replay = net.copy()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            net.fit(X, y, epochs=100_000, batch_size=32, lr=0.01, shuffle=False)
    finally:
        timer.cancel()
    target = net.params.tobytes()
    assert replay.params.tobytes() != target
    for k in range(1, 200_001):
        i = (k - 1) * 32 % 2048
        replay.train_batch(X[i:i + 32], y[i:i + 32], lr=0.01)
        if replay.params.tobytes() == target:
            break
    else:
        pytest.fail("the interrupted parameters match no number of complete steps")


# --- learning ------------------------------------------------------------------------------------

def test_xor_learns_to_100_percent():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([0, 1, 1, 0], dtype=np.float64)
    net = dp.Network([2, 8, 1], activation="tanh", loss="binary_cross_entropy", seed=1)
    assert net.activations == ("tanh", "sigmoid")
    losses = net.fit(X, y, epochs=1500, batch_size=None, lr=0.5, momentum=0.9)
    assert losses[-1] < 0.05
    pred = net.predict(X)[:, 0] > 0.5
    np.testing.assert_array_equal(pred, y.astype(bool))


def test_datasets_xor_trains():
    X, y = dp.datasets.xor()
    X = np.asarray(X)
    y = np.asarray(y)
    assert X.shape == (4, 2) and y.shape[0] == 4
    n_out = 1 if y.ndim == 1 else y.shape[1]
    net = dp.Network([2, 8, n_out], activation="tanh", loss="binary_cross_entropy", seed=1)
    net.fit(X, y, epochs=1500, batch_size=None, lr=0.5, momentum=0.9)
    pred = (net.predict(X) > 0.5).astype(y.dtype).reshape(y.shape)
    np.testing.assert_array_equal(pred, y)


def test_digits_held_out_accuracy():
    datasets = pytest.importorskip("sklearn.datasets")
    model_selection = pytest.importorskip("sklearn.model_selection")
    digits = datasets.load_digits()
    X = digits.data / 16.0
    y = digits.target
    X_tr, X_te, y_tr, y_te = model_selection.train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y)
    net = dp.Network([64, 64, 10], activation="relu", loss="cross_entropy", dtype="float32", seed=0)
    assert net.activations == ("relu", "softmax")
    losses = net.fit(X_tr, y_tr, epochs=30, batch_size=32, lr=0.05, momentum=0.9, seed=0)
    assert losses[-1] < losses[0]
    acc = (net.predict(X_te).argmax(axis=1) == y_te).mean()
    assert acc >= 0.95, acc


def test_spirals_train_to_high_accuracy():
    X, y = dp.datasets.spirals(n_per_class=100, n_classes=3, noise=0.2, seed=0)
    assert X.shape == (300, 2) and X.dtype == np.float64
    assert y.shape == (300,) and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1, 2}
    X2, y2 = dp.datasets.spirals(n_per_class=100, n_classes=3, noise=0.2, seed=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    net = dp.Network([2, 64, 64, 3], activation="relu", loss="cross_entropy", seed=0)
    net.fit(X, y, epochs=400, batch_size=32, lr=0.05, momentum=0.9, seed=0)
    acc = (net.predict(X).argmax(axis=1) == y).mean()
    assert acc >= 0.95, acc
