"""Checkpoints of one run: Lightning's ModelCheckpoint per variant, and the one that monitors the
task's metric."""

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from trainer.callbacks.variant import VariantCallback, variant_prefix


class Checkpoint(VariantCallback, ModelCheckpoint):
    """Lightning's ModelCheckpoint for one run: in a lockstep group, one variant's checkpoints (the
    lockstep checkpoint writer keeps that variant's part of the trainer's checkpoint), none
    after the variant was stopped."""

    def __init__(self, *args: Any, variant: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.variant = variant

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.active(pl_module):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active(pl_module):
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active(pl_module):
            super().on_validation_end(trainer, pl_module)


class TaskCheckpoint(Checkpoint):
    """The checkpoint that monitors the task's own metric (``val/acc``, ``val/dice``, ...)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        task = self.scope(pl_module).experiment.task
        self.monitor = f"{variant_prefix(self.variant)}val/{task.monitor}"
        self.mode = task.mode
        self.kth_value = torch.tensor(-torch.inf if task.mode == "max" else torch.inf)
        super().setup(trainer, pl_module, stage)
