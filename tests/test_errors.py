# SPDX-License-Identifier: MIT
"""Every documented error path raises ValueError/TypeError naming the argument, and leaves the
network's params, grad and velocity bit-identical."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp
from helpers import DTYPES, assert_unchanged, snapshot

N_IN, N_OUT, BATCH = 4, 3, 6


def _nan_at_end(shape):
    a = np.ones(shape)
    a[-1, -1] = np.nan
    return a


def _with(value, shape):
    a = np.ones(shape)
    a[0, 0] = value
    return a


X_OK = np.linspace(-1, 1, BATCH * N_IN).reshape(BATCH, N_IN)
Y_OK = np.linspace(-1, 1, BATCH * N_OUT).reshape(BATCH, N_OUT)
IDX_OK = np.arange(BATCH) % N_OUT

# (id, loss, call(net), exception, match)
CASES = [
    # X: rank, shape, empty batch, NaN/Inf, strings
    ("forward-X-3d", "mse", lambda n: n.forward(np.ones((2, 3, N_IN))), ValueError, r"\bX\b"),
    ("forward-X-0d", "mse", lambda n: n.forward(np.float64(1.0)), ValueError, r"\bX\b"),
    ("forward-X-cols", "mse", lambda n: n.forward(np.ones((BATCH, N_IN + 1))), ValueError, r"\bX\b"),
    ("forward-X-empty", "mse", lambda n: n.forward(np.ones((0, N_IN))), ValueError, r"\bX\b"),
    ("forward-X-nan", "mse", lambda n: n.forward(_with(np.nan, (BATCH, N_IN))), ValueError, r"\bX\b"),
    ("forward-X-inf", "mse", lambda n: n.forward(_with(np.inf, (BATCH, N_IN))), ValueError, r"\bX\b"),
    ("forward-X-str", "mse", lambda n: n.forward(np.full((BATCH, N_IN), "a")), TypeError, r"\bX\b"),
    ("predict-X-cols", "mse", lambda n: n.predict(np.ones((BATCH, N_IN - 1))), ValueError, r"\bX\b"),
    ("predict-X-nan", "mse", lambda n: n.predict(_with(np.nan, (BATCH, N_IN))), ValueError, r"\bX\b"),
    ("predict-X-str", "mse", lambda n: n.predict([["x"] * N_IN]), TypeError, r"\bX\b"),
    ("backward-X-cols", "mse", lambda n: n.backward(np.ones((BATCH, 7)), Y_OK), ValueError, r"\bX\b"),
    ("backward-X-empty", "mse",
     lambda n: n.backward(np.ones((0, N_IN)), np.ones((0, N_OUT))), ValueError, r"\b[XY]\b"),
    ("backward-X-inf", "mse", lambda n: n.backward(_with(-np.inf, (BATCH, N_IN)), Y_OK), ValueError,
     r"\bX\b"),
    # Y: shape, batch mismatch, NaN/Inf, rank, strings
    ("backward-Y-cols", "mse", lambda n: n.backward(X_OK, np.ones((BATCH, N_OUT - 1))), ValueError,
     r"\bY\b"),
    ("backward-Y-batch", "mse", lambda n: n.backward(X_OK, np.ones((BATCH - 1, N_OUT))), ValueError,
     r"\bY\b"),
    ("backward-Y-1d-multi-output", "mse", lambda n: n.backward(X_OK, np.ones(BATCH)), ValueError,
     r"\bY\b"),
    ("backward-Y-3d", "mse", lambda n: n.backward(X_OK, np.ones((BATCH, N_OUT, 1))), ValueError,
     r"\bY\b"),
    ("backward-Y-nan", "mse", lambda n: n.backward(X_OK, _nan_at_end((BATCH, N_OUT))), ValueError,
     r"\bY\b"),
    ("backward-Y-inf", "mse", lambda n: n.backward(X_OK, _with(np.inf, (BATCH, N_OUT))), ValueError,
     r"\bY\b"),
    ("backward-Y-str", "mse", lambda n: n.backward(X_OK, np.full((BATCH, N_OUT), "b")), TypeError,
     r"\bY\b"),
    ("backward-l2-negative", "mse", lambda n: n.backward(X_OK, Y_OK, l2=-0.1), ValueError, r"\bl2\b"),
    ("loss-Y-batch", "mse", lambda n: n.loss(X_OK, np.ones((2, N_OUT))), ValueError, r"\bY\b"),
    ("loss-l2-negative", "mse", lambda n: n.loss(X_OK, Y_OK, l2=-1.0), ValueError, r"\bl2\b"),
    ("loss-X-nan", "mse", lambda n: n.loss(_with(np.nan, (BATCH, N_IN)), Y_OK), ValueError, r"\bX\b"),
    # class indices
    ("ce-index-too-big", "cross_entropy",
     lambda n: n.backward(X_OK, np.array([0, 1, 2, 3, 0, 1])), ValueError, r"\bY\b"),
    ("ce-index-negative", "cross_entropy",
     lambda n: n.backward(X_OK, np.array([0, 1, -1, 2, 0, 1])), ValueError, r"\bY\b"),
    ("ce-index-batch", "cross_entropy", lambda n: n.backward(X_OK, IDX_OK[:4]), ValueError, r"\bY\b"),
    ("ce-onehot-cols", "cross_entropy", lambda n: n.backward(X_OK, np.eye(N_OUT + 1)[IDX_OK]),
     ValueError, r"\bY\b"),
    ("ce-loss-index-too-big", "cross_entropy", lambda n: n.loss(X_OK, IDX_OK + N_OUT), ValueError,
     r"\bY\b"),
    ("ce-fit-index-negative", "cross_entropy",
     lambda n: n.fit(X_OK, np.array([0, 1, 2, 0, 1, -2]), epochs=1, batch_size=1, lr=0.1),
     ValueError, r"\bY\b"),
    # backward_from_output_grad
    ("bfog-shape", "mse", lambda n: (n.forward(X_OK), n.backward_from_output_grad(np.ones((BATCH, 2)))),
     ValueError, r"\bgrad\b"),
    ("bfog-batch", "mse",
     lambda n: (n.forward(X_OK), n.backward_from_output_grad(np.ones((BATCH + 1, N_OUT)))),
     ValueError, r"\bgrad\b"),
    # step
    ("step-lr-zero", "mse", lambda n: n.step(0.0), ValueError, r"\blr\b"),
    ("step-lr-negative", "mse", lambda n: n.step(-0.1), ValueError, r"\blr\b"),
    ("step-lr-nan", "mse", lambda n: n.step(float("nan")), ValueError, r"\blr\b"),
    ("step-lr-inf", "mse", lambda n: n.step(float("inf")), ValueError, r"\blr\b"),
    ("step-momentum-one", "mse", lambda n: n.step(0.1, momentum=1.0), ValueError, r"\bmomentum\b"),
    ("step-momentum-negative", "mse", lambda n: n.step(0.1, momentum=-0.1), ValueError,
     r"\bmomentum\b"),
    ("step-momentum-big", "mse", lambda n: n.step(0.1, momentum=1.5), ValueError, r"\bmomentum\b"),
    ("step-momentum-nan", "mse", lambda n: n.step(0.1, momentum=float("nan")), ValueError,
     r"\bmomentum\b"),
    ("step-nesterov-no-momentum", "mse", lambda n: n.step(0.1, nesterov=True), ValueError,
     r"\bnesterov\b"),
    ("step-weight-decay-negative", "mse", lambda n: n.step(0.1, weight_decay=-0.01), ValueError,
     r"\bweight_decay\b"),
    # train_batch: validated before anything is computed
    ("train-lr-zero", "mse", lambda n: n.train_batch(X_OK, Y_OK, lr=0.0), ValueError, r"\blr\b"),
    ("train-lr-nan", "mse", lambda n: n.train_batch(X_OK, Y_OK, lr=float("nan")), ValueError,
     r"\blr\b"),
    ("train-momentum-one", "mse", lambda n: n.train_batch(X_OK, Y_OK, lr=0.1, momentum=1.0),
     ValueError, r"\bmomentum\b"),
    ("train-nesterov", "mse", lambda n: n.train_batch(X_OK, Y_OK, lr=0.1, nesterov=True), ValueError,
     r"\bnesterov\b"),
    ("train-l2-negative", "mse", lambda n: n.train_batch(X_OK, Y_OK, lr=0.1, l2=-1e-3), ValueError,
     r"\bl2\b"),
    ("train-weight-decay-negative", "mse",
     lambda n: n.train_batch(X_OK, Y_OK, lr=0.1, weight_decay=-1.0), ValueError, r"\bweight_decay\b"),
    ("train-Y-nan", "mse", lambda n: n.train_batch(X_OK, _nan_at_end((BATCH, N_OUT)), lr=0.1),
     ValueError, r"\bY\b"),
    ("train-X-cols", "mse", lambda n: n.train_batch(np.ones((BATCH, 2)), Y_OK, lr=0.1), ValueError,
     r"\bX\b"),
    # fit: validated before the first step (a NaN in the last sample must not leave partial steps)
    ("fit-lr-zero", "mse", lambda n: n.fit(X_OK, Y_OK, lr=0.0), ValueError, r"\blr\b"),
    ("fit-lr-inf", "mse", lambda n: n.fit(X_OK, Y_OK, lr=float("inf")), ValueError, r"\blr\b"),
    ("fit-momentum-one", "mse", lambda n: n.fit(X_OK, Y_OK, lr=0.1, momentum=1.0), ValueError,
     r"\bmomentum\b"),
    ("fit-nesterov", "mse", lambda n: n.fit(X_OK, Y_OK, lr=0.1, nesterov=True), ValueError,
     r"\bnesterov\b"),
    ("fit-l2-negative", "mse", lambda n: n.fit(X_OK, Y_OK, lr=0.1, l2=-1.0), ValueError, r"\bl2\b"),
    ("fit-weight-decay-negative", "mse", lambda n: n.fit(X_OK, Y_OK, lr=0.1, weight_decay=-1.0),
     ValueError, r"\bweight_decay\b"),
    ("fit-batch-mismatch", "mse", lambda n: n.fit(X_OK, Y_OK[:5], lr=0.1), ValueError, r"\b[XY]\b"),
    ("fit-X-nan-last-sample", "mse",
     lambda n: n.fit(_nan_at_end((BATCH, N_IN)), Y_OK, batch_size=1, lr=0.1, shuffle=False),
     ValueError, r"\bX\b"),
    ("fit-Y-inf-last-sample", "mse",
     lambda n: n.fit(X_OK, _with(np.inf, (BATCH, N_OUT))[::-1], batch_size=1, lr=0.1, shuffle=False),
     ValueError, r"\bY\b"),
    ("fit-empty", "mse", lambda n: n.fit(np.ones((0, N_IN)), np.ones((0, N_OUT)), lr=0.1), ValueError,
     r"\b[XY]\b"),
    ("fit-batch-size-zero", "mse", lambda n: n.fit(X_OK, Y_OK, lr=0.1, batch_size=0), ValueError,
     r"\bbatch_size\b"),
    ("fit-epochs-negative", "mse", lambda n: n.fit(X_OK, Y_OK, lr=0.1, epochs=-1), ValueError,
     r"\bepochs\b"),
    # gradient_check
    ("gc-eps-zero", "mse", lambda n: n.gradient_check(X_OK, Y_OK, eps=0.0), ValueError, r"\beps\b"),
    ("gc-eps-negative", "mse", lambda n: n.gradient_check(X_OK, Y_OK, eps=-1e-4), ValueError,
     r"\beps\b"),
    ("gc-Y-cols", "mse", lambda n: n.gradient_check(X_OK, np.ones((BATCH, 1))), ValueError, r"\bY\b"),
]


def _dirty_net(loss, dtype):
    """A network whose params, grad and velocity are all non-trivial."""
    net = dp.Network([N_IN, 5, N_OUT], activation="tanh", loss=loss, dtype=dtype, seed=9)
    Y = IDX_OK if loss == "cross_entropy" else Y_OK
    for _ in range(3):
        net.train_batch(X_OK, Y, lr=0.05, momentum=0.9)
    net.backward(X_OK[::-1] * 0.5, Y[::-1])
    assert np.abs(net.velocity).max() > 0 and np.abs(net.grad).max() > 0
    return net, Y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss,call,exc,match", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_error_leaves_state_unchanged(loss, call, exc, match, dtype):
    net, Y = _dirty_net(loss, dtype)
    snap = snapshot(net)
    with pytest.raises(exc, match=match):
        call(net)
    assert_unchanged(net, snap)
    # the network is still usable afterwards
    net.backward(X_OK, Y)
    assert np.isfinite(net.grad).all()


def test_error_message_gives_expected_and_actual():
    net = dp.Network([N_IN, 5, N_OUT], seed=0)
    with pytest.raises(ValueError) as info:
        net.forward(np.ones((3, 7)))
    msg = str(info.value)
    assert "X" in msg and str(N_IN) in msg and "(3, 7)" in msg
    with pytest.raises(ValueError) as info:
        net.backward(np.ones((3, N_IN)), np.ones((3, 2)))
    msg = str(info.value)
    assert "Y" in msg and str(N_OUT) in msg and "(3, 2)" in msg


CTOR_CASES = [
    ("unknown-activation", dict(sizes=[4, 5, 3], activation="swish"), ValueError, r"activation"),
    ("unknown-activation-in-list", dict(sizes=[4, 5, 3], activation=["tanh", "gelu"]), ValueError,
     r"activation"),
    ("activation-list-too-short", dict(sizes=[4, 5, 6, 3], activation=["tanh"]), ValueError,
     r"activation"),
    ("activation-list-too-long", dict(sizes=[4, 5, 3], activation=["tanh"] * 3), ValueError,
     r"activation"),
    ("activation-list-and-other-output", dict(sizes=[4, 5, 3], activation=["tanh", "identity"],
                                              output="sigmoid"), ValueError, r"output"),
    ("unknown-output", dict(sizes=[4, 5, 3], output="swish"), ValueError, r"output"),
    ("unknown-loss", dict(sizes=[4, 5, 3], loss="hinge"), ValueError, r"loss"),
    ("unknown-init", dict(sizes=[4, 5, 3], init="zeros"), ValueError, r"init"),
    ("softmax-hidden", dict(sizes=[4, 5, 3], activation="softmax"), ValueError, r"softmax"),
    ("softmax-hidden-list", dict(sizes=[4, 5, 6, 3], activation=["tanh", "softmax", "softmax"]),
     ValueError, r"softmax"),
    ("bce-without-sigmoid", dict(sizes=[4, 5, 1], loss="binary_cross_entropy", output="identity"),
     ValueError, r"sigmoid"),
    ("bce-softmax", dict(sizes=[4, 5, 2], loss="binary_cross_entropy", output="softmax"), ValueError,
     r"sigmoid"),
    ("ce-without-softmax", dict(sizes=[4, 5, 3], loss="cross_entropy", output="sigmoid"), ValueError,
     r"softmax"),
    ("size-zero", dict(sizes=[4, 0, 3]), ValueError, r"sizes"),
    ("size-negative", dict(sizes=[4, -2]), ValueError, r"sizes"),
    ("too-few-sizes", dict(sizes=[4]), ValueError, r"sizes"),
    ("no-sizes", dict(sizes=[]), ValueError, r"sizes"),
    ("dtype-float16", dict(sizes=[4, 3], dtype="float16"), (ValueError, TypeError), r"dtype"),
    ("dtype-int", dict(sizes=[4, 3], dtype=np.int32), (ValueError, TypeError), r"dtype"),
    ("dtype-garbage", dict(sizes=[4, 3], dtype="double-ish"), (ValueError, TypeError), r"dtype"),
    ("seed-negative", dict(sizes=[4, 3], seed=-1), ValueError, r"seed"),
    ("slope-list-length", dict(sizes=[4, 5, 3], activation="leaky_relu", slope=[0.1]), ValueError,
     r"slope"),
]


@pytest.mark.parametrize("kwargs,exc,match", [pytest.param(*c[1:], id=c[0]) for c in CTOR_CASES])
def test_constructor_errors(kwargs, exc, match):
    kwargs = dict(kwargs)
    sizes = kwargs.pop("sizes")
    with pytest.raises(exc, match=match):
        dp.Network(sizes, **kwargs)


def test_set_kernel_level_unknown_name():
    before = dp.get_kernel_level()
    with pytest.raises(ValueError):
        dp.set_kernel_level("sse9")
    assert dp.get_kernel_level() == before
