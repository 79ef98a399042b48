# SPDX-License-Identifier: MIT
"""Optimizers: the update rules of PyTorch's optimizers of the same names, applied by the native core.

An optimizer here is a description (its kind and hyper-parameters); its state (momentum buffer, Adam's
moments, the step count) lives in the network beside the parameters (``Network.optimizer_state``), so
copies, pickles and model files keep it. Use one with ``net.step(opt)``, ``net.train_batch(X, Y,
optimizer=opt)`` or ``net.fit(X, Y, optimizer=opt)``. Changing the optimizer's kind on a network starts
its state afresh.

With g the gradient and t the step count (1 at the first step):

- ``SGD``: g += weight_decay·w; v = momentum·v + g; w -= lr·(g + momentum·v if nesterov else v)
  (v = g without momentum).
- ``Adam``: g += weight_decay·w; m = m + (1 − β1)(g − m); v = β2·v + (1 − β2)·g²;
  v̂ = max(v̂, v) if amsgrad; w -= lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps).
- ``AdamW``: w *= 1 − lr·weight_decay, then Adam's update without the weight-decay term.
- ``eps_hat=True`` (Adam, AdamW): eps is added to √v before the bias correction, Kingma & Ba's
  efficient form used by Keras and scikit-learn: w -= lr·√(1 − β2ᵗ)/(1 − β1ᵗ) · m / (√v + eps), with
  m = β1·m + (1 − β1)·g.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

from . import _core

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]

_KINDS = {"sgd": 0, "adam": 1, "adamw": 2}


def _float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


class Optimizer:
    """Base class: an optimizer's kind and hyper-parameters (see the module docstring)."""

    kind = "sgd"

    def __init__(self, **params: Any) -> None:
        self._params: Dict[str, Any] = params
        _core.check_optimizer(self._native())  # the core's rules, with its messages

    def _native(self, clip_norm: float = 0.0) -> _core.Optimizer:
        o = _core.Optimizer(_KINDS[self.kind])
        p = self._params
        o.lr = p["lr"]
        o.weight_decay = p["weight_decay"]
        if self.kind == "sgd":
            o.momentum = p["momentum"]
            o.nesterov = int(p["nesterov"])
        else:
            o.beta1, o.beta2 = p["betas"]
            o.eps = p["eps"]
            o.amsgrad = int(p["amsgrad"])
            o.eps_hat = int(p["eps_hat"])
        o.clip_norm = clip_norm
        return o

    @property
    def params(self) -> Dict[str, Any]:
        """The hyper-parameters, as a dict (a copy)."""
        return dict(self._params)

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("_params", {})
        if name in params:
            return params[name]
        raise AttributeError(name)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._params == self._params

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted((k, str(v)) for k, v in self._params.items()))))


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and weight decay (torch.optim.SGD)."""

    kind = "sgd"

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(lr=_float("lr", lr), momentum=_float("momentum", momentum), nesterov=bool(nesterov),
                         weight_decay=_float("weight_decay", weight_decay))


def _betas(betas: Any) -> Tuple[float, float]:
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise TypeError(f"betas: expected a pair of numbers (beta1, beta2), got {betas!r}")
    return (_float("betas[0]", betas[0]), _float("betas[1]", betas[1]))


class Adam(Optimizer):
    """Adam (torch.optim.Adam): bias-corrected moment estimates; weight_decay as an L2 term in g."""

    kind = "adam"

    def __init__(self, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, eps_hat: bool = False) -> None:
        super().__init__(lr=_float("lr", lr), betas=_betas(betas), eps=_float("eps", eps),
                         weight_decay=_float("weight_decay", weight_decay), amsgrad=bool(amsgrad),
                         eps_hat=bool(eps_hat))


class AdamW(Adam):
    """AdamW (torch.optim.AdamW): Adam with decoupled weight decay w *= 1 - lr * weight_decay."""

    kind = "adamw"

    def __init__(self, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, eps_hat: bool = False) -> None:
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, eps_hat=eps_hat)
