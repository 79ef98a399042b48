# SPDX-License-Identifier: MIT
"""deltaprop.optim: each optimizer against a numpy reference of its written equations (optim.py's
docstring, deltaprop.h) and against its PyTorch counterpart, fed the same gradients for 50+ steps;
clip_norm against torch.nn.utils.clip_grad_norm_; the optimizer state (names, read-only, copies,
pickles, a change of kind); argument errors."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim import SGD, Adam, AdamW
from deltaprop.schedules import Cosine

torch = pytest.importorskip("torch")

STEPS = 60
RTOL = 1e-12


def _net(seed, sizes=(5, 7, 4, 3), activation="tanh"):
    return dp.Network(list(sizes), activation=activation, loss="mse", dtype="float64", seed=seed)


def _batches(seed, n_in, n_out, steps=STEPS, batch=8):
    rng = np.random.default_rng(1000 + seed)
    return [(rng.normal(size=(batch, n_in)), rng.normal(size=(batch, n_out))) for _ in range(steps)]


def _close(actual, expected, what):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.abs(expected).max(initial=0.0))
    # relative 1e-12 per element, with a floor far below any element's size for values that cross 0
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=1e-15 * max(scale, 1e-300), err_msg=what)


# --- numpy references, written from the equations ---------------------------------------------------

class RefSGD:
    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.lr, self.mu, self.nesterov, self.wd = lr, momentum, nesterov, weight_decay
        self.v = None

    def step(self, w, g):
        g = g + self.wd * w                       # g += weight_decay * w
        if self.mu:
            self.v = self.mu * (self.v if self.v is not None else 0.0) + g  # v = momentum v + g
            u = g + self.mu * self.v if self.nesterov else self.v
        else:
            u = g
        return w - self.lr * u                    # w -= lr u

    def state(self):
        return {"momentum_buffer": self.v}


class RefAdam:
    """Adam / AdamW (decoupled=True), PyTorch placement of eps; eps_hat: Kingma & Ba's efficient form."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, eps_hat=False,
                 decoupled=False):
        self.lr, (self.b1, self.b2), self.eps, self.wd = lr, betas, eps, weight_decay
        self.amsgrad, self.eps_hat, self.decoupled = amsgrad, eps_hat, decoupled
        self.m = self.v = self.vmax = None
        self.t = 0

    def step(self, w, g):
        if self.m is None:
            self.m, self.v, self.vmax = (np.zeros_like(w) for _ in range(3))
        self.t += 1
        t, b1, b2 = self.t, self.b1, self.b2
        if self.decoupled:
            w = w * (1.0 - self.lr * self.wd)     # AdamW: w *= 1 - lr weight_decay
        else:
            g = g + self.wd * w                   # Adam: g += weight_decay w
        if self.eps_hat:
            self.m = b1 * self.m + (1.0 - b1) * g
        else:
            self.m = self.m + (1.0 - b1) * (g - self.m)
        self.v = b2 * self.v + (1.0 - b2) * g * g
        v = self.v
        if self.amsgrad:
            self.vmax = np.maximum(self.vmax, self.v)
            v = self.vmax
        if self.eps_hat:
            return w - self.lr * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t) * self.m / (np.sqrt(v) + self.eps)
        return w - self.lr / (1.0 - b1 ** t) * self.m / (np.sqrt(v) / np.sqrt(1.0 - b2 ** t) + self.eps)

    def state(self):
        out = {"exp_avg": self.m, "exp_avg_sq": self.v, "step": self.t}
        if self.amsgrad:
            out["max_exp_avg_sq"] = self.vmax
        return out


# (id, deltaprop optimizer, numpy reference, torch constructor or None)
CASES = [
    ("sgd", SGD(0.05), RefSGD(0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    ("sgd-momentum", SGD(0.05, momentum=0.9), RefSGD(0.05, 0.9),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    ("sgd-nesterov", SGD(0.03, momentum=0.8, nesterov=True), RefSGD(0.03, 0.8, True),
     lambda p: torch.optim.SGD(p, lr=0.03, momentum=0.8, nesterov=True)),
    ("sgd-wd", SGD(0.05, weight_decay=0.1), RefSGD(0.05, weight_decay=0.1),
     lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=0.1)),
    ("sgd-nesterov-wd", SGD(0.02, momentum=0.5, nesterov=True, weight_decay=0.05), RefSGD(0.02, 0.5, True, 0.05),
     lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.5, nesterov=True, weight_decay=0.05)),
    ("adam", Adam(), RefAdam(), lambda p: torch.optim.Adam(p, foreach=False)),
    ("adam-lr-betas", Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6), RefAdam(0.01, (0.8, 0.99), 1e-6),
     lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, foreach=False)),
    ("adam-amsgrad", Adam(lr=0.01, amsgrad=True), RefAdam(0.01, amsgrad=True),
     lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True, foreach=False)),
    ("adam-wd", Adam(lr=0.01, weight_decay=0.1), RefAdam(0.01, weight_decay=0.1),
     lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1, foreach=False)),
    ("adamw", AdamW(lr=0.01), RefAdam(0.01, weight_decay=1e-2, decoupled=True),
     lambda p: torch.optim.AdamW(p, lr=0.01, foreach=False)),
    ("adamw-wd-amsgrad", AdamW(lr=0.01, weight_decay=0.3, amsgrad=True),
     RefAdam(0.01, weight_decay=0.3, amsgrad=True, decoupled=True),
     lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.3, amsgrad=True, foreach=False)),
    ("adam-eps-hat", Adam(lr=0.01, eps_hat=True), RefAdam(0.01, eps_hat=True), None),
    ("adam-eps-hat-amsgrad-wd", Adam(lr=0.01, eps_hat=True, amsgrad=True, weight_decay=0.05),
     RefAdam(0.01, eps_hat=True, amsgrad=True, weight_decay=0.05), None),
    ("adamw-eps-hat", AdamW(lr=0.01, eps_hat=True, eps=1e-4), RefAdam(0.01, eps=1e-4, weight_decay=1e-2,
                                                                      eps_hat=True, decoupled=True), None),
]
IDS = [c[0] for c in CASES]


def _run(case_index, seed, clip=None):
    """Train a random float64 net STEPS steps with the library, the numpy reference and torch, each
    step fed the library's gradient; compare parameters and state after every step."""
    import copy

    _, opt, ref_proto, make_torch = CASES[case_index]
    ref = copy.deepcopy(ref_proto)
    rng = np.random.default_rng(seed)
    sizes = (int(rng.integers(2, 7)), int(rng.integers(3, 9)), int(rng.integers(1, 5)))
    net = _net(seed, sizes)
    w_ref = net.params.copy()
    p = torch.nn.Parameter(torch.from_numpy(net.params.copy()))
    topt = make_torch([p]) if make_torch is not None else None
    for X, Y in _batches(seed, sizes[0], sizes[-1]):
        net.backward(X, Y)
        g = net.grad.copy()
        assert np.abs(g).max() > 0
        if clip is not None:
            norm = np.sqrt(np.sum(g * g))
            g_ref = g * min(1.0, clip / (norm + 1e-6))
        else:
            g_ref = g
        net.step(opt, clip_norm=clip)
        w_ref = ref.step(w_ref, g_ref)
        _close(net.params, w_ref, "params vs numpy reference")
        if topt is not None:
            p.grad = torch.from_numpy(g.copy())
            if clip is not None:
                torch.nn.utils.clip_grad_norm_([p], clip)
            topt.step()
            _close(net.params, p.detach().numpy(), "params vs torch")
    if clip is None:
        np.testing.assert_array_equal(net.grad, g)  # the step reads the gradient, never writes it
    else:  # clipped in place, as torch.nn.utils.clip_grad_norm_ does to p.grad
        _close(net.grad, g_ref, "clipped gradient")
    return net, ref, topt, p


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", range(len(CASES)), ids=IDS)
def test_optimizer_matches_reference_and_torch(case, seed):
    net, ref, topt, p = _run(case, seed)
    state = net.optimizer_state
    name, opt = CASES[case][0], CASES[case][1]
    assert state["kind"] == opt.kind
    if opt.kind == "sgd":
        if opt.momentum:
            _close(state["momentum_buffer"], ref.v, "momentum_buffer vs reference")
            if topt is not None:
                _close(state["momentum_buffer"], topt.state[p]["momentum_buffer"].numpy(), "momentum_buffer vs torch")
    else:
        assert state["step"] == STEPS
        for key, value in ref.state().items():
            if key != "step":
                _close(state[key], value, f"{key} vs reference")
        if topt is not None:
            ts = topt.state[p]
            assert int(ts["step"]) == state["step"]
            for key in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if opt.amsgrad else ()):
                _close(state[key], ts[key].numpy(), f"{key} vs torch")


@pytest.mark.parametrize("clip", [0.05, 1e6])  # clipping active on every step / never
@pytest.mark.parametrize("case", [0, 2, 5, 10], ids=[IDS[i] for i in (0, 2, 5, 10)])
def test_clip_norm_matches_torch_clip_grad_norm(case, clip):
    net, *_ = _run(case, seed=3, clip=clip)
    assert np.all(np.isfinite(net.params))


def test_clip_norm_bounds_the_step_exactly():
    """With SGD, one step of clipped gradient g moves w by lr * g * clip/(|g| + 1e-6)."""
    net = _net(4)
    X, Y = _batches(4, 5, 3, steps=1)[0]
    net.backward(X, Y)
    g = net.grad.copy()
    norm = float(np.sqrt(np.sum(g * g)))
    w0 = net.params.copy()
    net.step(SGD(1.0), clip_norm=norm / 4)
    _close(w0 - net.params, g * ((norm / 4) / (norm + 1e-6)), "clipped step")
    assert np.sqrt(np.sum((w0 - net.params) ** 2)) <= norm / 4


def test_float32_adam_follows_reference():
    net = dp.Network([4, 6, 2], activation="tanh", loss="mse", dtype="float32", seed=5)
    ref = RefAdam(0.01, amsgrad=True)
    w = net.params.astype(np.float64)
    for X, Y in _batches(5, 4, 2, steps=20):
        net.backward(X.astype(np.float32), Y.astype(np.float32))
        w = ref.step(w, net.grad.astype(np.float64))
        net.step(Adam(lr=0.01, amsgrad=True))
        np.testing.assert_allclose(net.params, w, rtol=1e-4, atol=1e-5)
        w = net.params.astype(np.float64)  # follow the float32 rounding


# --- the shorthand --------------------------------------------------------------------------------

def test_sgd_shorthand_equals_sgd_optimizer_bitwise():
    a = _net(6)
    b = a.copy()
    for X, Y in _batches(6, 5, 3, steps=10):
        a.backward(X, Y)
        b.backward(X, Y)
        a.step(0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
        b.step(SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01))
    assert a.params.tobytes() == b.params.tobytes()
    assert a.velocity.tobytes() == b.velocity.tobytes()
    c = _net(6)
    X, Y = _batches(6, 5, 3, steps=1)[0]
    assert c.copy().fit(X, Y, epochs=3, lr=0.05, momentum=0.9, shuffle=False) == \
        c.fit(X, Y, epochs=3, optimizer=SGD(0.05, momentum=0.9), shuffle=False)


# --- optimizer state ------------------------------------------------------------------------------

def _adam_trained(seed=7, steps=5):
    net = _net(seed)
    for X, Y in _batches(seed, 5, 3, steps=steps):
        net.train_batch(X, Y, optimizer=Adam(lr=0.01, amsgrad=True))
    return net


def test_optimizer_state_names_and_read_only_views():
    net = _net(8)
    st = net.optimizer_state
    assert st["kind"] == "sgd" and st["step"] == 0
    assert set(st) == {"kind", "step", "momentum_buffer"}
    net = _adam_trained()
    st = net.optimizer_state
    assert st["kind"] == "adam" and st["step"] == 5
    assert set(st) == {"kind", "step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        buf = st[key]
        assert buf.shape == (net.n_params,) and buf.dtype == net.dtype
        assert not buf.flags.writeable
        with pytest.raises(ValueError):
            buf[0] = 1.0
        assert np.any(buf != 0)
    assert np.all(st["max_exp_avg_sq"] >= st["exp_avg_sq"])
    # views: they follow the next step
    before = st["exp_avg"].copy()
    X, Y = _batches(9, 5, 3, steps=1)[0]
    net.train_batch(X, Y, optimizer=Adam(lr=0.01, amsgrad=True))
    assert not np.array_equal(st["exp_avg"], before)
    assert net.optimizer_state["step"] == 6


def _state_bytes(net):
    st = net.optimizer_state
    return st["kind"], st["step"], {k: v.tobytes() for k, v in st.items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("how", ["copy", "pickle", "bytes", "save"])
def test_copy_and_pickle_keep_the_state_and_continue_identically(how, tmp_path):
    net = _adam_trained()
    if how == "copy":
        twin = net.copy()
    elif how == "pickle":
        twin = pickle.loads(pickle.dumps(net))
    elif how == "bytes":
        twin = dp.Network.from_bytes(net.to_bytes(optimizer=True))
    else:
        net.save(tmp_path / "net.dpm", optimizer=True)
        twin = dp.Network.load(tmp_path / "net.dpm")
    assert _state_bytes(twin) == _state_bytes(net)
    X, Y = _batches(10, 5, 3, steps=1)[0]
    ha = net.fit(X, Y, epochs=4, batch_size=3, seed=1, optimizer=Adam(lr=0.01, amsgrad=True))
    hb = twin.fit(X, Y, epochs=4, batch_size=3, seed=1, optimizer=Adam(lr=0.01, amsgrad=True))
    assert list(ha) == list(hb)
    assert net.params.tobytes() == twin.params.tobytes()
    assert _state_bytes(twin) == _state_bytes(net)
    assert net.optimizer_state["step"] == 5 + 4 * 3


def test_to_bytes_without_optimizer_drops_the_state():
    net = _adam_trained()
    bare = dp.Network.from_bytes(net.to_bytes(optimizer=False))
    assert bare.params.tobytes() == net.params.tobytes()
    st = bare.optimizer_state
    assert st["step"] == 0
    assert all(not np.any(v) for v in st.values() if isinstance(v, np.ndarray))


def test_changing_the_kind_starts_afresh():
    net = _adam_trained()
    fresh = _net(7)
    fresh.params[:] = net.params
    X, Y = _batches(11, 5, 3, steps=1)[0]
    net.backward(X, Y)
    fresh.backward(X, Y)
    # adam -> sgd with momentum: the velocity starts from zero, as on a fresh net
    net.step(SGD(0.05, momentum=0.9))
    fresh.step(SGD(0.05, momentum=0.9))
    assert net.optimizer_state["kind"] == "sgd"
    assert net.params.tobytes() == fresh.params.tobytes()
    assert net.velocity.tobytes() == fresh.velocity.tobytes()
    # sgd -> adamw: step count 1, moments from zero
    fresh2 = _net(7)
    fresh2.params[:] = net.params
    fresh2.grad[:] = net.grad
    net.step(AdamW(lr=0.01))
    fresh2.step(AdamW(lr=0.01))
    st = net.optimizer_state
    assert st["kind"] == "adamw" and st["step"] == 1
    assert net.params.tobytes() == fresh2.params.tobytes()
    assert st["exp_avg"].tobytes() == fresh2.optimizer_state["exp_avg"].tobytes()
    # adam and adamw are different kinds too
    net.step(Adam(lr=0.01))
    assert net.optimizer_state["kind"] == "adam" and net.optimizer_state["step"] == 1


def test_same_kind_with_other_hyper_parameters_keeps_the_state():
    net = _adam_trained()
    X, Y = _batches(12, 5, 3, steps=1)[0]
    net.backward(X, Y)
    net.step(Adam(lr=0.003, betas=(0.5, 0.9)))
    assert net.optimizer_state["step"] == 6


# --- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,exc,name", [
    (lambda: SGD(lr=-1), ValueError, "lr"),
    (lambda: SGD(lr=0), ValueError, "lr"),
    (lambda: SGD(lr=float("nan")), ValueError, "lr"),
    (lambda: SGD(lr=float("inf")), ValueError, "lr"),
    (lambda: SGD(lr="0.1"), TypeError, "lr"),
    (lambda: SGD(0.1, momentum=1.0), ValueError, "momentum"),
    (lambda: SGD(0.1, momentum=-0.1), ValueError, "momentum"),
    (lambda: SGD(0.1, nesterov=True), ValueError, "nesterov"),
    (lambda: SGD(0.1, weight_decay=-1e-3), ValueError, "weight_decay"),
    (lambda: Adam(betas=(1.0, 0.9)), ValueError, "beta"),
    (lambda: Adam(betas=(0.9, 1.0)), ValueError, "beta"),
    (lambda: Adam(betas=(-0.1, 0.9)), ValueError, "beta"),
    (lambda: Adam(betas=0.9), TypeError, "betas"),
    (lambda: Adam(betas=(0.9, 0.99, 0.5)), TypeError, "betas"),
    (lambda: Adam(betas=(0.9, "x")), TypeError, "betas"),
    (lambda: Adam(eps=0.0), ValueError, "eps"),
    (lambda: Adam(eps=-1e-8), ValueError, "eps"),
    (lambda: Adam(lr=0.0), ValueError, "lr"),
    (lambda: Adam(weight_decay=-0.5), ValueError, "weight_decay"),
    (lambda: AdamW(weight_decay=float("nan")), ValueError, "weight_decay"),
    (lambda: AdamW(lr=None), TypeError, "lr"),
])
def test_bad_optimizer_arguments(make, exc, name):
    with pytest.raises(exc, match=name):
        make()


def _snapshot(net):
    return net.params.tobytes(), net.grad.tobytes(), _state_bytes(net)


@pytest.mark.parametrize("call", [
    lambda net, X, Y: net.step(Adam(lr=0.01), clip_norm=0.0),
    lambda net, X, Y: net.step(Adam(lr=0.01), clip_norm=-1.0),
    lambda net, X, Y: net.step(Adam(lr=0.01), clip_norm=float("nan")),
    lambda net, X, Y: net.step("adam"),
    lambda net, X, Y: net.step(optimizer=Adam(), momentum=0.9),
    lambda net, X, Y: net.train_batch(X, Y, optimizer=Adam(), lr=0.5),
    lambda net, X, Y: net.train_batch(X, Y, optimizer=object()),
    lambda net, X, Y: net.fit(X, Y, optimizer=Adam(), clip_norm="1"),
    lambda net, X, Y: net.fit(X, Y, optimizer=SGD, epochs=2),
])
def test_bad_calls_leave_params_and_state_unchanged(call):
    net = _adam_trained()
    X, Y = _batches(13, 5, 3, steps=1)[0]
    net.backward(X, Y)
    snap = _snapshot(net)
    with pytest.raises((ValueError, TypeError)):
        call(net, X, Y)
    assert _snapshot(net) == snap


def test_optimizer_description_is_a_value():
    a = Adam(lr=0.01, betas=[0.8, 0.9])
    assert a == Adam(lr=0.01, betas=(0.8, 0.9))
    assert a != AdamW(lr=0.01, betas=(0.8, 0.9), weight_decay=0.0)
    assert a.lr == 0.01 and a.betas == (0.8, 0.9) and a.kind == "adam"
    assert hash(a) == hash(Adam(lr=0.01, betas=(0.8, 0.9)))
    assert "Adam(" in repr(a)
    assert AdamW().weight_decay == 1e-2 and Adam().weight_decay == 0.0
    assert Adam().params == {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                             "amsgrad": False, "eps_hat": False}


# --- fused fit == backward + step, and thread counts --------------------------------------------------

FIT_OPTIMIZERS = [
    SGD(0.05), SGD(0.05, momentum=0.9), SGD(0.03, momentum=0.8, nesterov=True, weight_decay=0.01),
    Adam(lr=0.01), Adam(lr=0.01, amsgrad=True, weight_decay=0.05), AdamW(lr=0.01), AdamW(lr=0.01, amsgrad=True),
    Adam(lr=0.01, eps_hat=True), AdamW(lr=0.01, eps_hat=True, amsgrad=True),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("extra", ["plain", "l2", "weights", "clip"])
@pytest.mark.parametrize("opt", FIT_OPTIMIZERS, ids=repr)
def test_fused_fit_equals_backward_then_step_bitwise(opt, extra, dtype):
    rng = np.random.default_rng(21)
    net = dp.Network([5, 9, 7, 3], activation="tanh", loss="mse", dtype=dtype, seed=21)
    manual = net.copy()
    n, bs, epochs = 23, 5, 3  # a short last batch
    X = rng.normal(size=(n, 5)).astype(dtype)
    Y = rng.normal(size=(n, 3)).astype(dtype)
    l2 = 0.1 if extra == "l2" else 0.0
    w = rng.integers(0, 4, n).astype(dtype) if extra == "weights" else None
    if w is not None:
        w[0] = 0.0
        w[1] = 2.5
    clip = 0.1 if extra == "clip" else None
    h = net.fit(X, Y, epochs=epochs, batch_size=bs, shuffle=False, optimizer=opt, l2=l2, sample_weight=w,
                clip_norm=clip)
    for _ in range(epochs):
        for s in range(0, n, bs):
            manual.backward(X[s:s + bs], Y[s:s + bs], l2=l2, sample_weight=None if w is None else w[s:s + bs])
            manual.step(opt, clip_norm=clip)
    assert len(h) == epochs
    assert net.params.tobytes() == manual.params.tobytes()
    assert _state_bytes(net) == _state_bytes(manual)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bs", [1, 11])  # 11: batches of 11, 11 and a last one of one row
def test_online_fit_keeps_the_last_step_gradient(dtype, bs):
    # Batch-1 plain SGD runs the online update, which writes the gradient only for the last step of a
    # run: after the fit, and in each epoch's callback, params AND grad are those of backward + step.
    rng = np.random.default_rng(22)
    net = dp.Network([6, 8, 3], activation="sigmoid", output="sigmoid", loss="mse", dtype=dtype, seed=22)
    manual = net.copy()
    n, epochs = 23, 2
    X = rng.normal(size=(n, 6)).astype(dtype)
    Y = rng.uniform(size=(n, 3)).astype(dtype)
    seen = []
    net.fit(X, Y, epochs=epochs, batch_size=bs, shuffle=False, optimizer=SGD(0.05),
            callbacks=lambda record: seen.append(net.grad.copy()))
    grads = []
    for _ in range(epochs):
        for s in range(0, n, bs):
            manual.backward(X[s:s + bs], Y[s:s + bs])
            grads.append(manual.grad.copy())
            manual.step(SGD(0.05))
    assert net.params.tobytes() == manual.params.tobytes()
    assert net.grad.tobytes() == manual.grad.tobytes()
    steps = -(-n // bs)
    assert [g.tobytes() for g in seen] == [grads[(e + 1) * steps - 1].tobytes() for e in range(epochs)]


def _fit_with_threads(dp_mod, threads, opt, validation, schedule):
    dp_mod.set_num_threads(threads)
    rng = np.random.default_rng(31)
    # > 65536 parameters and batches of 100: the GEMMs and the elementwise update both split into tasks
    net = dp.Network([100, 256, 256, 6], activation="relu", loss="cross_entropy", dtype="float32", seed=31)
    X = rng.normal(size=(300, 100)).astype(np.float32)
    y = rng.integers(0, 6, 300)
    kw = {}
    if validation:
        kw["validation_data"] = (rng.normal(size=(170, 100)), rng.integers(0, 6, 170))
    if schedule:
        kw["schedule"] = Cosine(3, warmup=1, per="step")
    h = net.fit(X, y, epochs=3, batch_size=100, seed=5, optimizer=opt, **kw)
    return net, h


@pytest.mark.parametrize("variant", ["plain", "validation", "schedule"])
@pytest.mark.parametrize("opt", [SGD(0.05, momentum=0.9, nesterov=True), Adam(lr=0.01, amsgrad=True),
                                 AdamW(lr=0.01), Adam(lr=0.01, eps_hat=True)], ids=repr)
def test_fit_bitwise_identical_for_1_2_3_threads(restore_threads, opt, variant):
    runs = [_fit_with_threads(restore_threads, t, opt, variant == "validation", variant == "schedule")
            for t in (1, 2, 3)]
    net1, h1 = runs[0]
    for net, h in runs[1:]:
        assert net.params.tobytes() == net1.params.tobytes()
        assert _state_bytes(net) == _state_bytes(net1)
        assert h == h1  # losses, val metrics, rates (not the timings)
    if variant == "validation":
        assert len(h1.val_loss) == 3 and len(h1.val_accuracy) == 3
