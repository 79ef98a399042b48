# SPDX-License-Identifier: MIT
"""fit's validation, early stopping, History, callbacks, progress display and sample weights."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim import SGD, Adam

from deltaprop import EpochRecord


def _state(net):
    st = net.optimizer_state
    return {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in st.items()}


def _regression(seed=0, n=16, n_val=40, noise=0.5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + n_val, 3))
    Y = np.sin(X.sum(axis=1, keepdims=True)) + noise * rng.normal(size=(n + n_val, 1))
    return X[:n], Y[:n], X[n:], Y[n:]


# --- early stopping ---------------------------------------------------------------------------------

@pytest.mark.parametrize("opt", [Adam(lr=0.03, amsgrad=True), SGD(0.1, momentum=0.9)], ids=repr)
def test_early_stopping_restores_the_best_epoch_exactly(opt):
    X, Y, Xv, Yv = _regression()
    net0 = dp.Network([3, 32, 32, 1], activation="tanh", dtype="float64", seed=3)
    net = net0.copy()
    h = net.fit(X, Y, epochs=300, batch_size=4, seed=9, optimizer=opt, validation_data=(Xv, Yv),
                early_stopping=True, patience=5)
    assert h.stopped_early and len(h) < 300
    best = h.best_epoch
    assert best == int(np.argmin(h.val_loss)) and best <= len(h) - 6
    assert len(h) == best + 1 + 5  # patience epochs without improvement after the best
    # a second run of exactly best + 1 epochs with the same seed ends where the first was put back
    twin = net0.copy()
    h2 = twin.fit(X, Y, epochs=best + 1, batch_size=4, seed=9, optimizer=opt, validation_data=(Xv, Yv))
    assert h2.loss == h.loss[: best + 1] and h2.val_loss == h.val_loss[: best + 1]
    assert net.params.tobytes() == twin.params.tobytes()
    assert _state(net) == _state(twin)
    assert net.loss(Xv, Yv) == pytest.approx(min(h.val_loss), rel=1e-12)


def test_early_stopping_without_restore_keeps_the_last_epoch():
    X, Y, Xv, Yv = _regression(1)
    net0 = dp.Network([3, 32, 32, 1], activation="tanh", dtype="float64", seed=4)
    net = net0.copy()
    h = net.fit(X, Y, epochs=300, batch_size=4, seed=2, optimizer=Adam(lr=0.03), validation_data=(Xv, Yv),
                early_stopping=True, patience=3, restore_best=False)
    assert h.stopped_early
    twin = net0.copy()
    twin.fit(X, Y, epochs=len(h), batch_size=4, seed=2, optimizer=Adam(lr=0.03))
    assert net.params.tobytes() == twin.params.tobytes()
    assert _state(net) == _state(twin)


def test_early_stopping_min_delta_and_training_loss_monitor():
    X, Y, _, _ = _regression(2)
    net = dp.Network([3, 8, 1], activation="tanh", dtype="float64", seed=1)
    # the training loss keeps falling, but by less than min_delta after a while
    h = net.fit(X, Y, epochs=500, batch_size=None, optimizer=SGD(0.01), early_stopping=True, patience=2,
                min_delta=1e-3)
    assert h.stopped_early
    improvements = -np.diff(h.loss)
    assert np.all(improvements[-2:] <= 1e-3 + 1e-15)
    assert h.best_epoch == len(h) - 3


def test_without_early_stopping_best_epoch_is_the_last():
    X, Y, Xv, Yv = _regression(3)
    net = dp.Network([3, 8, 1], activation="tanh", dtype="float64", seed=1)
    h = net.fit(X, Y, epochs=4, validation_data=(Xv, Yv))
    assert h.best_epoch == 3 and not h.stopped_early and not h.interrupted


# --- validation -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True])
def test_val_loss_equals_net_loss(dtype, weighted):
    X, Y, Xv, Yv = _regression(4)
    wv = np.random.default_rng(0).uniform(0.1, 3.0, len(Xv)) if weighted else None
    net = dp.Network([3, 8, 1], activation="tanh", dtype=dtype, seed=1)
    vd = (Xv, Yv) if wv is None else (Xv, Yv, wv)
    h = net.fit(X, Y, epochs=3, batch_size=4, optimizer=Adam(lr=0.01), validation_data=vd)
    assert len(h.val_loss) == 3 and h.val_accuracy == []  # mse: no accuracy
    rel = 1e-12 if dtype == "float64" else 1e-5
    assert h.val_loss[-1] == pytest.approx(net.loss(Xv, Yv, sample_weight=wv), rel=rel)
    assert all(r.val_accuracy is None for r in h.records)


def test_val_loss_includes_fits_l2_term():
    """As the training loss: l2/(2 n_val) * sum W^2 is added (Keras includes regularisation too)."""
    X, Y, Xv, Yv = _regression(4)
    net = dp.Network([3, 8, 1], activation="tanh", dtype="float64", seed=1)
    h = net.fit(X, Y, epochs=2, batch_size=4, l2=0.5, validation_data=(Xv, Yv))
    assert h.val_loss[-1] == pytest.approx(net.loss(Xv, Yv, l2=0.5), rel=1e-12)
    assert h.val_loss[-1] > net.loss(Xv, Yv) * (1 + 1e-6)


def test_val_accuracy_equals_accuracy_from_predict_cross_entropy():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 3, 60)
    Xv, yv = rng.normal(size=(37, 4)), rng.integers(0, 3, 37)
    net = dp.Network([4, 10, 3], activation="relu", loss="cross_entropy", dtype="float64", seed=2)
    for e in range(1, 4):
        h = net.fit(X, y, epochs=1, batch_size=8, optimizer=Adam(lr=0.02), validation_data=(Xv, np.eye(3)[yv]))
        acc = float(np.mean(np.argmax(net.predict(Xv), axis=1) == yv))
        assert h.val_accuracy == [acc]
        assert h.val_loss[0] == pytest.approx(net.loss(Xv, yv), rel=1e-12)


def test_val_accuracy_equals_accuracy_from_predict_binary():
    rng = np.random.default_rng(6)
    X, Y = rng.normal(size=(50, 4)), rng.integers(0, 2, (50, 2)).astype(float)
    Xv, Yv = rng.normal(size=(31, 4)), rng.integers(0, 2, (31, 2)).astype(float)
    net = dp.Network([4, 10, 2], activation="tanh", loss="binary_cross_entropy", dtype="float64", seed=2)
    h = net.fit(X, Y, epochs=2, batch_size=8, optimizer=Adam(lr=0.02), validation_data=(Xv, Yv))
    acc = float(np.mean((net.predict(Xv) > 0.5) == (Yv > 0.5)))
    assert h.val_accuracy[-1] == pytest.approx(acc, abs=1e-15)
    assert h.val_loss[-1] == pytest.approx(net.loss(Xv, Yv), rel=1e-12)


def _held_out_rows(fraction, seed, n=20):
    """Which rows validation_split holds out, read from val_loss: a 1-layer identity net with zero
    parameters and a vanishing rate predicts 0, so each held-out row i adds C0 = y_i^2 = 4^i."""
    net = dp.Network([1, 1], activation="identity", loss="mse", dtype="float64", seed=0)
    net.params[:] = 0.0
    X = np.ones((n, 1))
    Y = 2.0 ** np.arange(n, dtype=np.float64).reshape(-1, 1)
    h = net.fit(X, Y, epochs=1, batch_size=None, lr=1e-300, validation_split=fraction, seed=seed)
    k = int(round(fraction * n))
    total = int(round(h.val_loss[0] * k))
    rows = [i for i in range(n) if (total >> (2 * i)) & 3]
    assert sum(4 ** i for i in rows) == total
    return rows


def test_validation_split_is_deterministic_for_a_seed():
    a = _held_out_rows(0.25, seed=7)
    assert len(a) == 5
    assert _held_out_rows(0.25, seed=7) == a
    others = {tuple(_held_out_rows(0.25, seed=s)) for s in range(6)}
    assert len(others) > 1  # the seed chooses the rows


def test_validation_split_equals_validation_data_of_the_held_out_rows():
    rng = np.random.default_rng(8)
    n = 20
    X, Y = rng.normal(size=(n, 1)), rng.normal(size=(n, 1))
    held = _held_out_rows(0.25, seed=11, n=n)
    keep = [i for i in range(n) if i not in held]
    net = dp.Network([1, 6, 1], activation="tanh", dtype="float64", seed=5)
    twin = net.copy()
    h1 = net.fit(X, Y, epochs=3, batch_size=4, seed=11, optimizer=Adam(lr=0.01), validation_split=0.25)
    h2 = twin.fit(X[keep], Y[keep], epochs=3, batch_size=4, seed=11, optimizer=Adam(lr=0.01),
                  validation_data=(X[held], Y[held]))
    assert h1 == h2
    assert net.params.tobytes() == twin.params.tobytes()


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy"])
def test_validation_split_is_stratified(loss):
    """90 rows of class 0 and 10 of class 1, 10% held out: always 9 + 1. A net that always predicts
    class 0 (and a vanishing rate) scores exactly 0.9 on every draw; unstratified draws would not."""
    n = 100
    labels = np.zeros(n, dtype=np.int64)
    labels[np.random.default_rng(0).permutation(n)[:10]] = 1
    X = np.random.default_rng(1).normal(size=(n, 2))
    for seed in range(8):
        if loss == "cross_entropy":
            net = dp.Network([2, 2], activation="softmax", loss=loss, dtype="float64", seed=0)
            net.params[:] = 0.0
            net.weights[0][1][:] = [10.0, -10.0]
            Y = labels
        else:
            net = dp.Network([2, 1], activation="sigmoid", loss=loss, dtype="float64", seed=0)
            net.params[:] = 0.0
            net.weights[0][1][:] = [-10.0]
            Y = labels.reshape(-1, 1).astype(float)
        h = net.fit(X, Y, epochs=1, batch_size=None, lr=1e-300, validation_split=0.1, seed=seed)
        assert h.val_accuracy == [0.9]


# --- History ------------------------------------------------------------------------------------------

def test_history_is_the_list_of_losses():
    X, Y, Xv, Yv = _regression(9)
    net = dp.Network([3, 8, 1], activation="tanh", dtype="float64", seed=1)
    h = net.fit(X, Y, epochs=5, batch_size=4, optimizer=Adam(lr=0.01), validation_data=(Xv, Yv))
    assert isinstance(h, list) and isinstance(h, dp.History)
    assert net.history is h
    assert len(h) == 5
    losses = [r.loss for r in h.records]
    assert h == losses and losses == h and list(h) == losses and h.loss == losses
    assert h[0] == losses[0] and h[-1] == losses[-1] and h[1:3] == losses[1:3]
    assert [x for x in h] == losses
    assert h != losses[:-1]
    assert all(isinstance(x, float) for x in h)
    assert [r.epoch for r in h.records] == list(range(5))
    assert all(isinstance(r, EpochRecord) for r in h.records)
    assert h.lr == [0.01] * 5
    assert len(h.seconds) == 5 and all(s >= 0 for s in h.seconds)
    assert set(h.history) == {"loss", "val_loss", "lr", "seconds"}
    assert h.history["val_loss"] == h.val_loss
    assert "History(loss=" in repr(h)
    assert h.loss[-1] < h.loss[0]


def test_history_of_zero_epochs_is_empty():
    X, Y, _, _ = _regression(10)
    h = dp.Network([3, 1], seed=0).fit(X, Y, epochs=0)
    assert h == [] and len(h) == 0 and h.best_epoch is None


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    X, Y, Xv, Yv = _regression(11)
    h = dp.Network([3, 8, 1], activation="tanh", seed=1).fit(X, Y, epochs=3, validation_data=(Xv, Yv))
    path = tmp_path / "curves.png"
    h.plot(str(path))
    assert path.stat().st_size > 1000


# --- callbacks ----------------------------------------------------------------------------------------

def test_callbacks_get_epoch_records_and_true_stops():
    X, Y, Xv, Yv = _regression(12)
    net = dp.Network([3, 8, 1], activation="tanh", dtype="float64", seed=1)
    seen, seen2, legacy = [], [], []
    h = net.fit(X, Y, epochs=10, optimizer=Adam(lr=0.01), validation_data=(Xv, Yv),
                callbacks=[seen.append, lambda r: seen2.append(r) or r.epoch == 3],
                callback=lambda e, loss: legacy.append((e, loss)))
    assert len(h) == 4 and h.stopped_early and not h.interrupted
    assert seen == seen2 and [r[:5] for r in seen] == [r[:5] for r in h.records]
    assert all(isinstance(r, EpochRecord) and r.val_loss is not None for r in seen)
    assert legacy == [(r.epoch, r.loss) for r in h.records]


def test_a_single_callable_callback():
    X, Y, _, _ = _regression(13)
    net = dp.Network([3, 8, 1], activation="tanh", dtype="float64", seed=1)
    calls = []
    h = net.fit(X, Y, epochs=6, callbacks=lambda r: calls.append(r.epoch) or r.epoch == 1)
    assert calls == [0, 1] and len(h) == 2 and h.stopped_early


@pytest.mark.parametrize("where", ["callbacks", "callback"])
def test_keyboard_interrupt_in_a_callback_keeps_completed_epochs(where):
    X, Y, _, _ = _regression(14)
    net = dp.Network([3, 8, 1], activation="tanh", dtype="float64", seed=1)
    ref = net.copy().fit(X, Y, epochs=6, seed=1)

    def stop(r):
        if (r.epoch if where == "callbacks" else r) == 2:
            raise KeyboardInterrupt

    kw = {"callbacks": stop} if where == "callbacks" else {"callback": lambda e, loss: stop(e)}
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=6, seed=1, **kw)
    h = net.history
    assert h is not None and h.interrupted
    assert len(h) in (2, 3)  # the epochs completed before (or including) the one that raised
    assert list(h) == list(ref)[: len(h)]


def test_a_callback_error_propagates():
    X, Y, _, _ = _regression(15)
    net = dp.Network([3, 8, 1], activation="tanh", dtype="float64", seed=1)

    def bad(r):
        raise RuntimeError("from the callback")

    with pytest.raises(RuntimeError, match="from the callback"):
        net.fit(X, Y, epochs=3, callbacks=[bad])
    assert len(net.history) == 1 and net.history.interrupted  # the epoch completed before the callback


# --- progress -----------------------------------------------------------------------------------------

def test_verbose_2_prints_a_line_per_epoch(capsys):
    X, Y, Xv, Yv = _regression(16)
    net = dp.Network([3, 8, 1], activation="tanh", dtype="float64", seed=1)
    h = net.fit(X, Y, epochs=4, verbose=2, validation_data=(Xv, Yv))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    for i, line in enumerate(lines):
        assert line.startswith(f"epoch {i + 1}/4")
        assert "val_loss" in line and f"{h.loss[i]:.6f}" in line


def test_verbose_1_without_tqdm_on_a_pipe_prints_a_line_per_epoch(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    X, Y, _, _ = _regression(17)
    net = dp.Network([3, 8, 1], activation="tanh", dtype="float64", seed=1)
    net.fit(X, Y, epochs=3, verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.strip().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]


def test_verbose_1_without_tqdm_on_a_terminal_rewrites_one_line(monkeypatch):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setitem(sys.modules, "tqdm", None)
    term = Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    X, Y, _, _ = _regression(17)
    dp.Network([3, 8, 1], activation="tanh", dtype="float64", seed=1).fit(X, Y, epochs=3, verbose=1)
    out = term.getvalue()
    monkeypatch.undo()
    finals = [part.split("\n")[0] for part in out.split("\r") if part.strip()]
    for e in (1, 2, 3):
        assert any(f.startswith(f"epoch {e}/3") and "loss" in f for f in finals)
    assert out.count("\n") == 3  # one finished line per epoch; progress rewrites in place


def test_verbose_1_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    X, Y, _, _ = _regression(18)
    net = dp.Network([3, 8, 1], activation="tanh", dtype="float64", seed=1)
    h = net.fit(X, Y, epochs=2, verbose=1)
    out = capsys.readouterr()
    assert "epoch 2/2" in out.out + out.err and len(h) == 2


def test_verbose_0_prints_nothing(capsys):
    X, Y, _, _ = _regression(19)
    dp.Network([3, 8, 1], activation="tanh", seed=1).fit(X, Y, epochs=2)
    assert capsys.readouterr().out == ""


# --- sample weights -----------------------------------------------------------------------------------

def _weighted_problem(dtype="float64", loss="mse", n=12, seed=20):
    rng = np.random.default_rng(seed)
    if loss == "cross_entropy":
        net = dp.Network([4, 7, 3], activation="tanh", loss=loss, dtype=dtype, seed=seed)
        Y = rng.integers(0, 3, n)
    else:
        net = dp.Network([4, 7, 2], activation="tanh", loss=loss, dtype=dtype, seed=seed)
        Y = rng.normal(size=(n, 2)) if loss == "mse" else rng.integers(0, 2, (n, 2)).astype(float)
    return net, rng.normal(size=(n, 4)), Y


LOSSES = ["mse", "binary_cross_entropy", "cross_entropy"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", LOSSES)
def test_all_ones_weights_are_bit_identical_to_none(loss, dtype):
    net, X, Y = _weighted_problem(dtype, loss)
    ones = np.ones(len(X))
    assert net.loss(X, Y, l2=0.1, sample_weight=ones) == net.loss(X, Y, l2=0.1)
    la = net.backward(X, Y, l2=0.1, sample_weight=ones)
    g = net.grad.copy()
    lb = net.backward(X, Y, l2=0.1)
    assert la == lb and g.tobytes() == net.grad.tobytes()
    twin = net.copy()
    ha = net.fit(X, Y, epochs=3, batch_size=5, seed=1, optimizer=Adam(lr=0.01), sample_weight=ones, l2=0.1)
    hb = twin.fit(X, Y, epochs=3, batch_size=5, seed=1, optimizer=Adam(lr=0.01), l2=0.1)
    assert ha == hb and net.params.tobytes() == twin.params.tobytes()
    assert net.train_batch(X, Y, lr=0.1, sample_weight=ones) == twin.train_batch(X, Y, lr=0.1)
    assert net.params.tobytes() == twin.params.tobytes()


@pytest.mark.parametrize("loss", LOSSES)
def test_integer_weights_equal_duplicated_rows(loss):
    net, X, Y = _weighted_problem("float64", loss)
    w = np.array([1, 3, 0, 2, 1, 1, 4, 1, 0, 2, 1, 1], dtype=float)
    idx = np.repeat(np.arange(len(X)), w.astype(int))
    Xd, Yd = X[idx], Y[idx]
    assert net.loss(X, Y, l2=0.2, sample_weight=w) == pytest.approx(net.loss(Xd, Yd, l2=0.2), rel=1e-13)
    net.backward(X, Y, l2=0.2, sample_weight=w)
    g = net.grad.copy()
    net.backward(Xd, Yd, l2=0.2)
    np.testing.assert_allclose(g, net.grad, rtol=1e-11, atol=1e-14)
    a, b = net.copy(), net.copy()
    a.fit(X, Y, epochs=4, batch_size=None, optimizer=Adam(lr=0.01), sample_weight=w, l2=0.2)
    b.fit(Xd, Yd, epochs=4, batch_size=None, optimizer=Adam(lr=0.01), l2=0.2)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-10, atol=1e-13)


def test_zero_weight_rows_have_no_effect():
    net, X, Y = _weighted_problem()
    w = np.array([1.0, 0.0, 2.5, 0.0, 1.0, 0.5, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0])
    nz = w > 0
    Xz = X.copy()
    Xz[~nz] = 1e3  # whatever is in a zero-weight row does not matter (finite)
    Yz = Y.copy()
    Yz[~nz] = -7.0
    assert net.loss(Xz, Yz, sample_weight=w) == pytest.approx(net.loss(X[nz], Y[nz], sample_weight=w[nz]), rel=1e-13)
    net.backward(Xz, Yz, sample_weight=w)
    g = net.grad.copy()
    net.backward(X[nz], Y[nz], sample_weight=w[nz])
    np.testing.assert_allclose(g, net.grad, rtol=1e-11, atol=1e-14)
    a, b = net.copy(), net.copy()
    a.train_batch(Xz, Yz, optimizer=Adam(lr=0.01), sample_weight=w)
    b.train_batch(X[nz], Y[nz], optimizer=Adam(lr=0.01), sample_weight=w[nz])
    np.testing.assert_allclose(a.params, b.params, rtol=1e-11, atol=1e-14)


def test_weighted_loss_formula_with_l2():
    """sum w_i C0_i / sum w_i + l2/(2 sum w) * sum W^2 (weights only, not biases)."""
    net, X, Y = _weighted_problem()
    w = np.random.default_rng(0).uniform(0.2, 2.0, len(X))
    per_sample = np.array([net.loss(X[i:i + 1], Y[i:i + 1]) for i in range(len(X))])
    sq = sum(float(np.sum(W * W)) for W, _ in net.weights)
    expected = float(np.sum(w * per_sample) / np.sum(w) + 0.3 / (2 * np.sum(w)) * sq)
    assert net.loss(X, Y, l2=0.3, sample_weight=w) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("bad", [
    "negative", "nan", "inf", "short", "long", "2d", "all_zero", "text",
])
@pytest.mark.parametrize("call", ["loss", "backward", "train_batch", "fit", "fit_val"])
def test_bad_weights_raise_and_change_nothing(bad, call):
    net, X, Y = _weighted_problem()
    net.train_batch(X, Y, optimizer=Adam(lr=0.01))
    n = len(X)
    w = {
        "negative": np.r_[np.ones(n - 1), -1.0],
        "nan": np.r_[np.ones(n - 1), np.nan],
        "inf": np.r_[np.ones(n - 1), np.inf],
        "short": np.ones(n - 1),
        "long": np.ones(n + 1),
        "2d": np.ones((n, 1)),
        "all_zero": np.zeros(n),
        "text": np.array(["a"] * n),
    }[bad]
    before = (net.params.tobytes(), net.grad.tobytes(), _state(net))
    exc = TypeError if bad == "text" else ValueError
    name = "sample_weight_val" if call == "fit_val" else "sample_weight"
    with pytest.raises(exc, match=name):
        if call == "loss":
            net.loss(X, Y, sample_weight=w)
        elif call == "backward":
            net.backward(X, Y, sample_weight=w)
        elif call == "train_batch":
            net.train_batch(X, Y, optimizer=Adam(lr=0.01), sample_weight=w)
        elif call == "fit":
            net.fit(X, Y, epochs=2, optimizer=Adam(lr=0.01), sample_weight=w)
        else:
            net.fit(X, Y, epochs=2, optimizer=Adam(lr=0.01), validation_data=(X, Y, w))
    assert (net.params.tobytes(), net.grad.tobytes(), _state(net)) == before


# --- fit argument errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,exc,name", [
    (dict(monitor="foo"), ValueError, "monitor"),
    (dict(validation_split=1.5), ValueError, "validation_split"),
    (dict(validation_split=1.0), ValueError, "validation_split"),
    (dict(validation_split=-0.1), ValueError, "validation_split"),
    (dict(validation_split="0.1"), TypeError, "validation_split"),
    (dict(validation_split=0.01), ValueError, "validation_split"),  # no row held out of 12
    (dict(validation_split=0.2, validation_data="v"), ValueError, "validation_data"),
    (dict(validation_data="v"), TypeError, "validation_data"),
    (dict(validation_data=(np.ones((3, 5)), np.ones((3, 2)))), ValueError, "X_val"),
    (dict(validation_data=(np.ones((3, 4)), np.ones((2, 2)))), ValueError, "Y"),
    (dict(early_stopping=True, patience=-1), ValueError, "patience"),
    (dict(early_stopping=True, min_delta=-1.0), ValueError, "min_delta"),
    (dict(monitor="val_loss"), ValueError, "val"),  # nothing to validate on
    (dict(monitor="val_accuracy", validation_split=0.25), ValueError, "accuracy"),  # mse
    (dict(verbose=3), ValueError, "verbose"),
    (dict(callbacks=[print, 3]), TypeError, r"callbacks\[1\]"),
    (dict(callbacks=5), TypeError, "callbacks"),
    (dict(callback=5), TypeError, "callback"),
    (dict(clip_norm=0.0), ValueError, "clip_norm"),
    (dict(optimizer=Adam(), momentum=0.5), ValueError, "optimizer"),
    (dict(l2=-1.0), ValueError, "l2"),
    (dict(batch_size=0), ValueError, "batch_size"),
])
def test_bad_fit_arguments_change_nothing(kw, exc, name):
    net, X, Y = _weighted_problem()
    net.train_batch(X, Y, optimizer=Adam(lr=0.01))
    net.history = "untouched"
    before = (net.params.tobytes(), net.grad.tobytes(), _state(net))
    with pytest.raises(exc, match=name):
        net.fit(X, Y, epochs=2, optimizer=kw.pop("optimizer", Adam(lr=0.01)), **kw)
    assert (net.params.tobytes(), net.grad.tobytes(), _state(net)) == before


def test_early_stopping_on_val_accuracy_keeps_the_most_accurate_epoch():
    rng = np.random.default_rng(21)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    Xv, yv = rng.normal(size=(60, 4)), rng.integers(0, 3, 60)  # noise: accuracy wanders
    net = dp.Network([4, 32, 3], activation="tanh", loss="cross_entropy", dtype="float64", seed=2)
    h = net.fit(X, y, epochs=200, batch_size=8, seed=1, optimizer=Adam(lr=0.02), validation_data=(Xv, yv),
                early_stopping=True, patience=4, monitor="val_accuracy")
    assert h.stopped_early
    acc = h.val_accuracy
    assert h.best_epoch == int(np.argmax(acc))  # higher is better; the first of equal maxima
    assert len(h) == h.best_epoch + 1 + 4
    assert float(np.mean(np.argmax(net.predict(Xv), axis=1) == yv)) == acc[h.best_epoch]
