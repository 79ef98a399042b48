# SPDX-License-Identifier: MIT
"""A small numpy reference network, written for the tests only.

Everything is computed in float64, in row-major batch form: X is [batch, n_in],
layer l computes z(l) = a(l-1) W(l)^T + b(l), a(l) = g(z(l)), with a(-1) = X.

Backward is the delta recursion, written out step by step:
    delta(L) = dC0/da(L) (x) g'(z(L))            (Jacobian-vector product for softmax)
    delta(l) = (delta(l+1) W(l+1)) (x) g'(z(l))
    dW(l)    = delta(l)^T a(l-1) / m + (l2/m) W(l)
    db(l)    = mean over the batch of delta(l)
The loss derivative is taken generically (e.g. bce: (a-y)/(a(1-a))) and pushed
through g' by the chain rule, so the tests do not rely on the simplified
"delta = a - y" forms the library may use.
"""
from __future__ import annotations

import numpy as np

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax")
LOSSES = ("mse", "binary_cross_entropy", "cross_entropy")
ELEMENTWISE = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def activate(name, z, slope=0.01):
    """g(z) for one layer; z is [batch, n]."""
    if name == "identity":
        return z.copy()
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, slope * z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(name)


def activate_backward(name, z, a, grad_a, slope=0.01):
    """dC/dz given dC/da (row-wise Jacobian-vector product of g)."""
    if name == "identity":
        return grad_a.copy()
    if name == "sigmoid":
        return grad_a * a * (1.0 - a)  # g' = g (1 - g)
    if name == "tanh":
        return grad_a * (1.0 - a * a)  # g' = 1 - g^2
    if name == "relu":
        return grad_a * (z > 0)
    if name == "leaky_relu":
        return grad_a * np.where(z > 0, 1.0, slope)
    if name == "softmax":
        # J_ij = a_i (delta_ij - a_j)  =>  (J^T v)_i = a_i (v_i - sum_j a_j v_j)
        return a * (grad_a - (grad_a * a).sum(axis=1, keepdims=True))
    raise ValueError(name)


def derivative(name, z, slope=0.01):
    """Elementwise g'(z) (not defined for softmax)."""
    one = np.ones_like(z, dtype=np.float64)
    return activate_backward(name, z, activate(name, z, slope), one, slope)


def targets(Y, n_out, loss):
    """Y as float64 [batch, n_out]: class indices become one-hot rows."""
    Y = np.asarray(Y)
    if Y.ndim == 1:
        if loss == "cross_entropy":
            T = np.zeros((Y.shape[0], n_out))
            T[np.arange(Y.shape[0]), Y.astype(np.int64)] = 1.0
            return T
        return Y.astype(np.float64).reshape(-1, 1)
    return Y.astype(np.float64)


def sample_loss(loss, a, y):
    """C0 per sample, [batch]."""
    if loss == "mse":
        return ((a - y) ** 2).sum(axis=1)
    if loss == "binary_cross_entropy":
        return -(y * np.log(a) + (1.0 - y) * np.log1p(-a)).sum(axis=1)
    if loss == "cross_entropy":
        return -(y * np.log(a)).sum(axis=1)
    raise ValueError(loss)


def loss_grad(loss, a, y):
    """dC0/da per sample, [batch, n_out]."""
    if loss == "mse":
        return 2.0 * (a - y)
    if loss == "binary_cross_entropy":
        return (a - y) / (a * (1.0 - a))
    if loss == "cross_entropy":
        return -y / a
    raise ValueError(loss)


class RefNet:
    """Reference network holding float64 copies of (W, b) per layer."""

    def __init__(self, weights, activations, loss="mse", slope=0.01):
        self.W = [np.array(W, dtype=np.float64) for W, _ in weights]
        self.b = [np.array(b, dtype=np.float64).reshape(-1) for _, b in weights]
        self.activations = tuple(activations)
        self.loss_name = loss
        L = len(self.W)
        self.slopes = list(slope) if np.ndim(slope) else [float(slope)] * L
        assert len(self.activations) == L and len(self.slopes) == L

    @classmethod
    def from_net(cls, net, slope=0.01):
        """Copy a deltaprop.Network's weights, activations and loss (slope as given to it)."""
        return cls([(W.copy(), b.copy()) for W, b in net.weights], net.activations,
                   net.loss_name, slope)

    @classmethod
    def random(cls, sizes, activations, loss="mse", rng=None, scale=1.0, slope=0.01):
        rng = np.random.default_rng(0) if rng is None else rng
        weights = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            e = scale * np.sqrt(6.0 / (n_in + n_out))
            weights.append((rng.uniform(-e, e, (n_out, n_in)), rng.uniform(-0.5, 0.5, n_out)))
        return cls(weights, activations, loss, slope)

    @property
    def n_layers(self):
        return len(self.W)

    @property
    def sizes(self):
        return (self.W[0].shape[1],) + tuple(W.shape[0] for W in self.W)

    # --- flat parameter vector in the library's layout: per layer W row-major, then b
    def params(self):
        return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in zip(self.W, self.b)])

    def set_params(self, p):
        p = np.asarray(p, dtype=np.float64)
        i = 0
        for l, W in enumerate(self.W):
            n = W.size
            self.W[l] = p[i:i + n].reshape(W.shape).copy()
            i += n
            self.b[l] = p[i:i + W.shape[0]].copy()
            i += W.shape[0]
        assert i == p.size

    @staticmethod
    def flatten(grads):
        return np.concatenate([np.concatenate([np.ravel(dW), np.ravel(db)]) for dW, db in grads])

    # --- forward / loss / backward
    def forward(self, X):
        """Returns (z, a): lists of L arrays [batch, n_out(l)]."""
        x = np.asarray(X, dtype=np.float64)
        zs, acts = [], []
        for W, b, name, s in zip(self.W, self.b, self.activations, self.slopes):
            z = x @ W.T + b
            x = activate(name, z, s)
            zs.append(z)
            acts.append(x)
        return zs, acts

    def predict(self, X):
        return self.forward(X)[1][-1]

    def loss(self, X, Y, l2=0.0):
        _, acts = self.forward(X)
        m = acts[-1].shape[0]
        y = targets(Y, acts[-1].shape[1], self.loss_name)
        cost = sample_loss(self.loss_name, acts[-1], y).mean()
        return cost + l2 / (2.0 * m) * sum((W * W).sum() for W in self.W)

    def backward_from_output_grad(self, X, grad_a, l2=0.0):
        """Gradients given per-sample dC0/da(L). Returns (grads, deltas, z, a)."""
        X = np.asarray(X, dtype=np.float64)
        zs, acts = self.forward(X)
        m = X.shape[0]
        L = self.n_layers
        deltas = [None] * L
        g = np.asarray(grad_a, dtype=np.float64)
        for l in range(L - 1, -1, -1):
            if l < L - 1:
                g = deltas[l + 1] @ self.W[l + 1]  # dC0/da(l) = delta(l+1) W(l+1)
            deltas[l] = activate_backward(self.activations[l], zs[l], acts[l], g, self.slopes[l])
        grads = []
        for l in range(L):
            a_prev = X if l == 0 else acts[l - 1]
            dW = deltas[l].T @ a_prev / m + (l2 / m) * self.W[l]  # dW = delta^T a_prev / m + (l2/m) W
            db = deltas[l].mean(axis=0)  # db = mean delta
            grads.append((dW, db))
        return grads, deltas, zs, acts

    def backward(self, X, Y, l2=0.0):
        """Returns (cost, grads, deltas, z, a)."""
        zs, acts = self.forward(X)
        y = targets(Y, acts[-1].shape[1], self.loss_name)
        g = loss_grad(self.loss_name, acts[-1], y)
        grads, deltas, zs, acts = self.backward_from_output_grad(X, g, l2)
        return self.loss(X, Y, l2), grads, deltas, zs, acts

    # --- numerical gradient, same relative-error metric as Network.gradient_check
    def numerical_gradient(self, X, Y, eps=1e-5, l2=0.0):
        p0 = self.params()
        n = np.empty_like(p0)
        for i in range(p0.size):
            p = p0.copy()
            p[i] = p0[i] + eps
            self.set_params(p)
            cp = self.loss(X, Y, l2)
            p[i] = p0[i] - eps
            self.set_params(p)
            cm = self.loss(X, Y, l2)
            n[i] = (cp - cm) / (2.0 * eps)
        self.set_params(p0)
        return n


def relative_error(g, n):
    """|g-n| / max(|g|, |n|, 1e-3*max|n|, 1e-12), elementwise (the documented metric)."""
    g = np.asarray(g, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    floor = max(1e-3 * float(np.abs(n).max(initial=0.0)), 1e-12)
    return np.abs(g - n) / np.maximum(np.maximum(np.abs(g), np.abs(n)), floor)


def push_away_from_kinks(ref, X, margin=0.05, rng=None, tries=200):
    """Shift biases of relu/leaky_relu layers so that no |z| < margin for this X.

    Works layer by layer (a change to layer l moves every later z). Returns True on success.
    """
    rng = np.random.default_rng(1) if rng is None else rng
    X = np.asarray(X, dtype=np.float64)
    for l, name in enumerate(ref.activations):
        if name not in ("relu", "leaky_relu"):
            continue
        for _ in range(tries):
            zs, _ = ref.forward(X)
            near = (np.abs(zs[l]) < margin).any(axis=0)
            if not near.any():
                break
            ref.b[l][near] += rng.uniform(-0.3, 0.3, int(near.sum()))
        else:
            return False
    return True
