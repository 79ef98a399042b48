# SPDX-License-Identifier: MIT
"""Lesson 3: the delta recursion with accumulators.

A sigmoid network with L = 3 layers of weights (sizes 4-6-5-3; counting the input as a layer of nodes,
as some courses do, this is a 4-layer network), the binary cross-entropy cost over m samples and an L2
penalty λ on the weights:

    C = −(1/m) Σ_i Σ_j [ y_ij log a_j(L)(x_i) + (1 − y_ij) log(1 − a_j(L)(x_i)) ] + (λ/2m) Σ_l Σ W(l)²

(the biases are not penalised). Backpropagation, one sample at a time, accumulating:

    set Δ(l) = 0, Δb(l) = 0 for every layer
    for each sample (x, y):
        a(0) = x;  z(l) = W(l) a(l−1) + b(l),  a(l) = σ(z(l))            for l = 1..L   (forward)
        δ(L) = a(L) − y                                                     (sigmoid + cross-entropy)
        δ(l) = W(l+1)ᵀ δ(l+1) ⊙ g'(z(l)) = W(l+1)ᵀ δ(l+1) ⊙ a(l) ⊙ (1 − a(l))   for l = L−1..1
        Δ(l) += δ(l) a(l−1)ᵀ,  Δb(l) += δ(l)
    D(l) = Δ(l)/m + (λ/m) W(l),  Db(l) = Δb(l)/m      (= ∂C/∂W(l), ∂C/∂b(l))

The output delta is that simple because for the sigmoid and the cross-entropy
∂C0/∂a(L) ⊙ σ'(z(L)) = (a − y)/(a(1 − a)) ⊙ a(1 − a) = a − y.

deltaprop does the same in one call: `net.backward(X, Y, l2=λ)` returns C and fills `net.gradients`
with (D(l), Db(l)); `net.deltas[l-1]` holds δ(l) of every sample, one per row. The lesson compares
the loop with both, then checks the gradient against central differences with `net.gradient_check`.

Run: python 03_delta_recursion.py   (exits non-zero if a claim below fails)
"""
import sys

import numpy as np

import deltaprop as dp

SIZES = [4, 6, 5, 3]
M = 10          # samples
LAM = 0.7       # λ


def check(claim: bool, what: str) -> None:
    if not claim:
        sys.exit(f"FAILED: {what}")
    print(f"  ok: {what}")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def backprop_loop(weights, X, Y, lam, deltas=None):
    """Cost C and gradients [(D(l), Db(l))] of a sigmoid network with the binary cross-entropy, one sample
    at a time. weights: [(W(l), b(l))] with W(l) of shape (n_out, n_in); X [m, n_in], Y [m, n_out].
    If `deltas` is a list, the δ(l) of each sample are appended to it (a list per sample)."""
    m = X.shape[0]
    Delta = [np.zeros_like(W) for W, _ in weights]
    Delta_b = [np.zeros_like(b) for _, b in weights]
    cost = 0.0
    for x, y in zip(X, Y):
        a = [x]                                              # a[l] = a(l), a(0) = x
        for W, b in weights:
            a.append(sigmoid(W @ a[-1] + b))                 # z(l) = W(l) a(l-1) + b(l), a(l) = σ(z(l))
        cost -= np.sum(y * np.log(a[-1]) + (1.0 - y) * np.log(1.0 - a[-1]))
        delta = [None] * len(weights)                        # delta[l-1] = δ(l)
        delta[-1] = a[-1] - y                                # δ(L) = a(L) - y
        for l in range(len(weights) - 1, 0, -1):             # l = L-1 .. 1
            W_next = weights[l][0]                           # W(l+1)
            delta[l - 1] = (W_next.T @ delta[l]) * a[l] * (1.0 - a[l])
        for l in range(len(weights)):
            Delta[l] += np.outer(delta[l], a[l])             # Δ(l) += δ(l) a(l-1)ᵀ
            Delta_b[l] += delta[l]
        if deltas is not None:
            deltas.append(delta)
    cost = cost / m + lam / (2.0 * m) * sum(np.sum(W * W) for W, _ in weights)
    grads = [(Delta[l] / m + (lam / m) * W, Delta_b[l] / m) for l, (W, _) in enumerate(weights)]
    return cost, grads


def main() -> int:
    print(__doc__.split("\n\n")[0])
    rng = np.random.default_rng(3)
    X = rng.normal(size=(M, SIZES[0]))
    Y = (rng.uniform(size=(M, SIZES[-1])) < 0.5).astype(np.float64)
    net = dp.Network(SIZES, activation="sigmoid", loss="binary_cross_entropy", dtype="float64", seed=3)
    print(f"{net}\nm = {M} samples, λ = {LAM}")
    weights = [(W.copy(), b.copy()) for W, b in net.weights]

    per_sample = []
    cost, grads = backprop_loop(weights, X, Y, LAM, deltas=per_sample)
    C = net.backward(X, Y, l2=LAM)
    print(f"\ncost C: loop {cost:.15f}, net.backward {C:.15f}, net.loss {net.loss(X, Y, l2=LAM):.15f}")
    check(abs(cost - C) <= 1e-13 * abs(C), "the loop's cost equals net.backward(X, Y, l2=λ)")

    np.set_printoptions(precision=6, suppress=True, linewidth=120)
    print(f"\nsample 0: δ(3) = a(3) - y = {per_sample[0][2]}\n"
          f"          δ(2) = {per_sample[0][1]}\n          δ(1) = {per_sample[0][0]}")
    for l in range(net.n_layers):
        loop_deltas = np.array([d[l] for d in per_sample])
        check(np.allclose(loop_deltas, net.deltas[l], rtol=1e-12, atol=1e-15),
              f"δ({l + 1}) of all {M} samples equals net.deltas[{l}] (one row per sample)")

    print(f"\nD(1) = Δ(1)/m + (λ/m) W(1), from the loop:\n{grads[0][0]}\nnet.gradients[0][0]:\n{net.gradients[0][0]}")
    for l, ((D, Db), (dW, db)) in enumerate(zip(grads, net.gradients)):
        err = max(np.max(np.abs(D - dW)), np.max(np.abs(Db - db)))
        print(f"  layer {l + 1}: largest |loop - deltaprop| = {err:.1e} (largest |D| {np.max(np.abs(D)):.3f})")
        check(np.allclose(D, dW, rtol=1e-12, atol=1e-15) and np.allclose(Db, db, rtol=1e-12, atol=1e-15),
              f"D({l + 1}) and Db({l + 1}) of the loop equal net.gradients[{l}]")

    # Biases are not regularised: without the penalty only the weight gradients change, by exactly (λ/m) W.
    net.backward(X, Y, l2=0.0)
    for l, ((W, _), (dW, db)) in enumerate(zip(weights, net.gradients)):
        check(np.allclose(grads[l][0] - dW, (LAM / M) * W, rtol=1e-10, atol=1e-15) and
              np.allclose(grads[l][1], db, rtol=1e-12, atol=1e-15),
              f"layer {l + 1}: λ adds (λ/m) W({l + 1}) to the weight gradient and nothing to the bias gradient")

    result = net.gradient_check(X, Y, l2=LAM)
    print(f"\nnet.gradient_check(X, Y, l2=λ): largest relative error {result.max_error:.2e}, per layer "
          + ", ".join(f"{e:.1e}" for e in result.layer_errors))
    check(result.max_error < 1e-6, "backpropagation agrees with float64 central differences (relative error < 1e-6)")
    check(min(np.max(np.abs(D)) for D, _ in grads) > 1e-3, "no layer's gradient is trivially zero")
    print("lesson 3: all claims hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
