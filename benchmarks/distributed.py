# SPDX-License-Identifier: MIT
"""Data-parallel training over MPI: the per-step time of W1 and W3 split into compute and communication,
on 1 and 2 ranks, for both reductions, with the overlap of the reduction with the backward pass off and
on (docs/distributed.md).

    python benchmarks/distributed.py [--ranks 1,2] [--repeats 5] [--quick]

Launches itself under mpirun on this machine only (shared memory and loopback; the Open MPI settings of
tests/test_distributed.py), one thread per rank, replicated data, and prints a table. Communication is
the wall time inside the per-step reduction (the Python callback, the MPI collectives, and any wait for
the slower rank) and, with the overlap, inside the per-layer calls that start the collectives; compute
is the rest of the step. Each configuration runs --repeats times; the table gives the median step and
the spread (min-max) of the slowest rank's time per step. Needs mpi4py and an MPI library (mpirun).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

WORKLOADS = {
    # as benchmarks/run.py: relu hidden layers, softmax + cross-entropy, float32, SGD
    "W1": dict(sizes=(784, 256, 128, 10), batch=64, steps=300, lr=0.05),
    "W3": dict(sizes=(1024, 1024, 1024, 10), batch=256, steps=24, lr=0.01),
}
MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1",
    "OMPI_MCA_btl": "self,vader", "OMPI_MCA_oob_tcp_if_include": "lo", "OMPI_MCA_btl_tcp_if_include": "lo",
    # a rank waiting in a collective yields its core (this machine is shared; busy-polling ranks starve
    # the rank they wait for)
    "OMPI_MCA_mpi_yield_when_idle": "1",
}


def child(repeats: int, quick: bool) -> None:
    import numpy as np
    from mpi4py import MPI

    import deltaprop as dp
    from deltaprop import distributed

    comm = MPI.COMM_WORLD
    dp.set_num_threads(1)
    spent = [0.0, 0]  # seconds inside the reduction and the overlap's per-layer calls, calls

    def timing(inner):
        def timed(self, *a):
            t = time.perf_counter()
            try:
                return inner(self, *a)
            finally:
                spent[0] += time.perf_counter() - t
                spent[1] += 1
        return timed

    distributed._Session.reduce = timing(distributed._Session.reduce)
    distributed._Session.layer_ready = timing(distributed._Session.layer_ready)
    rows = []
    for name, w in WORKLOADS.items():
        steps = max(4, w["steps"] // (4 if quick else 1))
        rng = np.random.default_rng(1)
        n = steps * w["batch"]
        X = rng.normal(size=(n, w["sizes"][0])).astype(np.float32)
        y = rng.integers(0, w["sizes"][-1], size=n)
        modes = [(r, o) for r in ("reproducible", "fast") for o in (False, True)]
        modes += [("plain", False)] if comm.Get_size() == 1 else []
        for mode, overlap in modes:
            runs = []
            for _ in range(repeats):
                net = dp.Network(list(w["sizes"]), activation="relu", loss="cross_entropy", seed=0)
                spent[:] = [0.0, 0]
                comm.Barrier()
                t = time.perf_counter()
                if mode == "plain":
                    net.fit(X, y, epochs=1, batch_size=w["batch"], lr=w["lr"], shuffle=False)
                else:
                    net.fit(X, y, epochs=1, batch_size=w["batch"], lr=w["lr"], shuffle=False, comm=comm,
                            data="replicated", reduction=mode, overlap=overlap)
                total = time.perf_counter() - t
                # the slowest rank's times
                runs.append((comm.allreduce(total, op=MPI.MAX), comm.allreduce(spent[0], op=MPI.MAX)))
            runs.sort()
            median = runs[len(runs) // 2]
            n_params = net.params.size
            slots = -(-w["batch"] // -(-w["batch"] // 8))  # chunks of ceil(batch / 8) rows
            per_step_bytes = 4 * n_params * (slots if mode == "reproducible" else 1)
            rows.append(dict(workload=name, ranks=comm.Get_size(), mode=mode, overlap=overlap, steps=steps,
                             batch=w["batch"], step_ms=1e3 * median[0] / steps, comm_ms=1e3 * median[1] / steps,
                             min_ms=1e3 * runs[0][0] / steps, max_ms=1e3 * runs[-1][0] / steps,
                             mbytes=per_step_bytes / 1e6, n_params=n_params))
    if comm.Get_size() > 1:  # the raw collectives, for the cost model: latency and bandwidth
        for label, count in (("latency", 1), ("W1", rows[0]["n_params"]), ("W3", rows[-1]["n_params"])):
            buf = np.zeros(count, dtype=np.float32)
            times = []
            for _ in range(30 if count > 1 else 300):
                comm.Barrier()
                t = time.perf_counter()
                comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                times.append(time.perf_counter() - t)
            rows.append(dict(raw=label, ranks=comm.Get_size(), bytes=4 * count, ms=1e3 * float(np.median(times))))
        # the same bytes as one non-blocking allreduce per layer (what overlap=True posts), then Waitall
        for name, w in WORKLOADS.items():
            sizes = w["sizes"]
            bufs = [np.zeros(sizes[l] * sizes[l + 1] + sizes[l + 1], dtype=np.float32)
                    for l in reversed(range(len(sizes) - 1))]
            times = []
            for _ in range(30):
                comm.Barrier()
                t = time.perf_counter()
                MPI.Request.Waitall([comm.Iallreduce(MPI.IN_PLACE, b, op=MPI.SUM) for b in bufs])
                times.append(time.perf_counter() - t)
            rows.append(dict(raw=f"{name} per layer", ranks=comm.Get_size(), bytes=4 * sum(b.size for b in bufs),
                             ms=1e3 * float(np.median(times))))
    if comm.Get_rank() == 0:
        print("RESULT " + json.dumps(rows))


def ring_allreduce_s(p: int, nbytes: float, bandwidth: float, latency: float) -> float:
    """Ring allreduce: 2(p-1)/p bytes over the link and 2(p-1) latencies."""
    return 2 * (p - 1) / p * nbytes / bandwidth + 2 * (p - 1) * latency


def overlap_shape(sizes) -> tuple:
    """(B_up / B, g): the share of the gradient's bytes above layer 0, and the share of a step's flops
    left once layer 1's gradient is final (delta(0) and dW(0)): the window in which overlap=True can run
    the collectives of layers 1..L-1."""
    prod = [sizes[l] * sizes[l + 1] for l in range(len(sizes) - 1)]
    params = [sizes[l] * sizes[l + 1] + sizes[l + 1] for l in range(len(sizes) - 1)]
    flops = 2 * sum(prod) + sum(prod[1:])  # forward, dW, delta(l - 1) for l >= 1
    return 1 - params[0] / sum(params), (prod[0] + prod[1]) / flops


def model(step_ms: dict, n_params: dict) -> None:
    """Predicted speed-up of fast mode at a fixed global batch, and the global batch at which
    communication stays under 10% of a step, on p nodes (one step's compute t1 / p); with the overlap,
    if the MPI library progresses the per-layer collectives while the core computes."""
    links = {"10 Gb/s": (10e9 / 8, 20e-6), "100 Gb/s": (100e9 / 8, 2e-6)}
    ps = (2, 4, 8, 16, 32, 64)
    print("predicted speed-up, fast reduction (ring allreduce), fixed global batch; "
          "node step time = t1 (measured here, 2 threads)")
    print(f"{'':31}" + "".join(f"{'p=' + str(p):>8}" for p in ps))
    for w, (t1_ms, batch) in step_ms.items():
        nbytes = 4 * n_params[w]
        up, g = overlap_shape(WORKLOADS[w]["sizes"])
        for link, (bw, lat) in links.items():
            t1 = t1_ms / 1e3
            cells = [t1 / (t1 / p + ring_allreduce_s(p, nbytes, bw, lat)) for p in ps]
            print(f"{w} b={batch:<4} {link:9}         " + "".join(f"{c:8.2f}" for c in cells))
            # overlap: layers 1..L-1 reduced (one collective each) during the rest of the backward pass,
            # layer 0 after it
            layers = len(WORKLOADS[w]["sizes"]) - 1
            cells = [t1 / (t1 / p + max(0.0, ring_allreduce_s(p, up * nbytes, bw, lat) +
                                        (layers - 2) * 2 * (p - 1) * lat - g * t1 / p) +
                           ring_allreduce_s(p, (1 - up) * nbytes, bw, lat)) for p in ps]
            print(f"{w} b={batch:<4} {link:9} overlap " + "".join(f"{c:8.2f}" for c in cells))
    for w in step_ms:
        up, g = overlap_shape(WORKLOADS[w]["sizes"])
        print(f"{w}: {100 * up:.0f}% of the gradient's bytes above layer 0, reduced during the last "
              f"{100 * g:.0f}% of a step's flops (delta(0) and dW(0))")
    print("global batch at which communication is at most 10% of a step (compute t1/p per step ∝ batch/p)")
    for w, (t1_ms, batch) in step_ms.items():
        nbytes = 4 * n_params[w]
        per_sample = t1_ms / 1e3 / batch
        for link, (bw, lat) in links.items():
            cells = [9 * p * ring_allreduce_s(p, nbytes, bw, lat) / per_sample for p in ps]
            print(f"{w:13} {link:9}" + "".join(f"{c:8.0f}" for c in cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", action="store_true", help="print the cost model's predictions and exit")
    args = ap.parse_args()
    if args.model:
        # one node = this machine's two threads (benchmarks/README.md): W1 114k samples/s, W3 15.8k samples/s
        model({"W1": (64 / 114e3 * 1e3, 64), "W3": (256 / 15.8e3 * 1e3, 256)}, {"W1": 235146, "W3": 2109450})
        return
    if args.child:
        child(args.repeats, args.quick)
        return
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        sys.exit("mpirun not found (Debian: apt-get install openmpi-bin libopenmpi-dev)")
    rows = []
    for p in (int(s) for s in args.ranks.split(",")):
        cmd = [mpirun, "-n", str(p), "--oversubscribe", "--bind-to", "none", sys.executable, os.path.abspath(__file__),
               "--child", "--repeats", str(args.repeats)] + (["--quick"] if args.quick else [])
        out = subprocess.run(cmd, env=dict(os.environ, **MPI_ENV, DELTAPROP_NUM_THREADS="1"), capture_output=True,
                             text=True, timeout=1800)
        if out.returncode != 0:
            sys.exit(out.stdout + out.stderr)
        rows += json.loads(next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))[7:])
    print(f"deltaprop data-parallel training, one thread per rank, replicated data, median of {args.repeats} runs")
    print(f"{'workload':8} {'ranks':>5} {'reduction':13} {'overlap':7} {'step ms':>8} {'min-max':>15} "
          f"{'compute':>8} {'comm':>8} {'comm %':>6} {'MB/step':>8} {'samples/s':>10}")
    raw = [r for r in rows if "raw" in r]
    rows = [r for r in rows if "raw" not in r]
    for r in rows:
        compute = r["step_ms"] - r["comm_ms"]
        spread = f"{r['min_ms']:.3f}-{r['max_ms']:.3f}"
        print(f"{r['workload']:8} {r['ranks']:5d} {r['mode'] if r['mode'] != 'plain' else 'none (fit)':13} "
              f"{('on' if r['overlap'] else 'off') if r['mode'] != 'plain' else '':7} "
              f"{r['step_ms']:8.3f} {spread:>15} {compute:8.3f} {r['comm_ms']:8.3f} "
              f"{100 * r['comm_ms'] / r['step_ms']:6.1f} "
              f"{r['mbytes'] if r['mode'] != 'plain' else 0:8.2f} {r['batch'] / r['step_ms'] * 1e3:10.0f}")
    print("compute = step - comm; comm = time inside the per-step reduction (Python callback, MPI, waiting "
          "for the slower rank) and the overlap's per-layer calls; min-max: the spread of the runs; "
          "MB/step = the gradient bytes each step's collectives handle")
    for r in raw:
        what = "MPI_Iallreduce per layer + Waitall" if r["raw"].endswith("per layer") else "MPI_Allreduce"
        print(f"raw {what} on {r['ranks']} ranks, {r['bytes']} bytes: {r['ms']:.4f} ms (median of 30)")
    lat = next((r["ms"] / 1e3 for r in raw if r["raw"] == "latency"), None)
    for r in raw:
        if r["raw"] in WORKLOADS and lat is not None:
            p = r["ranks"]
            t = r["ms"] / 1e3 - lat  # the bytes' share: the time beyond a one-element allreduce
            print(f"  {r['raw']}: effective bandwidth {2 * (p - 1) / p * r['bytes'] / max(t, 1e-9) / 1e9:.2f} GB/s")


if __name__ == "__main__":
    main()
