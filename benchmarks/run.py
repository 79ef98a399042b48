#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""deltaprop benchmarks: the only place where performance claims are made.

    python benchmarks/run.py [--threads N] [--repeats R] [--quick] [--only W1,W3]

Runs four workloads (W1 mnist-mlp, W2 ng-ex4, W3 wide, W4 online-tiny) for deltaprop and its peers
(a vectorised numpy implementation of the same math, PyTorch CPU eager, scikit-learn's MLP), plus the
machine's float32 GEMM peak. Every peer runs in its own worker subprocess per workload (its own
environment: thread-count variables for all, OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed for the numpy
based peers); measurements are interleaved (A B C D A B C D ...); the table shows medians with min-max
and deltaprop's ratio to each peer (>1 means deltaprop is better). Data is synthetic and seeded.
"""
import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))

PEER_COLUMNS = ("numpy", "torch", "sklearn")


def workload_config(quick):
    return {
        # mnist-mlp: 784-256-128-10 relu, softmax + cross-entropy, SGD, batch 64, one epoch, float32
        "W1": dict(sizes=(784, 256, 128, 10), n=12_800 if quick else 60_000, batch=64, lr=0.05,
                   lat_calls=1_000 if quick else 5_000, tput_calls=5 if quick else 30, tput_batch=1024),
        # ng-ex4: 400-25-10 sigmoid, binary cross-entropy, L2 lambda = 1, full-batch GD, float64
        "W2": dict(sizes=(400, 25, 10), n=5_000, iters=10 if quick else 100, lr=1.0, l2=1.0),
        # wide: 1024-1024-1024-10 relu, softmax + cross-entropy, batch 256, float32
        "W3": dict(sizes=(1024, 1024, 1024, 10), batches=4 if quick else 40, batch=256, lr=0.01),
        # online-tiny: 64-32-10 sigmoid (hidden and output), mse, batch 1, float32
        "W4": dict(sizes=(64, 32, 10), n=20_000 if quick else 200_000,
                   n_peer=2_000 if quick else 10_000, lr=0.1),
        # float32 GEMM peak: numpy matmul, square
        "GEMM": dict(n=2048, calls=3 if quick else 10),
    }


PEERS = {
    "W1": ["deltaprop", "numpy", "torch", "sklearn"],
    "W2": ["deltaprop", "numpy", "torch", "sklearn"],
    "W3": ["deltaprop", "deltaprop-1t", "numpy", "torch", "sklearn", "gemm"],
    "W4": ["deltaprop", "numpy", "torch", "sklearn"],
}


def train_flops(sizes, n_samples):
    """Flops a training pass must execute: 2*samples*(2*sum n_in*n_out + sum_{l>=2} n_in*n_out)
    (forward and dW GEMMs for every layer, the delta GEMM for every layer after the first)."""
    prods = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2.0 * n_samples * (2 * sum(prods) + sum(prods[1:]))


# ----------------------------------------------------------------------------------------------
# Data (identical in every worker: seeded, generated directly in the target dtype)

def make_data(workload, cfg):
    import numpy as np
    rng = np.random.default_rng({"W1": 1, "W2": 2, "W3": 3, "W4": 4}[workload])
    n_in, n_out = cfg["sizes"][0], cfg["sizes"][-1]
    if workload == "W1":
        X = rng.random((cfg["n"], n_in), dtype=np.float32)  # pixel-like values in [0, 1)
        y = rng.integers(0, n_out, size=cfg["n"])
        return X, y
    if workload == "W2":
        X = rng.random((cfg["n"], n_in)) - 0.5  # float64
        Y = np.zeros((cfg["n"], n_out))
        Y[np.arange(cfg["n"]), rng.integers(0, n_out, size=cfg["n"])] = 1.0
        return X, Y
    if workload == "W3":
        n = cfg["batches"] * cfg["batch"]
        X = rng.standard_normal((n, n_in), dtype=np.float32)
        y = rng.integers(0, n_out, size=n)
        return X, y
    if workload == "W4":
        X = rng.random((cfg["n"], n_in), dtype=np.float32)
        Y = np.zeros((cfg["n"], n_out), dtype=np.float32)
        Y[np.arange(cfg["n"]), rng.integers(0, n_out, size=cfg["n"])] = 1.0
        return X, Y
    raise ValueError(workload)


def time_calls(fn, calls, block=50):
    """Median over blocks of the mean time per call, in seconds."""
    block = max(1, min(block, calls))
    per_call = []
    for _ in range(max(1, calls // block)):
        t0 = time.perf_counter()
        for _ in range(block):
            fn()
        per_call.append((time.perf_counter() - t0) / block)
    return statistics.median(per_call)


# ----------------------------------------------------------------------------------------------
# Peers. Each has setup (data, model, warm-up) and run() -> dict of metrics for one measurement.

class DeltapropPeer:
    def __init__(self, workload, cfg, threads):
        import numpy as np
        import deltaprop as dp
        dp.set_num_threads(threads)
        self.info = dict(version=dp.__version__, threads=dp.get_num_threads(),
                         kernel=dp.get_kernel_level())
        self.w, self.cfg = workload, cfg
        self.X, self.Y = make_data(workload, cfg)
        s = cfg["sizes"]
        if workload == "W1" or workload == "W3":
            self.net = dp.Network(s, activation="relu", loss="cross_entropy", dtype="float32", seed=0)
            self.net.fit(self.X[:4096], self.Y[:4096], epochs=1, batch_size=cfg["batch"], lr=cfg["lr"], seed=1)
        elif workload == "W2":
            self.net = dp.Network(s, activation="sigmoid", loss="binary_cross_entropy", dtype="float64", seed=0)
            self.net.fit(self.X, self.Y, epochs=2, batch_size=None, lr=cfg["lr"], l2=cfg["l2"], shuffle=False)
        elif workload == "W4":
            self.net = dp.Network(s, activation="sigmoid", output="sigmoid", loss="mse", dtype="float32", seed=0)
            self.net.fit(self.X[:2000], self.Y[:2000], epochs=1, batch_size=1, lr=cfg["lr"], shuffle=False)
        self.data_bytes = self.X.nbytes + self.Y.nbytes
        self.net_bytes = self.net.n_params * self.net.dtype.itemsize
        self.r = 0

    def run(self):
        cfg, net, X, Y = self.cfg, self.net, self.X, self.Y
        self.r += 1
        out = {}
        if self.w in ("W1", "W3"):
            t0 = time.perf_counter()
            losses = net.fit(X, Y, epochs=1, batch_size=cfg["batch"], lr=cfg["lr"], shuffle=True, seed=self.r)
            out["train_sps"] = X.shape[0] / (time.perf_counter() - t0)
            out["loss"] = float(losses[-1])
            if self.w == "W1":
                t0 = time.perf_counter()
                net.fit(X, Y, epochs=1, batch_size=cfg["batch"], lr=cfg["lr"], shuffle=False)
                out["train_inorder_sps"] = X.shape[0] / (time.perf_counter() - t0)
                x1, xb = X[:1], X[:cfg["tput_batch"]]
                out["lat_us"] = time_calls(lambda: net.predict(x1), cfg["lat_calls"]) * 1e6
                out["tput_sps"] = cfg["tput_batch"] / time_calls(lambda: net.predict(xb), cfg["tput_calls"], 1)
        elif self.w == "W2":
            t0 = time.perf_counter()
            losses = net.fit(X, Y, epochs=cfg["iters"], batch_size=None, lr=cfg["lr"], l2=cfg["l2"], shuffle=False)
            out["iters_ps"] = cfg["iters"] / (time.perf_counter() - t0)
            out["loss"] = float(losses[-1])
        elif self.w == "W4":
            t0 = time.perf_counter()
            losses = net.fit(X, Y, epochs=1, batch_size=1, lr=cfg["lr"], shuffle=False)
            out["updates_ps"] = X.shape[0] / (time.perf_counter() - t0)
            out["loss"] = float(losses[-1])
        return out


class NumpyPeer:
    def __init__(self, workload, cfg, threads):
        import numpy as np
        sys.path.insert(0, HERE)
        from numpy_mlp import MLP
        self.np = np
        self.info = dict(version=np.__version__)
        self.w, self.cfg = workload, cfg
        self.X, self.Y = make_data(workload, cfg)
        s = cfg["sizes"]
        if workload in ("W1", "W3"):
            self.net = MLP(s, activation="relu", loss="cross_entropy", dtype=np.float32, seed=0)
            self.net.fit_epoch(self.X[:4096], self.Y[:4096], cfg["batch"], cfg["lr"])
        elif workload == "W2":
            self.net = MLP(s, activation="sigmoid", loss="binary_cross_entropy", dtype=np.float64, seed=0)
            for _ in range(2):
                self.net.train_batch(self.X, self.Y, cfg["lr"], cfg["l2"])
        elif workload == "W4":
            self.net = MLP(s, activation="sigmoid", output="sigmoid", loss="mse", dtype=np.float32, seed=0)
            self.net.fit_online(self.X[:500], self.Y[:500], cfg["lr"])
        self.rng = np.random.default_rng(0)

    def run(self):
        cfg, net, X, Y = self.cfg, self.net, self.X, self.Y
        out = {}
        if self.w in ("W1", "W3"):
            t0 = time.perf_counter()
            out["loss"] = net.fit_epoch(X, Y, cfg["batch"], cfg["lr"], shuffle=True, rng=self.rng)
            out["train_sps"] = X.shape[0] / (time.perf_counter() - t0)
            if self.w == "W1":
                t0 = time.perf_counter()
                net.fit_epoch(X, Y, cfg["batch"], cfg["lr"], shuffle=False)
                out["train_inorder_sps"] = X.shape[0] / (time.perf_counter() - t0)
                x1, xb = X[:1], X[:cfg["tput_batch"]]
                out["lat_us"] = time_calls(lambda: net.predict(x1), cfg["lat_calls"]) * 1e6
                out["tput_sps"] = cfg["tput_batch"] / time_calls(lambda: net.predict(xb), cfg["tput_calls"], 1)
        elif self.w == "W2":
            t0 = time.perf_counter()
            for _ in range(cfg["iters"]):
                loss = net.train_batch(X, Y, cfg["lr"], cfg["l2"])
            out["iters_ps"] = cfg["iters"] / (time.perf_counter() - t0)
            out["loss"] = loss
        elif self.w == "W4":
            n = cfg["n_peer"]
            t0 = time.perf_counter()
            out["loss"] = net.fit_online(X[:n], Y[:n], cfg["lr"])
            out["updates_ps"] = n / (time.perf_counter() - t0)
        return out


class TorchPeer:
    def __init__(self, workload, cfg, threads):
        import torch
        torch.set_num_threads(threads)
        self.torch = torch
        self.info = dict(version=torch.__version__, threads=torch.get_num_threads())
        self.w, self.cfg = workload, cfg
        X, Y = make_data(workload, cfg)
        self.Xn = X
        self.X, self.Y = torch.from_numpy(X), torch.from_numpy(Y)
        nn = torch.nn
        s = cfg["sizes"]
        torch.manual_seed(0)
        act = nn.ReLU if workload in ("W1", "W3") else nn.Sigmoid
        layers = []
        for i, (n_in, n_out) in enumerate(zip(s[:-1], s[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(s) - 2 or workload == "W4":
                layers.append(act())
        dtype = torch.float64 if workload == "W2" else torch.float32
        self.model = nn.Sequential(*layers).to(dtype)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg["lr"])
        self.gen = torch.Generator().manual_seed(0)
        # warm-up
        if workload in ("W1", "W3"):
            self._epoch(self.X[:4096], self.Y[:4096])
        elif workload == "W2":
            self._full_batch(2)
        else:
            self._online(500)

    def _epoch(self, X, Y):
        F, model, opt, batch = self.torch.nn.functional, self.model, self.opt, self.cfg["batch"]
        perm = self.torch.randperm(X.shape[0], generator=self.gen)
        for start in range(0, X.shape[0], batch):
            idx = perm[start:start + batch]
            xb, yb = X.index_select(0, idx), Y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        return float(loss.detach())

    def _full_batch(self, iters):
        F, model, opt = self.torch.nn.functional, self.model, self.opt
        X, Y, l2, n = self.X, self.Y, self.cfg["l2"], self.X.shape[0]
        weights = [m.weight for m in model if isinstance(m, self.torch.nn.Linear)]
        for _ in range(iters):
            opt.zero_grad(set_to_none=True)
            # C = (1/n) sum BCE + l2/(2n) sum W^2
            loss = F.binary_cross_entropy_with_logits(model(X), Y, reduction="sum") / n
            loss = loss + (l2 / (2 * n)) * sum((W * W).sum() for W in weights)
            loss.backward()
            opt.step()
        return float(loss.detach())

    def _online(self, n):
        model, opt, X, Y = self.model, self.opt, self.X, self.Y
        for i in range(n):
            opt.zero_grad(set_to_none=True)
            # C0 = sum_j (a_j - y_j)^2
            loss = ((model(X[i:i + 1]) - Y[i:i + 1]) ** 2).sum()
            loss.backward()
            opt.step()
        return float(loss.detach())

    def run(self):
        torch, cfg = self.torch, self.cfg
        out = {}
        if self.w in ("W1", "W3"):
            t0 = time.perf_counter()
            out["loss"] = self._epoch(self.X, self.Y)
            out["train_sps"] = self.X.shape[0] / (time.perf_counter() - t0)
            if self.w == "W1":
                model = self.model
                x1, xb = self.Xn[:1], self.Xn[:cfg["tput_batch"]]

                def predict(x):
                    with torch.inference_mode():
                        return torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()

                out["lat_us"] = time_calls(lambda: predict(x1), cfg["lat_calls"]) * 1e6
                out["tput_sps"] = cfg["tput_batch"] / time_calls(lambda: predict(xb), cfg["tput_calls"], 1)
        elif self.w == "W2":
            t0 = time.perf_counter()
            out["loss"] = self._full_batch(cfg["iters"])
            out["iters_ps"] = cfg["iters"] / (time.perf_counter() - t0)
        elif self.w == "W4":
            n = cfg["n_peer"]
            t0 = time.perf_counter()
            out["loss"] = self._online(n)
            out["updates_ps"] = n / (time.perf_counter() - t0)
        return out


class SklearnPeer:
    def __init__(self, workload, cfg, threads):
        import sklearn
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier, MLPRegressor
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        self.info = dict(version=sklearn.__version__)
        self.w, self.cfg = workload, cfg
        self.X, self.Y = make_data(workload, cfg)
        s = cfg["sizes"]
        common = dict(hidden_layer_sizes=tuple(s[1:-1]), solver="sgd", learning_rate="constant",
                      learning_rate_init=cfg["lr"], momentum=0.0, nesterovs_momentum=False,
                      warm_start=True, random_state=0, tol=0.0, early_stopping=False)
        if workload in ("W1", "W3"):
            self.model = MLPClassifier(activation="relu", alpha=0.0, batch_size=cfg["batch"],
                                       max_iter=1, shuffle=True, **common)
            self.model.fit(self.X[:4096], self.Y[:4096])
        elif workload == "W2":
            # one-hot Y makes it multilabel: logistic output + binary log-loss; alpha is the same
            # L2 penalty (alpha/(2n) sum W^2); batch = all samples, so one epoch = one GD step
            self.model = MLPClassifier(activation="logistic", alpha=cfg["l2"], batch_size=cfg["n"],
                                       max_iter=2, shuffle=False, n_iter_no_change=10**6, **common)
            self.model.fit(self.X, self.Y)
            self.model.set_params(max_iter=cfg["iters"])
        elif workload == "W4":
            # closest available: MLPRegressor has an identity output (sigmoid hidden layer)
            self.model = MLPRegressor(activation="logistic", alpha=0.0, batch_size=1,
                                      max_iter=1, shuffle=False, **common)
            self.model.fit(self.X[:500], self.Y[:500])

    def run(self):
        cfg, model, X, Y = self.cfg, self.model, self.X, self.Y
        out = {}
        if self.w in ("W1", "W3"):
            t0 = time.perf_counter()
            model.fit(X, Y)
            out["train_sps"] = X.shape[0] / (time.perf_counter() - t0)
            out["loss"] = float(model.loss_)
            if self.w == "W1":
                x1, xb = X[:1], X[:cfg["tput_batch"]]
                out["lat_us"] = time_calls(lambda: model.predict_proba(x1), cfg["lat_calls"]) * 1e6
                out["tput_sps"] = cfg["tput_batch"] / time_calls(lambda: model.predict_proba(xb),
                                                                 cfg["tput_calls"], 1)
        elif self.w == "W2":
            t0 = time.perf_counter()
            model.fit(X, Y)
            out["iters_ps"] = model.n_iter_ / (time.perf_counter() - t0)  # n_iter_ counts this fit's epochs
            out["loss"] = float(model.loss_)
        elif self.w == "W4":
            n = cfg["n_peer"]
            t0 = time.perf_counter()
            model.fit(X[:n], Y[:n])
            out["updates_ps"] = n / (time.perf_counter() - t0)
            out["loss"] = float(model.loss_)
        return out


class GemmPeer:
    def __init__(self, workload, cfg, threads):
        import numpy as np
        self.info = dict(version=np.__version__)
        self.n, self.calls = cfg["n"], cfg["calls"]
        rng = np.random.default_rng(5)
        self.A = rng.standard_normal((self.n, self.n), dtype=np.float32)
        self.B = rng.standard_normal((self.n, self.n), dtype=np.float32)
        self.C = np.empty_like(self.A)
        self.np = np
        for _ in range(2):
            np.matmul(self.A, self.B, out=self.C)

    def run(self):
        times = []
        for _ in range(self.calls):
            t0 = time.perf_counter()
            self.np.matmul(self.A, self.B, out=self.C)
            times.append(time.perf_counter() - t0)
        return {"gflops": 2.0 * self.n ** 3 / statistics.median(times) / 1e9}


PEER_CLASSES = {"deltaprop": DeltapropPeer, "deltaprop-1t": DeltapropPeer, "numpy": NumpyPeer,
                "torch": TorchPeer, "sklearn": SklearnPeer, "gemm": GemmPeer}


def worker_main(peer, workload, threads, quick):
    # keep stdout for the protocol; anything a library prints goes to stderr
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    cfg_all = workload_config(quick)
    cfg = cfg_all["GEMM"] if peer == "gemm" else cfg_all[workload]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    impl = PEER_CLASSES[peer](workload, cfg, threads)
    send({"ready": True, "info": getattr(impl, "info", {}), "rss_before_kb": rss0})
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "run":
            t = os.times()
            out = impl.run()
            t2 = os.times()
            out["cpu_s"] = (t2.user - t.user) + (t2.system - t.system)  # all threads of this worker
            send(out)
        elif cmd == "quit":
            final = {"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
            for k in ("data_bytes", "net_bytes"):
                if hasattr(impl, k):
                    final[k] = getattr(impl, k)
            send(final)
            return 0
    return 0


# ----------------------------------------------------------------------------------------------
# Driver

class Worker:
    def __init__(self, peer, workload, threads, quick):
        self.peer, self.error = peer, None
        t = 1 if peer == "deltaprop-1t" else threads
        env = dict(os.environ)
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = str(t)
        if peer.startswith("deltaprop"):
            env["DELTAPROP_NUM_THREADS"] = str(t)
        else:
            # these slow numpy's OpenBLAS on this machine: remove them for the BLAS-based peers
            env.pop("OPENBLAS_CORETYPE", None)
            env.pop("OPENBLAS_L2_SIZE", None)
        self.errfile = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", peer.split("-")[0],
               "--workload", workload, "--threads", str(t)] + (["--quick"] if quick else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errfile, env=env, text=True, bufsize=1)
        self.info = self._read() or {}

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.errfile.seek(0)
            tail = [l for l in self.errfile.read().strip().splitlines() if l.strip()][-1:]
            self.error = (tail[0] if tail else f"exit code {self.proc.returncode}")[:160]
            return None
        return json.loads(line)

    def request(self, cmd):
        if self.error:
            return None
        try:
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        return self._read()

    def close(self):
        final = self.request("quit") or {}
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.errfile.close()
        return final


def machine_busy_seconds():
    """Non-idle CPU time of the whole machine since boot (Linux /proc/stat), in seconds."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def wait_quiet(timeout=3.0, window=0.05, limit=0.05):
    """Wait (at most `timeout` s) until the machine is idle for one `window`: no more than `limit` of its
    CPUs busy. Idle BLAS/OpenMP threads of the previous peer spin for a while after their last job (up to
    ~0.1 s for OpenBLAS); a multi-threaded peer measured while they spin loses a core to them."""
    n = os.cpu_count() or 1
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        b0 = machine_busy_seconds()
        time.sleep(window)
        if machine_busy_seconds() - b0 <= limit * window * n:
            return True
    return False


def own_cpu_seconds():
    """CPU time of this process and its finished workers."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cpu_description():
    """'AMD EPYC (family 25 model 1), avx2 fma, no avx512f' from /proc/cpuinfo (Linux), else platform."""
    import platform
    try:
        info = {}
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    k, v = line.split(":", 1)
                    info.setdefault(k.strip(), v.strip())
        flags = set(info.get("flags", "").split())
        isa = [x for x in ("avx512f", "avx2", "fma") if x in flags]
        text = f"{info.get('model name', '?')} (family {info.get('cpu family', '?')} model {info.get('model', '?')}), "
        return text + " ".join(isa) + ("" if "avx512f" in flags else ", no avx512f")
    except OSError:
        return platform.processor() or platform.machine()


def si(v):
    if v is None or not math.isfinite(v):
        return "n/a"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suf}"
    return f"{v:.3g}"


def summary(samples):
    if not samples:
        return None
    return statistics.median(samples), min(samples), max(samples)


def cell(s, ratio=None):
    if s is None:
        return "n/a"
    text = f"{si(s[0])} ({si(s[1])}–{si(s[2])})"
    if ratio is not None:
        text += f" ×{ratio:.2f}"
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=None, help="default 5 (2 with --quick)")
    ap.add_argument("--quick", action="store_true", help="small sizes and 2 repeats: a smoke run")
    ap.add_argument("--only", default="W1,W2,W3,W4", help="comma-separated subset of W1,W2,W3,W4")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--workload", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.workload, args.threads, args.quick)

    repeats = args.repeats or (2 if args.quick else 5)
    cfg = workload_config(args.quick)
    workloads = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    for w in workloads:
        if w not in PEERS:
            ap.error(f"--only: unknown workload {w!r} (expected some of W1,W2,W3,W4)")
    pause = 0.1 if args.quick else 0.3  # let the previous peer's spinning threads go to sleep
    busy_before, own_before = machine_busy_seconds(), own_cpu_seconds()
    # a measurement during which other processes took >10% of the machine is repeated (full mode:
    # at most twice each, 20 times in all; the builds of others can go on for minutes)
    max_retries, retry_budget, n_contended, n_retried = (0 if args.quick else 2), 20, 0, 0
    res, finals, infos, errors = {}, {}, {}, {}
    t_start = time.perf_counter()
    for w in workloads:
        workers = []
        for p in PEERS[w]:
            print(f"[{w}] starting {p} ...", file=sys.stderr, flush=True)
            wk = Worker(p, w, args.threads, args.quick)
            if wk.error:
                errors[(w, p)] = wk.error
                print(f"[{w}] {p} unavailable: {wk.error}", file=sys.stderr, flush=True)
            else:
                infos[p] = wk.info.get("info", {})
            workers.append(wk)
        for r in range(repeats):
            for wk in workers:
                if wk.error:
                    continue
                for attempt in range(max_retries + 1):
                    wait_quiet()
                    busy0, t0 = machine_busy_seconds(), time.perf_counter()
                    out = wk.request("run")
                    if out is None:
                        break
                    # share of the machine that other processes took during this measurement
                    others = machine_busy_seconds() - busy0 - out.pop("cpu_s")
                    contended = others > max(0.05, 0.10 * (time.perf_counter() - t0) * (os.cpu_count() or 1))
                    if not contended or n_retried >= retry_budget:
                        break
                    print(f"[{w}] {wk.peer}: other processes took {others:.2f} CPU-s during the measurement, "
                          f"{'retrying' if attempt < max_retries else 'kept'}", file=sys.stderr, flush=True)
                    if attempt < max_retries:
                        n_retried += 1
                        time.sleep(3.0)
                n_contended += bool(out is not None and contended)
                if out is None:
                    errors[(w, wk.peer)] = wk.error
                    print(f"[{w}] {wk.peer} failed: {wk.error}", file=sys.stderr, flush=True)
                    continue
                for k, v in out.items():
                    res.setdefault((w, wk.peer, k), []).append(v)
                time.sleep(pause)
            print(f"[{w}] repeat {r + 1}/{repeats} done ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr, flush=True)
        for wk in workers:
            finals[(w, wk.peer)] = wk.close()
    elapsed = time.perf_counter() - t_start
    # CPU time that processes other than this benchmark used while it ran
    others = (machine_busy_seconds() - busy_before) - (own_cpu_seconds() - own_before)
    loads = (max(0.0, others), elapsed, n_contended, n_retried)
    report(res, finals, infos, errors, cfg, workloads, args, repeats, elapsed, loads)
    return 0


def report(res, finals, infos, errors, cfg, workloads, args, repeats, elapsed, loads):
    def S(w, p, k):
        return summary(res.get((w, p, k)))

    def med(w, p, k):
        s = S(w, p, k)
        return s[0] if s else None

    rows = []   # (label, {column: text}, check, target, result)
    checks = []

    def ratio(ours, theirs, lower_is_better):
        if ours is None or theirs is None or ours <= 0 or theirs <= 0:
            return None
        return theirs / ours if lower_is_better else ours / theirs

    def metric_row(w, label, key, lower=False, scale=None):
        cols, ratios = {}, {}
        ours = med(w, "deltaprop", key)
        if scale:
            ours = ours * scale if ours is not None else None
        s = S(w, "deltaprop", key)
        cols["deltaprop"] = cell(tuple(x * scale for x in s) if (s and scale) else s)
        for p in PEER_COLUMNS:
            s = S(w, p, key)
            if s and scale:
                s = tuple(x * scale for x in s)
            rt = ratio(ours, s[0] if s else None, lower)
            ratios[p] = rt
            cols[p] = cell(s, rt)
        rows.append([label, cols, "", "", ""])
        return ours, ratios

    def check(label, value, target, ok, fmt="{:.2f}×"):
        res_txt = "n/a" if value is None else ("PASS" if ok(value) else "MISS")
        rows[-1][2:] = ["n/a" if value is None else fmt.format(value), target, res_txt]
        checks.append((label, res_txt))

    def best(ratios):
        vals = [v for v in ratios.values() if v is not None]
        return min(vals) if vals else None   # vs the fastest peer = the smallest ratio

    c = cfg
    if "W1" in workloads:
        # like for like: every peer shuffles each epoch in the first row; deltaprop and numpy also walk
        # the data in order in the second (the fastest plain numpy), and each row is checked on its own
        _, r = metric_row("W1", "W1 mnist-mlp train samples/s, shuffled", "train_sps")
        check("W1 train shuffled", best(r), "≥1.6× fastest", lambda v: v >= 1.6)
        _, r = metric_row("W1", "W1 mnist-mlp train samples/s, in order", "train_inorder_sps")
        check("W1 train in order", best(r), "≥1.6× fastest", lambda v: v >= 1.6)
        _, r = metric_row("W1", "W1 predict latency batch 1 (µs)", "lat_us", lower=True)
        check("W1 latency", best(r), "≤¼ fastest (≥4×)", lambda v: v >= 4.0)
        metric_row("W1", f"W1 predict batch {c['W1']['tput_batch']} samples/s", "tput_sps")
        cols = {}
        for p in ("deltaprop",) + PEER_COLUMNS:
            f = finals.get(("W1", p)) or {}
            cols[p] = f"{f['maxrss_kb'] / 1024:.0f} MB" if "maxrss_kb" in f else "n/a"
        f = finals.get(("W1", "deltaprop")) or {}
        mem_ratio = None
        if "maxrss_kb" in f and f.get("data_bytes"):
            mem_ratio = f["maxrss_kb"] * 1024 / (f["data_bytes"] + f["net_bytes"])
            cols["deltaprop"] += f" = {mem_ratio:.2f}×(data+net {(f['data_bytes'] + f['net_bytes']) / 2**20:.0f} MB)"
        rows.append(["W1 peak RSS of the fit process", cols, "", "", ""])
        check("W1 memory", mem_ratio, "<2× data+net", lambda v: v < 2.0)
    if "W2" in workloads:
        _, r = metric_row("W2", "W2 ng-ex4 full-batch iterations/s", "iters_ps")
        check("W2", best(r), "≥2× fastest", lambda v: v >= 2.0)
    if "W3" in workloads:
        n3 = c["W3"]["batches"] * c["W3"]["batch"]
        flops = train_flops(c["W3"]["sizes"], n3)
        metric_row("W3", "W3 wide train samples/s", "train_sps")
        ours, _ = metric_row("W3", "W3 wide train GFLOP/s", "train_sps", scale=flops / n3 / 1e9)
        peak = S("W3", "gemm", "gflops")
        rows.append([f"float32 GEMM peak GFLOP/s (numpy {c['GEMM']['n']}²)", {"numpy": cell(peak)}, "", "", ""])
        frac = ours / peak[0] if (ours is not None and peak) else None
        rows.append(["W3 deltaprop GFLOP/s ÷ GEMM peak", {"deltaprop": "n/a" if frac is None else f"{frac:.2f}"}, "", "", ""])
        check("W3 peak", frac, "≥0.85 of peak", lambda v: v >= 0.85, "{:.2f}")
        s1 = S("W3", "deltaprop-1t", "train_sps")
        rows.append(["W3 deltaprop 1 thread samples/s", {"deltaprop": cell(s1)}, "", "", ""])
        sp = None
        s2 = S("W3", "deltaprop", "train_sps")
        if s1 and s2 and args.threads > 1:
            sp = s2[0] / s1[0]
        rows.append([f"W3 speed-up {args.threads} vs 1 thread", {"deltaprop": "n/a" if sp is None else f"{sp:.2f}×"}, "", "", ""])
        check("W3 speed-up", sp, "≥1.8×", lambda v: v >= 1.8)
    if "W4" in workloads:
        _, r = metric_row("W4", "W4 online-tiny updates/s", "updates_ps")
        check("W4", r.get("numpy"), "≥40× numpy", lambda v: v >= 40.0)

    # ---- print
    print()
    print(f"deltaprop benchmarks: threads={args.threads} repeats={repeats} mode={'quick' if args.quick else 'full'} "
          f"(wall {elapsed:.0f} s)")
    other_frac = loads[0] / (loads[1] * (os.cpu_count() or 1)) if loads[1] > 0 else 0.0
    print(f"CPU: {cpu_description()}, {os.cpu_count()} CPUs")
    print(f"other processes used {loads[0]:.0f} CPU-s during the run ({100 * other_frac:.0f}% of "
          f"{os.cpu_count()} CPUs); measurements during which they took >10% of the machine: "
          f"{loads[3]} retried, {loads[2]} kept")
    if loads[2]:
        print("warning: some measurements ran on a busy machine; multi-threaded peers suffer most")
    vers = ", ".join(f"{p} {infos[p].get('version', '?')}" for p in ("deltaprop", "numpy", "torch", "sklearn") if p in infos)
    if "deltaprop" in infos:
        vers += f"; deltaprop kernel={infos['deltaprop'].get('kernel')} threads={infos['deltaprop'].get('threads')}"
    print(vers)
    print("cells: median (min–max); ×r = deltaprop's ratio to that peer (>1: deltaprop better; "
          "latency and memory: peer/ours)")
    header = ["workload / metric", "deltaprop"] + list(PEER_COLUMNS) + ["check", "target", "result"]
    table = [header] + [[r[0], r[1].get("deltaprop", "")] + [r[1].get(p, "") for p in PEER_COLUMNS] + r[2:]
                        for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    sep = "-+-".join("-" * wd for wd in widths)
    for i, row in enumerate(table):
        print(" | ".join(str(x).ljust(wd) for x, wd in zip(row, widths)).rstrip())
        if i == 0:
            print(sep)
    print()
    n_pass = sum(1 for _, r in checks if r == "PASS")
    print(f"targets: {n_pass} PASS, {sum(1 for _, r in checks if r == 'MISS')} MISS, "
          f"{sum(1 for _, r in checks if r == 'n/a')} n/a")
    notes = [
        f"W1: {c['W1']['n']} samples, batch {c['W1']['batch']}, lr {c['W1']['lr']}; W2: {c['W2']['n']} samples, "
        f"{c['W2']['iters']} iterations per measurement; W3: {c['W3']['batches']} batches of {c['W3']['batch']}, "
        f"GFLOP/s counts 2·batch·(2·Σn_in·n_out + Σ_(l≥2) n_in·n_out) per step; W4: deltaprop {c['W4']['n']} updates, "
        f"peers {c['W4']['n_peer']} updates (rate).",
        "sklearn W2: MLPClassifier with one-hot targets = multilabel (logistic output, binary log-loss, alpha=λ): "
        "the same math. sklearn W4: MLPRegressor (identity output instead of sigmoid; closest available).",
        "peak RSS includes the interpreter and imported modules.",
    ]
    if args.quick:
        notes.append("quick mode: reduced sizes and repeats; the targets are meant for the full run "
                     "(the memory ratio especially: the interpreter weighs more against the smaller data).")
    for (w, p), e in sorted(errors.items()):
        notes.append(f"{w} {p}: unavailable ({e})")
    for (w, p, k), v in sorted(res.items()):
        if k == "loss" and not all(math.isfinite(x) for x in v):
            notes.append(f"warning: {w} {p} produced a non-finite loss")
    for n in notes:
        print("note:", n)


if __name__ == "__main__":
    sys.exit(main())
