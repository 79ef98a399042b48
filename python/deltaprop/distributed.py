# SPDX-License-Identifier: MIT
"""Data-parallel training over MPI: ``net.fit(X, Y, ..., comm=MPI.COMM_WORLD)`` (docs/distributed.md).

Needs mpi4py (``pip install "deltaprop[mpi]"``), imported here only; ``import deltaprop`` never imports
this module. Every rank runs the same native training loop; once per step the loop hands this rank's
gradient sums to ``_Session.reduce`` (below), which combines them with one or two MPI collectives on
numpy views of the native buffers (no pickling, no copies), and every rank applies the same update.

- ``reduction="reproducible"``: the slots of the gradient (a chunk of the global batch each with
  replicated data, a rank each with sharded data) are gathered with ``Allgatherv`` in place and added
  up in slot order by the core: with replicated data the parameters are bitwise identical for any
  number of ranks and threads. ``reduction="fast"``: ``Allreduce`` with ``MPI.SUM``.
- ``overlap=True``: the native loop announces each layer as soon as its gradient is final
  (``_Session.layer_ready``), which starts that layer's collective, non-blocking (``Iallreduce``, or
  ``Iallgatherv`` of the layer's range of every slot); the step's ``reduce`` waits for them. The same
  results; off by default (it did not pay on the machine it was measured on; docs/distributed.md).
- ``data="replicated"``: every rank passes the same arrays and the global batches are those of one
  process; ``data="sharded"``: each rank passes its own shard (sizes may differ), shuffled with a
  rank-derived seed, and gives a share proportional to its size to each of the
  ceil(total rows / batch_size) global batches of an epoch.

Agreement: the arguments are checked on every rank before any training (a rank whose arguments are bad
makes every rank raise); the parameters, optimizer state and generator are broadcast from rank 0; stops
(Ctrl-C, a callback returning True or raising) travel with the next reduction or the epoch's agreement,
so every rank stops at the same step; only rank 0 prints progress; the History is the same everywhere.
The reduction never leaves the other ranks waiting: a failure before a step's collective travels with
it (every rank raises), a failure inside one prints the traceback and aborts the job (MPI_Abort).
"""
from __future__ import annotations

import hashlib
import signal
import sys
import threading
import traceback
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import _core
from ._history import History

REDUCTIONS = ("reproducible", "fast")
DATA = ("sharded", "replicated")
_ORDERED, _SUM = 0, 1
_SCHEDULE_FIELDS = ("kind", "per_step", "power", "scale", "gamma", "step_size", "t_max", "warmup", "eta_min",
                    "factor", "patience", "cooldown", "threshold", "threshold_abs", "min_lr")
_OPTIMIZER_FIELDS = ("kind", "lr", "momentum", "nesterov", "weight_decay", "beta1", "beta2", "eps", "amsgrad",
                     "eps_hat", "clip_norm")


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("deltaprop.distributed needs mpi4py: pip install 'deltaprop[mpi]' "
                          "(and an MPI library, e.g. Debian's openmpi-bin and libopenmpi-dev)") from e
    return MPI


class RankError(RuntimeError):
    """Another rank raised during distributed training; this rank stopped with it (``rank``, ``error``)."""

    def __init__(self, message: str, rank: int, error: str) -> None:
        super().__init__(message)
        self.rank = rank
        self.error = error


def _mix(seed: int, rank: int) -> int:
    """A rank's shuffle seed: the seed itself on rank 0."""
    return (seed ^ (rank * 0x9E3779B97F4A7C15)) % 2**64


def _crc(*arrays: Optional[np.ndarray]) -> str:
    """A hash of the arrays' shapes and of up to 4096 evenly spaced rows of each (cheap for large data;
    it catches ranks passing different arrays where they must pass the same)."""
    h = hashlib.blake2b(digest_size=8)
    for a in arrays:
        if a is None:
            h.update(b"-")
        else:
            h.update(str((a.dtype.str, a.shape)).encode())
            rows = np.unique(np.linspace(0, max(len(a) - 1, 0), min(len(a), 4096)).astype(np.int64))
            h.update(np.ascontiguousarray(a[rows]).data)
    return h.hexdigest()


class _Session:
    """One distributed fit call: the reduction the native loop calls each step and the agreements."""

    def __init__(self, MPI: Any, comm: Any, net: Any, ordered: bool, sharded: bool, steps: int,
                 chunk_rows: int, overlap: bool = False) -> None:
        self.MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.ordered = ordered
        self.sharded = sharded
        self.steps = steps
        self.chunk_rows = chunk_rows
        self.mpi_type = MPI.DOUBLE if net._dtype == np.float64 else MPI.FLOAT
        self.error: Optional[BaseException] = None
        self.interrupted = False
        self._layouts: Dict[int, Any] = {}
        self.overlap = overlap
        self._requests: List[Any] = []  # overlap: this step's per-layer collectives in flight
        self._types: Dict[Tuple[int, int], Any] = {}  # overlap, ordered: one slot's layer range

    def native(self) -> Tuple[Any, ...]:
        return (self.reduce, _ORDERED if self.ordered else _SUM, self.rank, self.size, self.sharded, self.steps,
                self.chunk_rows, self.layer_ready if self.overlap else None)

    def close(self) -> None:
        """Frees the MPI datatypes made for the overlap."""
        for t in self._types.values():
            t.Free()
        self._types.clear()

    def _abort(self, e: BaseException, where: str) -> None:
        """A failure inside a collective: the other ranks cannot learn of it, so it ends the job."""
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
        print(f"deltaprop.distributed: rank {self.rank} failed in {where}; the other ranks cannot be told: "
              f"aborting the job (MPI_Abort)", file=sys.stderr, flush=True)
        self.comm.Abort(1)

    def fail(self, e: BaseException) -> None:
        if self.error is None:
            self.error = e

    def _layout(self, n_slots: int) -> Tuple[np.ndarray, np.ndarray]:
        """Slots per rank and their offsets: one each (sharded) or chunks [C r / p, C (r + 1) / p)."""
        lay = self._layouts.get(n_slots)
        if lay is None:
            if self.sharded:
                first = np.arange(self.size + 1, dtype=np.int64)
            else:
                first = np.array([n_slots * r // self.size for r in range(self.size + 1)], dtype=np.int64)
            counts, displs = np.diff(first), first[:-1]
            lay = self._layouts[n_slots] = (counts, displs)
        return lay

    def _layer_type(self, begin: int, end: int, n: int) -> Any:
        """Layer range [begin, end) of one slot of n parameters, as one element whose extent is a slot."""
        t = self._types.get((begin, end))
        if t is None:
            item = self.mpi_type.Get_extent()[1]
            t = self._types[(begin, end)] = self.mpi_type.Create_contiguous(end - begin).Create_resized(0, n * item)
            t.Commit()
        return t

    def layer_ready(self, grads: np.ndarray, first: int, count: int, batch: int, layer: int, begin: int,
                    end: int) -> None:
        """Overlap: called by the native loop as soon as elements [begin, end) (layer `layer`) of this
        rank's slots are final. Starts their collective (in place, non-blocking) and lets MPI progress the
        earlier layers' (Open MPI progresses non-blocking collectives only inside MPI calls); reduce
        waits for all of them. A failure here leaves the other ranks in a collective this rank cannot
        match: it aborts the job."""
        MPI = self.MPI
        try:
            if self.ordered:
                counts, displs = self._layout(grads.shape[0])
                flat = grads.reshape(-1)
                msg = [flat[begin:], counts, displs, self._layer_type(begin, end, grads.shape[1])]
                self._requests.append(self.comm.Iallgatherv(MPI.IN_PLACE, msg))
            else:
                self._requests.append(self.comm.Iallreduce(MPI.IN_PLACE, [grads[0, begin:end], self.mpi_type],
                                                           op=MPI.SUM))
            MPI.Request.Testall(self._requests)
        except BaseException as e:  # noqa: BLE001 - ends the job, never hangs it
            self._abort(e, f"starting the reduction of layer {layer} (batch {batch})")

    def _stop_wish(self) -> bool:
        """This rank's wish to stop before this step's update (Ctrl-C, a callback that raised)."""
        return self.interrupted or self.error is not None

    def _exchange(self, grads: Optional[np.ndarray], stats: np.ndarray) -> None:
        """The step's collectives: the gradient (or what the overlap started), then the statistics."""
        MPI, comm = self.MPI, self.comm
        if self.overlap and grads is not None:  # every layer's collective was started by layer_ready
            MPI.Request.Waitall(self._requests)
            self._requests.clear()
            grads = None
        if self.ordered:
            counts, displs = self._layout(stats.shape[0])
            if grads is not None:
                n = grads.shape[1]
                comm.Allgatherv(MPI.IN_PLACE, [grads, counts * n, displs * n, self.mpi_type])
            comm.Allgatherv(MPI.IN_PLACE, [stats, counts * 4, displs * 4, MPI.DOUBLE])
        else:
            if grads is not None:
                comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
            comm.Allreduce(MPI.IN_PLACE, stats, op=MPI.SUM)

    def reduce(self, grads: Optional[np.ndarray], stats: np.ndarray, first: int, count: int,
               batch: Optional[int]) -> bool:
        """Called by the native loop once per step (batch: its index) and, with sharded validation data,
        once per epoch (batch None, grads None). Returns True to stop every rank before the update.

        It never raises: a failure before this step's collectives is kept and this rank still takes part,
        with its wish to stop set, so every rank stops after this step and raises; a failure inside them
        (agreement is then impossible) prints the traceback and aborts the job (MPI_Abort)."""
        step = batch is not None
        if step:  # this rank's wish to stop travels in column 2 of its slots
            try:
                wish = self._stop_wish()
            except BaseException as e:  # noqa: BLE001 - carried to every rank by this step's collective
                self.fail(e)
                wish = True
            stats[first:first + count, 2] = 1.0 if wish else 0.0
        try:
            self._exchange(grads, stats)
        except BaseException as e:  # noqa: BLE001 - ends the job, never hangs it
            self._abort(e, "a step's reduction" if step else "the validation statistics' reduction")
        return step and bool(stats[:, 2].any())

    def agree_stop(self, stop: bool) -> bool:
        """After each epoch: stop if any rank's callbacks asked to, raised, or saw Ctrl-C."""
        flag = np.array([1.0 if (stop or self.error is not None or self.interrupted) else 0.0])
        try:
            self.comm.Allreduce(self.MPI.IN_PLACE, flag, op=self.MPI.MAX)
        except BaseException as e:  # noqa: BLE001 - ends the job, never hangs it
            self._abort(e, "the agreement at the end of an epoch")
        return bool(flag[0])


def _agree_errors(comm: Any, error: Optional[BaseException], what: str) -> None:
    """Every rank learns whether any rank failed; a failed rank raises its own error, the others a
    RankError naming the first failed rank."""
    desc = None if error is None else f"{type(error).__name__}: {error}"
    descs = comm.allgather(desc)
    if error is not None:
        raise error
    for r, d in enumerate(descs):
        if d is not None:
            raise RankError(f"rank {r} raised {d} ({what}); every rank stopped", r, d)


def _settings(net: Any, p: Any, reduction: str, data: str, chunk_rows: int, overlap: bool) -> Dict[str, Any]:
    """What must be the same on every rank (the data too, when replicated)."""
    s: Dict[str, Any] = {
        "architecture": (tuple(net._sizes), tuple(net._acts), net._loss, str(net._dtype)),
        "epochs": p.epochs, "batch_size": p.batch_size, "shuffle": p.shuffle, "l2": p.l2,
        "optimizer": tuple(getattr(p.opt, f, None) for f in _OPTIMIZER_FIELDS),
        "schedule": tuple(getattr(p.sched, f, None) for f in _SCHEDULE_FIELDS),
        "early_stopping": p.early_stopping, "monitor": p.monitor, "patience": p.patience,
        "min_delta": p.min_delta, "restore_best": p.restore_best, "validation data": p.Xv is not None,
        "sample_weight": p.w is not None, "reduction": reduction, "data": data, "chunk_rows": chunk_rows,
        "overlap": overlap,
        "target kind": p.Y.dtype.kind,
    }
    if data == "replicated":
        s["X, Y and sample_weight (replicated data)"] = _crc(p.X, p.Y, p.w)
        s["validation data (replicated data)"] = _crc(p.Xv, p.Yv, p.wv)
    return s


def _broadcast_state(MPI: Any, comm: Any, net: Any) -> bytes:
    """Rank 0's parameters, optimizer state and generator onto every rank; returns the model bytes."""
    data = net._core.to_bytes(True) if comm.Get_rank() == 0 else None
    size = comm.bcast(len(data) if data is not None else None, root=0)
    buf = np.frombuffer(data, dtype=np.uint8).copy() if data is not None else np.empty(size, dtype=np.uint8)
    comm.Bcast([buf, MPI.BYTE], root=0)
    if comm.Get_rank() != 0:
        net._core.copy_state(_core.Net.from_bytes(buf.tobytes()))
    return buf.tobytes()


def _fit(net: Any, comm: Any, reduction: Any, data: Any, chunk_rows: Any, args: Dict[str, Any],
         overlap: Any = False) -> History:
    """Network.fit with comm= (see the module's docstring)."""
    MPI = _mpi()
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(f"comm: expected an mpi4py intracommunicator (e.g. MPI.COMM_WORLD), got {comm!r}")
    from ._network import _choice, _integer

    rank, size = comm.Get_rank(), comm.Get_size()
    error: Optional[BaseException] = None
    p: Any = None
    try:
        reduction = _choice("reduction", reduction, REDUCTIONS)
        data = _choice("data", data, DATA)
        if chunk_rows is not None:
            chunk_rows = _integer("chunk_rows", chunk_rows)
            if chunk_rows < 1:
                raise ValueError(f"chunk_rows: expected an integer >= 1 or None, got {chunk_rows}")
        if not isinstance(overlap, (bool, np.bool_)):
            raise TypeError(f"overlap: expected True or False, got {overlap!r}")
        overlap = bool(overlap)
        p = net._fit_prepare(**args)
        if p.epochs > 0:  # the core's own checks of the data and options, training nothing
            net._core.fit(p.X, p.Y, p.w, p.Xv, p.Yv, p.wv, 0, p.batch_size, p.shuffle, p.l2, p.opt, p.sched,
                          p.early_stopping, p.monitor, p.patience, p.min_delta, p.restore_best, None, None, 0.1,
                          None, 0, 0, 1, False, 0, 0)
    except Exception as e:  # noqa: BLE001 - every error is agreed on, then raised as it was
        error = e
    _agree_errors(comm, error, "checking the arguments of fit")

    mine = _settings(net, p, reduction, data, chunk_rows or 0, overlap)
    full_batch = args["batch_size"] is None
    if full_batch:  # the full global batch, whatever the shards' sizes
        mine["batch_size"] = None
    all_settings = comm.allgather(mine)
    for key, value in all_settings[0].items():
        for r, other in enumerate(all_settings):
            if other.get(key) != value:
                raise ValueError(f"{key}: every rank must pass the same; rank 0 has {value!r}, rank {r} "
                                 f"{other.get(key)!r}")

    model = _broadcast_state(MPI, comm, net)
    sharded = data == "sharded"
    n = p.X.shape[0]
    if sharded:
        total = comm.allreduce(n, op=MPI.SUM)
        steps = 1 if full_batch else -(-total // min(p.batch_size, total))
        if p.seed is not None:
            net._core.seed(_mix(p.seed, rank))
        elif rank != 0:  # rank 0 keeps its generator; the others derive theirs from the shared state
            net._core.seed(_mix(int.from_bytes(hashlib.blake2b(model, digest_size=8).digest(), "little"), rank))
    else:
        steps = -(-n // min(p.batch_size, n))
        if p.seed is not None:
            net._core.seed(p.seed)
    if p.epochs == 0:
        empty = History()
        net.history = empty
        return empty

    sess = _Session(MPI, comm, net, reduction == "reproducible", sharded, steps, chunk_rows or 0, overlap)
    old_handler = None
    main = threading.current_thread() is threading.main_thread()
    if main:  # Ctrl-C: a flag that the next reduction carries to every rank (no exception mid-collective)
        def on_sigint(signum: int, frame: Any) -> None:
            sess.interrupted = True
        old_handler = signal.signal(signal.SIGINT, on_sigint)
    outcome: Optional[BaseException] = None
    try:
        net._fit_run(p, sess)
    except BaseException as e:  # noqa: BLE001 - agreed on below
        outcome = e
    finally:
        sess.close()
        if main:
            signal.signal(signal.SIGINT, old_handler)

    # What happened everywhere: a rank's own error (a callback, the reduction), a divergence (the same
    # on every rank), Ctrl-C; and rank 0's timings, so that the History is the same on every rank.
    own = sess.error
    if own is None and outcome is not None and not isinstance(outcome, KeyboardInterrupt):
        own = outcome
    hist = getattr(net, "history", None)
    seconds = [r.seconds for r in hist.records] if (rank == 0 and hist is not None) else None
    desc = None if own is None else f"{type(own).__name__}: {own}"
    replies = comm.allgather((desc, sess.interrupted, seconds))
    seconds0 = replies[0][2]
    interrupted = any(i for _, i, _ in replies)
    if hist is not None and seconds0 is not None and len(seconds0) == len(hist.records):
        net.history = History([r._replace(seconds=s) for r, s in zip(hist.records, seconds0)],
                              best_epoch=hist.best_epoch, stopped_early=hist.stopped_early and not interrupted,
                              interrupted=hist.interrupted or interrupted)
        if outcome is not None and hasattr(outcome, "history"):
            outcome.history = net.history
    if own is not None:
        if own is outcome:
            raise outcome
        raise own
    for r, (d, _, _) in enumerate(replies):
        if d is not None:
            err = RankError(f"rank {r} raised {d}; training stopped on every rank", r, d)
            err.history = net.history  # type: ignore[attr-defined]
            raise err
    if outcome is not None:
        raise outcome
    if interrupted:  # Ctrl-C on some rank, seen by every rank after the same step or epoch
        interrupt = KeyboardInterrupt()
        interrupt.history = net.history  # type: ignore[attr-defined]
        raise interrupt
    done: History = net.history
    return done
