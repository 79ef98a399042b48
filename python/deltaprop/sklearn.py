# SPDX-License-Identifier: MIT
"""scikit-learn's MLPClassifier and MLPRegressor on deltaprop's native loop: change one import.

    from deltaprop.sklearn import MLPClassifier      # instead of sklearn.neural_network

The estimators take every constructor parameter of scikit-learn's (same names, defaults and meaning),
then deltaprop's own (``dtype``, ``n_threads``), minimise the same objective with the same update rules
and stopping rules, and expose the same fitted attributes plus ``network_`` (the deltaprop Network).
With the same ``random_state`` they draw the same initial weights as scikit-learn, so with
``shuffle=False`` they follow scikit-learn's iterates to float64 rounding (tests/test_sklearn.py).

Needs the ``sklearn`` extra (scikit-learn and scipy); ``import deltaprop`` never imports this module.
Differences from scikit-learn, all documented in docs/sklearn.md: with ``shuffle=True`` the epoch order
comes from deltaprop's generator (seeded from ``random_state``), not numpy's; float32 data trains in
float32 (scikit-learn's lbfgs silently continues in float64); sample weights must be >= 0.
"""
from __future__ import annotations

import copy
import math
import numbers
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Set, Tuple, Type, TypeVar, Union

import numpy as np
import scipy.optimize
import scipy.sparse
from threadpoolctl import ThreadpoolController  # a dependency of scikit-learn
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted

if TYPE_CHECKING:  # annotations only: importing numpy.typing at run time costs a few ms
    from typing import Protocol

    from numpy.typing import ArrayLike, DTypeLike, NDArray

    _F = TypeVar("_F", bound=Callable[..., Any])

    def available_if(check: Callable[[Any], bool]) -> Callable[[_F], _F]:
        """scikit-learn's (untyped): the method, present only where check(estimator) is true."""

    class _LabelBinarizer(Protocol):
        """What is used here of scikit-learn's (untyped) LabelBinarizer."""

        y_type_: str
        classes_: NDArray[Any]

        def transform(self, y: ArrayLike) -> NDArray[Any]: ...

        def inverse_transform(self, Y: ArrayLike) -> NDArray[Any]: ...
else:
    from sklearn.utils.metaestimators import available_if

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(est: Any, *args: Any, **kwargs: Any) -> Any:
        return est._validate_data(*args, **kwargs)


import deltaprop as dp

__all__ = ["MLPClassifier", "MLPRegressor", "from_sklearn", "InvalidParameterError"]

_STOCHASTIC = ("sgd", "adam")
_HIDDEN = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_SPARSE_CHUNK = 1 << 22  # elements of a densified block of sparse rows (32 MB in float64)
# lbfgs's full-batch gradient is summed over blocks of rows whose activations (z, a and delta of every
# layer) stay in the core's cache: one backward over all rows streams them through memory, which costs
# more than the blocks' partial sums (re-derive with benchmarks/sklearn_bench.py --solvers lbfgs)
_GRAD_CHUNK = 1 << 17  # elements: rows x the sum of the layer widths

# X: a dense array-like or a scipy.sparse matrix (scipy has no type information: Any)
_Matrix = Any
_E = TypeVar("_E", bound="_BaseMLP")


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter outside its documented range (scikit-learn raises the same kind)."""


# --------------------------------------------------------------------------------------------------
# The objective: scikit-learn's loss, gradient and update rules written with deltaprop's. ONE place.
# --------------------------------------------------------------------------------------------------
class _Objective:
    """How scikit-learn's MLP objective maps onto a deltaprop Network.

    scikit-learn minimises, over a batch of m samples with weights w_i (s = Σ w_i, or m):

        loss_sk = data_sk + alpha/(2 s) · Σ W²            (weights only, not intercepts)

    and steps along the gradient it computes as  delta_L = p − y  (the canonical link of each loss),
    dW = (aᵀ delta + alpha W)/s,  db = Σ delta / s.  Per loss:

    * 'log_loss', multi-class (softmax): data_sk = mean_i −Σ_j y_ij log p_ij  = deltaprop's
      cross_entropy; its gradient is deltaprop's.                      → c = 1,   l2 = alpha
    * 'log_loss', binary or multi-label (logistic): data_sk = mean_i −Σ_j [y log p + (1−y) log(1−p)],
      summed over outputs = deltaprop's binary_cross_entropy.          → c = 1,   l2 = alpha
    * 'squared_error' (identity): data_sk = mean_i mean_j (p − y)²/2 = deltaprop's mse / (2 n_out);
      but scikit-learn's gradient is that of mean_i Σ_j (p − y)²/2 (delta = p − y is not divided by
      n_out), i.e. half of deltaprop's mse gradient for ANY n_out.      → c = 1/2, l2 = 2 alpha
      The reported loss is  (loss_dp − 2 alpha P/(2s))/(2 n_out) + alpha P/(2s),  P = Σ W², which
      is loss_dp/2 when n_out = 1.

    So scikit-learn's gradient is c × deltaprop's gradient computed with l2 = alpha/c, and each of
    scikit-learn's updates is one of deltaprop's optimizers with a constant folded in:

    * SGD:  lr_dp = c · lr_sk  (the same momentum and Nesterov rule; see _Stochastic for the
      velocity when the learning rate changes between epochs).
    * Adam (eps added to sqrt(v) before bias correction, Adam(eps_hat=True)): m and sqrt(v) scale
      with the gradient, so a gradient c times as large is the same update with eps_dp = eps / c.
    * lbfgs: the loss and gradient handed to scipy are scikit-learn's (the gradient times c).

    scikit-learn clips probabilities to [eps, 1−eps] in the log-loss it reports (not in its
    gradient); deltaprop computes the log-loss without clipping, so the reported loss can differ
    where a probability saturates. Nothing else differs.
    """

    def __init__(self, kind: str, n_outputs: int, alpha: float) -> None:
        self.kind = kind  # 'softmax', 'logistic', 'identity' or 'exp' (the output activation)
        self.n_outputs = n_outputs
        self.alpha = float(alpha)
        self.c = 0.5 if kind == "identity" else 1.0
        self.l2 = self.alpha / self.c
        # 'exp' (Poisson): the core has neither, see poisson_backward (its network's mse is not used)
        self.dp_loss = {"softmax": "cross_entropy", "logistic": "binary_cross_entropy"}.get(kind, "mse")
        self.dp_output = {"softmax": "softmax", "logistic": "sigmoid"}.get(kind, "identity")

    @property
    def python_loss(self) -> bool:
        """True when the loss is computed here (Poisson), batch by batch: see poisson_backward."""
        return self.kind == "exp"

    @property
    def loss_needs_penalty(self) -> bool:
        """True when the reported loss cannot be had from deltaprop's loss alone (needs Σ W²)."""
        return self.kind == "identity" and self.n_outputs > 1 and self.alpha > 0.0

    def loss(self, loss_dp: float, penalty_over_s: float = 0.0) -> float:
        """scikit-learn's loss from deltaprop's (computed with l2 = self.l2); penalty_over_s = P/s."""
        if self.kind != "identity":
            return float(loss_dp)
        if self.n_outputs == 1:
            return 0.5 * float(loss_dp)
        data_dp = float(loss_dp) - self.alpha * penalty_over_s  # l2/2 · P/s = alpha · P/s
        return data_dp / (2.0 * self.n_outputs) + 0.5 * self.alpha * penalty_over_s

    def poisson_backward(self, net: dp.Network, X: NDArray[Any], Y: NDArray[Any], sw: Optional[NDArray[Any]],
                         alpha: Optional[float] = None) -> float:
        """Poisson ('exp' output): the network's output layer is the identity (z = log of the mean),
        exp and the loss are applied here; the backward pass is the core's, from the output gradient.

        scikit-learn's loss: Σ_j mean_i w_i [y log(y/p) − y + p] (half the Poisson deviance) plus the
        penalty; its delta at z is p − y. Fills net.grad with scikit-learn's gradient (c = 1) and
        returns scikit-learn's loss."""
        z = net.forward(X).astype(np.float64)
        with np.errstate(over="ignore"):
            p = np.exp(z)
        m = X.shape[0]
        w = np.ones(m) if sw is None else np.asarray(sw, dtype=np.float64)
        s = float(w.sum())
        from scipy.special import xlogy

        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            data = float(np.sum(w[:, None] * (xlogy(Y, Y / p) - Y + p)) / s)
        if not np.all(np.isfinite(p)):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain large values and need to be preprocessed."
            )
        # backward_from_output_grad averages over the m rows: scale each row by w_i m / s
        net.backward_from_output_grad((p - Y) * (w * (m / s))[:, None])
        alpha = self.alpha if alpha is None else alpha
        P = 0.0
        for (W, _), (dW, _) in zip(net.weights, net.gradients):
            P += float(np.dot(W.ravel(), W.ravel()))
            dW += dW.dtype.type(alpha / s) * W
        return data + 0.5 * alpha * P / s

    def sgd_lr(self, lr: float) -> float:
        return self.c * lr

    def adam_eps(self, eps: float) -> float:
        return eps / self.c


def _weight_sq_sum(net: dp.Network) -> float:
    return float(sum(np.dot(W.ravel(), W.ravel()) for W, _ in net.weights))


def _sklearn_order(sizes: Tuple[int, ...]) -> NDArray[Any]:
    """Index array: scikit-learn's packed vector (all coefs_ (n_in, n_out) row-major, then all
    intercepts_) = deltaprop's flat params (per layer W (n_out, n_in) row-major, then b)[index]."""
    coef_idx: List[NDArray[Any]]
    bias_idx: List[NDArray[Any]]
    coef_idx, bias_idx, off = [], [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        coef_idx.append((off + np.arange(n_out)[None, :] * n_in + np.arange(n_in)[:, None]).ravel())
        off += n_in * n_out
        bias_idx.append(off + np.arange(n_out))
        off += n_out
    return np.concatenate(coef_idx + bias_idx)


# --------------------------------------------------------------------------------------------------
# Parameter checking (the ranges of scikit-learn's own constraints)
# --------------------------------------------------------------------------------------------------
def _is_int(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _bad(est: object, name: str, want: str, value: object) -> InvalidParameterError:
    return InvalidParameterError(
        f"The {name!r} parameter of {type(est).__name__} must be {want}. Got {value!r} instead."
    )


def _check_params(est: _BaseMLP) -> List[int]:
    """Checks every parameter; returns hidden_layer_sizes as a list of ints."""
    p: Dict[str, Any] = est.get_params(deep=False)

    def real(name: str, low: float, high: float = math.inf, low_open: bool = False, high_open: bool = True) -> None:
        v = p[name]
        ok = _is_real(v) and not math.isnan(v)
        if ok:
            ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        if not ok:
            rng = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
            raise _bad(est, name, f"a float in the range {rng}", v)

    def integer(name: str, low: int) -> None:
        v = p[name]
        if not (_is_int(v) and v >= low):
            raise _bad(est, name, f"an int in the range [{low}, inf)", v)

    def options(name: str, choices: Set[str]) -> None:
        v = p[name]
        if not (isinstance(v, str) and v in choices):
            raise _bad(est, name, f"a str among {sorted(choices)}", v)

    def boolean(name: str) -> None:
        v = p[name]
        if not isinstance(v, (bool, np.bool_)):
            raise _bad(est, name, "an instance of 'bool'", v)

    h = p["hidden_layer_sizes"]
    if _is_int(h):
        hidden = [int(h)]
        if h < 1:
            raise _bad(est, "hidden_layer_sizes", "an int in the range [1, inf) or an array-like", h)
    elif isinstance(h, str) or not hasattr(h, "__iter__"):
        raise _bad(est, "hidden_layer_sizes", "an int in the range [1, inf) or an array-like", h)
    else:
        hidden = list(h)
        if not all(_is_int(v) or (_is_real(v) and float(v).is_integer()) for v in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        hidden = [int(v) for v in hidden]
        if any(v <= 0 for v in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
    options("activation", {"identity", "logistic", "tanh", "relu"})
    options("solver", {"lbfgs", "sgd", "adam"})
    real("alpha", 0.0)
    if not (p["batch_size"] == "auto" if isinstance(p["batch_size"], str) else _is_int(p["batch_size"]) and p["batch_size"] >= 1):
        raise _bad(est, "batch_size", "a str among ['auto'] or an int in the range [1, inf)", p["batch_size"])
    options("learning_rate", {"constant", "invscaling", "adaptive"})
    real("learning_rate_init", 0.0, low_open=True)
    real("power_t", 0.0)
    integer("max_iter", 1)
    boolean("shuffle")
    rs = p["random_state"]
    if not (rs is None or _is_int(rs) or isinstance(rs, np.random.RandomState)):
        raise _bad(est, "random_state", "an int, a numpy.random.RandomState instance or None", rs)
    real("tol", 0.0)
    if not (isinstance(p["verbose"], (bool, np.bool_)) or _is_int(p["verbose"])):
        raise _bad(est, "verbose", "an int or a bool", p["verbose"])
    boolean("warm_start")
    real("momentum", 0.0, 1.0, high_open=False)
    boolean("nesterovs_momentum")
    boolean("early_stopping")
    real("validation_fraction", 0.0, 1.0)
    real("beta_1", 0.0, 1.0)
    real("beta_2", 0.0, 1.0)
    real("epsilon", 0.0, low_open=True)
    n = p["n_iter_no_change"]
    if not ((_is_int(n) and n >= 1) or (_is_real(n) and n == math.inf)):
        raise _bad(est, "n_iter_no_change", "an int in the range [1, inf) or a float among {inf}", n)
    integer("max_fun", 1)
    if "loss" in p:
        options("loss", {"squared_error", "poisson"})
    if p["dtype"] is not None:
        dt: Optional[np.dtype[Any]]
        try:
            dt = np.dtype(p["dtype"])
        except TypeError:
            dt = None
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise _bad(est, "dtype", "None, 'float32' or 'float64'", p["dtype"])
    nt = p["n_threads"]
    if not (nt is None or (_is_int(nt) and nt >= 1)):
        raise _bad(est, "n_threads", "None or an int in the range [1, inf)", nt)
    return hidden


# --------------------------------------------------------------------------------------------------
# Data helpers
# --------------------------------------------------------------------------------------------------
def _check_sample_weight(sample_weight: Any, n: int, dtype: DTypeLike) -> Optional[NDArray[Any]]:
    if sample_weight is None:
        return None
    if _is_real(sample_weight):
        sw = np.full(n, float(sample_weight))
    else:
        sw = np.asarray(sample_weight)
        if sw.dtype.kind not in "biuf":
            raise ValueError(f"sample_weight: expected real numbers, got dtype {sw.dtype}")
        if sw.ndim != 1:
            raise ValueError("Sample weights must be 1D array or scalar")
        if sw.shape[0] != n:
            raise ValueError(f"sample_weight.shape == {sw.shape}, expected ({n},)!")
    sw = np.ascontiguousarray(sw, dtype=dtype)
    if not np.all(np.isfinite(sw)):
        raise ValueError("Input sample_weight contains NaN or infinity.")
    if np.any(sw < 0):
        raise ValueError("Negative values in data passed to sample_weight: deltaprop needs weights >= 0")
    if not sw.sum() > 0:
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sw


def _rows(X: _Matrix, idx: Union[slice, NDArray[Any]], dtype: DTypeLike) -> NDArray[Any]:
    """Rows idx (a slice or an index array) of dense or sparse X, as a dense C-contiguous block."""
    block = X[idx]
    if scipy.sparse.issparse(block):
        block = block.toarray()
    return np.ascontiguousarray(block, dtype=dtype)


def _grad_rows(sizes: Iterable[int]) -> int:
    """Rows per block of lbfgs's full-batch gradient: about _GRAD_CHUNK activations."""
    return max(64, _GRAD_CHUNK // max(1, sum(sizes)))


def _chunk_rows(n_features: int, batch: int) -> int:
    """Rows per densified block of sparse X: whole batches, about _SPARSE_CHUNK elements."""
    return max(batch, (_SPARSE_CHUNK // max(1, n_features)) // batch * batch)


_BLAS: list[Any] = []


def _blas_controller() -> Any:
    """threadpoolctl's view of the loaded BLAS libraries, made once (making it scans the process)."""
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0]


class _threads:
    """Use n threads inside the block (deltaprop's setting is process-wide: put it back after)."""

    def __init__(self, n: Optional[int]) -> None:
        self.n = n

    def __enter__(self) -> None:
        if self.n is not None:
            self.old = dp.get_num_threads()
            dp.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.n is not None:
            dp.set_num_threads(self.old)


# --------------------------------------------------------------------------------------------------
# Stochastic updates
# --------------------------------------------------------------------------------------------------
class _Stochastic:
    """scikit-learn's SGD / Adam updates as deltaprop optimizers, with scikit-learn's learning rate.

    The optimizer state (Adam's moments and step count, SGD's velocity) lives in the network and
    continues from one ``net.fit`` (or ``train_batch``) call to the next.

    SGD: scikit-learn keeps  u ← μu − lr·g,  p ← p + u  (Nesterov: p ← p + μu − lr·g); deltaprop (as
    PyTorch) keeps  v ← μv + g,  p ← p − lr·v.  Both are the same iterates while lr is constant
    (u = −lr·v); when lr changes between epochs ('invscaling', 'adaptive') scikit-learn's velocity
    keeps the old lr in it, so v is rescaled by lr_old/lr_new at the change, which keeps u.
    """

    opt: dp.optim.Optimizer  # set by set_lr
    lr: float  # None until set_lr, which follows every construction

    def __init__(self, est: _BaseMLP, obj: _Objective) -> None:
        self.solver = est.solver
        self.obj = obj
        self.momentum = float(est.momentum)
        self.nesterov = bool(est.nesterovs_momentum) and self.momentum > 0.0
        self.betas = (float(est.beta_1), float(est.beta_2))
        self.eps = float(est.epsilon)
        self.lr = None  # type: ignore[assignment]  # (declared float: set_lr follows at once)

    def set_lr(self, lr: float, net: dp.Network) -> None:
        lr = float(lr)
        if self.solver == "sgd" and self.lr is not None and lr != self.lr and self.momentum > 0:
            vel = net.velocity  # SGD's momentum buffer
            vel *= vel.dtype.type(self.lr / lr)
        self.lr = lr
        if self.solver == "sgd":
            self.opt = dp.optim.SGD(lr=self.obj.sgd_lr(lr), momentum=self.momentum, nesterov=self.nesterov)
        else:
            self.opt = dp.optim.Adam(lr=lr, betas=self.betas, eps=self.obj.adam_eps(self.eps), eps_hat=True)


def _fresh_network(net: dp.Network) -> dp.Network:
    """The same parameters in a new Network: no optimizer state (scikit-learn's fit() starts anew)."""
    fresh = dp.Network(list(net.sizes), activation=list(net.activations), loss=net.loss_name,
                       dtype=net.dtype, seed=0)
    fresh.params[:] = net.params
    return fresh


# --------------------------------------------------------------------------------------------------
# The estimators
# --------------------------------------------------------------------------------------------------
class _BaseMLP(BaseEstimator):  # type: ignore[misc]  # scikit-learn is untyped
    # fitted attributes (declarations only: each is set by fit)
    network_: dp.Network
    coefs_: List[NDArray[Any]]
    intercepts_: List[NDArray[Any]]
    n_layers_: int
    n_outputs_: int
    n_iter_: int
    t_: int
    out_activation_: str
    loss_: float
    loss_curve_: List[float]
    best_loss_: Any  # float, or None with early_stopping
    validation_scores_: Any  # List[float] with early_stopping, else None
    best_validation_score_: Any  # float with early_stopping, else None
    _random_state: np.random.RandomState
    _initial_params: Optional[Tuple[List[NDArray[Any]], List[NDArray[Any]]]]
    _no_improvement_count: int
    _best_params: NDArray[Any]
    _optimizer: _Stochastic
    _score_fn: Callable[..., float]

    if TYPE_CHECKING:  # defined by each subclass
        def _output_kind(self) -> str: ...

        def _validate_input(self, X: _Matrix, y: Any, incremental: bool,
                            reset: bool) -> Tuple[_Matrix, NDArray[Any]]: ...

        def _targets(self, Y: NDArray[Any], dtype: np.dtype[Any]) -> NDArray[Any]: ...

        def _decode(self, out: NDArray[Any]) -> NDArray[Any]: ...

    # the parameters are checked by fit (set_params can set anything): Any here, typed in the subclasses
    def __init__(self, hidden_layer_sizes: Any, activation: Any, solver: Any, alpha: Any, batch_size: Any,
                 learning_rate: Any, learning_rate_init: Any, power_t: Any, max_iter: Any, loss: Any,
                 shuffle: Any, random_state: Any, tol: Any, verbose: Any, warm_start: Any, momentum: Any,
                 nesterovs_momentum: Any, early_stopping: Any, validation_fraction: Any, beta_1: Any,
                 beta_2: Any, epsilon: Any, n_iter_no_change: Any, max_fun: Any, dtype: Any,
                 n_threads: Any) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads

    # ---- tags ----
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ---- coefs_ / intercepts_: views of the network's parameter buffer ----
    def _expose(self, net: dp.Network) -> None:
        self.network_ = net
        self.coefs_ = [W.T for W, _ in net.weights]
        self.intercepts_ = [b for _, b in net.weights]
        self.n_layers_ = net.n_layers + 1
        self.n_outputs_ = net.sizes[-1]

    def __getstate__(self) -> Dict[str, Any]:
        state = super().__getstate__()
        state = dict(state)
        state.pop("coefs_", None)  # views of network_: rebuilt on unpickling
        state.pop("intercepts_", None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)
        if "network_" in self.__dict__:
            self._expose(self.network_)

    def set_initial_params(self: _E, coefs: Iterable[Any], intercepts: Iterable[Any]) -> _E:
        """Start the next fit that initialises the network (not warm_start or partial_fit on a
        fitted estimator) from these weights instead of random ones: ``coefs[l]`` of shape
        (n_in, n_out) and ``intercepts[l]`` of shape (n_out,) per layer, as scikit-learn's
        ``coefs_`` and ``intercepts_``. Used to start from exactly scikit-learn's iterate, e.g.
        ``est.set_initial_params(sk.coefs_, sk.intercepts_)``. Returns self."""
        coefs = [np.array(c, dtype=np.float64) for c in coefs]
        intercepts = [np.array(b, dtype=np.float64) for b in intercepts]
        if len(coefs) != len(intercepts) or not coefs:
            raise ValueError(f"coefs and intercepts: expected one of each per layer, got {len(coefs)} and {len(intercepts)}")
        for l, (c, b) in enumerate(zip(coefs, intercepts)):
            if c.ndim != 2 or b.shape != (c.shape[1],):
                raise ValueError(f"coefs[{l}], intercepts[{l}]: expected shapes (n_in, n_out) and (n_out,), got {c.shape} and {b.shape}")
            if l and c.shape[0] != coefs[l - 1].shape[1]:
                raise ValueError(f"coefs[{l}]: expected {coefs[l - 1].shape[1]} rows, got {c.shape[0]}")
        self._initial_params = (coefs, intercepts)
        return self

    # ---- building the network ----
    def _new_network(self, sizes: List[int], obj: _Objective, dtype: np.dtype[Any]) -> dp.Network:
        n_layers = len(sizes) - 1
        net = dp.Network(sizes, activation=[_HIDDEN[self.activation]] * (n_layers - 1) + [obj.dp_output],
                         loss=obj.dp_loss, dtype=dtype, seed=0)
        given = getattr(self, "_initial_params", None)
        if given is not None:
            coefs, intercepts = given
            shapes = [c.shape for c in coefs]
            want = list(zip(sizes[:-1], sizes[1:]))
            if shapes != want:
                raise ValueError(f"set_initial_params: the coefs have shapes {shapes}, the network needs {want}")
        else:
            # scikit-learn's draw, in its order: per layer coefs then intercepts, uniform in ±bound
            factor = 2.0 if self.activation == "logistic" else 6.0
            coefs, intercepts = [], []
            for n_in, n_out in zip(sizes[:-1], sizes[1:]):
                bound = np.sqrt(factor / (n_in + n_out))
                coefs.append(self._random_state.uniform(-bound, bound, (n_in, n_out)))
                intercepts.append(self._random_state.uniform(-bound, bound, n_out))
        for (W, b), c, i in zip(net.weights, coefs, intercepts):
            W[...] = c.astype(dtype, copy=False).T
            b[...] = i.astype(dtype, copy=False)
        return net

    # ---- fit ----
    def fit(self: _E, X: _Matrix, y: ArrayLike, sample_weight: Optional[ArrayLike] = None) -> _E:
        """Fit the model to data matrix X (dense or CSR/CSC sparse) and target(s) y."""
        return self._fit_guarded(X, y, sample_weight, incremental=False)

    def _fit_guarded(self: _E, X: _Matrix, y: ArrayLike, sample_weight: Optional[ArrayLike], incremental: bool,
                     classes: Optional[ArrayLike] = None) -> _E:
        # a failed fit leaves the estimator as it was (all fitted state is replaced, never mutated)
        saved = dict(self.__dict__)
        try:
            with _threads(self.n_threads):
                if classes is not None or incremental:
                    self._partial_first_call(y, classes)
                return self._fit(X, y, sample_weight, incremental)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _partial_first_call(self, y: ArrayLike, classes: Optional[ArrayLike]) -> None:
        pass

    def _fit(self: _E, X: _Matrix, y: ArrayLike, sample_weight: Optional[ArrayLike], incremental: bool) -> _E:
        hidden = _check_params(self)
        if incremental and self.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not stochastic.")
        first_pass = not hasattr(self, "network_") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if first_pass:
            dtype = np.dtype(self.dtype) if self.dtype is not None else X.dtype
        else:
            dtype = self.network_.dtype
        sw = _check_sample_weight(sample_weight, n_samples, dtype)
        n_outputs = Y.shape[1] if Y.ndim == 2 else 1
        if not first_pass and n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} outputs, the fitted model has {self.n_outputs_}")

        self._random_state = check_random_state(self.random_state)
        sizes = [n_features] + hidden + [n_outputs]
        obj = _Objective(self._output_kind(), n_outputs, self.alpha)
        if first_pass:
            net = self._new_network(sizes, obj, dtype)
            self.n_iter_ = 0
            self.t_ = 0
            self.out_activation_ = obj.kind
        else:
            if list(self.network_.sizes) != sizes or self.out_activation_ != obj.kind:
                raise ValueError(
                    f"warm_start/partial_fit: the parameters or the data changed the network from layer "
                    f"sizes {list(self.network_.sizes)} with output {self.out_activation_!r} to {sizes} "
                    f"with output {obj.kind!r}"
                )
            net = self.network_
        if self.solver in _STOCHASTIC and (first_pass or not hasattr(self, "loss_curve_")):
            # (also when a warm start follows an lbfgs fit, which keeps no loss curve)
            self.loss_curve_ = []
            self._no_improvement_count = 0
            self._best_params = net.params.copy()
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        Xc = X.tocsr() if scipy.sparse.issparse(X) else np.ascontiguousarray(X, dtype=dtype)
        targets = self._targets(Y, dtype)

        try:
            if self.solver in _STOCHASTIC:
                net = self._fit_stochastic(net, obj, Xc, Y, targets, sw, incremental, first_pass)
            else:
                net = _fresh_network(net) if not first_pass else net
                self._fit_lbfgs(net, obj, Xc, targets, sw)
        except FloatingPointError as e:  # deltaprop's DivergenceError: the loss or the weights overflowed
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain large values and need to be preprocessed."
            ) from e
        if not np.all(np.isfinite(net.params)):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain large values and need to be preprocessed."
            )
        self._expose(net)
        self._initial_params = None
        return self

    # ---- lbfgs ----
    def _fit_lbfgs(self, net: dp.Network, obj: _Objective, X: _Matrix, targets: NDArray[Any],
                   sw: Optional[NDArray[Any]]) -> None:
        order = _sklearn_order(net.sizes)
        n_coef = sum(a * b for a, b in zip(net.sizes[:-1], net.sizes[1:]))
        flat, grad = net.params, net.grad
        n = X.shape[0]
        s = float(sw.sum()) if sw is not None else float(n)
        sparse = scipy.sparse.issparse(X)
        chunk = _grad_rows(net.sizes)
        if sparse:
            chunk = min(chunk, _chunk_rows(X.shape[1], 1))
            X = X.tocsr()
        acc = np.zeros(grad.shape[0])  # the blocks' gradients, weighted (deltaprop's order, float64)

        def backward(Xb: NDArray[Any], Tb: NDArray[Any], swb: Optional[NDArray[Any]], l2: float) -> float:
            if obj.python_loss:
                return obj.poisson_backward(net, Xb, Tb, swb, alpha=l2)
            return net.backward(Xb, Tb, l2=l2, sample_weight=swb)

        def fun(v: NDArray[np.float64]) -> Tuple[float, NDArray[np.float64]]:
            flat[order] = v
            P = float(np.dot(v[:n_coef], v[:n_coef]))
            if chunk >= n:
                loss_dp = backward(X, targets, sw, obj.l2)
                g = grad[order].astype(np.float64)
            else:
                # the full batch in dense blocks: each block's mean, weighted by its share of s
                loss_dp = 0.0
                acc[:] = 0.0
                for start in range(0, n, chunk):
                    sl = slice(start, min(n, start + chunk))
                    swb = sw[sl] if sw is not None else None
                    share = (float(swb.sum()) if swb is not None else float(sl.stop - sl.start)) / s
                    if share == 0.0:
                        continue
                    loss_dp += share * backward(_rows(X, sl, net.dtype), targets[sl], swb, 0.0)
                    acc[:] += share * grad
                g = acc[order]
                loss_dp += obj.l2 * P / (2.0 * s)
                g[:n_coef] += obj.l2 * v[:n_coef] / s
            return obj.loss(loss_dp, P / s), obj.c * g

        x0 = flat[order].astype(np.float64)
        # L-BFGS-B's own work is vector operations over the parameters: BLAS threads only add hand-offs
        # (the gradient comes from deltaprop's kernels, which do not use BLAS)
        with _blas_controller().limit(limits=1, user_api="blas"):
            res = scipy.optimize.minimize(
                fun, x0, method="L-BFGS-B", jac=True,
                options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
            )
        if res.status != 0:
            warnings.warn(
                f"lbfgs failed to converge after {res.nit} iteration(s) (status={res.status}):\n{res.message}\n\n"
                "Increase the number of iterations to improve the convergence "
                f"(max_iter={self.max_iter}).\nYou might also want to scale the data.",
                ConvergenceWarning,
            )
        self.n_iter_ = min(int(res.nit), self.max_iter)
        self.loss_ = float(res.fun)
        flat[order] = res.x

    # ---- sgd / adam ----
    def _fit_stochastic(self, net: dp.Network, obj: _Objective, X: _Matrix, Y: NDArray[Any], targets: NDArray[Any],
                        sw: Optional[NDArray[Any]], incremental: bool, first_pass: bool) -> dp.Network:
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        fresh_optimizer = not incremental or getattr(self, "_optimizer", None) is None
        if fresh_optimizer:
            if not first_pass:
                net = _fresh_network(net)
            opt = _Stochastic(self, obj)
            opt.set_lr(self.learning_rate_init, net)
        else:
            net = net.copy()  # keeps the optimizer state; the fitted network stays as it was on failure
            opt = copy.copy(self._optimizer)
        self.loss_curve_ = list(self.loss_curve_)
        if self.early_stopping:
            self.validation_scores_ = list(self.validation_scores_)

        X_val: Any = None
        y_val: Any = None
        sw_val: Optional[NDArray[Any]] = None
        if self.early_stopping:
            stratify = Y if (is_classifier(self) and obj.n_outputs == 1) else None
            idx = np.arange(X.shape[0])
            tr, va = train_test_split(idx, random_state=self._random_state, test_size=self.validation_fraction,
                                      stratify=stratify)
            if va.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of your dataset.")
            X_val = X[va]
            y_val = self._val_targets(Y[va])
            sw_val = sw[va] if sw is not None else None
            X, targets = X[tr], targets[tr]
            sw = sw[tr] if sw is not None else None
            if not scipy.sparse.issparse(X):
                X = np.ascontiguousarray(X)
        n = X.shape[0]
        if self.batch_size == "auto":
            batch = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch = int(np.clip(self.batch_size, 1, n))
        seed = int(self._random_state.randint(0, 2**31 - 1)) if self.shuffle else None
        rng = np.random.default_rng(seed)  # the order of python-driven epochs (sparse X)

        self.n_iter_ = 0
        val = (X_val, y_val, sw_val) if self.early_stopping else None
        native = not scipy.sparse.issparse(X) and not self._per_batch(obj, sw, n, batch)
        stopped = False
        try:
            while not stopped and self.n_iter_ < self.max_iter:
                if native:
                    # the epochs up to the next change of learning rate in one native fit: X, the
                    # targets and the weights are checked once, scikit-learn's rules run after each epoch
                    ends: List[Tuple[bool, Optional[float], Optional[str]]] = []

                    def after(r: Any) -> bool:
                        ends.append(self._after_epoch(net, opt, obj.loss(r.loss), n, val))
                        return ends[-1][0] or ends[-1][1] is not None

                    net.fit(X, targets, epochs=1 if incremental else self.max_iter - self.n_iter_, batch_size=batch,
                            optimizer=opt.opt, l2=obj.l2, shuffle=self.shuffle,
                            seed=seed if self.n_iter_ == 0 else None, sample_weight=sw, callbacks=after)
                    stopped, new_lr, note = ends[-1]
                else:
                    loss = self._epoch(net, opt, obj, X, targets, sw, batch, seed if self.n_iter_ == 0 else None, rng)
                    stopped, new_lr, note = self._after_epoch(net, opt, loss, n, val)
                if new_lr is not None:
                    opt.set_lr(new_lr, net)
                    if note is not None and self.verbose:
                        print(note + " Setting learning rate to %f" % opt.lr)
                if incremental:
                    break
            if not stopped and not incremental and self.n_iter_ == self.max_iter:
                warnings.warn(
                    "Stochastic Optimizer: Maximum iterations (%d) reached and the optimization hasn't converged yet." % self.max_iter,
                    ConvergenceWarning,
                )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if self.early_stopping:
            net.params[:] = self._best_params
        self._optimizer = opt
        return net

    def _after_epoch(self, net: dp.Network, opt: _Stochastic, loss: float, n: int,
                     val: Optional[Tuple[_Matrix, NDArray[Any], Optional[NDArray[Any]]]]
                     ) -> Tuple[bool, Optional[float], Optional[str]]:
        """scikit-learn's bookkeeping and rules at the end of an epoch of n rows with this loss;
        returns (stop, the learning rate for the next epoch or None, the note for verbose with it)."""
        self.n_iter_ += 1
        self.loss_ = loss
        self.t_ += n
        self.loss_curve_.append(loss)
        if self.verbose:
            print("Iteration %d, loss = %.8f" % (self.n_iter_, loss))
        if val is not None:
            score = self._val_score(net, *val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = net.params.copy()
        else:
            if loss > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if loss < self.best_loss_:
                self.best_loss_ = loss
        # scikit-learn's learning-rate rules act at the end of an epoch (SGD only)
        new_lr: Optional[float] = None
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            new_lr = self.learning_rate_init / (self.t_ + 1) ** self.power_t
        if self._no_improvement_count > self.n_iter_no_change:
            what = "Validation score" if val is not None else "Training loss"
            msg = f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} consecutive epochs."
            adaptive = self.solver == "sgd" and self.learning_rate == "adaptive"
            if adaptive and opt.lr > 1e-6:
                self._no_improvement_count = 0
                return False, opt.lr / 5.0, msg
            if self.verbose:
                print(msg + (" Learning rate too small." if adaptive else "") + " Stopping.")
            return True, new_lr, None
        return False, new_lr, None

    def _per_batch(self, obj: _Objective, sw: Optional[NDArray[Any]], n: int, batch: int) -> bool:
        """True where scikit-learn's epoch loss needs each batch's own: the penalty apart from the data
        loss (multi-output squared error), the loss computed here (Poisson), or the batch's row count
        as its weight in the epoch's mean (with sample weights the native loop weighs a batch by its
        sum of weights)."""
        return obj.loss_needs_penalty or obj.python_loss or (sw is not None and n > batch)

    def _epoch(self, net: dp.Network, opt: _Stochastic, obj: _Objective, X: _Matrix, T: NDArray[Any],
               sw: Optional[NDArray[Any]], batch: int, seed: Optional[int], rng: np.random.Generator) -> float:
        """One pass over the data; returns scikit-learn's epoch loss (batch losses weighted by rows)."""
        n: int = X.shape[0]
        sparse = scipy.sparse.issparse(X)
        per_batch = self._per_batch(obj, sw, n, batch)  # batch by batch
        if not sparse and not per_batch:
            hist = net.fit(X, T, epochs=1, batch_size=batch, optimizer=opt.opt, l2=obj.l2,
                           shuffle=self.shuffle, seed=seed, sample_weight=sw)
            return obj.loss(hist[0])
        # python-driven: our own order; dense blocks of whole batches (sparse X), or batch by batch
        order: Optional[NDArray[Any]] = None
        if self.shuffle:
            order = rng.permutation(n)
        total = 0.0
        step = batch if per_batch else _chunk_rows(X.shape[1], batch)
        for start in range(0, n, step):
            sl = slice(start, min(n, start + step))
            idx = order[sl] if order is not None else sl
            Xb = _rows(X, idx, net.dtype)
            Tb = T[idx]
            swb = sw[idx] if sw is not None else None
            rows = sl.stop - sl.start
            if per_batch:
                P = _weight_sq_sum(net) if obj.loss_needs_penalty else 0.0
                s = float(swb.sum()) if swb is not None else float(rows)
                if obj.python_loss:
                    loss_sk = obj.poisson_backward(net, Xb, Tb, swb)
                    net.step(opt.opt)
                else:
                    loss_dp = net.train_batch(Xb, Tb, l2=obj.l2, optimizer=opt.opt, sample_weight=swb)
                    loss_sk = obj.loss(loss_dp, P / s)
                total += loss_sk * rows
            else:
                hist = net.fit(Xb, Tb, epochs=1, batch_size=batch, optimizer=opt.opt, l2=obj.l2, shuffle=False,
                               sample_weight=swb)
                total += obj.loss(hist[0]) * rows
        return total / n

    # ---- prediction ----
    def _output(self, X: _Matrix, net: Optional[dp.Network] = None) -> NDArray[Any]:
        net = self.network_ if net is None else net
        if scipy.sparse.issparse(X):
            X = X.tocsr()
            n = X.shape[0]
            step = _chunk_rows(X.shape[1], 1)
            return np.concatenate([net.predict(_rows(X, slice(s, min(n, s + step)), net.dtype))
                                   for s in range(0, n, step)]) if n else np.empty((0, net.sizes[-1]), net.dtype)
        if X.shape[0] == 0:
            return np.empty((0, net.sizes[-1]), net.dtype)
        return net.predict(X)

    def _checked_X(self, X: _Matrix) -> _Matrix:
        check_is_fitted(self)
        return _validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)

    def _val_score(self, net: dp.Network, X: _Matrix, y: NDArray[Any], sw: Optional[NDArray[Any]]) -> float:
        with np.errstate(all="ignore"):
            out = self._output(X, net)
            if not np.all(np.isfinite(out)):
                return np.nan
            pred = self._decode(out)
        if pred.dtype.kind == "f" and not np.all(np.isfinite(pred)):
            return np.nan
        return self._score_fn(y, pred, sample_weight=sw)

    def _val_targets(self, Y: NDArray[Any]) -> NDArray[Any]:
        return Y


def _has_partial_fit(est: _BaseMLP) -> bool:
    return est.solver in _STOCHASTIC


class MLPClassifier(ClassifierMixin, _BaseMLP):  # type: ignore[misc]  # scikit-learn is untyped
    """scikit-learn's MLPClassifier (log-loss; lbfgs, sgd or adam) trained by deltaprop.

    Parameters are scikit-learn's (see sklearn.neural_network.MLPClassifier), then:

    dtype : None, 'float32' or 'float64', default=None
        The network's float type; None follows X (float32 stays float32, anything else float64).
    n_threads : int or None, default=None
        Threads for deltaprop's kernels during fit and predict; None leaves the process setting.

    Attributes are scikit-learn's (``coefs_`` and ``intercepts_`` are views of the network's
    parameters), plus ``network_``: the trained deltaprop.Network.
    """

    def __init__(self, hidden_layer_sizes: Union[int, Iterable[int]] = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001,
                 batch_size: Union[int, str] = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Union[int, np.random.RandomState, None] = None, tol: float = 1e-4,
                 verbose: Union[bool, int] = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: float = 10,
                 max_fun: int = 15000, dtype: Optional[DTypeLike] = None, n_threads: Optional[int] = None) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, loss="log_loss", shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            n_iter_no_change=n_iter_no_change, max_fun=max_fun, dtype=dtype, n_threads=n_threads,
        )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    _score_fn = staticmethod(accuracy_score)
    classes_: NDArray[Any]
    _label_binarizer: _LabelBinarizer

    def _output_kind(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X: _Matrix, y: Any, incremental: bool,
                        reset: bool) -> Tuple[_Matrix, NDArray[Any]]:
        X, y = _validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                              dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            lb = LabelBinarizer()
            lb.fit(y)
            self._label_binarizer = lb
            self.classes_ = lb.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the previous "
                        f"call to fit. Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        Y = self._label_binarizer.transform(y).astype(bool)
        return X, Y

    def _targets(self, Y: NDArray[Any], dtype: np.dtype[Any]) -> NDArray[Any]:
        if self._label_binarizer.y_type_ == "multiclass":
            return np.ascontiguousarray(Y.argmax(axis=1), dtype=np.int64)
        return np.ascontiguousarray(Y, dtype=dtype)

    def _val_targets(self, Y: NDArray[Any]) -> NDArray[Any]:
        return self._label_binarizer.inverse_transform(Y)

    def _decode(self, out: NDArray[Any]) -> NDArray[Any]:
        if out.shape[1] == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def _partial_first_call(self, y: ArrayLike, classes: Optional[ArrayLike]) -> None:
        if getattr(self, "classes_", None) is None and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None:
            if getattr(self, "classes_", None) is not None:
                if not np.array_equal(self.classes_, unique_labels(classes)):
                    raise ValueError(
                        f"`classes={classes!r}` is not the same as on last call to partial_fit, was: {self.classes_!r}"
                    )
                return
            lb = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                lb.fit(y)
            else:
                lb.fit(classes)
            self._label_binarizer = lb
            self.classes_ = lb.classes_

    @available_if(_has_partial_fit)
    def partial_fit(self, X: _Matrix, y: ArrayLike, sample_weight: Optional[ArrayLike] = None,
                    classes: Optional[ArrayLike] = None) -> MLPClassifier:
        """One epoch over (X, y), continuing the previous ones (sgd and adam only).

        classes: all the labels, required on the first call."""
        if self.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not stochastic.")
        return self._fit_guarded(X, y, sample_weight, incremental=True, classes=classes)

    def predict(self, X: _Matrix) -> NDArray[Any]:
        """The predicted classes (for multi-label data, an indicator matrix)."""
        X = self._checked_X(X)
        with _threads(self.n_threads):
            return self._decode(self._output(X))

    def predict_proba(self, X: _Matrix) -> NDArray[Any]:
        """Probabilities of the classes, in the order of classes_."""
        X = self._checked_X(X)
        with _threads(self.n_threads):
            out = self._output(X)
        if out.shape[1] == 1:
            p = out.ravel()
            return np.vstack([1 - p, p]).T
        return out

    def predict_log_proba(self, X: _Matrix) -> NDArray[Any]:
        """log(predict_proba(X))."""
        p = self.predict_proba(X)
        return np.log(p, out=p)  # type: ignore[no-any-return]  # numpy's stubs: Any with out=


class MLPRegressor(RegressorMixin, _BaseMLP):  # type: ignore[misc]  # scikit-learn is untyped
    """scikit-learn's MLPRegressor (squared error; lbfgs, sgd or adam) trained by deltaprop.

    Parameters are scikit-learn's (see sklearn.neural_network.MLPRegressor), then ``dtype`` and ``n_threads`` as in MLPClassifier. Attributes are
    scikit-learn's plus ``network_``.
    """

    def __init__(self, loss: str = "squared_error", hidden_layer_sizes: Union[int, Iterable[int]] = (100,),
                 activation: str = "relu", *, solver: str = "adam", alpha: float = 0.0001,
                 batch_size: Union[int, str] = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Union[int, np.random.RandomState, None] = None, tol: float = 1e-4,
                 verbose: Union[bool, int] = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: float = 10,
                 max_fun: int = 15000, dtype: Optional[DTypeLike] = None, n_threads: Optional[int] = None) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, loss=loss, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            n_iter_no_change=n_iter_no_change, max_fun=max_fun, dtype=dtype, n_threads=n_threads,
        )

    _score_fn = staticmethod(r2_score)

    def _output_kind(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X: _Matrix, y: Any, incremental: bool,
                        reset: bool) -> Tuple[_Matrix, NDArray[Any]]:
        X, y = _validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                              dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        return X, y

    def _targets(self, Y: NDArray[Any], dtype: np.dtype[Any]) -> NDArray[Any]:
        return np.ascontiguousarray(Y, dtype=dtype)

    def _val_targets(self, Y: NDArray[Any]) -> NDArray[Any]:
        return Y.ravel() if Y.shape[1] == 1 else Y

    def _decode(self, out: NDArray[Any]) -> NDArray[Any]:
        if self.out_activation_ == "exp":  # network_ outputs log-means (see _Objective.poisson_backward)
            out = np.exp(out)
        return out.ravel() if out.shape[1] == 1 else out

    @available_if(_has_partial_fit)
    def partial_fit(self, X: _Matrix, y: ArrayLike, sample_weight: Optional[ArrayLike] = None) -> MLPRegressor:
        """One epoch over (X, y), continuing the previous ones (sgd and adam only)."""
        if self.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not stochastic.")
        return self._fit_guarded(X, y, sample_weight, incremental=True)

    def predict(self, X: _Matrix) -> NDArray[Any]:
        """The predicted values, shape (n_samples,) or (n_samples, n_outputs)."""
        X = self._checked_X(X)
        with _threads(self.n_threads):
            return self._decode(self._output(X))


def from_sklearn(sk_estimator: Any, **params: Any) -> Union[MLPClassifier, MLPRegressor]:
    """A deltaprop estimator with the parameters (and, if fitted, the weights) of a scikit-learn one.

    ``from_sklearn(sklearn.neural_network.MLPClassifier(...))`` → deltaprop's MLPClassifier with the
    same parameters (``params`` override them, e.g. ``dtype``). If ``sk_estimator`` is fitted, its
    ``coefs_`` and ``intercepts_`` become the initial weights of the next fit (see
    ``set_initial_params``); to continue training from them instead, fit with ``max_iter`` as wanted:
    the returned estimator starts exactly where scikit-learn's weights are.
    """
    from sklearn.neural_network import MLPClassifier as SkC, MLPRegressor as SkR

    cls: Union[Type[MLPClassifier], Type[MLPRegressor]]
    if isinstance(sk_estimator, SkC):
        cls = MLPClassifier
    elif isinstance(sk_estimator, SkR):
        cls = MLPRegressor
    else:
        raise TypeError(f"sk_estimator: expected a scikit-learn MLPClassifier or MLPRegressor, got {type(sk_estimator).__name__}")
    ours = cls().get_params()
    kw = {k: v for k, v in sk_estimator.get_params().items() if k in ours}
    kw.update(params)
    est = cls(**kw)
    if hasattr(sk_estimator, "coefs_"):
        est.set_initial_params(sk_estimator.coefs_, sk_estimator.intercepts_)
    return est
