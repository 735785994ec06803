"""The preemption checkpoint: on SIGTERM, or the signal a cluster sends before a time limit, the
run saves its whole training state at the next safe point and stops, so that it can continue
exactly where it stopped (``trainer.preemption`` hands the signal over afterwards)."""

import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

from datasets._base import ResumableLoader
from trainer.preemption import DEFAULT_SIGNALS, Preempted, signal_numbers


class Preemption(L.Callback):
    """On one of ``signals`` while the training loop runs: at the end of the next training batch
    (every DDP rank agreeing), the full training state to ``dirpath/filename.ckpt`` (the file
    ``resume=`` and an automatic resume continue from; written under a temporary name, then
    renamed, so a kill during the write leaves the previous one whole), then, once Lightning has
    logged that batch, :class:`Preempted`, which ``status.json`` records as ``preempted``.

    Why the end of a batch and not the end of the epoch: a preemption's grace period is short
    (SLURM's ``GraceTime`` and a spot instance's notice are 30 s to 2 min) and an epoch can be
    longer. A batch's end is where Lightning itself saves mid-epoch checkpoints
    (``ModelCheckpoint(every_n_train_steps)``) and knows how to restore them: the step's
    optimizer and scheduler updates are done, the next batch has not begun. The training loader
    resumes at the next batch (``datasets._base.ResumableLoader``: the batch order is drawn from
    (seed, epoch), so skipping the batches already trained is enough), and the resumed run ends
    where an uninterrupted one ends. A signal during an epoch's last batch or its validation
    waits for the next epoch's first batch (the epoch's own checkpoint is written meanwhile); one
    in the last epoch's or during the test stage lets the run finish.

    Why this callback alone acts on the signals: Lightning turns SIGTERM into an exit at the end
    of the batch, mid-validation and mid-test included, with nothing saved since the last epoch's
    checkpoint. Lightning installs its handlers when a stage starts, after ``setup``, keeping the
    one there before as part of its own, so this callback installs its handler in ``setup`` and
    again in ``on_train_start``/``on_test_start``, over Lightning's. The run protocol puts the
    process's own handlers back when the run ends (``trainer.preemption.handlers_restored``:
    submitit's, in a job it launched), and ``trainer.preemption.hand_over`` gives them the signal:
    one mechanism acts on each signal at any time.
    """

    def __init__(
        self,
        dirpath: str,
        filename: str = "last",
        signals: Sequence[str] = DEFAULT_SIGNALS,
    ) -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.signals = signal_numbers(tuple(signals))
        self.received: int | None = None
        self.stop: Preempted | None = None  # saved; raised when the next batch starts

    def receive(self, signum: int, frame: FrameType | None) -> None:
        """The handler: only notes the signal; the training loop acts at its next safe point."""
        self.received = signum

    def listen(self) -> None:
        # Python runs handlers in the main thread only, and only it may install them
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                signal.signal(signum, self.receive)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.listen()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.listen()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.listen()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        # the epoch's last batch goes on to validation and the epoch's checkpoint: act at the
        # next epoch's first batch (Lightning restores a checkpoint saved here into the next
        # batch, not into the validation this one would have been followed by)
        last = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        wanted = self.received is not None and not last
        if not trainer.strategy.reduce_boolean_decision(wanted, all=False):
            return
        signum = self.received or signal.SIGTERM  # another rank's signal
        epoch, trained = trainer.current_epoch, batch_idx + 1
        for loader in _train_loaders(trainer):
            loader.position = (epoch, trained)
        record = {
            "step": trainer.global_step,
            "epoch": epoch,
            "batches_in_epoch": trained,
            **self.write_checkpoints(trainer, pl_module),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self.stop = Preempted(signum, record)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # the saved batch's own bookkeeping (its logged values: a curve's step the continued run
        # does not write again) is done when the next batch starts; the continued run starts
        # after the saved batch
        if self.stop is not None:
            raise self.stop

    def write_checkpoints(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """The training state to ``path``; what the preemption record says of it."""
        write_checkpoint(trainer, self.path)
        return {"checkpoint": str(self.path)}


def write_checkpoint(trainer: L.Trainer, path: Path) -> None:
    """``trainer.save_checkpoint(path)`` under a temporary name, then renamed: a kill during the
    write leaves the previous file whole."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    trainer.save_checkpoint(partial)
    trainer.strategy.barrier("preemption checkpoint")
    if trainer.is_global_zero:
        os.replace(partial, path)


def _train_loaders(trainer: L.Trainer) -> list[ResumableLoader]:
    """The training loaders that can resume mid-epoch."""
    loaders = trainer.train_dataloader
    flat = loaders if isinstance(loaders, list | tuple) else [loaders]
    return [loader for loader in flat if isinstance(loader, ResumableLoader)]
