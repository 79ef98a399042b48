# SPDX-License-Identifier: MIT
"""Lesson 2: one weight by the chain rule.

A 3-2-2 network, sigmoid in both layers, with the mse cost of one sample C0 = Σ_j (a_j(2) − y_j)².
Layer l computes z(l) = W(l) a(l−1) + b(l) and a(l) = σ(z(l)), with a(0) = x and σ'(z) = σ(z)(1 − σ(z)).
W(l)[j, k] = w_jk(l) joins node k of layer l−1 to node j of layer l (nodes numbered from 1 below,
from 0 in numpy).

A last-layer weight reaches the cost along one path, w_12(2) → z_1(2) → a_1(2) → C0, so the chain rule
multiplies three factors:

    ∂C0/∂w_12(2) = ∂C0/∂a_1(2) · ∂a_1(2)/∂z_1(2) · ∂z_1(2)/∂w_12(2) = 2(a_1(2) − y_1) · σ'(z_1(2)) · a_2(1).

A first-layer weight w_23(1) changes a_2(1), which feeds every node of layer 2, so its derivative sums
over those paths:

    ∂C0/∂w_23(1) = Σ_i 2(a_i(2) − y_i) σ'(z_i(2)) w_i2(2) · σ'(z_2(1)) · x_3.

The factors 2(a_i(2) − y_i) σ'(z_i(2)) are the output delta δ(2) = ∂C0/∂a(2) ⊙ σ'(z(2)); the sum is
δ(1) = W(2)ᵀ δ(2) ⊙ σ'(z(1)): the delta recursion, met here one weight at a time (lesson 3 does the
whole matrices). Both derivatives are computed by hand from `net.z` and `net.a`, then compared with
`net.gradients` (backpropagation) and with a central difference (C0(w + h) − C0(w − h)) / 2h.

The cost of a batch of n samples is the mean C = (1/n) Σ_i C0(x_i), so its gradient is the mean of
the per-sample gradients: the lesson runs backward on each sample alone, averages, and compares with
one `net.backward` on the whole batch.

Run: python 02_chain_rule_one_weight.py   (exits non-zero if a claim below fails)
"""
import sys

import numpy as np

import deltaprop as dp


def check(claim: bool, what: str) -> None:
    if not claim:
        sys.exit(f"FAILED: {what}")
    print(f"  ok: {what}")


def sigmoid_prime(z):
    s = 1.0 / (1.0 + np.exp(-z))
    return s * (1.0 - s)


def rel_err(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def central_difference(net, layer: int, j: int, k: int, x, y, h: float = 1e-6) -> float:
    W = net.weights[layer][0]
    old = W[j, k]
    W[j, k] = old + h
    up = net.loss(x, y)
    W[j, k] = old - h
    down = net.loss(x, y)
    W[j, k] = old
    return (up - down) / (2.0 * h)


def main() -> int:
    print(__doc__.split("\n\n")[0])
    net = dp.Network([3, 2, 2], activation="sigmoid", output="sigmoid", loss="mse", dtype="float64", seed=7)
    x = np.array([[0.5, -1.0, 2.0]])
    y = np.array([[1.0, 0.0]])
    C0 = net.backward(x, y)                      # forward, cost and backpropagation for this one sample
    z1, z2 = (z[0].copy() for z in net.z)        # copies: the views change with the next forward/backward
    a1, a2 = (a[0].copy() for a in net.a)
    W1, W2 = (W.copy() for W, _ in net.weights)
    dW1, dW2 = (dW.copy() for dW, _ in net.gradients)
    deltas = [d[0].copy() for d in net.deltas]
    np.set_printoptions(precision=6, suppress=True)
    print(f"x = {x[0]}, y = {y[0]}")
    print(f"W(1) =\n{W1}\nW(2) =\n{W2}")
    print(f"z(1) = {z1}, a(1) = {a1}\nz(2) = {z2}, a(2) = {a2}")
    print(f"C0 = Σ_j (a_j(2) - y_j)^2 = {C0:.12f}")

    print("\nlast layer, w_12(2) (W(2)[0, 1] in numpy):")
    factors = (2.0 * (a2[0] - y[0, 0]), sigmoid_prime(z2[0]), a1[1])
    by_hand = factors[0] * factors[1] * factors[2]
    numeric = central_difference(net, 1, 0, 1, x, y)
    print(f"  2(a_1(2) - y_1) = {factors[0]:.12f}\n  σ'(z_1(2))      = {factors[1]:.12f}\n"
          f"  a_2(1)          = {factors[2]:.12f}")
    print(f"  product (by hand)            = {by_hand:.15f}\n  net.gradients[1][0][0, 1]    = {dW2[0, 1]:.15f}"
          f"  (relative difference {rel_err(by_hand, dW2[0, 1]):.1e})\n"
          f"  central difference, h = 1e-6 = {numeric:.15f}  (relative difference {rel_err(by_hand, numeric):.1e})")
    check(rel_err(by_hand, dW2[0, 1]) < 1e-12, "the chain-rule product equals backpropagation's dW(2)[0, 1]")
    check(rel_err(by_hand, numeric) < 1e-7, "and the central difference (relative error < 1e-7)")
    check(abs(by_hand) > 1e-3, "the derivative is not trivially zero")

    print("\nfirst layer, w_23(1) (W(1)[1, 2] in numpy): the paths through both nodes of layer 2")
    j, k = 1, 2
    paths = [2.0 * (a2[i] - y[0, i]) * sigmoid_prime(z2[i]) * W2[i, j] for i in range(2)]
    for i, p in enumerate(paths):
        print(f"  through node {i + 1} of layer 2: 2(a_{i + 1}(2) - y_{i + 1}) σ'(z_{i + 1}(2)) w_{i + 1}2(2) = {p:.12f}")
    by_hand = sum(paths) * sigmoid_prime(z1[j]) * x[0, k]
    numeric = central_difference(net, 0, j, k, x, y)
    print(f"  (sum of paths) · σ'(z_2(1)) · x_3 = {sum(paths):.12f} · {sigmoid_prime(z1[j]):.12f} · {x[0, k]:g}")
    print(f"  by hand                      = {by_hand:.15f}\n  net.gradients[0][0][1, 2]    = {dW1[j, k]:.15f}"
          f"  (relative difference {rel_err(by_hand, dW1[j, k]):.1e})\n"
          f"  central difference, h = 1e-6 = {numeric:.15f}  (relative difference {rel_err(by_hand, numeric):.1e})")
    check(rel_err(by_hand, dW1[j, k]) < 1e-12, "the sum over paths equals backpropagation's dW(1)[1, 2]")
    check(rel_err(by_hand, numeric) < 1e-7, "and the central difference (relative error < 1e-7)")
    check(abs(by_hand) > 1e-4, "the derivative is not trivially zero")

    print("\nall first-layer weights at once, as an outer product δ(1) a(0)ᵀ:")
    delta2 = 2.0 * (a2 - y[0]) * sigmoid_prime(z2)
    delta1 = (W2.T @ delta2) * sigmoid_prime(z1)
    print(f"  δ(2) = {delta2}, δ(1) = {delta1}\n  δ(1) a(0)ᵀ =\n{np.outer(delta1, x[0])}")
    check(np.allclose(np.outer(delta1, x[0]), dW1, rtol=1e-12, atol=1e-15), "δ(1) a(0)ᵀ equals net.gradients[0][0]")
    check(np.allclose(delta1, deltas[0], rtol=1e-12, atol=1e-15) and
          np.allclose(delta2, deltas[1], rtol=1e-12, atol=1e-15), "δ(1), δ(2) equal net.deltas")

    n = 5
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 3))
    Y = rng.uniform(size=(n, 2))
    print(f"\nthe batch gradient is the mean of the per-sample gradients (n = {n} samples):")
    per_sample, w12 = [], []
    for i in range(n):
        net.backward(X[i:i + 1], Y[i:i + 1])
        per_sample.append(net.grad.copy())       # all parameters, flat: W(1), b(1), W(2), b(2)
        w12.append(float(net.gradients[1][0][0, 1]))
        print(f"  sample {i}: dC0/dw_12(2)  = {w12[-1]: .12f}")
    mean = np.mean(per_sample, axis=0)
    C = net.backward(X, Y)
    print(f"  mean of the {n}           = {np.mean(w12): .12f}"
          f"\n  net.backward(X, Y)      = {net.gradients[1][0][0, 1]: .12f}  (batch cost C = {C:.12f})")
    check(np.allclose(mean, net.grad, rtol=1e-12, atol=1e-15),
          "for every parameter, the mean of the per-sample gradients equals the batch gradient")
    print("lesson 2: all claims hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
