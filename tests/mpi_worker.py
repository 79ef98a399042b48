# SPDX-License-Identifier: MIT
"""Run by tests/test_distributed.py under mpirun: python mpi_worker.py SCENARIO OUT_DIR.

Each rank writes OUT_DIR/SCENARIO-RANK.pkl: a dict of results (parameters, History values, or the
type and text of what it raised)."""
import os
import pickle
import signal
import sys

import numpy as np
from mpi4py import MPI

import deltaprop as dp

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()


def data(n=203, n_in=5, classes=3, seed=7, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in)).astype(dtype)
    y = (np.abs(X[:, 0] + X[:, 1] * X[:, 2]) * 1.7).astype(np.int64) % classes
    return X, y


def net(dtype="float32", seed=None):
    # differently seeded on every rank: the broadcast from rank 0 must make them agree
    return dp.Network([5, 16, 8, 3], activation="tanh", loss="cross_entropy", dtype=dtype,
                      seed=rank if seed is None else seed)


def optimizers():
    return {"sgd": dp.optim.SGD(lr=0.05, momentum=0.9), "adam": dp.optim.Adam(lr=3e-3)}


def outcome(fn):
    """('ok', value) or (exception type name, message)."""
    try:
        return ("ok", fn())
    except BaseException as e:  # noqa: BLE001
        return (type(e).__name__, str(e))


def replicated():
    X, y = data()
    Xv, yv = data(n=40, seed=8)
    out = {}
    for threads in (1, 2):
        dp.set_num_threads(threads)
        for name, opt in optimizers().items():
            n = net()
            h = n.fit(X, y, epochs=3, batch_size=32, optimizer=opt, seed=5, l2=1e-3, clip_norm=5.0,
                      validation_data=(Xv, yv), comm=comm, data="replicated", reduction="reproducible",
                      chunk_rows=4)
            out[(threads, name)] = (n.params.copy(), list(h), h.val_loss, [r.seconds for r in h.records])
    dp.set_num_threads(1)
    return out


def shard(X, y):
    """Uneven contiguous shards: rank r gets a share proportional to r + 1."""
    cuts = np.floor(np.cumsum([0] + [r + 1 for r in range(size)]) / (size * (size + 1) / 2) * len(X)).astype(int)
    return X[cuts[rank]:cuts[rank + 1]], y[cuts[rank]:cuts[rank + 1]]


def mixed():
    """Sharded data, fast mode, failures: run with any number of ranks."""
    dp.set_num_threads(1)
    out = {}
    X, y = data(dtype=np.float64)
    Xs, ys = shard(X, y)
    for reduction in ("reproducible", "fast"):
        # full batches: the same global gradient as one process, up to rounding
        n = net("float64")
        h = n.fit(Xs, ys, epochs=4, batch_size=None, optimizer=dp.optim.Adam(lr=1e-2), shuffle=False,
                  comm=comm, data="sharded", reduction=reduction)
        out[("sharded-full", reduction)] = (n.params.copy(), list(h))
        # mini-batches of the shards with validation shards and early stopping
        Xv, yv = shard(*data(n=60, seed=9, dtype=np.float64))
        n = net("float64")
        h = n.fit(Xs, ys, epochs=6, batch_size=16, optimizer=dp.optim.SGD(lr=0.1, momentum=0.9), seed=3,
                  validation_data=(Xv, yv), early_stopping=True, patience=1, comm=comm, data="sharded",
                  reduction=reduction)
        out[("sharded-mini", reduction)] = (n.params.copy(), list(h), h.val_loss, h.val_accuracy,
                                            [r.seconds for r in h.records], h.best_epoch, h.stopped_early)
    # sample weights, sharded, full batch: the weighted mean over all shards
    w = np.linspace(0.0, 2.0, len(X))
    ws = shard(w, w)[0]
    n = net("float64")
    h = n.fit(Xs, ys, epochs=3, batch_size=None, lr=0.5, sample_weight=ws, shuffle=False, comm=comm)
    out["weighted"] = (n.params.copy(), list(h))
    # fast mode with replicated data
    n = net("float64")
    h = n.fit(X, y, epochs=3, batch_size=32, optimizer=dp.optim.Adam(lr=3e-3), seed=5, comm=comm,
              data="replicated", reduction="fast")
    out["fast-replicated"] = (n.params.copy(), list(h))

    # bad input on one rank: a NaN in rank 1's X
    Xb = Xs.copy()
    if rank == min(1, size - 1):
        Xb[0, 0] = np.nan
    n = net("float64")
    out["bad-input"] = outcome(lambda: n.fit(Xb, ys, epochs=2, comm=comm))
    out["bad-input-params-unchanged"] = bool(np.array_equal(n.params, net("float64").params))
    # different settings on one rank
    out["bad-settings"] = outcome(lambda: net("float64").fit(Xs, ys, epochs=2 + (rank == size - 1), comm=comm))
    # replicated data that differs between ranks
    out["replicated-differs"] = outcome(lambda: net("float64").fit(X + rank, y, epochs=1, comm=comm,
                                                                    data="replicated"))
    # divergence from one rank's data: every rank raises DivergenceError at the same step
    Yd = Xs[:, :1] * (1e200 if rank == size - 1 else 1.0)  # a squared error of 1e400 there
    n = dp.Network([5, 8, 1], activation="tanh", loss="mse", dtype="float64", seed=rank)
    out["diverge"] = outcome(lambda: n.fit(Xs, Yd, epochs=2, batch_size=8, lr=0.1, comm=comm))
    out["diverge-finite"] = bool(np.isfinite(n.params).all())
    # a callback raising on one rank
    def cb(r):
        if rank == size - 1 and r.epoch == 1:
            raise RuntimeError("callback failed")
    n = net("float64")
    out["callback-raises"] = outcome(lambda: n.fit(Xs, ys, epochs=4, callbacks=cb, comm=comm))
    out["callback-raises-epochs"] = len(n.history)
    # a callback stopping on one rank stops every rank after the same epoch
    n = net("float64")
    h = n.fit(Xs, ys, epochs=5, callbacks=lambda r: rank == 0 and r.epoch == 1, comm=comm)
    out["callback-stop"] = (len(h), h.stopped_early, n.params.copy())
    # Ctrl-C on one rank (here sent by a callback after epoch 2): every rank stops after that epoch
    def interrupt(r):
        if rank == size - 1 and r.epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)
    n = net("float64")
    out["sigint"] = outcome(lambda: n.fit(Xs, ys, epochs=4, callbacks=interrupt, comm=comm))
    out["sigint-history"] = (len(n.history), n.history.interrupted)
    return out


def overlap():
    """Overlap on and off: both reductions, SGD and Adam, replicated (float32, 1 and 2 threads) and
    uneven sharded mini-batches (float64)."""
    out = {}
    X, y = data()
    Xs, ys = shard(*data(dtype=np.float64))
    for threads in (1, 2):
        dp.set_num_threads(threads)
        for name, opt in optimizers().items():
            for reduction in ("reproducible", "fast"):
                for on in (False, True):
                    n = net()
                    h = n.fit(X, y, epochs=3, batch_size=32, optimizer=opt, seed=5, l2=1e-3, comm=comm,
                              data="replicated", reduction=reduction, chunk_rows=4, overlap=on)
                    out[("replicated", threads, name, reduction, on)] = (n.params.copy(), list(h))
                    if threads == 2:
                        continue
                    n = net("float64")
                    h = n.fit(Xs, ys, epochs=3, batch_size=16, optimizer=opt, seed=3, comm=comm, data="sharded",
                              reduction=reduction, overlap=on)
                    out[("sharded", threads, name, reduction, on)] = (n.params.copy(), list(h))
    dp.set_num_threads(1)
    # divergence on one rank's data with the overlap: the guard's replay runs the hooks again
    Yd = Xs[:, :1] * (1e200 if rank == size - 1 else 1.0)
    for reduction in ("reproducible", "fast"):
        for on in (False, True):
            n = dp.Network([5, 8, 1], activation="tanh", loss="mse", dtype="float64", seed=rank)
            out[("diverge", reduction, on)] = (outcome(lambda: n.fit(Xs, Yd, epochs=2, batch_size=8, lr=0.1, comm=comm,
                                                                     reduction=reduction, overlap=on)),
                                               n.params.copy())
    return out


def inject(method, calls=3):
    """Make deltaprop.distributed._Session.<method> raise on the last rank at its calls-th call."""
    from deltaprop import distributed
    real = getattr(distributed._Session, method)
    seen = [0]

    def failing(self, *args, **kwargs):
        seen[0] += 1
        if rank == size - 1 and seen[0] == calls:
            raise RuntimeError(f"injected failure in {method}")
        return real(self, *args, **kwargs)

    setattr(distributed._Session, method, failing)
    return lambda: setattr(distributed._Session, method, real)


def reduce_raises():
    """The reduction raises on one rank before the step's collective: every rank raises."""
    dp.set_num_threads(1)
    out = {}
    X, y = data(dtype=np.float64)
    for reduction in ("reproducible", "fast"):
        for on in (False, True):
            undo = inject("_stop_wish")
            n = net("float64")
            out[(reduction, on)] = outcome(lambda: n.fit(X, y, epochs=2, batch_size=32, comm=comm, data="replicated",
                                                         reduction=reduction, overlap=on))
            undo()
            out[(reduction, on, "params")] = n.params.copy()
    out["bad-overlap"] = outcome(lambda: net("float64").fit(X, y, comm=comm, overlap="yes"))
    return out


def collective_raises():
    """The reduction raises on one rank inside the step's collectives (argv: the method that raises,
    the reduction, "overlap" or "plain"): the job is aborted, never left hanging."""
    dp.set_num_threads(1)
    method, reduction, mode = sys.argv[3:6]
    inject(method)
    X, y = data(dtype=np.float64)
    net("float64").fit(X, y, epochs=2, batch_size=32, comm=comm, data="replicated", reduction=reduction,
                       overlap=mode == "overlap")
    return {}


if __name__ == "__main__":
    scenario, out_dir = sys.argv[1], sys.argv[2]
    result = {"replicated": replicated, "mixed": mixed, "overlap": overlap, "reduce-raises": reduce_raises,
              "collective-raises": collective_raises}[scenario]()
    with open(os.path.join(out_dir, f"{scenario}-{rank}.pkl"), "wb") as f:
        pickle.dump(result, f)
