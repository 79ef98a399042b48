# SPDX-License-Identifier: MIT
"""Pictures of a classifier learning in the plane: decision regions at a few epochs and the loss curve.

Used by `python -m deltaprop --plot FILE` and by examples/learn/05_watch_it_learn.py. Recording the
regions needs numpy only; drawing needs matplotlib (the optional extra `deltaprop[plot]`), imported
inside the drawing functions, never by `import deltaprop`. Figures are drawn on matplotlib's Agg canvas
directly (no pyplot, no global backend state) and written as PNG.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List, Sequence, Tuple, Union

import numpy as np

if TYPE_CHECKING:
    from ._network import Network

_Path = Union[str, "os.PathLike[str]"]
_RGB = Tuple[float, float, float]

INSTALL_HINT = "pip install 'deltaprop[plot]'"


def require_matplotlib() -> None:
    """Raise ImportError with the install command if matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError(f"drawing pictures needs matplotlib, which is not installed ({e}); {INSTALL_HINT}") from None


def snapshot_epochs(epochs: int, count: int = 4) -> List[int]:
    """About `count` epochs (1-based) from the first to the last, spaced evenly on a log scale."""
    if epochs < 1:
        raise ValueError(f"epochs: expected an integer >= 1, got {epochs}")
    picks = np.unique(np.round(np.geomspace(1, epochs, count)).astype(int))
    return [int(e) for e in picks]


class RegionRecorder:
    """Records the predicted class over a grid covering the points X [n, 2], at chosen epochs.

    Call it as `recorder(net, epoch)` with the 1-based epoch after training it (from a `fit` callback,
    whose epoch is 0-based: `recorder(net, epoch + 1)`); epochs not in `epochs` are ignored.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, epochs: Sequence[int], resolution: int = 200,
                 margin: float = 0.1) -> None:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != 2:
            raise ValueError(f"X: expected points in the plane, shape (n, 2), got {X.shape}")
        self.X, self.y = X, np.asarray(y)
        self.epochs = sorted(set(int(e) for e in epochs))
        lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
        self.extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
        gx, gy = np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
        self._grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
        self._shape = (resolution, resolution)
        self.regions: Dict[int, np.ndarray] = {}    # epoch -> class index per grid cell, row = y
        self.accuracy: Dict[int, float] = {}        # epoch -> accuracy on (X, y)

    def __call__(self, net: "Network", epoch: int) -> None:
        if epoch not in self.epochs:
            return
        self.regions[epoch] = np.argmax(net.predict(self._grid), axis=1).reshape(self._shape)
        self.accuracy[epoch] = float(np.mean(np.argmax(net.predict(self.X), axis=1) == self.y))


def _colours(n_classes: int) -> Tuple[List[_RGB], List[_RGB]]:
    """(light region colours, dark point colours), one per class."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    dark = [to_rgb(c) for c in colormaps["tab10"].colors[:n_classes]]  # type: ignore[attr-defined]  # a ListedColormap
    light: List[_RGB] = [(0.6 + 0.4 * r, 0.6 + 0.4 * g, 0.6 + 0.4 * b) for r, g, b in dark]
    return light, dark


def _draw_regions(ax: Any, recorder: RegionRecorder, epoch: int) -> None:
    from matplotlib.colors import ListedColormap

    n_classes = int(max(recorder.y.max(), max(r.max() for r in recorder.regions.values()))) + 1
    light, dark = _colours(n_classes)
    ax.imshow(recorder.regions[epoch], origin="lower", extent=recorder.extent, cmap=ListedColormap(light),
              vmin=-0.5, vmax=n_classes - 0.5, interpolation="nearest", aspect="equal")
    ax.scatter(recorder.X[:, 0], recorder.X[:, 1], c=[dark[k] for k in recorder.y], s=2, linewidths=0)
    ax.set_xlim(recorder.extent[:2])
    ax.set_ylim(recorder.extent[2:])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"after epoch {epoch}: accuracy {recorder.accuracy[epoch]:.2f}", fontsize=10)


def _draw_loss(ax: Any, losses: Sequence[float], marked: Sequence[int] = ()) -> None:
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    epochs = np.arange(1, len(losses) + 1)
    ax.plot(epochs, losses, color="black", linewidth=1.2)
    marked = [e for e in marked if 1 <= e <= len(losses)]
    ax.plot(marked, [losses[e - 1] for e in marked], "o", color="tab:red", markersize=4)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("epoch")
    ax.set_title("training loss (cross-entropy)", fontsize=10)
    ax.grid(True, which="both", linewidth=0.3)


def _save(fig: Any, path: _Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", metadata={"Software": None})


def _figure(width: float, height: float) -> Any:
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=80, layout="constrained")


def save_regions(path: _Path, recorder: RegionRecorder, epoch: int) -> None:
    """One PNG: the decision regions at `epoch` with the points."""
    fig = _figure(3.6, 3.6)
    _draw_regions(fig.subplots(), recorder, epoch)
    _save(fig, path)


def save_loss(path: _Path, losses: Sequence[float], marked: Sequence[int] = ()) -> None:
    """One PNG: the loss of each epoch, with the epochs in `marked` circled."""
    fig = _figure(4.5, 3.4)
    _draw_loss(fig.subplots(), losses, marked)
    _save(fig, path)


def save_learning(path: _Path, recorder: RegionRecorder, losses: Sequence[float]) -> None:
    """One PNG, one row: the decision regions at each recorded epoch, then the loss curve."""
    epochs = [e for e in recorder.epochs if e in recorder.regions]
    fig = _figure(3.0 * (len(epochs) + 1.3), 3.2)
    axes = fig.subplots(1, len(epochs) + 1, width_ratios=[1.0] * len(epochs) + [1.3])
    for ax, epoch in zip(axes, epochs):
        _draw_regions(ax, recorder, epoch)
    _draw_loss(axes[-1], losses, epochs)
    _save(fig, path)
