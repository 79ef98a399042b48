# SPDX-License-Identifier: MIT
"""Small synthetic data sets, made on the spot (no download)."""
from __future__ import annotations

from typing import Tuple

import numpy as np


def spirals(n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms in the plane: X float64 [n, 2] and class labels y int64 [n]."""
    if n_per_class < 1 or n_classes < 2:
        raise ValueError(f"spirals: need n_per_class >= 1 and n_classes >= 2, got {n_per_class}, {n_classes}")
    rng = np.random.default_rng(seed)
    X = np.empty((n_per_class * n_classes, 2))
    y = np.empty(n_per_class * n_classes, dtype=np.int64)
    for k in range(n_classes):
        r = np.linspace(0.0, 1.0, n_per_class)
        t = np.linspace(k * 4.0, (k + 1) * 4.0, n_per_class) + rng.normal(0.0, noise, n_per_class)
        rows = slice(k * n_per_class, (k + 1) * n_per_class)
        X[rows, 0] = r * np.sin(t)
        X[rows, 1] = r * np.cos(t)
        y[rows] = k
    return X, y


def xor() -> Tuple[np.ndarray, np.ndarray]:
    """The four XOR points: X float64 [4, 2], y float64 [4, 1]."""
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    return X, y
