# SPDX-License-Identifier: MIT
"""Exceptions of deltaprop."""
from __future__ import annotations

from typing import Any, Optional


class DivergenceError(FloatingPointError):
    """Training produced NaN or infinity; the network was put back as it was before the failing step.

    Attributes: ``epoch`` and ``batch`` (0-based; 0 outside ``fit``), ``phase`` ("forward", "loss",
    "backward" or "update"), ``layer`` (0-based dense layer) and ``unit`` (first offending unit of that
    layer), and ``history`` (the :class:`deltaprop.History` of the completed epochs, for ``fit``).
    """

    def __init__(self, message: str, *, epoch: int = 0, batch: int = 0, phase: str = "update", layer: int = 0,
                 unit: int = 0) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.phase = phase
        self.layer = layer
        self.unit = unit
        self.history: Optional[Any] = None
