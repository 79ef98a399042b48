# SPDX-License-Identifier: MIT
"""Lesson 1: gradient descent in one dimension.

The function f(w) = (w − 3)² + 1 has its minimum f = 1 at w = 3 and the derivative f'(w) = 2(w − 3).
Gradient descent with learning rate η repeats

    w ← w − η f'(w) = w − 2η (w − 3),

so w − 3 is multiplied by (1 − 2η) at every step and the iterates have the closed form

    w_k = 3 + (1 − 2η)^k (w_0 − 3).

From w_0 = −4 the four learning rates show the four behaviours: η = 0.1 converges (factor 0.8),
η = 0.5 lands on the minimum in one step (factor 0), η = 0.9 oscillates around it while converging
(factor −0.8) and η = 1.1 oscillates away from it (factor −1.2): it diverges.

The same descent by deltaprop. A 1-1 network with the identity activation computes
z(1) = W(1) a(0) + b(1), a(1) = z(1); with the mse loss C0 = (a(1) − y)². Take the input x = a(0) = 1,
the target y = 3 and the bias b(1) = 0: then a(1) = w and C0(w) = (w − 3)² = f(w) − 1, whose derivative
is f'(w). Backpropagation gives δ(1) = ∂C0/∂a(1) ⊙ g'(z(1)) = 2(a(1) − y) · 1 and
∂C0/∂W(1) = δ(1) a(0)ᵀ = 2(w − 3) · 1 = f'(w). The bias would learn too (∂C0/∂b(1) = δ(1)), so we
freeze it by zeroing its gradient before each `net.step(lr=η)`, which is then exactly w ← w − η f'(w).

Run: python 01_gradient_descent_1d.py   (exits non-zero if a claim below fails)
"""
import sys

import numpy as np

import deltaprop as dp

W0 = -4.0
ETAS = (0.1, 0.5, 0.9, 1.1)
STEPS = 12


def check(claim: bool, what: str) -> None:
    if not claim:
        sys.exit(f"FAILED: {what}")
    print(f"  ok: {what}")


def f(w):
    return (w - 3.0) ** 2 + 1.0


def f_prime(w):
    return 2.0 * (w - 3.0)


def descend(eta: float) -> np.ndarray:
    """w_0 .. w_STEPS of w <- w - eta f'(w)."""
    w = [W0]
    for _ in range(STEPS):
        w.append(w[-1] - eta * f_prime(w[-1]))
    return np.array(w)


def descend_with_deltaprop(eta: float):
    """Weights w_0 .. w_STEPS, costs C0(w_k) and slopes dC0/dw(w_k) of the 1-1 network, and its final bias."""
    net = dp.Network([1, 1], activation="identity", output="identity", loss="mse", dtype="float64", seed=0)
    W, b = net.weights[0]
    W[0, 0], b[0] = W0, 0.0
    x, y = np.array([[1.0]]), np.array([[3.0]])
    w, costs, slopes = [float(W[0, 0])], [], []
    for _ in range(STEPS):
        costs.append(net.backward(x, y))             # C0(w) = (w - 3)^2
        dW, db = net.gradients[0]
        slopes.append(float(dW[0, 0]))               # dC0/dw = f'(w)
        db[:] = 0.0                                  # freeze the bias at 0
        net.step(lr=eta)                             # w <- w - eta * dC0/dw
        w.append(float(W[0, 0]))
    return np.array(w), np.array(costs), np.array(slopes), float(b[0])


def main() -> int:
    print(__doc__.split("\n\n")[0])
    print(f"f(w) = (w - 3)^2 + 1, w <- w - eta f'(w), w_0 = {W0:g}\n")
    runs = {eta: descend(eta) for eta in ETAS}
    print("  k " + "".join(f"{f'eta = {eta:g}':>16}" for eta in ETAS))
    for k in range(STEPS + 1):
        print(f"{k:3d} " + "".join(f"{runs[eta][k]:16.6f}" for eta in ETAS))
    print("f(w_k) after the last step: " + "  ".join(f"{f(runs[eta][-1]):.6g}" for eta in ETAS) + "\n")

    print("claims:")
    for eta in ETAS:
        k = np.arange(STEPS + 1)
        closed = 3.0 + (1.0 - 2.0 * eta) ** k * (W0 - 3.0)
        check(np.allclose(runs[eta], closed, rtol=1e-13, atol=1e-13),
              f"eta={eta}: the iterates equal the closed form 3 + (1 - 2 eta)^k (w_0 - 3)")
    err = lambda eta: np.abs(runs[eta] - 3.0)  # noqa: E731
    check(np.all(np.diff(runs[0.1]) > 0) and np.all(runs[0.1] < 3.0) and err(0.1)[-1] < err(0.1)[0] / 10,
          "eta=0.1 converges: w rises monotonically towards 3 (|w - 3| shrinks by 0.8 each step)")
    check(runs[0.5][1] == 3.0 and np.all(runs[0.5][1:] == 3.0), "eta=0.5 reaches w = 3 in one step and stays")
    signs = np.sign(runs[0.9][1:] - 3.0)
    check(np.all(signs[1:] == -signs[:-1]) and np.all(np.diff(err(0.9)) < 0),
          "eta=0.9 oscillates around 3 (the sign of w - 3 alternates) while |w - 3| shrinks")
    signs = np.sign(runs[1.1][1:] - 3.0)
    check(np.all(signs[1:] == -signs[:-1]) and np.all(np.diff(err(1.1)) > 0) and err(1.1)[-1] > 50,
          "eta=1.1 diverges: the sign alternates and |w - 3| grows by 1.2 each step")

    print("\nthe same descent by deltaprop: Network([1, 1], identity, mse), x = 1, y = 3, b = 0 frozen")
    nets = {eta: descend_with_deltaprop(eta) for eta in ETAS}
    ulps = {}
    for eta, (w, _, _, _) in nets.items():
        ulps[eta] = np.max(np.abs(w - runs[eta]) / np.spacing(np.maximum(np.abs(runs[eta]), 1.0)))
        print(f"  eta = {eta:g}: w_{STEPS} = {w[-1]:.17g} by deltaprop, {runs[eta][-1]:.17g} by hand "
              f"({ulps[eta]:.0f} ulp apart at most over the {STEPS} steps)")
    check(all(np.allclose(c + 1.0, f(w[:-1]), rtol=1e-15, atol=0) for w, c, _, _ in nets.values()),
          "net.backward's cost C0(w) is f(w) - 1 at every step")
    check(all(np.allclose(g, f_prime(w[:-1]), rtol=1e-15, atol=0) for w, _, g, _ in nets.values()),
          "dC0/dW(1) in net.gradients is f'(w) at every step")
    check(all(b == 0.0 for _, _, _, b in nets.values()), "the bias stayed at 0")
    check(all(u <= 4 for u in ulps.values()),
          "for every eta, deltaprop's weight follows w <- w - eta f'(w) to float64 rounding (<= 4 ulp)")
    print("lesson 1: all claims hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
