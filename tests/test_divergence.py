# SPDX-License-Identifier: MIT
"""The divergence guard: for each phase (forward, loss, backward, update) a network forced to
diverge there raises DivergenceError naming the phase, and its parameters and optimizer state are
bit for bit those before the failing step — in fit, train_batch and step."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim import SGD, Adam, AdamW


def _state(net):
    st = net.optimizer_state
    return {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in st.items()}


def _snap(net):
    return net.params.tobytes(), _state(net)


def _pretrained(dtype, sizes=(2, 3, 1), activation="identity", opt=None, seed=0):
    """A net with a non-trivial optimizer state (a few Adam steps)."""
    rng = np.random.default_rng(seed)
    net = dp.Network(list(sizes), activation=activation, loss="mse", dtype=dtype, seed=seed)
    for _ in range(3):
        net.train_batch(rng.normal(size=(4, sizes[0])), rng.normal(size=(4, sizes[-1])),
                        optimizer=opt or Adam(lr=0.01, amsgrad=True))
    return net


def _check_error(e, phase):
    assert isinstance(e, FloatingPointError) and isinstance(e, dp.DivergenceError)
    assert e.phase == phase
    assert phase in str(e)
    assert "clip_norm" in str(e) or "learning rate" in str(e) or "lr" in str(e)


# --- train_batch: one forced case per phase ------------------------------------------------------

def _forward_case():
    net = _pretrained("float32", activation="relu")
    W0, _ = net.weights[0]
    W0[:, 0] = 10.0
    X = np.array([[3e38, 0.0], [1.0, 1.0]], dtype=np.float32)  # finite input, z overflows float32
    return net, X, np.zeros((2, 1)), 0


def _loss_case():
    net = _pretrained("float64")
    net.params[:] = 0.0  # outputs 0; (0 - 1e200)^2 overflows, its derivative does not
    return net, np.ones((2, 2)), np.full((2, 1), 1e200), None


def _backward_case():
    net = _pretrained("float64")
    W0, _ = net.weights[0]
    W0[:, 1] = 0.0  # z stays finite, dW0[:, 1] = delta * 1e308 does not
    W1, _ = net.weights[1]
    W1[:] = 1.0
    return net, np.array([[1.0, 1e308]]), np.array([[50.0]]), 0


CASES = {"forward": _forward_case, "loss": _loss_case, "backward": _backward_case}


@pytest.mark.parametrize("phase", ["forward", "loss", "backward"])
@pytest.mark.parametrize("opt", [Adam(lr=0.01, amsgrad=True), SGD(0.1, momentum=0.9)], ids=repr)
def test_train_batch_diverging_in_each_phase_changes_nothing(phase, opt):
    net, X, Y, layer = CASES[phase]()
    before = _snap(net)
    with pytest.raises(dp.DivergenceError) as info:
        net.train_batch(X, Y, optimizer=opt)
    _check_error(info.value, phase)
    assert info.value.epoch == 0 and info.value.batch == 0
    if layer is not None:
        assert info.value.layer == layer
    if phase == "forward":
        assert info.value.unit == 0 and "layer 0" in str(info.value)
    assert _snap(net) == before
    assert np.all(np.isfinite(net.params))


@pytest.mark.parametrize("opt", [SGD(1e308), SGD(1e307, momentum=0.5, nesterov=True)], ids=repr)
def test_train_batch_diverging_in_the_update_changes_nothing(opt):
    net = _pretrained("float64")
    X = np.array([[1.0, -2.0], [0.5, 3.0]])
    Y = np.array([[40.0], [-30.0]])
    before = _snap(net)
    net.backward(X, Y)
    assert np.all(np.isfinite(net.grad)) and np.abs(net.grad).max() > 20
    with pytest.raises(dp.DivergenceError) as info:
        net.train_batch(X, Y, optimizer=opt)
    _check_error(info.value, "update")
    assert _snap(net) == before


# --- step ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("opt,grad", [(o, g) for o in (SGD(1e308), SGD(1e300, momentum=0.9), Adam(lr=0.01), AdamW(lr=0.01))
                                      for g in ("huge", "nan", "inf") if g != "huge" or not isinstance(o, Adam)],
                         ids=repr)
def test_step_with_a_bad_update_or_gradient_changes_nothing(opt, grad):
    net = _pretrained("float64")
    net.grad[:] = 1e10
    if grad == "nan":
        net.grad[3] = np.nan
    elif grad == "inf":
        net.grad[-1] = -np.inf
    before = _snap(net) + (net.grad.tobytes(),)
    with pytest.raises(dp.DivergenceError) as info:
        net.step(opt)
    assert isinstance(info.value, FloatingPointError)
    assert info.value.phase in ("backward", "update")
    if grad == "huge":
        _check_error(info.value, "update")
    assert _snap(net) + (net.grad.tobytes(),) == before


def test_step_with_clip_norm_rescues_a_huge_gradient():
    net = _pretrained("float64")
    net.grad[:] = 1e300
    net.step(SGD(0.1), clip_norm=1.0)
    assert np.all(np.isfinite(net.params))


# --- fit: diverging at a later step; compare with a run of exactly the steps before -------------------

def _fit_case(phase):
    """A [2, 1] identity net; feature 1 is 0 in every row but the trigger row (batch 3 of 5, batch
    size 2), so W[0, 1] stays as set until then while feature 0 trains normally."""
    rng = np.random.default_rng(7)
    n = 10
    dtype = "float32" if phase == "forward" else "float64"
    net = dp.Network([2, 1], activation="identity", loss="mse", dtype=dtype, seed=1)
    X = np.zeros((n, 2))
    X[:, 0] = rng.normal(size=n)
    Y = rng.normal(size=(n, 1))
    trigger = 7  # batch 3
    opt = Adam(lr=0.01, amsgrad=True)
    W, b = net.weights[0]
    if phase == "forward":
        W[0, 1] = 10.0
        X[trigger, 1] = 3e38
    elif phase == "loss":
        Y[trigger, 0] = 1e200
    elif phase == "backward":
        W[0, 1] = 0.0
        X[trigger, 1] = 1e308
        Y[trigger, 0] = 100.0
    else:  # update: zero gradients until the trigger, then an update beyond the float64 range
        W[...] = 0.0
        b[...] = 0.0
        X[:, 0] = 1.0
        Y[...] = 0.0
        Y[trigger, 0] = 10.0
        opt = SGD(1e308, momentum=0.5)
    return net, X.astype(dtype), Y.astype(dtype), opt


@pytest.mark.parametrize("phase", ["forward", "loss", "backward", "update"])
def test_fit_diverging_in_each_phase_restores_the_step_before(phase):
    net, X, Y, opt = _fit_case(phase)
    twin = net.copy()
    with pytest.raises(dp.DivergenceError) as info:
        net.fit(X, Y, epochs=3, batch_size=2, shuffle=False, optimizer=opt)
    e = info.value
    _check_error(e, phase)
    assert (e.epoch, e.batch) == (0, 3)
    for s in range(0, 6, 2):  # the three steps before the failing one
        twin.train_batch(X[s:s + 2], Y[s:s + 2], optimizer=opt)
    assert _snap(net) == _snap(twin)
    assert net.history is not None and len(net.history) == 0 and net.history.interrupted
    assert e.history is net.history


def test_the_issue_example_raises_instead_of_leaving_nan():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = X[:, 0] * X[:, 1] + rng.normal(scale=0.1, size=200)
    net = dp.Network([2, 64, 1], activation="relu", loss="mse", seed=0)
    twin = net.copy()
    with pytest.raises(dp.DivergenceError) as info:
        net.fit(X, y, epochs=5, lr=10.0, shuffle=False)
    e = info.value
    assert isinstance(e, FloatingPointError)
    assert np.all(np.isfinite(net.params))
    h = net.history
    assert h.interrupted and len(h) == e.epoch and all(np.isfinite(h))
    assert e.history is h
    assert e.phase in ("forward", "loss", "backward", "update") and e.phase in str(e)
    assert f"epoch {e.epoch}" in str(e) or f"epoch {e.epoch + 1}" in str(e)
    # the same steps, one train_batch at a time, end exactly where fit was put back
    Xc, yc = X.astype(np.float32), y.astype(np.float32)
    steps = e.epoch * 7 + e.batch  # 200 rows in batches of 32: 7 a epoch
    for k in range(steps):
        s = (k % 7) * 32
        twin.train_batch(Xc[s:s + 32], yc[s:s + 32], lr=10.0)
    assert net.params.tobytes() == twin.params.tobytes()
    with pytest.raises(dp.DivergenceError):
        twin.train_batch(Xc[(steps % 7) * 32:(steps % 7) * 32 + 32], yc[(steps % 7) * 32:(steps % 7) * 32 + 32],
                         lr=10.0)


def test_fit_with_clip_norm_and_a_lower_rate_does_not_diverge():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = X[:, 0] * X[:, 1]
    net = dp.Network([2, 64, 1], activation="relu", loss="mse", seed=0)
    h = net.fit(X, y, epochs=5, optimizer=Adam(lr=0.01), clip_norm=1.0)
    assert np.all(np.isfinite(h)) and np.all(np.isfinite(net.params))


def test_fit_diverging_in_a_later_epoch_keeps_the_completed_epochs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] + rng.normal(scale=0.1, size=200)).astype(np.float32)
    net = dp.Network([2, 64, 1], activation="relu", loss="mse", seed=0)
    twin = net.copy()
    with pytest.raises(dp.DivergenceError) as info:
        net.fit(X, y, epochs=10, lr=0.5, batch_size=50, shuffle=False, momentum=0.5)
    e = info.value
    assert e.epoch >= 1
    h = net.history
    assert h.interrupted and not h.stopped_early and len(h) == e.epoch and e.history is h
    # a run of the completed epochs, then the steps of the failing epoch before the failing batch
    h2 = twin.fit(X, y, epochs=e.epoch, lr=0.5, batch_size=50, shuffle=False, momentum=0.5)
    assert list(h2) == list(h)
    for b in range(e.batch):
        twin.train_batch(X[b * 50:(b + 1) * 50], y[b * 50:(b + 1) * 50], lr=0.5, momentum=0.5)
    assert _snap(net) == _snap(twin)
    assert np.all(np.isfinite(net.params))
