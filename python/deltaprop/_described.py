# SPDX-License-Identifier: MIT
"""What optimizers and schedules share: a kind with named hyper-parameters (readable as attributes,
shown by repr, compared by value), and the type conversion of those hyper-parameters (their ranges are
the core's rules, checked there)."""
from __future__ import annotations

from typing import Any, Dict


def to_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


class Described:
    """Hyper-parameters by name: ``obj.lr``, ``repr(obj)``, ``obj == other``, ``hash(obj)``."""

    def __init__(self, **params: Any) -> None:
        self._params: Dict[str, Any] = params

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
        return type(other) is type(self) and isinstance(other, Described) and other._params == self._params

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted((k, str(v)) for k, v in self._params.items()))))
