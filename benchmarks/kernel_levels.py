# SPDX-License-Identifier: MIT
"""Every kernel level this CPU has, side by side (about a minute): GEMM GFLOP/s on the layer shapes of W1
and W3 (float32) and W2 (float64) (forward x.W^T, dX = delta.W, dW = delta^T.x), W1, W2 and W3 training,
batch-1 and batch-1024 prediction. Prints the CPU, the build "auto" picks for each kernel family, and
whether auto (measured as a column of its own) is the fastest on each row.

    python benchmarks/kernel_levels.py [--threads N] [--rounds R] [--budget SECONDS] [--levels avx2,avx512]
                                       [--only TEXT]

Levels are switched inside one process and interleaved (A B C C B A ...), so that a shared machine's
drift hits them alike; cells are medians of R rounds. With one thread (the default) the clock is this
thread's CPU time, which leaves out the time other processes hold the core (not their effect on the
caches); with more threads it is wall time. The GEMM rows time the network's own products
through the Python API: forward = predict of one identity layer; dW = backward_from_output_grad of that
layer (dW = delta^T x plus the column sums of db); dX = the same for two layers minus the dW rows it also
computes (so dX is the noisiest row).
"""
import argparse
import os
import platform
import sys
import time

import numpy as np

import deltaprop as dp

LEVELS = ("portable", "avx2", "avx512")


def cpu_line():
    name, flags = platform.processor() or "?", set()
    family = model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key, val = key.strip(), val.strip()
                if key == "model name":
                    name = val
                elif key == "cpu family":
                    family = val
                elif key == "model":
                    model = val
                elif key == "flags":
                    flags = set(val.split())
                    break
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f") if f in flags]
    return f"{name} (family {family} model {model}), {' '.join(isa) or 'no avx2'}, {os.cpu_count()} CPUs"


def levels_here():
    have = []
    for level in LEVELS:
        try:
            dp.set_kernel_level(level)
        except (ValueError, RuntimeError):
            continue
        have.append(level)
    dp.set_kernel_level("auto")
    return have


CLOCK = time.perf_counter


def per_call(fn, budget):
    """Seconds per call of fn: calls repeated until `budget` seconds have passed (at least 2)."""
    fn()
    n, t0 = 0, CLOCK()
    while True:
        fn()
        n += 1
        t = CLOCK() - t0
        if n >= 2 and t >= budget:
            return t / n


def layer(sizes, seed=0, dtype="float32"):
    return dp.Network(list(sizes), activation="identity", output="identity", loss="mse", dtype=dtype,
                      seed=seed)


def gemm_rows(name, batch, n_in, n_out, budget, dtype="float32", dx=True):
    """(label, flops, fn) for the forward, dX and dW products of an n_in -> n_out layer at `batch`."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, n_in)).astype(dtype)
    one = layer([n_in, n_out], dtype=dtype)
    g = rng.standard_normal((batch, n_out)).astype(dtype)
    one.forward(x)
    two = layer([4, n_in, n_out], dtype=dtype)  # the second layer's backward computes dX = delta.W
    x4 = rng.standard_normal((batch, 4)).astype(dtype)
    two.forward(x4)
    small = layer([4, n_in], dtype=dtype)
    small.forward(x4)
    g_small = rng.standard_normal((batch, n_in)).astype(dtype)
    flops = 2.0 * batch * n_in * n_out

    def fwd():
        one.predict(x)

    def dw():
        one.backward_from_output_grad(g)

    def both():
        two.backward_from_output_grad(g)

    def dw_small():
        small.backward_from_output_grad(g_small)

    rows = [
        (f"{name} forward x.W^T {batch}x{n_out}x{n_in}", flops, [fwd]),
        (f"{name} dX delta.W {batch}x{n_in}x{n_out}", flops, [both, dw, dw_small]),  # both - dw - dw_small
        (f"{name} dW delta^T.x {n_out}x{n_in} K={batch}", flops, [dw]),
    ]
    return rows if dx else [rows[0], rows[2]]


def workloads(budget):
    rng = np.random.default_rng(1)
    rows = []
    # W1 training: 784-256-128-10 relu, softmax + cross-entropy, batch 64, plain SGD, no shuffle
    X1 = rng.standard_normal((64 * 40, 784), dtype=np.float32)
    y1 = rng.integers(0, 10, len(X1))
    w1 = dp.Network([784, 256, 128, 10], activation="relu", loss="cross_entropy", dtype="float32", seed=0)

    def train_w1():
        w1.fit(X1, y1, epochs=1, batch_size=64, lr=0.01, shuffle=False)

    rows.append(("W1 train samples/s (batch 64, no shuffle)", len(X1), [train_w1]))
    # W3 training: 1024-1024-1024-10 relu, batch 256
    X3 = rng.standard_normal((256, 1024), dtype=np.float32)
    y3 = rng.integers(0, 10, len(X3))
    w3 = dp.Network([1024, 1024, 1024, 10], activation="relu", loss="cross_entropy", dtype="float32", seed=0)

    def train_w3():
        w3.fit(X3, y3, epochs=1, batch_size=256, lr=0.001, shuffle=False)

    rows.append(("W3 train samples/s (batch 256)", len(X3), [train_w3]))
    # W2 training: 400-25-10 sigmoid, binary cross-entropy, L2, full batch of 5000, float64
    X2 = rng.standard_normal((5000, 400))
    Y2 = np.eye(10)[rng.integers(0, 10, len(X2))]
    w2 = dp.Network([400, 25, 10], activation="sigmoid", loss="binary_cross_entropy", dtype="float64", seed=0)

    def train_w2():
        w2.fit(X2, Y2, epochs=1, batch_size=None, lr=1.0, l2=1.0, shuffle=False)

    rows.append(("W2 train iterations/s (float64, full batch)", 1, [train_w2]))
    x1 = X1[:1].copy()
    xb = X1[:1024].copy() if len(X1) >= 1024 else np.resize(X1, (1024, 784))

    def predict_1():
        w1.predict(x1)

    def predict_1024():
        w1.predict(xb)

    rows.append(("W1 predict batch 1 latency (us)", None, [predict_1]))
    rows.append(("W1 predict batch 1024 samples/s", 1024, [predict_1024]))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="deltaprop threads (0: the default count)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.04, help="seconds per measurement")
    ap.add_argument("--levels", default=None, help="comma-separated subset of the levels (default: all)")
    ap.add_argument("--only", default=None, help="only the rows whose label contains this text")
    args = ap.parse_args(argv)
    global CLOCK
    dp.set_num_threads(args.threads)
    if dp.get_num_threads() == 1:
        CLOCK = time.thread_time
    have = levels_here()
    if args.levels:
        have = [lv for lv in have if lv in args.levels.split(",")]
    dp.set_kernel_level("auto")
    families = dp.get_kernel_levels()
    env = os.environ.get("DELTAPROP_KERNEL")
    print(f"CPU: {cpu_line()}")
    clock = "thread CPU time" if CLOCK is time.thread_time else "wall time"
    print(f"deltaprop {dp.__version__}, threads {dp.get_num_threads()} ({clock}), levels {', '.join(have)}; "
          "auto picks " + ", ".join(f"{k} {v}" for k, v in families.items()) +
          (f" (DELTAPROP_KERNEL={env})" if env else ""))
    rows = []
    for name, batch, n_in, n_out in (("W1 L1", 64, 784, 256), ("W1 L2", 64, 256, 128),
                                     ("W3", 256, 1024, 1024)):
        rows += gemm_rows(name, batch, n_in, n_out, args.budget)
    rows += gemm_rows("W2 L1 f64", 5000, 400, 25, args.budget, dtype="float64", dx=False)  # a first layer: no dX
    rows += workloads(args.budget)
    if args.only:
        rows = [r for r in rows if args.only in r[0]]
    columns = have + ["auto"]  # auto is measured, not assumed: its families may run different levels
    samples = {(r[0], lv): [] for r in rows for lv in columns}
    t_start = time.perf_counter()
    for rnd in range(args.rounds):
        order = columns if rnd % 2 == 0 else columns[::-1]
        for label, _, fns in rows:
            for lv in order:
                dp.set_kernel_level(lv)
                samples[(label, lv)].append([per_call(f, args.budget) for f in fns])
    dp.set_kernel_level("auto")

    def value(label, amount, ts):
        t = ts[0] - sum(ts[1:])
        if amount is None:
            return t * 1e6, False  # latency, lower is better
        if "samples/s" in label or "iterations/s" in label:
            return amount / t, True
        return amount / t / 1e9, True  # GFLOP/s

    print(f"medians of {args.rounds} interleaved rounds ({time.perf_counter() - t_start:.0f} s); GEMM rows "
          "in GFLOP/s")
    head = f"{'':46}" + "".join(f"{lv:>12}" for lv in columns) + "   auto is fastest?"
    print(head)
    n_ok = 0
    for label, amount, _ in rows:
        meds = {}
        for lv in columns:
            vals = sorted(value(label, amount, ts)[0] for ts in samples[(label, lv)])
            meds[lv] = vals[len(vals) // 2]
        higher = value(label, amount, samples[(label, have[0])][0])[1]
        forced = {lv: meds[lv] for lv in have}
        best = (max if higher else min)(forced, key=forced.get)
        ratio = meds["auto"] / meds[best] if higher else meds[best] / meds["auto"]
        ok = ratio >= 0.97
        n_ok += ok
        verdict = "yes" if ratio >= 1.0 else f"{'within 3%' if ok else 'NO'}: {best} ({ratio:.2f})"
        print(f"{label:46}" + "".join(f"{meds[lv]:12.4g}" for lv in columns) + f"   {verdict}")
    print(f"auto is the fastest level or within 3% of it on {n_ok} of {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
