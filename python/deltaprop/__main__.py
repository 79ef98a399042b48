# SPDX-License-Identifier: MIT
"""python -m deltaprop: train a classifier on interleaved spirals and report its accuracy.

Also: --plot FILE draws its decision regions at a few epochs and its loss curve into a PNG file (needs
matplotlib: pip install 'deltaprop[plot]'); --cmakedir / --includedir print where the C/C++ package is
installed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

import numpy as np


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deltaprop", description=__doc__.splitlines()[0])
    p.add_argument("--cmakedir", action="store_true", help="print the CMake package directory and exit")
    p.add_argument("--includedir", action="store_true", help="print the C/C++ include directory and exit")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="kernel threads (0: all the process may use)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--plot", metavar="FILE", help="write the decision regions at a few epochs and the loss "
                   "curve to FILE (PNG; needs matplotlib)")
    args = p.parse_args(argv)

    import deltaprop as dp

    if args.cmakedir:
        print(dp.get_cmake_dir())
        return 0
    if args.includedir:
        print(dp.get_include())
        return 0
    if args.version:
        print(dp.__version__)
        return 0
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    recorder = None
    if args.plot is not None:
        from . import _plot

        folder = os.path.dirname(os.path.abspath(args.plot))
        if not os.path.isdir(folder):
            p.error(f"--plot: expected a file in an existing directory, got {args.plot!r} ({folder} does not exist)")
        try:
            _plot.require_matplotlib()
        except ImportError as e:
            p.error(f"--plot: {e}")

    dp.set_num_threads(args.threads)
    X, y = dp.datasets.spirals(n_per_class=1000, n_classes=3, noise=0.2, seed=args.seed)
    order = np.random.default_rng(args.seed).permutation(len(y))
    X, y = X[order], y[order]
    n_train = int(0.8 * len(y))
    X_train, y_train, X_test, y_test = X[:n_train], y[:n_train], X[n_train:], y[n_train:]

    net = dp.Network([2, 64, 64, 3], activation="tanh", loss="cross_entropy", dtype=args.dtype, seed=args.seed)
    print(f"deltaprop {dp.__version__}: {net}")
    print(f"data: 3 interleaved spirals, {n_train} training and {len(y_test)} test points; "
          f"kernels {dp.get_kernel_level()}, {dp.get_num_threads()} threads")

    def accuracy(Xs: np.ndarray, ys: np.ndarray) -> float:
        return float(np.mean(np.argmax(net.predict(Xs), axis=1) == ys))

    if args.plot is not None:
        recorder = _plot.RegionRecorder(X_train, y_train, _plot.snapshot_epochs(args.epochs))

    start = time.perf_counter()

    def report(epoch: int, loss: float) -> None:
        if recorder is not None:
            recorder(net, epoch + 1)
        print(f"epoch {epoch + 1:3d}/{args.epochs}  loss {loss:.4f}  train accuracy {accuracy(X_train, y_train):.3f}  "
              f"({time.perf_counter() - start:.2f} s)", flush=True)

    losses = net.fit(X_train, y_train, epochs=args.epochs, batch_size=32, lr=0.05, momentum=0.9, seed=args.seed,
                     callback=report)
    elapsed = time.perf_counter() - start
    acc = accuracy(X_test, y_test)
    print(f"final test accuracy: {acc:.3f} after {args.epochs} epochs in {elapsed:.2f} s")
    if recorder is not None:
        _plot.save_learning(args.plot, recorder, losses)
        print(f"wrote {args.plot}: decision regions at epochs {', '.join(map(str, recorder.epochs))} and the loss curve")
    return 0 if acc >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
