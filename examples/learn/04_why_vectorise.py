# SPDX-License-Identifier: MIT
"""Lesson 4: why vectorise.

Lesson 3 ran the delta recursion one sample at a time: m small matrix-vector products per layer and
direction, each paying the interpreter's and numpy's overhead. Stack the m samples as the rows of a
matrix A(0) = X [m, n_in] and the same mathematics becomes a few large matrix products per layer
(batches are rows, so z(l) = W(l) a(l−1) + b(l) becomes Z(l) = A(l−1) W(l)ᵀ + b(l)):

    Z(l) = A(l−1) W(l)ᵀ + b(l),   A(l) = σ(Z(l))                      [m, n_out]
    Δ(L) = A(L) − Y                                                     (row i is δ(L) of sample i)
    Δ(l) = (Δ(l+1) W(l+1)) ⊙ A(l) ⊙ (1 − A(l))                           (row i is δ(l) of sample i)
    D(l) = Δ(l)ᵀ A(l−1) / m + (λ/m) W(l),   Db(l) = column sums of Δ(l) / m

Δ(l)ᵀ A(l−1) = Σ_i δ_i(l) a_i(l−1)ᵀ is exactly lesson 3's accumulator, summed by one matrix product.
The lesson runs three versions on the same network and data and prints their times: lesson 3's loop,
the batch products above in numpy, and `net.backward(X, Y, l2=λ)` (the same products in deltaprop's
C++ kernels). All three must give the same cost and gradients; the times are only printed (they
depend on the machine; nothing is asserted about them).

Run: python 04_why_vectorise.py [--samples M]   (exits non-zero if the three results differ)
"""
import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

import deltaprop as dp

SIZES = [400, 25, 25, 10]   # 20x20-pixel images, two hidden layers of 25, 10 classes
LAM = 1.0


def check(claim: bool, what: str) -> None:
    if not claim:
        sys.exit(f"FAILED: {what}")
    print(f"  ok: {what}")


def lesson_3():
    """Lesson 3's module (its file name starts with a digit, so it is loaded by path)."""
    path = Path(__file__).with_name("03_delta_recursion.py")
    spec = importlib.util.spec_from_file_location("lesson_03", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def backprop_batch(weights, X, Y, lam):
    """The same cost and gradients as lesson 3's loop, with all m samples at once (rows)."""
    m = X.shape[0]
    A = [X]
    for W, b in weights:
        A.append(sigmoid(A[-1] @ W.T + b))                   # Z(l) = A(l-1) W(l)ᵀ + b(l)
    cost = -np.sum(Y * np.log(A[-1]) + (1.0 - Y) * np.log(1.0 - A[-1])) / m
    cost += lam / (2.0 * m) * sum(np.sum(W * W) for W, _ in weights)
    Delta = A[-1] - Y                                        # Δ(L), one row per sample
    grads = [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):                # layer l+1 in the 1-based notation
        W = weights[l][0]
        grads[l] = (Delta.T @ A[l] / m + (lam / m) * W, Delta.sum(axis=0) / m)
        if l > 0:
            Delta = (Delta @ W) * A[l] * (1.0 - A[l])        # Δ(l) = (Δ(l+1) W(l+1)) ⊙ A(l) ⊙ (1 - A(l))
    return cost, grads


def timed(fn, repeats):
    """(best time of `repeats` calls in seconds, the last result)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=5000, help="m, the number of samples (default 5000)")
    args = p.parse_args(argv)
    if args.samples < 1:
        p.error(f"--samples: expected an integer >= 1, got {args.samples}")
    m = args.samples
    print(__doc__.split("\n\n")[0])

    rng = np.random.default_rng(4)
    X = rng.uniform(size=(m, SIZES[0]))
    Y = np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], m)]    # one-hot rows
    net = dp.Network(SIZES, activation="sigmoid", loss="binary_cross_entropy", dtype="float64", seed=4)
    weights = [(W.copy(), b.copy()) for W, b in net.weights]
    print(f"{net}\nm = {m} samples, λ = {LAM}, deltaprop kernels {dp.get_kernel_level()}, "
          f"{dp.get_num_threads()} threads\n")

    loop = lesson_3().backprop_loop
    t_loop, (cost_loop, grads_loop) = timed(lambda: loop(weights, X, Y, LAM), 1)
    t_batch, (cost_batch, grads_batch) = timed(lambda: backprop_batch(weights, X, Y, LAM), 3)
    t_net, cost_net = timed(lambda: net.backward(X, Y, l2=LAM), 5)
    grads_net = [(dW.copy(), db.copy()) for dW, db in net.gradients]

    print(f"{'version':44} {'time':>10} {'speed-up':>9}   cost C")
    for name, t, c in (("per-sample loop (lesson 3, numpy)", t_loop, cost_loop),
                       ("batch matrix products (numpy)", t_batch, cost_batch),
                       ("net.backward(X, Y, l2=λ) (deltaprop)", t_net, cost_net)):
        print(f"{name:44} {t * 1e3:8.2f} ms {t_loop / t:8.1f}×   {c:.12f}")
    print("(times: the best of 1, 3 and 5 runs; they vary with the machine and its load)\n")

    check(abs(cost_batch - cost_loop) <= 1e-12 * abs(cost_loop) and abs(cost_net - cost_loop) <= 1e-12 * abs(cost_loop),
          "the three versions give the same cost")
    for l in range(len(SIZES) - 1):
        same = all(np.allclose(g[l][i], grads_loop[l][i], rtol=1e-10, atol=1e-14)
                   for g in (grads_batch, grads_net) for i in (0, 1))
        check(same, f"and the same gradients D({l + 1}), Db({l + 1})")
    print("lesson 4: all claims hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
