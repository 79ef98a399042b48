# SPDX-License-Identifier: MIT
"""A vectorised numpy implementation of deltaprop's math, used as a benchmark peer.

Same conventions as deltaprop: W is (n_out, n_in), activations are row-major [batch, features],
z = a_prev W^T + b, a = f(z); cost = mean over the batch of the per-sample loss C0
+ l2/(2*batch) * sum of squared weights; dW = delta^T a_prev / batch + (l2/batch) W, db = mean(delta).
Plain SGD: w -= lr * grad.

Written as the fastest plain numpy we know for this work: every array of a training step lives in a
buffer allocated once per batch size (matmul and the ufuncs write into it with out=), class labels are
never expanded to one-hot rows, and a shuffled mini-batch is gathered into its buffer with np.take.

Run this file directly to check the gradients against central finite differences.
"""
import numpy as np

_NAMES = ("identity", "sigmoid", "tanh", "relu", "softmax")


def _act(name, z):
    if name == "identity":
        return z
    if name == "sigmoid":
        # a = 1 / (1 + exp(-z))
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "softmax":
        # a_j = exp(z_j - max z) / sum_k exp(z_k - max z)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        e /= e.sum(axis=1, keepdims=True)
        return e
    raise ValueError(f"activation: unknown name {name!r}")


def _act_into(name, z, out):
    """out = f(z), written into out (which may be z), without temporaries beyond a row reduction."""
    if name == "identity":
        if out is not z:
            np.copyto(out, z)
    elif name == "sigmoid":
        # a = 1 / (1 + exp(-z))
        np.negative(z, out=out)
        np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)
    elif name == "tanh":
        np.tanh(z, out=out)
    elif name == "relu":
        np.maximum(z, 0, out=out)
    elif name == "softmax":
        # a_j = exp(z_j - max z) / sum_k exp(z_k - max z)
        np.subtract(z, z.max(axis=1, keepdims=True), out=out)
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
    else:
        raise ValueError(f"activation: unknown name {name!r}")
    return out


def _act_grad_inplace(name, delta, z, a):
    """delta *= f'(z), with f' written from z or a (elementwise activations only)."""
    if name == "identity":
        return delta
    if name == "sigmoid":
        # f'(z) = a (1 - a)
        delta *= a * (1 - a)
    elif name == "tanh":
        # f'(z) = 1 - a^2
        delta *= 1 - a * a
    elif name == "relu":
        # f'(z) = [z > 0]
        delta *= z > 0
    else:
        raise ValueError(f"activation: {name!r} has no elementwise derivative")
    return delta


class MLP:
    def __init__(self, sizes, activation="relu", output=None, loss="mse", dtype=np.float32, seed=0):
        self.sizes = tuple(int(s) for s in sizes)
        L = len(self.sizes) - 1
        if output is None:
            output = {"mse": "identity", "binary_cross_entropy": "sigmoid", "cross_entropy": "softmax"}[loss]
        self.acts = [activation] * (L - 1) + [output]
        self.loss_name = loss
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        self.W, self.b = [], []
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            # he_uniform for relu, glorot_uniform otherwise (deltaprop's defaults)
            e = np.sqrt(6.0 / n_in) if activation == "relu" else np.sqrt(6.0 / (n_in + n_out))
            self.W.append(rng.uniform(-e, e, size=(n_out, n_in)).astype(self.dtype))
            self.b.append(np.zeros(n_out, dtype=self.dtype))
        self.dW = [np.zeros_like(W) for W in self.W]
        self.db = [np.zeros_like(b) for b in self.b]
        self._buffers = {}  # batch -> (x, z per layer, a per layer, delta per layer)

    def _buf(self, batch):
        b = self._buffers.get(batch)
        if b is None:
            mk = lambda n: np.empty((batch, n), dtype=self.dtype)  # noqa: E731
            outs = self.sizes[1:]
            b = (mk(self.sizes[0]), [mk(n) for n in outs], [mk(n) for n in outs], [mk(n) for n in outs])
            self._buffers[batch] = b
        return b

    @property
    def n_params(self):
        return sum(W.size + b.size for W, b in zip(self.W, self.b))

    def forward(self, X):
        """Returns (zs, as), views of this batch size's buffers (valid until the next call); as[-1] is
        the output."""
        _, zs, acts, _ = self._buf(X.shape[0])
        a = X
        for W, b, name, z, out in zip(self.W, self.b, self.acts, zs, acts):
            np.matmul(a, W.T, out=z)
            z += b
            a = _act_into(name, z, out)
        return zs, acts

    def predict(self, X):
        a = np.asarray(X, dtype=self.dtype)
        for W, b, name in zip(self.W, self.b, self.acts):
            z = a @ W.T
            z += b
            a = _act(name, z)
        return a

    def _onehot(self, Y, batch):
        if self.loss_name == "cross_entropy" and Y.ndim == 1:
            T = np.zeros((batch, self.sizes[-1]), dtype=self.dtype)
            T[np.arange(batch), Y] = 1
            return T
        return Y.reshape(batch, self.sizes[-1])

    def _cost(self, A, T, l2):
        batch = A.shape[0]
        if self.loss_name == "mse":
            # C0 = sum_j (a_j - y_j)^2
            c = float(np.sum((A - T) ** 2)) / batch
        elif self.loss_name == "binary_cross_entropy":
            # C0 = -sum_j [y_j log a_j + (1 - y_j) log(1 - a_j)]
            eps = np.finfo(self.dtype).tiny
            c = -float(np.sum(T * np.log(A + eps) + (1 - T) * np.log(1 - A + eps))) / batch
        else:
            # C0 = -sum_j y_j log a_j
            eps = np.finfo(self.dtype).tiny
            c = -float(np.sum(T * np.log(A + eps))) / batch
        if l2:
            c += l2 / (2 * batch) * sum(float(np.sum(W * W)) for W in self.W)
        return c

    def loss(self, X, Y, l2=0.0):
        A = self.predict(X)
        return self._cost(A, self._onehot(np.asarray(Y), A.shape[0]), l2)

    def backward(self, X, Y, l2=0.0):
        """Forward + cost + gradients into self.dW / self.db. Returns the cost."""
        batch = X.shape[0]
        zs, acts = self.forward(X)
        deltas = self._buf(batch)[3]
        A = acts[-1]
        out = self.acts[-1]
        L = len(self.W)
        delta = deltas[-1]
        labels = self.loss_name == "cross_entropy" and Y.ndim == 1
        if labels:
            # C0 = -log a_y; softmax + cross-entropy: delta = a - onehot(y), without the one-hot rows
            rows = np.arange(batch)
            eps = np.finfo(self.dtype).tiny
            cost = -float(np.sum(np.log(A[rows, Y] + eps))) / batch
            if l2:
                cost += l2 / (2 * batch) * sum(float(np.sum(W * W)) for W in self.W)
            np.copyto(delta, A)
            delta[rows, Y] -= 1
            delta *= 1.0 / batch
            if out != "softmax":
                raise ValueError(f"loss {self.loss_name!r} with output {out!r} unsupported")
        else:
            T = self._onehot(Y, batch)
            cost = self._cost(A, T, l2)
            np.subtract(A, T, out=delta)
        # delta(L) = dC/dz(L), the 1/batch of the mean folded in here
        if labels:
            pass
        elif self.loss_name == "mse":
            # dC0/da = 2 (a - y); delta = dC0/da * f'(z)
            delta *= 2.0 / batch
            _act_grad_inplace(out, delta, zs[-1], A)
        elif (self.loss_name, out) in (("cross_entropy", "softmax"), ("binary_cross_entropy", "sigmoid")):
            # softmax + cross-entropy and sigmoid + binary cross-entropy: delta = a - y
            delta *= 1.0 / batch
        else:
            raise ValueError(f"loss {self.loss_name!r} with output {out!r} unsupported")
        for l in range(L - 1, -1, -1):
            a_prev = X if l == 0 else acts[l - 1]
            # dW = delta^T a_prev (+ l2/batch W); db = sum over the batch of delta
            np.matmul(delta.T, a_prev, out=self.dW[l])
            if l2:
                self.dW[l] += (l2 / batch) * self.W[l]
            np.sum(delta, axis=0, out=self.db[l])
            if l > 0:
                # delta(l-1) = (delta(l) W) * f'(z(l-1))
                delta = np.matmul(delta, self.W[l], out=deltas[l - 1])
                _act_grad_inplace(self.acts[l - 1], delta, zs[l - 1], acts[l - 1])
        return cost

    def step(self, lr):
        for W, b, dW, db in zip(self.W, self.b, self.dW, self.db):
            # w -= lr * grad
            dW *= lr
            W -= dW
            db *= lr
            b -= db

    def train_batch(self, X, Y, lr, l2=0.0):
        cost = self.backward(X, Y, l2)
        self.step(lr)
        return cost

    def fit_epoch(self, X, Y, batch_size, lr, l2=0.0, shuffle=True, rng=None):
        """One pass over the data in minibatches; returns the sample-weighted mean cost."""
        n = X.shape[0]
        if batch_size is None or batch_size >= n:
            return self.train_batch(X, Y, lr, l2)
        if shuffle:
            rng = rng if rng is not None else np.random.default_rng(0)
            idx = rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch_size):
            if shuffle:
                sel = idx[start:start + batch_size]
                xb = np.take(X, sel, axis=0, out=self._buf(len(sel))[0])
                yb = Y[sel]
            else:
                xb, yb = X[start:start + batch_size], Y[start:start + batch_size]
            total += self.train_batch(xb, yb, lr, l2) * xb.shape[0]
        return total / n

    def fit_online(self, X, Y, lr):
        """Online SGD, one sample per update, with 1-D vectors (elementwise hidden/output
        activations, mse loss). Returns the mean cost."""
        assert self.loss_name == "mse"
        Ws, bs, acts = self.W, self.b, self.acts
        L = len(Ws)
        total = 0.0
        for i in range(X.shape[0]):
            x, y = X[i], Y[i]
            a_s, z_s = [x], []
            a = x
            for W, b, name in zip(Ws, bs, acts):
                z = W @ a
                z += b
                a = _act(name, z)
                z_s.append(z)
                a_s.append(a)
            diff = a - y
            total += float(diff @ diff)
            # delta(L) = 2 (a - y) * f'(z)
            delta = _act_grad_inplace(acts[-1], diff * 2.0, z_s[-1], a)
            for l in range(L - 1, -1, -1):
                W = Ws[l]
                prev = None
                if l > 0:
                    # delta(l-1) = (W^T delta) * f'(z(l-1)), with W before its update
                    prev = _act_grad_inplace(acts[l - 1], delta @ W, z_s[l - 1], a_s[l])
                # W -= lr * outer(delta, a_prev); b -= lr * delta
                delta *= lr
                W -= np.outer(delta, a_s[l])
                bs[l] -= delta
                delta = prev
        return total / X.shape[0]

    # flat parameter access, for the gradient check
    def _flat_params(self):
        return [p for W, b in zip(self.W, self.b) for p in (W, b)]

    def _flat_grads(self):
        return [g for dW, db in zip(self.dW, self.db) for g in (dW, db)]


def gradient_check(seed=0, eps=1e-5):
    """Central finite differences vs backward() for every loss/activation pairing used by
    the benchmarks (float64). Returns the worst relative error."""
    rng = np.random.default_rng(seed)
    worst = 0.0
    cases = [
        (dict(sizes=(5, 7, 6, 4), activation="relu", loss="cross_entropy"), "labels", 0.0),
        (dict(sizes=(5, 6, 4), activation="sigmoid", loss="binary_cross_entropy"), "binary", 1.0),
        (dict(sizes=(5, 6, 4), activation="sigmoid", output="sigmoid", loss="mse"), "real", 0.0),
        (dict(sizes=(5, 6, 4), activation="tanh", loss="mse"), "real", 0.5),
    ]
    for kw, kind, l2 in cases:
        net = MLP(dtype=np.float64, seed=seed, **kw)
        for bvec in net.b:
            bvec[:] = rng.normal(0, 0.1, bvec.shape)
        batch = 3
        X = rng.normal(size=(batch, net.sizes[0]))
        if kind == "labels":
            Y = rng.integers(0, net.sizes[-1], size=batch)
        elif kind == "binary":
            Y = (rng.random((batch, net.sizes[-1])) < 0.5).astype(np.float64)
        else:
            Y = rng.normal(size=(batch, net.sizes[-1]))
        net.backward(X, Y, l2)
        grads = [g.copy() for g in net._flat_grads()]
        for p, g in zip(net._flat_params(), grads):
            flat_p, flat_g = p.reshape(-1), g.reshape(-1)
            for k in range(flat_p.size):
                old = flat_p[k]
                flat_p[k] = old + eps
                cp = net.loss(X, Y, l2)
                flat_p[k] = old - eps
                cm = net.loss(X, Y, l2)
                flat_p[k] = old
                num = (cp - cm) / (2 * eps)
                err = abs(num - flat_g[k]) / max(abs(num), abs(flat_g[k]), 1e-8)
                worst = max(worst, err)
        # the online path must match one batch-1 SGD step of the batched path
        if kw["loss"] == "mse" and kw.get("output") == "sigmoid":
            a, b2 = MLP(dtype=np.float64, seed=seed, **kw), MLP(dtype=np.float64, seed=seed, **kw)
            for i in range(batch):
                a.train_batch(X[i:i + 1], Y[i:i + 1], 0.3)
            b2.fit_online(X, Y, 0.3)
            for Wa, Wb in zip(a.W, b2.W):
                assert np.allclose(Wa, Wb, rtol=1e-12, atol=1e-12), "fit_online != train_batch"
    return worst


if __name__ == "__main__":
    err = gradient_check()
    print(f"numpy_mlp gradient check: worst relative error {err:.2e}")
    assert err < 1e-6, err
    print("OK")
