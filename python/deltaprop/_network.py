# SPDX-License-Identifier: MIT
"""The user-facing Network: argument checking and numpy conversion over the native core."""
from __future__ import annotations

import math
import operator
import os
from collections import namedtuple
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._history import EpochRecord, History, Progress, make_record
from .optim import SGD, Optimizer
from .schedules import Constant, Schedule

if TYPE_CHECKING:  # annotations only: importing numpy.typing at run time costs a few ms
    from numpy.typing import ArrayLike, DTypeLike

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax")
LOSSES = ("mse", "binary_cross_entropy", "cross_entropy")
INITS = ("glorot_uniform", "he_uniform", "he_normal")
_DTYPE_CODES = {np.dtype(np.float32): 1, np.dtype(np.float64): 2}
_DEFAULT_OUTPUT = {"mse": "identity", "binary_cross_entropy": "sigmoid", "cross_entropy": "softmax"}
_NUMERIC_KINDS = "biuf"
MAX_WIDTH = 1 << 24  # widths up to 16,777,216 (and at most 2**40 parameters in all)

GradientCheck = namedtuple("GradientCheck", ["max_error", "layer_errors", "worst_index", "worst_layer"])
GradientCheck.__doc__ = """Result of Network.gradient_check.

max_error: the largest relative error over all parameters; layer_errors: the largest per layer;
worst_index: flat index (into Network.params) of the worst parameter; worst_layer: its layer."""


def _choice(name: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {', '.join(choices)} as a string, got {value!r}")
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _integer(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}") from None


def _number(name: str, value: Any, *, low: float, low_open: bool = False, high: Optional[float] = None) -> float:
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


def _real(name: str, value: Any) -> float:
    """A number as float; its range is the core's rule (checked there, once, with its message)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def _dtype(value: DTypeLike) -> "np.dtype[Any]":
    try:
        dt = np.dtype(value)
    except TypeError:
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {value!r}") from None
    if dt not in _DTYPE_CODES:
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dt.name!r}")
    return dt


def _numeric_array(name: str, value: ArrayLike) -> "np.ndarray[Any, Any]":
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


def _os_error(e: OSError, path: str, writing: bool) -> OSError:
    """The errno-specific OSError (FileNotFoundError, PermissionError, ...) with the path, for a failure
    the core reported with a message only."""
    import errno

    target = os.path.dirname(os.path.abspath(path)) if writing else path
    if not os.path.exists(target):
        code = errno.ENOENT
    elif os.path.isdir(path):
        code = errno.EISDIR
    elif not os.access(target, os.W_OK if writing else os.R_OK):
        code = errno.EACCES
    else:
        return OSError(e.errno or errno.EIO, str(e), path)
    return OSError(code, f"{os.strerror(code)} ({e})", path)  # OSError picks the subclass from errno


class Network:
    """A network of dense layers trained by backpropagation.

    ``Network([784, 256, 10], activation="relu", loss="cross_entropy")`` builds two dense layers;
    layer l computes ``z = a_prev @ W.T + b`` and ``a = g(z)`` with ``W`` of shape ``(n_out, n_in)``.
    All parameters live in one buffer (``params``); gradients in a second one (``grad``).

    sizes: layer widths, input first (each in [1, 16777216]). activation: the hidden layers' activation
    or one name per layer, from identity, sigmoid, tanh, relu, leaky_relu, softmax (output only).
    output: the output activation (default from the loss). loss: mse (C0 = sum_j (a_j - y_j)^2; any
    real targets), binary_cross_entropy (sigmoid output; targets in [0, 1], soft targets allowed),
    cross_entropy (softmax output; class indices, one-hot rows or probability rows). dtype: float32 or
    float64. init: glorot_uniform, he_uniform, he_normal (default he_uniform for relu/leaky_relu hidden
    layers, else glorot_uniform). seed: one seed gives the same weights everywhere. slope: leaky_relu's
    slope (one, or one per layer).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: Union[str, Sequence[str]] = "relu",
        output: Optional[str] = None,
        loss: str = "mse",
        dtype: DTypeLike = "float32",
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
            if not 1 <= s <= MAX_WIDTH:
                raise ValueError(f"sizes[{i}]: expected a width in [1, {MAX_WIDTH}], got {s}")
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
    def _attach(self, core: _core.Net) -> None:
        self._core = core
        self.history: Optional[History] = None  # the History of the last fit (also after an exception)
        self._init = INITS[core.init_kind]
        self._dtype = core.dtype
        self._sizes = tuple(core.sizes)
        self._acts = tuple(ACTIVATIONS[a] for a in core.activations)
        self._loss = LOSSES[core.loss_kind]
        self._n_in = self._sizes[0]
        self._n_out = self._sizes[-1]

    @classmethod
    def _wrap(cls, core: _core.Net) -> "Network":
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
    def dtype(self) -> "np.dtype[Any]":
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
        """Momentum buffer of SGD (Adam's first moment while the state is Adam's), same layout as params. Writable."""
        return self._core.velocity()

    @property
    def optimizer_state(self) -> Dict[str, Any]:
        """The optimizer state, read-only: ``{"kind": "sgd"|"adam"|"adamw", "step": t, ...buffers}``
        with PyTorch's names for the flat buffers (parameter layout): SGD ``momentum_buffer``; Adam and
        AdamW ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (used with amsgrad)."""
        kind, step, bufs = self._core.optimizer_state()
        name = ("sgd", "adam", "adamw")[kind]
        out: Dict[str, Any] = {"kind": name, "step": int(step)}
        names = ("momentum_buffer",) if kind == 0 else ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
        for n, b in zip(names, bufs):
            out[n] = b
        return out

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
    def _array(self, value: ArrayLike, name: str, rows: int, cols: int) -> np.ndarray:
        """The one normalisation path of an array the core reads in the network's dtype: X, Y (values),
        grad, sample weights and their validation counterparts, and predict's input (whose binding,
        predict_exact, asks the same exact() question itself, sparing a batch-1 call a second trip).

        value itself if the binding's exact() test passes (a numpy.ndarray, not a subclass, of the net's
        dtype, C-contiguous, of shape (rows, cols)); else read as a real numeric array, its shape checked
        (the message names the argument, the expected and the actual shape) and converted (_convert).
        rows 0: any batch >= 1; cols 0: a 1-D array of `rows` per-sample weights."""
        if self._core.exact(value, rows, cols):
            return value  # type: ignore[return-value]  # (exact() found an ndarray)
        arr = _numeric_array(name, value)
        if not cols:
            if arr.ndim != 1 or arr.shape[0] != rows:
                raise ValueError(f"{name}: expected a 1-D array of {rows} weights (one per row of X), got shape {arr.shape}")
            return self._convert(arr, name)
        batch = rows if rows else "batch"
        if arr.ndim != 2:
            hint = " (reshape a single sample with x.reshape(1, -1))" if arr.ndim == 1 and not rows else ""
            raise ValueError(f"{name}: expected a 2-D array of shape ({batch}, {cols}), got {arr.ndim}-D shape {arr.shape}{hint}")
        if rows and arr.shape[0] != rows:
            raise ValueError(f"{name}: expected {rows} rows (one per row of X), got shape {arr.shape}")
        if arr.shape[1] != cols:
            raise ValueError(f"{name}: expected shape ({batch}, {cols}), got {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError(f"{name}: the batch is empty (shape {arr.shape})")
        return self._convert(arr, name)

    def _convert(self, arr: np.ndarray, name: str) -> np.ndarray:
        """The one conversion (for _array): arr in the network's dtype, C-contiguous; values too large for
        float32 are refused by name."""
        if self._dtype == np.float32 and arr.dtype.kind == "f" and arr.dtype.itemsize > 4 and arr.size:
            big = np.abs(arr[np.isfinite(arr)]) if not np.all(np.isfinite(arr)) else np.abs(arr)
            top = float(big.max()) if big.size else 0.0
            if top > float(np.finfo(np.float32).max):
                raise ValueError(f"{name}: values overflow float32 (largest magnitude {top:.3g} > "
                                 f"{float(np.finfo(np.float32).max):.3g}); scale them or use dtype='float64'")
        return np.ascontiguousarray(arr, dtype=self._dtype)

    def _targets(self, Y: ArrayLike, batch: int) -> np.ndarray:
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
        arr = self._array(arr, "Y", batch, n_out)
        self._check_target_values(arr)
        return arr

    def _check_target_values(self, Y: np.ndarray) -> None:
        """Soft targets: binary_cross_entropy takes values in [0, 1]; cross_entropy rows of
        probabilities (>= 0, summing to 1), since its gradient a - y assumes they sum to 1."""
        if self._loss == "binary_cross_entropy":
            with np.errstate(invalid="ignore"):
                bad = (Y < 0) | (Y > 1)
            if bad.any():
                r, c = np.argwhere(bad)[0]
                raise ValueError(f"Y: binary_cross_entropy targets must lie in [0, 1], got {float(Y[r, c])!r} "
                                 f"at row {r}, column {c}")
        elif self._loss == "cross_entropy":
            with np.errstate(invalid="ignore"):
                sums = Y.sum(axis=1, dtype=np.float64)
                bad = (np.abs(sums - 1.0) > 1e-4) | (Y < 0).any(axis=1)
            if bad.any():
                r = int(np.argmax(bad))
                raise ValueError(f"Y: cross_entropy target rows must be probabilities (one-hot or soft: >= 0, "
                                 f"summing to 1); row {r} sums to {sums[r]:.6g}")

    # ---- compute ----
    def forward(self, X: ArrayLike) -> np.ndarray:
        """Output activations for X [batch, n_in]; keeps z and a (and X) for backward and inspection."""
        return self._core.forward(self._array(X, "X", 0, self._n_in))

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The same outputs as forward without touching the workspace; safe from several threads."""
        out = self._core.predict_exact(X)  # None unless X is exact (the test of _array)
        return out if out is not None else self._core.predict(self._array(X, "X", 0, self._n_in))

    __call__ = predict

    def _weights(self, w: Optional[ArrayLike], n: int, name: str = "sample_weight") -> Optional[np.ndarray]:
        return None if w is None else self._array(w, name, n, 0)

    def loss(self, X: ArrayLike, Y: ArrayLike, l2: float = 0.0, sample_weight: Optional[ArrayLike] = None) -> float:
        """The cost of the batch: the mean over samples of C0 (weighted: sum w_i C0_i / sum w_i), plus
        l2/(2m) * sum of squared weights (m = batch, or the weights' sum)."""
        X = self._array(X, "X", 0, self._n_in)
        Yc = self._targets(Y, X.shape[0])
        w = self._weights(sample_weight, X.shape[0])
        return self._core.loss(X, Yc, w, _real("l2", l2))

    def backward(self, X: ArrayLike, Y: ArrayLike, l2: float = 0.0, accumulate: bool = False,
                 sample_weight: Optional[ArrayLike] = None) -> float:
        """Forward, loss and backpropagation: fills the gradients with the batch mean (weighted by
        sample_weight if given); returns the loss."""
        X = self._array(X, "X", 0, self._n_in)
        Yc = self._targets(Y, X.shape[0])
        w = self._weights(sample_weight, X.shape[0])
        return self._core.backward(X, Yc, w, _real("l2", l2), bool(accumulate))

    def backward_from_output_grad(self, grad: ArrayLike, accumulate: bool = False) -> None:
        """Backward from a per-sample dC0/da(L) [batch, n_out] after forward(X) with that batch."""
        g = self._array(grad, "grad", 0, self._n_out)
        self._core.backward_output_grad(g, bool(accumulate))

    def _optimizer(self, optimizer: Optional[Optimizer], lr: Union[float, Optimizer, None], momentum: float,
                   nesterov: bool, weight_decay: float, clip_norm: Optional[float],
                   lr_default: Optional[float] = None) -> _core.Optimizer:
        """The native optimizer for a call: optimizer= or the SGD shorthand (lr, momentum, ...)."""
        if isinstance(lr, Optimizer):
            optimizer, lr = lr, None
        if optimizer is not None:
            if not isinstance(optimizer, Optimizer):
                raise TypeError(f"optimizer: expected a deltaprop.optim optimizer (SGD, Adam, AdamW), got {optimizer!r}")
            if (lr is not None and lr != lr_default) or momentum != 0.0 or nesterov or weight_decay != 0.0:
                raise ValueError("optimizer: pass either optimizer= or the SGD shorthand (lr, momentum, nesterov, "
                                 "weight_decay), not both")
            opt = optimizer
        else:
            if lr is None:
                raise TypeError("lr: a learning rate (or optimizer=) is needed")
            opt = SGD(lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
        # (0 means "off" to the core: a clip_norm given here must be > 0)
        clip = 0.0 if clip_norm is None else _number("clip_norm", clip_norm, low=0.0, low_open=True)
        return opt._native(clip)

    def step(self, lr: Union[float, Optimizer, None] = None, momentum: float = 0.0, nesterov: bool = False,
             weight_decay: float = 0.0, *, optimizer: Optional[Optimizer] = None,
             clip_norm: Optional[float] = None) -> None:
        """One update from the gradient buffer: ``step(opt)`` with a deltaprop.optim optimizer, or
        ``step(lr, momentum, nesterov, weight_decay)`` for SGD (PyTorch's rules, see README).

        clip_norm scales the whole gradient to at most that L2 norm first (as
        torch.nn.utils.clip_grad_norm_). Raises DivergenceError, with nothing changed, if the gradient
        or the updated values are not finite."""
        self._core.step(self._optimizer(optimizer, lr, momentum, nesterov, weight_decay, clip_norm))

    def train_batch(self, X: ArrayLike, Y: ArrayLike, lr: Union[float, Optimizer, None] = None, momentum: float = 0.0,
                    nesterov: bool = False, l2: float = 0.0, weight_decay: float = 0.0, *,
                    optimizer: Optional[Optimizer] = None, clip_norm: Optional[float] = None,
                    sample_weight: Optional[ArrayLike] = None) -> float:
        """backward then step, guarded (DivergenceError leaves parameters and optimizer state as before);
        returns the loss before the step."""
        opt = self._optimizer(optimizer, lr, momentum, nesterov, weight_decay, clip_norm)
        X = self._array(X, "X", 0, self._n_in)
        Yc = self._targets(Y, X.shape[0])
        w = self._weights(sample_weight, X.shape[0])
        return self._core.train_batch(X, Yc, w, _real("l2", l2), opt)

    def _split_validation(self, X: np.ndarray, Yc: np.ndarray, w: Optional[np.ndarray], fraction: float,
                          seed: Optional[int]) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], np.ndarray,
                                                        np.ndarray, Optional[np.ndarray]]:
        """Hold out `fraction` of the rows (before any shuffling), drawn with `seed` (0 if None);
        stratified by class for class targets (cross_entropy, single-output binary_cross_entropy)."""
        n = X.shape[0]
        rng = np.random.default_rng(0 if seed is None else seed)
        labels = None
        if self._loss == "cross_entropy":
            labels = Yc if Yc.ndim == 1 else np.argmax(Yc, axis=1)
        elif self._loss == "binary_cross_entropy" and Yc.ndim == 2 and Yc.shape[1] == 1:
            labels = (Yc[:, 0] > 0.5).astype(np.int64)
        if labels is not None:
            held = []
            for c in np.unique(labels):
                idx = np.flatnonzero(labels == c)
                k = int(round(fraction * idx.size))
                held.append(rng.permutation(idx)[:k])
            val = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
        else:
            val = np.sort(rng.permutation(n)[: int(round(fraction * n))])
        if val.size == 0 or val.size == n:
            raise ValueError(f"validation_split: {fraction} of {n} samples leaves "
                             f"{'no validation' if val.size == 0 else 'no training'} sample")
        keep = np.ones(n, dtype=bool)
        keep[val] = False
        wv = None if w is None else w[val]
        wt = None if w is None else np.ascontiguousarray(w[keep])
        return (np.ascontiguousarray(X[keep]), np.ascontiguousarray(Yc[keep]), wt,
                np.ascontiguousarray(X[val]), np.ascontiguousarray(Yc[val]), wv)

    def fit(self, X: ArrayLike, Y: ArrayLike, epochs: int = 1, batch_size: Optional[int] = 32, lr: float = 0.01,
            momentum: float = 0.0, nesterov: bool = False, l2: float = 0.0, weight_decay: float = 0.0,
            shuffle: bool = True, seed: Optional[int] = None,
            callback: Optional[Callable[[int, float], object]] = None, verbose: Union[bool, int] = 0, *,
            optimizer: Optional[Optimizer] = None, schedule: Optional[Schedule] = None,
            clip_norm: Optional[float] = None, sample_weight: Optional[ArrayLike] = None,
            validation_data: Optional[Sequence[ArrayLike]] = None,
            validation_split: float = 0.0, early_stopping: bool = False, patience: int = 10,
            min_delta: float = 0.0, monitor: Optional[str] = None, restore_best: bool = True,
            callbacks: Union[Callable[[EpochRecord], object], Sequence[Callable[[EpochRecord], object]], None] = None,
            comm: Any = None, reduction: str = "reproducible", data: str = "sharded",
            chunk_rows: Optional[int] = None, overlap: bool = False) -> History:
        """Train for `epochs` epochs in the native loop; returns a History (a list of the per-epoch
        training losses, with validation metrics, rates and timings).

        optimizer: a deltaprop.optim optimizer (default: SGD from lr, momentum, nesterov, weight_decay);
        schedule: a deltaprop.schedules schedule; clip_norm: clip the gradient's global norm per step.
        batch_size=1 is online training, None the full batch; seed reseeds the shuffling generator (and
        draws validation_split's held-out rows). sample_weight: per-sample weights w_i >= 0.
        validation_data=(Xv, Yv) or (Xv, Yv, wv), or validation_split=f holds out a fraction of X
        (stratified for class targets): validation loss each epoch, and accuracy for classification.
        early_stopping with patience, min_delta and monitor ("loss", "val_loss", "val_accuracy"; default
        val_loss with validation data, else loss); restore_best puts back the best epoch's parameters and
        optimizer state. callback(epoch, loss) (0.1) and callbacks (a callable or a list, each called with
        an EpochRecord after each epoch; epochs count from 0) stop training by returning True.
        verbose: 1 a live progress bar (tqdm if installed), 2 a line per epoch (epochs counted from 1).
        Ctrl-C stops between batches (the parameters of the last complete step kept) and raises
        KeyboardInterrupt; DivergenceError if training diverges (the net as before that step). Either
        way ``net.history`` holds the completed epochs.

        comm: an mpi4py communicator (``deltaprop[mpi]``) to train one model across its ranks
        (docs/distributed.md): reduction "reproducible" (bitwise identical for any number of ranks with
        replicated data; chunk_rows rows per chunk, default ceil(batch_size / 8)) or "fast"
        (MPI_Allreduce); data "sharded" (each rank passes its own part) or "replicated" (every rank
        passes the same arrays); overlap=True starts each layer's reduction as soon as its gradient is
        final, while the layers below are still computed (non-blocking collectives; the same results, on
        this machine no faster: docs/distributed.md). Without comm these are not used.
        """
        args = dict(X=X, Y=Y, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, nesterov=nesterov,
                    l2=l2, weight_decay=weight_decay, shuffle=shuffle, seed=seed, callback=callback,
                    verbose=verbose, optimizer=optimizer, schedule=schedule, clip_norm=clip_norm,
                    sample_weight=sample_weight, validation_data=validation_data,
                    validation_split=validation_split, early_stopping=early_stopping, patience=patience,
                    min_delta=min_delta, monitor=monitor, restore_best=restore_best, callbacks=callbacks)
        if comm is not None:
            from . import distributed  # mpi4py is imported there, only when asked for
            return distributed._fit(self, comm, reduction, data, chunk_rows, args, overlap)
        p = self._fit_prepare(**args)
        if p.seed is not None:
            self._core.seed(p.seed)
        if p.epochs == 0:  # as 0.1: nothing to train, the values are not read
            self.history = History()
            return self.history
        return self._fit_run(p)

    def _fit_prepare(self, X: Any, Y: Any, epochs: Any, batch_size: Any, lr: Any, momentum: Any, nesterov: Any,
                     l2: Any, weight_decay: Any, shuffle: Any, seed: Any, callback: Any, verbose: Any,
                     optimizer: Any, schedule: Any, clip_norm: Any, sample_weight: Any, validation_data: Any,
                     validation_split: Any, early_stopping: Any, patience: Any, min_delta: Any, monitor: Any,
                     restore_best: Any, callbacks: Any) -> SimpleNamespace:
        """fit's arguments checked and converted (nothing changed in the net)."""
        X = self._array(X, "X", 0, self._n_in)
        Yc = self._targets(Y, X.shape[0])
        w = self._weights(sample_weight, X.shape[0])
        epochs = _integer("epochs", epochs)
        if epochs < 0:
            raise ValueError(f"epochs: expected an integer >= 0, got {epochs}")
        opt = self._optimizer(optimizer, lr, momentum, nesterov, weight_decay, clip_norm, lr_default=0.01)
        if schedule is None:
            schedule = Constant()
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule: expected a deltaprop.schedules schedule, got {schedule!r}")
        sched = schedule._native(opt.lr)
        l2 = _real("l2", l2)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback: expected a callable, got {callback!r}")
        if callbacks is None:
            callbacks = []
        elif callable(callbacks):
            callbacks = [callbacks]
        else:
            try:
                callbacks = list(callbacks)
            except TypeError:
                raise TypeError(f"callbacks: expected a callable or a list of callables, got {callbacks!r}") from None
            for i, c in enumerate(callbacks):
                if not callable(c):
                    raise TypeError(f"callbacks[{i}]: expected a callable, got {c!r}")
        verbose = _integer("verbose", verbose)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose}")
        if seed is not None:
            seed = _integer("seed", seed)
            if not 0 <= seed < 2**64:
                raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed}")
        validation_split = _number("validation_split", validation_split, low=0.0, high=1.0)
        Xv = Yv = wv = None
        if validation_data is not None:
            if validation_split:
                raise ValueError("validation_data: pass either validation_data or validation_split, not both")
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise TypeError("validation_data: expected a tuple (X_val, Y_val) or (X_val, Y_val, sample_weight_val)")
            Xv = self._array(validation_data[0], "X_val", 0, self._n_in)
            Yv = self._targets(validation_data[1], Xv.shape[0])
            if len(validation_data) == 3:
                wv = self._weights(validation_data[2], Xv.shape[0], "sample_weight_val")
        elif validation_split:
            X, Yc, w, Xv, Yv, wv = self._split_validation(X, Yc, w, validation_split, seed)
        monitors = {None: 0, "loss": 1, "val_loss": 2, "val_accuracy": 3}
        if monitor not in monitors:
            raise ValueError(f"monitor: expected 'loss', 'val_loss' or 'val_accuracy', got {monitor!r}")
        patience = _integer("patience", patience)
        if patience < 0:
            raise ValueError(f"patience: expected an integer >= 0, got {patience}")
        min_delta = _real("min_delta", min_delta)
        if batch_size is None:
            batch_size = X.shape[0]
        batch_size = _integer("batch_size", batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1 or None, got {batch_size}")
        return SimpleNamespace(X=X, Y=Yc, w=w, Xv=Xv, Yv=Yv, wv=wv, epochs=epochs, batch_size=batch_size,
                               shuffle=bool(shuffle), l2=l2, opt=opt, sched=sched, schedule=schedule,
                               early_stopping=bool(early_stopping), monitor=monitors[monitor], patience=patience,
                               min_delta=min_delta, restore_best=bool(restore_best), callback=callback,
                               callbacks=callbacks, verbose=verbose, seed=seed)

    def _fit_run(self, p: SimpleNamespace, dist: Any = None) -> History:
        """The native loop over prepared arguments; dist: a deltaprop.distributed session (or None)."""
        X, Yc, w, Xv, Yv, wv = p.X, p.Y, p.w, p.Xv, p.Yv, p.wv
        epochs, callback, callbacks = p.epochs, p.callback, p.callbacks
        verbose = p.verbose if dist is None or dist.rank == 0 else 0  # only rank 0 prints
        n_batches = dist.steps if dist is not None else -(-X.shape[0] // min(p.batch_size, X.shape[0]))
        progress = Progress(verbose, epochs, n_batches) if verbose else None
        records: List[EpochRecord] = []

        def on_epoch(t: Sequence[Any]) -> bool:
            r = make_record(t)
            records.append(r)
            if progress is not None:
                progress.epoch_end(r)
            stop = False
            try:
                if callback is not None and callback(r.epoch, r.loss):
                    stop = True
                for c in callbacks:
                    if c(r):
                        stop = True
            except BaseException as e:
                if dist is None:
                    raise
                dist.fail(e)  # kept, raised once every rank has stopped
            return dist.agree_stop(stop) if dist is not None else stop

        need_epoch = progress is not None or callback is not None or bool(callbacks) or dist is not None
        native = dist.native() if dist is not None else (None, 0, 0, 1, False, 0, 0)

        def history(out: Sequence[Any], interrupted: bool) -> History:
            recs = [make_record(t) for t in out[0]]
            return History(recs, best_epoch=int(out[2]) if out[1] else None, stopped_early=bool(out[3]),
                           interrupted=interrupted)

        try:
            out = self._core.fit(X, Yc, w, Xv, Yv, wv, epochs, p.batch_size, p.shuffle, p.l2, p.opt, p.sched,
                                 p.early_stopping, p.monitor, p.patience, p.min_delta, p.restore_best,
                                 on_epoch if need_epoch else None,
                                 progress.update if progress is not None and verbose == 1 else None,
                                 Progress.interval, *native)
        except BaseException as e:
            if progress is not None:
                progress.close()
            partial = getattr(e, "records", None)
            if partial is not None:
                self.history = history(partial, True)
                if hasattr(e, "history"):
                    e.history = self.history
            raise
        if progress is not None:
            progress.close()
        self.history = history(out, bool(out[4]))
        return self.history

    def gradient_check(self, X: ArrayLike, Y: ArrayLike, eps: float = 1e-4, l2: float = 0.0) -> GradientCheck:
        """Compare the backprop gradient with float64 central differences over every parameter.

        Each numerical derivative extrapolates central differences of steps eps and eps/2 (Richardson),
        so its truncation error is O(eps^4).

        Relative error per parameter: |g - n| / max(|g|, |n|, 1e-3 * max|n|, 1e-12). The network is not
        changed (the check runs on a float64 copy).
        """
        eps = _number("eps", eps, low=0.0, low_open=True)
        l2 = _real("l2", l2)
        net = self._float64_copy()
        X = net._array(X, "X", 0, self._n_in)
        Yc = net._targets(Y, X.shape[0])
        net._core.backward(X, Yc, None, l2, False)
        analytic = net.grad.copy()
        p = net.params
        numeric = np.empty_like(analytic)
        loss = net._core.loss

        def central(i: int, old: float, h: float) -> float:
            p[i] = old + h
            up = loss(X, Yc, None, l2)
            p[i] = old - h
            down = loss(X, Yc, None, l2)
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

    def __deepcopy__(self, memo: Dict[int, Any]) -> "Network":
        return self.copy()

    def to_bytes(self, optimizer: bool = True) -> bytes:
        """The model file (docs/model-format.md) as bytes."""
        return self._core.to_bytes(bool(optimizer))

    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview]) -> "Network":
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expected bytes, got {type(data).__name__}")
        core = _core.Net.from_bytes(bytes(data))
        return cls._wrap(core)

    def __reduce__(self) -> Tuple[Callable[[bytes], "Network"], Tuple[bytes]]:
        return (Network.from_bytes, (self.to_bytes(True),))

    def save(self, path: Union[str, "os.PathLike[str]"], optimizer: bool = True) -> None:
        """Write the model file atomically (a crash mid-save never destroys an existing file)."""
        path = os.fspath(path)
        try:
            self._core.save(path, bool(optimizer))
        except OSError as e:
            raise _os_error(e, path, writing=True) from None

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"]) -> "Network":
        """Read a model file written by save() or by dp_net_save (C/C++)."""
        path = os.fspath(path)
        try:
            core = _core.Net.load(path)
        except OSError as e:
            raise _os_error(e, path, writing=False) from None
        return cls._wrap(core)

    # ---- ONNX (deltaprop.onnx; needs the optional onnx package) ----
    def to_onnx(self, path: Union[str, "os.PathLike[str]", None] = None, opset: int = 17) -> Any:
        """The network as an ONNX model: returns an onnx.ModelProto, or writes it to path (docs/onnx.md)."""
        from . import onnx as dp_onnx

        return dp_onnx.to_onnx(self, path, opset=opset)

    @classmethod
    def from_onnx(cls, path_or_model: Any, loss: Optional[str] = None) -> "Network":
        """A Network from a dense feed-forward ONNX graph (a path, bytes or onnx.ModelProto; docs/onnx.md)."""
        from . import onnx as dp_onnx

        return dp_onnx.from_onnx(path_or_model, loss=loss)
