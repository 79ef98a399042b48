# SPDX-License-Identifier: MIT
"""deltaprop.schedules: the rates fit records (History.lr) against each schedule's closed form
(schedules.py's docstring), per epoch and per step; ReduceOnPlateau against torch's
ReduceLROnPlateau fed the same monitored values; argument errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim import SGD, Adam
from deltaprop.schedules import Constant, Cosine, Exponential, InverseScaling, ReduceOnPlateau, StepDecay

LR0 = 0.05
EPOCHS = 14


def _problem(seed=0, n=24):
    rng = np.random.default_rng(seed)
    net = dp.Network([4, 6, 2], activation="tanh", loss="mse", dtype="float64", seed=seed)
    return net, rng.normal(size=(n, 4)), rng.normal(size=(n, 2))


def _closed_form(schedule, k, lr0=LR0):
    p = schedule._params
    if isinstance(schedule, Constant):
        return lr0
    if isinstance(schedule, InverseScaling):
        return lr0 / (1.0 + p["scale"] * k) ** p["power"]
    if isinstance(schedule, StepDecay):
        return lr0 * p["gamma"] ** (k // p["step_size"])
    if isinstance(schedule, Exponential):
        return lr0 * p["gamma"] ** k
    if isinstance(schedule, Cosine):
        if k < p["warmup"]:
            return lr0 * (k + 1) / p["warmup"]
        c = k - p["warmup"]
        if c >= p["t_max"]:
            return p["eta_min"]
        return p["eta_min"] + (lr0 - p["eta_min"]) * (1.0 + math.cos(math.pi * c / p["t_max"])) / 2.0
    raise AssertionError(schedule)


SCHEDULES = [
    Constant(),
    InverseScaling(),
    InverseScaling(power=0.75, scale=0.3),
    StepDecay(3),
    StepDecay(4, gamma=0.5),
    Exponential(0.8),
    Cosine(10),
    Cosine(6, eta_min=0.001),
    Cosine(8, eta_min=0.002, warmup=3),
    Cosine(1),
]


@pytest.mark.parametrize("schedule,per", [(s, per) for s in SCHEDULES for per in ("epoch", "step")
                                          if per == "epoch" or not isinstance(s, Constant)],
                         ids=lambda v: repr(v) if isinstance(v, dp.schedules.Schedule) else v)
def test_recorded_rates_follow_the_closed_form(schedule, per):
    if not isinstance(schedule, Constant):
        schedule = type(schedule)(**{**schedule._params, "per": per})
    net, X, Y = _problem()
    # batch_size=None: one step per epoch, so k counts the same units per step and per epoch
    h = net.fit(X, Y, epochs=EPOCHS, batch_size=None, optimizer=SGD(LR0), schedule=schedule)
    expected = [_closed_form(schedule, k) for k in range(EPOCHS)]
    np.testing.assert_allclose(h.lr, expected, rtol=1e-13, atol=0)
    assert len(set(h.lr)) > 1 or isinstance(schedule, Constant)


@pytest.mark.parametrize("schedule", [StepDecay(2, gamma=0.5, per="step"), Exponential(0.7, per="step"),
                                      Cosine(5, eta_min=0.01, warmup=2, per="step"),
                                      InverseScaling(power=1.0, per="step")], ids=repr)
def test_per_step_rates_act_on_each_step(schedule):
    """3 steps an epoch: each step uses the rate of its global step index (seen on the parameters);
    History.lr is the rate of the epoch's last step."""
    net, X, Y = _problem(1, n=12)
    manual = net.copy()
    epochs, bs = 3, 4
    h = net.fit(X, Y, epochs=epochs, batch_size=bs, shuffle=False, optimizer=SGD(LR0), schedule=schedule)
    k = 0
    for _ in range(epochs):
        for s in range(0, 12, bs):
            manual.backward(X[s:s + bs], Y[s:s + bs])
            manual.step(SGD(_closed_form(schedule, k)))
            k += 1
    np.testing.assert_allclose(net.params, manual.params, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h.lr, [_closed_form(schedule, 3 * e + 2) for e in range(epochs)], rtol=1e-13)


def test_per_epoch_rate_is_constant_within_an_epoch():
    net, X, Y = _problem(2, n=12)
    manual = net.copy()
    sched = Exponential(0.5)
    net.fit(X, Y, epochs=3, batch_size=4, shuffle=False, optimizer=SGD(LR0), schedule=sched)
    for e in range(3):
        for s in range(0, 12, 4):
            manual.backward(X[s:s + 4], Y[s:s + 4])
            manual.step(SGD(LR0 * 0.5 ** e))
    np.testing.assert_allclose(net.params, manual.params, rtol=1e-12, atol=1e-15)


def test_each_fit_call_restarts_the_schedule():
    net, X, Y = _problem(3)
    h1 = net.fit(X, Y, epochs=4, batch_size=None, optimizer=Adam(lr=LR0), schedule=Exponential(0.5))
    h2 = net.fit(X, Y, epochs=4, batch_size=None, optimizer=Adam(lr=LR0), schedule=Exponential(0.5))
    assert h1.lr == h2.lr == [LR0 * 0.5 ** k for k in range(4)]


def test_schedule_scales_adam_rate():
    net, X, Y = _problem(4, n=8)
    manual = net.copy()
    net.fit(X, Y, epochs=5, batch_size=None, optimizer=Adam(lr=LR0), schedule=StepDecay(2, gamma=0.1))
    for k in range(5):
        manual.backward(X, Y)
        manual.step(Adam(lr=LR0 * 0.1 ** (k // 2)))
    np.testing.assert_allclose(net.params, manual.params, rtol=1e-12, atol=1e-15)


# --- ReduceOnPlateau against torch ------------------------------------------------------------------

def _torch_plateau_rates(monitored, lr0, **kw):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=lr0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", **kw)
    rates = []
    for value in monitored:
        rates.append(opt.param_groups[0]["lr"])
        sched.step(value)
    return rates


@pytest.mark.parametrize("kw", [
    dict(factor=0.5, patience=2, threshold=0.05),
    dict(factor=0.5, patience=1, threshold=0.02, cooldown=2),
    dict(factor=0.3, patience=0, threshold=0.01, threshold_mode="abs", min_lr=0.004),
    dict(factor=0.1, patience=10),  # never triggers in 20 epochs of steady descent
])
@pytest.mark.parametrize("validation", [False, True])
def test_reduce_on_plateau_matches_torch(kw, validation):
    net, X, Y = _problem(5, n=30)
    Xv, Yv = X[20:], Y[20:]
    fit_kw = dict(validation_data=(Xv, Yv)) if validation else {}
    h = net.fit(X[:20], Y[:20], epochs=20, batch_size=5, seed=3, optimizer=SGD(LR0), schedule=ReduceOnPlateau(**kw),
                **fit_kw)
    monitored = h.val_loss if validation else h.loss
    assert len(monitored) == 20
    torch_kw = {k: v for k, v in kw.items() if k != "min_lr"}
    if "min_lr" in kw:
        torch_kw["min_lr"] = kw["min_lr"]
    expected = _torch_plateau_rates(monitored, LR0, **torch_kw)
    np.testing.assert_allclose(h.lr, expected, rtol=1e-13)
    if kw["patience"] < 10:
        assert min(h.lr) < LR0  # the case is not vacuous


def test_reduce_on_plateau_follows_the_monitor_argument():
    net, X, Y = _problem(6, n=30)
    h = net.fit(X[:20], Y[:20], epochs=12, batch_size=5, seed=1, optimizer=SGD(LR0),
                schedule=ReduceOnPlateau(factor=0.5, patience=1, threshold=0.02), monitor="loss",
                validation_data=(X[20:], Y[20:]))
    np.testing.assert_allclose(h.lr, _torch_plateau_rates(h.loss, LR0, factor=0.5, patience=1, threshold=0.02),
                               rtol=1e-13)


# --- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,exc,name", [
    (lambda: Cosine(t_max=0), ValueError, "t_max"),
    (lambda: Cosine(t_max=-3), ValueError, "t_max"),
    (lambda: Cosine(t_max=2.5), TypeError, "t_max"),
    (lambda: Cosine(10, warmup=-1), ValueError, "warmup"),
    (lambda: Cosine(10, eta_min=-0.1), ValueError, "eta_min"),
    (lambda: Cosine(10, per="batch"), ValueError, "per"),
    (lambda: StepDecay(0), ValueError, "step_size"),
    (lambda: StepDecay(2, gamma=0.0), ValueError, "gamma"),
    (lambda: StepDecay(2, gamma=1.5), ValueError, "gamma"),
    (lambda: StepDecay(True), TypeError, "step_size"),
    (lambda: Exponential(0.0), ValueError, "gamma"),
    (lambda: Exponential(float("nan")), ValueError, "gamma"),
    (lambda: Exponential("0.9"), TypeError, "gamma"),
    (lambda: InverseScaling(power=-0.5), ValueError, "power"),
    (lambda: InverseScaling(scale=0.0), ValueError, "scale"),
    (lambda: InverseScaling(per=None), ValueError, "per"),
    (lambda: ReduceOnPlateau(factor=1.0), ValueError, "factor"),
    (lambda: ReduceOnPlateau(factor=0.0), ValueError, "factor"),
    (lambda: ReduceOnPlateau(patience=-1), ValueError, "patience"),
    (lambda: ReduceOnPlateau(threshold=-1e-3), ValueError, "threshold"),
    (lambda: ReduceOnPlateau(threshold_mode="max"), ValueError, "threshold_mode"),
    (lambda: ReduceOnPlateau(min_lr=-1.0), ValueError, "min_lr"),
    (lambda: ReduceOnPlateau(cooldown=1.5), TypeError, "cooldown"),
])
def test_bad_schedule_arguments(make, exc, name):
    with pytest.raises(exc, match=name):
        make()


@pytest.mark.parametrize("kw,exc,name", [
    (dict(schedule=Cosine(10, eta_min=0.5)), ValueError, "eta_min"),  # above the optimizer's lr
    (dict(schedule="cosine"), TypeError, "schedule"),
    (dict(schedule=Cosine), TypeError, "schedule"),
])
def test_bad_schedule_in_fit_changes_nothing(kw, exc, name):
    net, X, Y = _problem(7)
    net.train_batch(X, Y, optimizer=Adam(lr=0.01))
    params, st = net.params.tobytes(), net.optimizer_state
    state = {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in st.items()}
    with pytest.raises(exc, match=name):
        net.fit(X, Y, epochs=2, optimizer=Adam(lr=0.01), **kw)
    assert net.params.tobytes() == params
    st = net.optimizer_state
    assert {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in st.items()} == state


def test_schedule_description_is_a_value():
    assert Cosine(5, eta_min=0.1) == Cosine(5, eta_min=0.1)
    assert Cosine(5) != Cosine(6)
    assert Exponential(0.5) != StepDecay(1, gamma=0.5)
    assert Cosine(5).t_max == 5 and Cosine(5).per == "epoch"
    assert InverseScaling().per == "step"
    assert "Cosine(" in repr(Cosine(5))
    assert hash(Cosine(5)) == hash(Cosine(5))
