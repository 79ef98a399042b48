# SPDX-License-Identifier: MIT
"""Lesson 5: watch it learn.

The classifier of `python -m deltaprop`: three interleaved spiral arms in the plane (2400 training and
600 test points), a 2-64-64-3 network with tanh hidden layers and a softmax output,

    z(l) = W(l) a(l−1) + b(l),  a(l) = tanh(z(l)) for l = 1, 2,  a(3) = softmax(z(3)),

and the cross-entropy cost C0 = −Σ_j y_j log a_j(3) (y one-hot), whose output delta is again
δ(3) = a(3) − y; the hidden deltas follow δ(l) = W(l+1)ᵀ δ(l+1) ⊙ (1 − a(l)²). `net.fit` runs
mini-batch gradient descent with momentum (batches of 32, v ← 0.9 v + ∂C/∂w, w ← w − 0.05 v) for 40
epochs, the whole loop in C++; a callback after each epoch records the class the network predicts at
every point of a grid over the plane.

The pictures (PNG files in OUTDIR, default ./watch-it-learn): `regions-epoch-NN.png`, the decision
regions after a few epochs (1, 3, 12 and 40: a straight cut first, the arms later); `loss.png`, the
training loss per epoch; `spirals.png`, all of them in one row: the picture of
`python -m deltaprop --plot FILE` and of docs/images/spirals.png. Drawing needs matplotlib:
pip install 'deltaprop[plot]'.

Run: python 05_watch_it_learn.py [OUTDIR]   (exits non-zero if a claim below fails)
"""
import argparse
import sys
from pathlib import Path

import numpy as np

import deltaprop as dp
from deltaprop import _plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check(claim: bool, what: str) -> None:
    if not claim:
        sys.exit(f"FAILED: {what}")
    print(f"  ok: {what}")


def png_size(path: Path):
    """(width, height) from the PNG header, or None if the file does not start like a PNG."""
    head = path.read_bytes()[:24]
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", nargs="?", default="watch-it-learn", help="where to write the PNG files")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs: expected an integer >= 1, got {args.epochs}")
    try:
        _plot.require_matplotlib()
    except ImportError as e:
        sys.exit(f"lesson 5: {e}")
    print(__doc__.split("\n\n")[0])

    # The data, network and training of python -m deltaprop.
    X, y = dp.datasets.spirals(n_per_class=1000, n_classes=3, noise=0.2, seed=args.seed)
    order = np.random.default_rng(args.seed).permutation(len(y))
    X, y = X[order], y[order]
    n_train = int(0.8 * len(y))
    X_train, y_train, X_test, y_test = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    net = dp.Network([2, 64, 64, 3], activation="tanh", loss="cross_entropy", seed=args.seed)
    print(f"{net}\n{n_train} training and {len(y_test)} test points")

    recorder = _plot.RegionRecorder(X_train, y_train, _plot.snapshot_epochs(args.epochs))

    def after_epoch(epoch, loss):
        recorder(net, epoch + 1)
        if epoch + 1 in recorder.epochs:
            print(f"epoch {epoch + 1:3d}  loss {loss:.4f}  train accuracy {recorder.accuracy[epoch + 1]:.3f}")

    losses = net.fit(X_train, y_train, epochs=args.epochs, batch_size=32, lr=0.05, momentum=0.9, seed=args.seed,
                     callback=after_epoch)
    test_accuracy = float(np.mean(np.argmax(net.predict(X_test), axis=1) == y_test))
    print(f"test accuracy after {args.epochs} epochs: {test_accuracy:.3f}")

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for epoch in recorder.epochs:
        written.append(out / f"regions-epoch-{epoch:02d}.png")
        _plot.save_regions(written[-1], recorder, epoch)
    written.append(out / "loss.png")
    _plot.save_loss(written[-1], losses, recorder.epochs)
    written.append(out / "spirals.png")
    _plot.save_learning(written[-1], recorder, losses)
    for path in written:
        size = png_size(path)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB, {size[0]}x{size[1]} pixels)" if size else
              f"wrote {path}, which is not a PNG file")

    print("\nclaims:")
    check(all(png_size(path) and min(png_size(path)) > 0 for path in written),
          f"the {len(written)} files are PNG images of non-zero size")
    first, last = recorder.epochs[0], recorder.epochs[-1]
    if args.epochs < 10:
        print("  (fewer than 10 epochs: no claims about learning)")
    else:
        check(losses[-1] < losses[0] / 5,
              f"the training loss fell from {losses[0]:.3f} to {losses[-1]:.3f} (by more than 5x)")
        check(recorder.accuracy[last] > recorder.accuracy[first] + 0.2,
              f"the training accuracy rose from {recorder.accuracy[first]:.2f} after epoch {first} "
              f"to {recorder.accuracy[last]:.2f} after epoch {last}")
        check(test_accuracy >= 0.9, f"the test accuracy {test_accuracy:.3f} is at least 0.9")
    print("lesson 5: all claims hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
