# SPDX-License-Identifier: MIT
"""What fit returns (History), the per-epoch record callbacks receive, and the progress display."""
from __future__ import annotations

import math
import sys
from collections import namedtuple
from typing import Any, Dict, List, Optional, Sequence

EpochRecord = namedtuple("EpochRecord", ["epoch", "loss", "val_loss", "val_accuracy", "lr", "seconds"])
EpochRecord.__doc__ = """One epoch of Network.fit, as callbacks receive it.

epoch: 0-based index within the fit call; loss: mean training loss; val_loss, val_accuracy: on the
validation data (None where not defined); lr: the rate of the epoch's last step; seconds: wall time."""


def _opt(v: float) -> Optional[float]:
    return None if math.isnan(v) else v


def make_record(t: Sequence[Any]) -> EpochRecord:
    return EpochRecord(int(t[0]), float(t[1]), _opt(t[2]), _opt(t[3]), float(t[4]), float(t[5]))


class History(List[float]):
    """The record of one ``Network.fit`` call.

    It is the list of per-epoch training losses that fit returned in 0.1 (a ``list`` subclass: ``len``,
    indexing, iteration, equality with a list), and also holds, per epoch: ``loss``, ``val_loss``,
    ``val_accuracy`` (empty lists where not defined: without validation data, or accuracy for mse),
    ``lr`` and ``seconds``; ``records`` (EpochRecord tuples) and ``history`` (a dict of the defined
    lists, as Keras's); ``best_epoch`` (the epoch early stopping kept, else the last; None if no epoch
    completed), ``stopped_early`` (early stopping or a callback ended training) and ``interrupted``
    (Ctrl-C, or a divergence, ended it).
    """

    def __init__(self, records: Sequence[EpochRecord] = (), best_epoch: Optional[int] = None,
                 stopped_early: bool = False, interrupted: bool = False) -> None:
        self.records: List[EpochRecord] = list(records)
        super().__init__(r.loss for r in self.records)
        self.best_epoch = best_epoch
        self.stopped_early = bool(stopped_early)
        self.interrupted = bool(interrupted)

    # ---- per-epoch lists ----
    @property
    def loss(self) -> List[float]:
        return [r.loss for r in self.records]

    def _defined(self, name: str) -> List[float]:
        values = [getattr(r, name) for r in self.records]
        return [] if any(v is None for v in values) else values

    @property
    def val_loss(self) -> List[float]:
        return self._defined("val_loss")

    @property
    def val_accuracy(self) -> List[float]:
        return self._defined("val_accuracy")

    @property
    def lr(self) -> List[float]:
        return [r.lr for r in self.records]

    @property
    def seconds(self) -> List[float]:
        return [r.seconds for r in self.records]

    @property
    def history(self) -> Dict[str, List[float]]:
        out = {"loss": self.loss}
        for name in ("val_loss", "val_accuracy"):
            if self.records and getattr(self, name):
                out[name] = getattr(self, name)
        out["lr"] = self.lr
        out["seconds"] = self.seconds
        return out

    # ---- the list of training losses ----
    def __eq__(self, other: object) -> bool:
        if isinstance(other, History):  # everything but the timings
            return ([r[:5] for r in self.records] == [r[:5] for r in other.records]
                    and (self.best_epoch, self.stopped_early, self.interrupted)
                    == (other.best_epoch, other.stopped_early, other.interrupted))
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None

    def __repr__(self) -> str:
        flags = [f for f in ("stopped_early", "interrupted") if getattr(self, f)]
        extra = f", best_epoch={self.best_epoch}" + "".join(f", {f}=True" for f in flags)
        return f"History(loss={self.loss!r}{extra})"

    def plot(self, path: Optional[str] = None, ax: Any = None) -> Any:
        """Draw the loss curves (and validation accuracy on a second axis) with matplotlib.

        Needs matplotlib (``pip install "deltaprop[plot]"``). With ``path`` the figure is saved there
        (the Agg backend, no display needed) and closed; otherwise draws on ``ax`` (or a new figure) and
        returns the axes.
        """
        try:
            import matplotlib
        except ImportError:
            raise ImportError('History.plot needs matplotlib: pip install "deltaprop[plot]"') from None
        if path is not None and ax is None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4))
        epochs = [r.epoch + 1 for r in self.records]
        ax.plot(epochs, self.loss, label="loss")
        if self.val_loss:
            ax.plot(epochs, self.val_loss, label="val_loss")
        if self.best_epoch is not None and self.records and self.stopped_early:
            ax.axvline(self.best_epoch + 1, color="grey", linestyle=":", label="best epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        if self.val_accuracy:
            ax2 = ax.twinx()
            ax2.plot(epochs, self.val_accuracy, color="tab:green", label="val_accuracy")
            ax2.set_ylabel("validation accuracy")
        ax.legend(loc="upper right")
        if path is not None:
            (fig or ax.figure).savefig(path, dpi=100, bbox_inches="tight")
            plt.close(fig or ax.figure)
        return ax


def format_record(r: EpochRecord, epochs: int) -> str:
    parts = [f"epoch {r.epoch + 1}/{epochs}", f"loss {r.loss:.6f}"]
    if r.val_loss is not None:
        parts.append(f"val_loss {r.val_loss:.6f}")
    if r.val_accuracy is not None:
        parts.append(f"val_accuracy {r.val_accuracy:.4f}")
    parts.append(f"lr {r.lr:.3g}")
    parts.append(f"{r.seconds:.2f} s")
    return "  ".join(parts)


class Progress:
    """The display of ``fit(verbose=...)``: 1 a live bar per epoch (tqdm when installed, else one
    self-updating line on a terminal and a line per epoch elsewhere), 2 a line per epoch. The native
    loop calls ``update`` at most every ``interval`` seconds; ``epoch_end`` after each epoch."""

    interval = 0.1

    def __init__(self, verbose: int, epochs: int, batches: int, stream: Any = None) -> None:
        self.verbose = verbose
        self.epochs = epochs
        self.batches = batches
        self.stream = stream if stream is not None else sys.stdout
        self.live = verbose == 1
        self.tqdm: Any = None
        self.bar: Any = None
        if self.live:
            try:
                import tqdm  # optional extra deltaprop[progress]

                self.tqdm = tqdm.tqdm
            except ImportError:
                self.tqdm = None
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())

    def update(self, t: Sequence[Any]) -> None:
        epoch, epochs, batch, batches, samples, loss, seconds = t
        if not self.live:
            return
        rate = samples / seconds if seconds > 0 else 0.0
        if self.tqdm is not None:
            if self.bar is None:
                self.bar = self.tqdm(total=batches, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                                     file=self.stream, leave=True, dynamic_ncols=True)
            self.bar.update(batch - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{rate:,.0f}", refresh=False)
        elif self.tty:
            eta = (batches - batch) * seconds / batch if batch else 0.0
            width = 24
            filled = int(width * batch / batches) if batches else width
            line = (f"\repoch {epoch + 1}/{epochs} [{'=' * filled}{'.' * (width - filled)}] {batch}/{batches}"
                    f"  loss {loss:.4f}  {rate:,.0f} samples/s  ETA {eta:.1f} s")
            self.stream.write(line)
            self.stream.flush()

    def epoch_end(self, r: EpochRecord) -> None:
        if self.verbose <= 0:
            return
        text = format_record(r, self.epochs)
        if self.bar is not None:
            self.bar.set_postfix_str(text.split("  ", 1)[1], refresh=True)
            self.bar.close()
            self.bar = None
            return
        if self.live and self.tty:
            self.stream.write("\r" + text + " " * 20 + "\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
