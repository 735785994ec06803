"""The throughput meter: training samples per second per epoch."""

import time

import lightning as L
import torch


class Throughput(L.Callback):
    """Training samples per second, per epoch, over the steps after ``warmup_steps``.

    Only the training steps are timed (validation runs after the epoch's last batch ends). On a
    GPU the clock reads wait for the device, once per epoch boundary, never per step.
    """

    def __init__(self, warmup_steps: int = 5) -> None:
        self.warmup_steps = warmup_steps
        self.samples = 0
        self.started: float | None = None
        self.ended: float | None = None

    def _now(self, pl_module: L.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.samples, self.started, self.ended = 0, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.warmup_steps:
            self.started = self._now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.started is not None:
            self.samples += len(batch[0])
            if batch_idx == trainer.num_training_batches - 1:
                self.ended = self._now(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.started is not None and self.ended is not None and self.ended > self.started:
            pl_module.log("perf/train_samples_per_sec", self.samples / (self.ended - self.started))
