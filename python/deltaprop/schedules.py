# SPDX-License-Identifier: MIT
"""Learning-rate schedules, stepped inside the native training loop (``net.fit(..., schedule=...)``).

The rate of each optimizer step is the optimizer's ``lr`` (lr0) scaled as below; k is the number of
units completed in the current ``fit`` call, counted in optimizer steps (``per="step"``) or epochs
(``per="epoch"``):

- ``Constant()``: lr0.
- ``InverseScaling(power=0.5, per="step", scale=1.0)``: lr0 / (1 + scale·k)^power (η_t = η₀ / t^power
  with t = k + 1 when scale is 1; scikit-learn's "invscaling" is ``per="epoch", scale=n_samples``).
- ``StepDecay(step_size, gamma=0.1, per="epoch")``: lr0 · gamma^⌊k / step_size⌋ (torch StepLR).
- ``Exponential(gamma, per="epoch")``: lr0 · gamma^k (torch ExponentialLR).
- ``Cosine(t_max, eta_min=0.0, warmup=0, per="epoch")``: for k < warmup a linear warm-up
  lr0·(k + 1)/warmup; then with c = k − warmup, eta_min + (lr0 − eta_min)(1 + cos(π c / t_max))/2, and
  eta_min once c ≥ t_max (no restart).
- ``ReduceOnPlateau(factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", min_lr=0.0,
  cooldown=0)``: per epoch, watching fit's ``monitor`` (the validation loss with validation data, else
  the training loss): when it has not improved (below best·(1 − threshold), or best − threshold with
  ``threshold_mode="abs"``) for more than ``patience`` epochs, lr = max(lr·factor, min_lr), then
  ``cooldown`` epochs pass before counting again (torch ReduceLROnPlateau, mode "min"). scikit-learn's
  "adaptive" rate is close to ``ReduceOnPlateau(factor=0.2, patience=2, threshold=tol, threshold_mode="abs")``.
"""
from __future__ import annotations

import operator
from typing import Any, Dict

from . import _core

__all__ = ["Schedule", "Constant", "InverseScaling", "StepDecay", "Exponential", "Cosine", "ReduceOnPlateau"]


def _float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}") from None
    if v < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {v}")
    return v


def _per(value: Any) -> str:
    if value not in ("step", "epoch"):
        raise ValueError(f"per: expected 'step' or 'epoch', got {value!r}")
    return str(value)


class Schedule:
    """Base class of the schedules (see the module docstring)."""

    _kind = 0

    def __init__(self, **params: Any) -> None:
        self._params: Dict[str, Any] = params

    def _native(self, lr0: float) -> _core.Schedule:
        s = _core.Schedule(self._kind)
        for k, v in self._params.items():
            if k == "per":
                s.per_step = 1 if v == "step" else 0
            elif k == "threshold_mode":
                s.threshold_abs = 1 if v == "abs" else 0
            else:
                setattr(s, k, v)
        _core.check_schedule(s, lr0)
        return s

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
        return hash((type(self).__name__, tuple(sorted(self._params.items()))))


class Constant(Schedule):
    _kind = 0

    def __init__(self) -> None:
        super().__init__()


class InverseScaling(Schedule):
    _kind = 1

    def __init__(self, power: float = 0.5, per: str = "step", scale: float = 1.0) -> None:
        super().__init__(power=_float("power", power), per=_per(per), scale=_float("scale", scale))
        self._native(1.0)


class StepDecay(Schedule):
    _kind = 2

    def __init__(self, step_size: int, gamma: float = 0.1, per: str = "epoch") -> None:
        super().__init__(step_size=_int("step_size", step_size), gamma=_float("gamma", gamma), per=_per(per))
        self._native(1.0)


class Exponential(Schedule):
    _kind = 3

    def __init__(self, gamma: float, per: str = "epoch") -> None:
        super().__init__(gamma=_float("gamma", gamma), per=_per(per))
        self._native(1.0)


class Cosine(Schedule):
    _kind = 4

    def __init__(self, t_max: int, eta_min: float = 0.0, warmup: int = 0, per: str = "epoch") -> None:
        super().__init__(t_max=_int("t_max", t_max), eta_min=_float("eta_min", eta_min),
                         warmup=_int("warmup", warmup), per=_per(per))
        self._native(max(1.0, self._params["eta_min"]))


class ReduceOnPlateau(Schedule):
    _kind = 5

    def __init__(self, factor: float = 0.1, patience: int = 10, threshold: float = 1e-4,
                 threshold_mode: str = "rel", min_lr: float = 0.0, cooldown: int = 0) -> None:
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode: expected 'rel' or 'abs', got {threshold_mode!r}")
        super().__init__(factor=_float("factor", factor), patience=_int("patience", patience),
                         threshold=_float("threshold", threshold), threshold_mode=threshold_mode,
                         min_lr=_float("min_lr", min_lr), cooldown=_int("cooldown", cooldown))
        self._native(1.0)
