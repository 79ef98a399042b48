#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmarks of the training features (issue 11): Adam against PyTorch's Adam, and the cost of the
divergence guard and the staged core against an older build.

    python benchmarks/training.py [--threads 2] [--repeats 5] [--quick] [--baseline-python PY]

Rows:
- W1 (784-256-128-10 relu, softmax + cross-entropy, batch 64, float32, one epoch of 60,000 synthetic
  samples): deltaprop fit with Adam(lr=1e-3) against a PyTorch eager loop with torch.optim.Adam on the
  same threads (samples/s, higher is better), and the same with plain SGD for reference.
- W3 (1024-1024-1024-10 relu, batch 256, 40 batches, SGD lr 0.01) and W1 SGD: deltaprop with the guard
  (this build) against the build whose interpreter --baseline-python names (e.g. a venv holding
  deltaprop 0.1.0, which has no guard). The ratio is the guard's (and the restructured core's) cost.
Measurements are interleaved (A B A B ...) and the table shows medians and min-max.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
import numpy as np
import deltaprop as dp
w, threads = sys.argv[1], int(sys.argv[2])
dp.set_num_threads(threads)
rng = np.random.default_rng(1 if w == "W1" else 3)
if w == "W1":
    sizes, n, batch = (784, 256, 128, 10), int(sys.argv[3]), 64
else:
    sizes, n, batch = (1024, 1024, 1024, 10), 40 * 256, 256
X = rng.random((n, sizes[0]), dtype=np.float32)
y = rng.integers(0, sizes[-1], size=n)
net = dp.Network(list(sizes), activation="relu", loss="cross_entropy", seed=0)
lr = 0.05 if w == "W1" else 0.01
net.fit(X[:batch * 4], y[:batch * 4], epochs=1, batch_size=batch, lr=lr)
for line in sys.stdin:
    t = time.perf_counter()
    net.fit(X, y, epochs=1, batch_size=batch, lr=lr, shuffle=(w == "W1"))
    print(json.dumps(n / (time.perf_counter() - t)), flush=True)
"""


class Child:
    """A worker interpreter that times one fit per request (its own process: its own build)."""

    def __init__(self, python, workload, threads, n):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), DELTAPROP_NUM_THREADS=str(threads))
        self.p = subprocess.Popen([python, "-c", CHILD, workload, str(threads), str(n)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)

    def measure(self):
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def adam_rows(threads, repeats, n):
    import numpy as np
    import deltaprop as dp

    dp.set_num_threads(threads)
    rng = np.random.default_rng(1)
    X = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, size=n)
    net = dp.Network([784, 256, 128, 10], activation="relu", loss="cross_entropy", seed=0)

    def ours(opt):
        t = time.perf_counter()
        net.fit(X, y, epochs=1, batch_size=64, optimizer=opt, shuffle=True)
        return n / (time.perf_counter() - t)

    try:
        import torch
    except ImportError:
        torch = None
    peer = None
    if torch is not None:
        torch.set_num_threads(threads)
        model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                    torch.nn.ReLU(), torch.nn.Linear(128, 10))
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        loss_fn = torch.nn.CrossEntropyLoss()

        def peer(kind):
            opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if kind == "adam"
                   else torch.optim.SGD(model.parameters(), lr=0.05))
            g = torch.Generator().manual_seed(0)
            perm = torch.randperm(n, generator=g)
            t = time.perf_counter()
            for s in range(0, n, 64):
                idx = perm[s:s + 64]
                opt.zero_grad(set_to_none=True)
                loss_fn(model(Xt[idx]), yt[idx]).backward()
                opt.step()
            return n / (time.perf_counter() - t)

    rows = []
    for kind, opt in (("Adam", dp.optim.Adam(lr=1e-3)), ("SGD", dp.optim.SGD(lr=0.05))):
        a, b = [], []
        ours(opt)
        if peer:
            peer(kind.lower())
        for _ in range(repeats):
            a.append(ours(opt))
            if peer:
                b.append(peer(kind.lower()))
        rows.append((f"W1 train {kind} samples/s", a, b))
    return rows


def fmt(v):
    return f"{v / 1e3:.1f}k" if v >= 1e3 else f"{v:.1f}"


def cell(xs):
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})" if xs else "n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    ap.add_argument("--baseline-python", help="interpreter of another deltaprop build for the guard rows")
    args = ap.parse_args()
    n = 12_800 if args.quick else 60_000
    import deltaprop as dp

    print(f"deltaprop {dp.__version__}, kernel level {dp.get_kernel_level()}, threads {args.threads}, "
          f"CPU {platform.processor() or platform.machine()}; medians (min–max) of {args.repeats} interleaved runs")
    print(f"{'row':34s} | {'deltaprop':24s} | {'peer':24s} | ratio")
    print("-" * 100)
    for label, a, b in adam_rows(args.threads, args.repeats, n):
        ratio = f"{statistics.median(a) / statistics.median(b):.2f}× vs torch" if b else ""
        print(f"{label:34s} | {cell(a):24s} | {cell(b):24s} | {ratio}")
    if args.baseline_python:
        for w in ("W1", "W3"):
            ours, base = Child(sys.executable, w, args.threads, n), Child(args.baseline_python, w, args.threads, n)
            a, b = [], []
            for _ in range(args.repeats):
                a.append(ours.measure())
                b.append(base.measure())
            ours.close()
            base.close()
            ratio = statistics.median(a) / statistics.median(b)
            print(f"{w + ' SGD guard: this vs baseline':34s} | {cell(a):24s} | {cell(b):24s} | "
                  f"{ratio:.3f}× (guard cost {100 * (1 - ratio):+.1f}%)")


if __name__ == "__main__":
    main()
