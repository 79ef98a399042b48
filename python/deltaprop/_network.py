# SPDX-License-Identifier: MIT
"""The user-facing Network: argument checking and numpy conversion over the native core."""
from __future__ import annotations

import math
import operator
import os
from collections import namedtuple
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax")
LOSSES = ("mse", "binary_cross_entropy", "cross_entropy")
INITS = ("glorot_uniform", "he_uniform", "he_normal")
_DTYPE_CODES = {np.dtype(np.float32): 1, np.dtype(np.float64): 2}
_DEFAULT_OUTPUT = {"mse": "identity", "binary_cross_entropy": "sigmoid", "cross_entropy": "softmax"}
_NUMERIC_KINDS = "biuf"

GradientCheck = namedtuple("GradientCheck", ["max_error", "layer_errors", "worst_index", "worst_layer"])
GradientCheck.__doc__ = """Result of Network.gradient_check.

max_error: the largest relative error over all parameters; layer_errors: the largest per layer;
worst_index: flat index (into Network.params) of the worst parameter; worst_layer: its layer."""


def _choice(name: str, value, choices: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {', '.join(choices)} as a string, got {value!r}")
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _integer(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}") from None


def _number(name: str, value, *, low: float, low_open: bool = False, high: Optional[float] = None) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    v = float(value)
    bad = not math.isfinite(v) or v < low or (low_open and v == low) or (high is not None and v >= high)
    if bad:
        if high is not None:
            want = f"a number in [{low:g}, {high:g})"
        else:
            want = f"a finite number {'>' if low_open else '>='} {low:g}"
        raise ValueError(f"{name}: expected {want}, got {value!r}")
    return v


def _dtype(value) -> np.dtype:
    try:
        dt = np.dtype(value)
    except TypeError:
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {value!r}") from None
    if dt not in _DTYPE_CODES:
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dt.name!r}")
    return dt


def _numeric_array(name: str, value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{name}: cannot be read as an array ({e})") from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    return arr


class Network:
    """A network of dense layers trained by backpropagation.

    ``Network([784, 256, 10], activation="relu", loss="cross_entropy")`` builds two dense layers;
    layer l computes ``z = a_prev @ W.T + b`` and ``a = g(z)`` with ``W`` of shape ``(n_out, n_in)``.
    All parameters live in one buffer (``params``); gradients in a second one (``grad``).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: Union[str, Sequence[str]] = "relu",
        output: Optional[str] = None,
        loss: str = "mse",
        dtype="float32",
        init: Optional[str] = None,
        seed: Optional[int] = None,
        slope: Union[float, Sequence[float]] = 0.01,
    ) -> None:
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes: expected a sequence of layer widths, got {sizes!r}")
        sizes = [_integer(f"sizes[{i}]", s) for i, s in enumerate(sizes)]
        if len(sizes) < 2:
            raise ValueError(f"sizes: expected at least 2 layer widths (input and output), got {len(sizes)}")
        for i, s in enumerate(sizes):
            if s < 1:
                raise ValueError(f"sizes[{i}]: expected a width >= 1, got {s}")
        n_layers = len(sizes) - 1
        loss = _choice("loss", loss, LOSSES)

        if isinstance(activation, str):
            hidden = [_choice("activation", activation, ACTIVATIONS)] * (n_layers - 1)
            acts = hidden + [_choice("output", output if output is not None else _DEFAULT_OUTPUT[loss], ACTIVATIONS)]
        elif hasattr(activation, "__len__"):
            names = [_choice(f"activation[{i}]", a, ACTIVATIONS) for i, a in enumerate(activation)]
            if len(names) == n_layers:
                if output is not None and output != names[-1]:
                    raise ValueError(
                        f"output: {output!r} contradicts the last of the {n_layers} per-layer activations ({names[-1]!r})"
                    )
                acts = names
            elif len(names) == n_layers - 1:
                acts = names + [_choice("output", output if output is not None else _DEFAULT_OUTPUT[loss], ACTIVATIONS)]
            else:
                raise ValueError(
                    f"activation: expected {n_layers} names (one per layer) or {n_layers - 1} (hidden layers), got {len(names)}"
                )
        else:
            raise TypeError(f"activation: expected a name or a list of names, got {activation!r}")
        for i, a in enumerate(acts[:-1]):
            if a == "softmax":
                raise ValueError(f"activation: softmax is allowed on the output layer only, got it on layer {i}")
        if loss == "cross_entropy" and acts[-1] != "softmax":
            raise ValueError(f"loss: cross_entropy needs a softmax output layer, got output {acts[-1]!r}")
        if loss == "binary_cross_entropy" and acts[-1] != "sigmoid":
            raise ValueError(f"loss: binary_cross_entropy needs a sigmoid output layer, got output {acts[-1]!r}")

        if isinstance(slope, (list, tuple, np.ndarray)):
            if len(slope) != n_layers:
                raise ValueError(f"slope: expected {n_layers} slopes (one per layer), got {len(slope)}")
            slopes = [_number(f"slope[{i}]", s, low=-math.inf) for i, s in enumerate(slope)]
        else:
            slopes = [_number("slope", slope, low=-math.inf)] * n_layers

        dt = _dtype(dtype)
        if init is None:
            rectified = n_layers > 1 and all(a in ("relu", "leaky_relu") for a in acts[:-1])
            init = "he_uniform" if rectified else "glorot_uniform"
        init = _choice("init", init, INITS)
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        else:
            seed = _integer("seed", seed)
            if not 0 <= seed < 2**64:
                raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed}")

        core = _core.Net(
            sizes, [ACTIVATIONS.index(a) for a in acts], slopes, LOSSES.index(loss), _DTYPE_CODES[dt],
            INITS.index(init), seed,
        )
        self._attach(core)

    # ---- construction helpers ----
    def _attach(self, core) -> None:
        self._core = core
        self._init = INITS[core.init_kind]
        self._dtype = core.dtype
        self._sizes = tuple(core.sizes)
        self._acts = tuple(ACTIVATIONS[a] for a in core.activations)
        self._loss = LOSSES[core.loss_kind]
        self._n_in = self._sizes[0]
        self._n_out = self._sizes[-1]

    @classmethod
    def _wrap(cls, core) -> "Network":
        net = cls.__new__(cls)
        net._attach(core)
        return net

    # ---- description ----
    @property
    def sizes(self) -> Tuple[int, ...]:
        return self._sizes

    @property
    def activations(self) -> Tuple[str, ...]:
        return self._acts

    @property
    def loss_name(self) -> str:
        return self._loss

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def init(self) -> str:
        return self._init

    @property
    def n_layers(self) -> int:
        return len(self._sizes) - 1

    @property
    def n_params(self) -> int:
        return self._core.n_params

    def __repr__(self) -> str:
        return (
            f"Network(sizes={list(self._sizes)}, activations={list(self._acts)}, loss={self._loss!r}, "
            f"dtype={self._dtype.name!r}, n_params={self.n_params})"
        )

    # ---- buffers (zero-copy views that keep the network alive) ----
    @property
    def params(self) -> np.ndarray:
        """All parameters, flat: per layer W (n_out*n_in, row-major) then b (n_out). Writable."""
        return self._core.params()

    @property
    def grad(self) -> np.ndarray:
        """Gradient buffer, same layout as params. Writable."""
        return self._core.grads()

    @property
    def velocity(self) -> np.ndarray:
        """Momentum buffer of SGD, same layout as params. Writable."""
        return self._core.velocity()

    def _split(self, flat: np.ndarray) -> List[Tuple[np.ndarray, np.ndarray]]:
        out = []
        for l in range(self.n_layers):
            n_in, n_out = self._sizes[l], self._sizes[l + 1]
            w_off, b_off = self._core.layer_offsets(l)
            out.append((flat[w_off : w_off + n_out * n_in].reshape(n_out, n_in), flat[b_off : b_off + n_out]))
        return out

    @property
    def weights(self) -> List[Tuple[np.ndarray, np.ndarray]]:
        """[(W, b)] per layer, writable views: W[j, k] joins input k to output j."""
        return self._split(self._core.params())

    @property
    def gradients(self) -> List[Tuple[np.ndarray, np.ndarray]]:
        """[(dW, db)] per layer, views of the gradient buffer."""
        return self._split(self._core.grads())

    def _workspace(self, which: int, what: str) -> List[np.ndarray]:
        try:
            views = [self._core.workspace(l)[which] for l in range(self.n_layers)]
        except RuntimeError:
            raise RuntimeError(f"{what}: run forward or backward first") from None
        if views[0] is None:
            raise RuntimeError(f"{what}: run backward first")
        return views

    @property
    def z(self) -> List[np.ndarray]:
        """Pre-activations z of each layer from the last forward/backward, read-only [batch, n_out]."""
        return self._workspace(0, "z")

    @property
    def a(self) -> List[np.ndarray]:
        """Activations a of each layer (a[-1] is the output), read-only [batch, n_out]."""
        return self._workspace(1, "a")

    @property
    def deltas(self) -> List[np.ndarray]:
        """delta = dC0/dz of each layer from the last backward, per sample, read-only [batch, n_out]."""
        return self._workspace(2, "deltas")

    # ---- input conversion ----
    def _matrix(self, X, name: str, width: int) -> np.ndarray:
        if (
            type(X) is np.ndarray
            and X.dtype is self._dtype
            and X.ndim == 2
            and X.shape[1] == width
            and X.shape[0] > 0
            and X.flags.c_contiguous
        ):
            return X
        arr = _numeric_array(name, X)
        if arr.ndim != 2:
            hint = " (reshape a single sample with x.reshape(1, -1))" if arr.ndim == 1 else ""
            raise ValueError(f"{name}: expected a 2-D array of shape (batch, {width}), got {arr.ndim}-D shape {arr.shape}{hint}")
        if arr.shape[1] != width:
            raise ValueError(f"{name}: expected shape (batch, {width}), got {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError(f"{name}: the batch is empty (shape {arr.shape})")
        return np.ascontiguousarray(arr, dtype=self._dtype)

    def _targets(self, Y, batch: int) -> np.ndarray:
        arr = _numeric_array("Y", Y)
        n_out = self._n_out
        if arr.ndim == 1 and self._loss == "cross_entropy":
            if arr.dtype.kind == "f":
                if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                    raise ValueError("Y: 1-D targets for cross_entropy are class indices; got non-integer values")
            elif arr.dtype.kind == "b":
                raise TypeError("Y: 1-D targets for cross_entropy are integer class indices, got dtype bool")
            if arr.shape[0] != batch:
                raise ValueError(f"Y: expected {batch} class indices (one per row of X), got {arr.shape[0]}")
            if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
                raise ValueError(f"Y: class index {arr.max()} is out of range [0, {n_out})")
            return np.ascontiguousarray(arr, dtype=np.int64)
        if arr.ndim == 1 and n_out == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2:
            raise ValueError(f"Y: expected a 2-D array of shape ({batch}, {n_out}), got {arr.ndim}-D shape {arr.shape}")
        if arr.shape != (batch, n_out):
            if arr.shape[0] != batch:
                raise ValueError(f"Y: expected {batch} rows (one per row of X), got shape {arr.shape}")
            raise ValueError(f"Y: expected shape ({batch}, {n_out}), got {arr.shape}")
        if type(arr) is np.ndarray and arr.dtype is self._dtype and arr.flags.c_contiguous:
            return arr
        return np.ascontiguousarray(arr, dtype=self._dtype)

    # ---- compute ----
    def forward(self, X) -> np.ndarray:
        """Output activations for X [batch, n_in]; keeps z and a (and X) for backward and inspection."""
        return self._core.forward(self._matrix(X, "X", self._n_in))

    def predict(self, X) -> np.ndarray:
        """The same outputs as forward without touching the workspace; safe from several threads."""
        out = self._core.predict_exact(X)  # None unless X needs neither checks nor conversion
        return out if out is not None else self._core.predict(self._matrix(X, "X", self._n_in))

    __call__ = predict

    def loss(self, X, Y, l2: float = 0.0) -> float:
        """The cost of the batch: mean over samples of C0, plus l2/(2*batch) * sum of squared weights."""
        X = self._matrix(X, "X", self._n_in)
        Yc = self._targets(Y, X.shape[0])
        return self._core.loss(X, Yc, _number("l2", l2, low=0.0))

    def backward(self, X, Y, l2: float = 0.0, accumulate: bool = False) -> float:
        """Forward, loss and backpropagation: fills the gradients with the batch mean; returns the loss."""
        X = self._matrix(X, "X", self._n_in)
        Yc = self._targets(Y, X.shape[0])
        return self._core.backward(X, Yc, _number("l2", l2, low=0.0), bool(accumulate))

    def backward_from_output_grad(self, grad, accumulate: bool = False) -> None:
        """Backward from a per-sample dC0/da(L) [batch, n_out] after forward(X) with that batch."""
        g = self._matrix(grad, "grad", self._n_out)
        self._core.backward_output_grad(g, bool(accumulate))

    def _sgd(self, lr, momentum, nesterov, weight_decay):
        lr = _number("lr", lr, low=0.0, low_open=True)
        momentum = _number("momentum", momentum, low=0.0, high=1.0)
        if nesterov and momentum == 0.0:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0, got momentum 0")
        weight_decay = _number("weight_decay", weight_decay, low=0.0)
        return lr, momentum, bool(nesterov), weight_decay

    def step(self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> None:
        """One SGD update from the gradient buffer (PyTorch's SGD rule, see README)."""
        self._core.step(*self._sgd(lr, momentum, nesterov, weight_decay))

    def train_batch(self, X, Y, lr: float, momentum: float = 0.0, nesterov: bool = False, l2: float = 0.0,
                    weight_decay: float = 0.0) -> float:
        """backward then step; returns the loss before the step."""
        sgd = self._sgd(lr, momentum, nesterov, weight_decay)
        loss = self.backward(X, Y, l2=l2)
        self._core.step(*sgd)
        return loss

    def fit(self, X, Y, epochs: int = 1, batch_size: Optional[int] = 32, lr: float = 0.01,
            momentum: float = 0.0, nesterov: bool = False, l2: float = 0.0, weight_decay: float = 0.0,
            shuffle: bool = True, seed: Optional[int] = None,
            callback: Optional[Callable[[int, float], object]] = None, verbose: bool = False) -> List[float]:
        """Mini-batch SGD for `epochs` epochs; returns the mean training loss of each epoch.

        batch_size=1 is online training, None the full batch. seed reseeds the shuffling generator.
        callback(epoch, loss) runs after each epoch; a truthy return stops training.
        """
        X = self._matrix(X, "X", self._n_in)
        Yc = self._targets(Y, X.shape[0])
        epochs = _integer("epochs", epochs)
        if epochs < 0:
            raise ValueError(f"epochs: expected an integer >= 0, got {epochs}")
        if batch_size is None:
            batch_size = X.shape[0]
        batch_size = _integer("batch_size", batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1 or None, got {batch_size}")
        lr, momentum, nesterov, weight_decay = self._sgd(lr, momentum, nesterov, weight_decay)
        l2 = _number("l2", l2, low=0.0)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback: expected a callable, got {callback!r}")
        if seed is not None:
            seed = _integer("seed", seed)
            if not 0 <= seed < 2**64:
                raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed}")
            self._core.seed(seed)
        args = (X, Yc, batch_size, lr, momentum, nesterov, weight_decay, l2, bool(shuffle))
        if callback is None and not verbose:
            # one native call: the inputs are validated once, not once an epoch
            return list(self._core.train(*args, epochs)) if epochs else []
        losses: List[float] = []
        for epoch in range(epochs):
            loss = self._core.train(*args, 1)[0]
            losses.append(loss)
            if verbose:
                print(f"epoch {epoch + 1}/{epochs}  loss {loss:.6f}", flush=True)
            if callback is not None and callback(epoch, loss):
                break
        return losses

    def gradient_check(self, X, Y, eps: float = 1e-4, l2: float = 0.0) -> GradientCheck:
        """Compare the backprop gradient with float64 central differences over every parameter.

        Each numerical derivative extrapolates central differences of steps eps and eps/2 (Richardson),
        so its truncation error is O(eps^4).

        Relative error per parameter: |g - n| / max(|g|, |n|, 1e-3 * max|n|, 1e-12). The network is not
        changed (the check runs on a float64 copy).
        """
        eps = _number("eps", eps, low=0.0, low_open=True)
        l2 = _number("l2", l2, low=0.0)
        net = self._float64_copy()
        X = net._matrix(X, "X", self._n_in)
        Yc = net._targets(Y, X.shape[0])
        net._core.backward(X, Yc, l2, False)
        analytic = net.grad.copy()
        p = net.params
        numeric = np.empty_like(analytic)
        loss = net._core.loss

        def central(i: int, old: float, h: float) -> float:
            p[i] = old + h
            up = loss(X, Yc, l2)
            p[i] = old - h
            down = loss(X, Yc, l2)
            return (up - down) / (2.0 * h)

        for i in range(p.size):
            old = float(p[i])
            # Richardson extrapolation of two central differences: truncation error O(eps^4).
            coarse, fine = central(i, old, eps), central(i, old, eps / 2.0)
            p[i] = old
            numeric[i] = (4.0 * fine - coarse) / 3.0
        scale = max(1e-3 * float(np.max(np.abs(numeric))) if numeric.size else 0.0, 1e-12)
        rel = np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), scale)
        layer_errors = []
        for l in range(self.n_layers):
            w_off, _ = self._core.layer_offsets(l)
            end = self._core.layer_offsets(l + 1)[0] if l + 1 < self.n_layers else p.size
            layer_errors.append(float(rel[w_off:end].max()))
        worst = int(np.argmax(rel))
        worst_layer = next(l for l in range(self.n_layers - 1, -1, -1) if self._core.layer_offsets(l)[0] <= worst)
        return GradientCheck(float(rel[worst]), layer_errors, worst, worst_layer)

    def _float64_copy(self) -> "Network":
        if self._dtype == np.float64:
            return self.copy()
        net = Network(list(self._sizes), activation=list(self._acts), loss=self._loss, dtype="float64",
                      init=self._init, seed=0, slope=list(self._core.slopes))
        net.params[:] = self.params
        return net

    # ---- copies, pickling, files ----
    def copy(self) -> "Network":
        """An independent deep copy (parameters, gradients, optimizer and generator state)."""
        return Network._wrap(self._core.clone())

    __copy__ = copy

    def __deepcopy__(self, memo) -> "Network":
        return self.copy()

    def to_bytes(self, optimizer: bool = True) -> bytes:
        """The model file (docs/model-format.md) as bytes."""
        return self._core.to_bytes(bool(optimizer))

    @classmethod
    def from_bytes(cls, data: bytes) -> "Network":
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expected bytes, got {type(data).__name__}")
        core = _core.Net.from_bytes(bytes(data))
        return cls._wrap(core)

    def __reduce__(self):
        return (Network.from_bytes, (self.to_bytes(True),))

    def save(self, path, optimizer: bool = True) -> None:
        """Write the model file atomically (a crash mid-save never destroys an existing file)."""
        self._core.save(os.fspath(path), bool(optimizer))

    @classmethod
    def load(cls, path) -> "Network":
        """Read a model file written by save() or by dp_net_save (C/C++)."""
        core = _core.Net.load(os.fspath(path))
        return cls._wrap(core)
