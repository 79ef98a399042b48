# SPDX-License-Identifier: MIT
"""A small typed user program: `mypy --strict examples/typed_usage.py` checks it against deltaprop's
annotations and the stub of its compiled core (CI runs that). Trains a classifier on spirals with Adam
and a cosine schedule, reads the History, predicts and round-trips the model through bytes."""
from __future__ import annotations

from typing import List

import numpy as np
import numpy.typing as npt

import deltaprop as dp


def accuracy(net: dp.Network, X: npt.ArrayLike, y: npt.NDArray[np.int64]) -> float:
    scores: npt.NDArray[np.floating] = net.predict(X)
    return float(np.mean(scores.argmax(axis=1) == y))


def main() -> int:
    X, y = dp.datasets.spirals(n_per_class=200, n_classes=3, seed=0)
    net = dp.Network([2, 32, 32, 3], activation="tanh", loss="cross_entropy", dtype="float32", seed=0)
    stops: List[int] = []

    def watch(record: dp.EpochRecord) -> bool:
        if record.val_loss is not None and record.val_loss < 0.05:
            stops.append(record.epoch)
            return True
        return False

    hist: dp.History = net.fit(X, y, epochs=60, batch_size=32, optimizer=dp.optim.Adam(lr=3e-3),
                               schedule=dp.schedules.Cosine(t_max=60, warmup=3), validation_split=0.2, seed=0,
                               callbacks=watch)
    best = hist.best_epoch if hist.best_epoch is not None else len(hist) - 1
    losses: List[float] = hist.loss
    print(f"{len(hist)} epochs, loss {losses[0]:.3f} -> {losses[-1]:.3f}; best epoch {best + 1} "
          f"val_loss {hist.val_loss[best]:.4f}; lr at the end {hist.lr[-1]:.2e}")
    clone = dp.Network.from_bytes(net.to_bytes())
    same = bool(np.array_equal(clone.predict(X), net.predict(X)))
    acc = accuracy(net, X.tolist(), y)  # any array-like input
    print(f"training accuracy {acc:.3f}; a copy through bytes predicts the same: {same}")
    return 0 if same and acc > 0.8 else 1


if __name__ == "__main__":
    raise SystemExit(main())
