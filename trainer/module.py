"""The training loop's steps and their logging: one LightningModule for every task, with the
model, the loss and the task injected; the task is used only through the ``Task`` base API
(``metrics``, ``update``, ``scalars``, ``validation_choices``, ``choose``, ``test_scalars``)."""

from collections.abc import Callable, Iterable

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from losses._core import Loss
from trainer.tasks.base import Task

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


class LossExperiment(L.LightningModule):
    """Trains ``model`` with ``loss``; logs the loss per step/epoch and the task metrics per epoch.

    Per step only the loss (and the loss's own diagnostics) is logged, and Lightning writes it every
    ``log_every_n_steps``; the task metrics are computed on validation and test only, so nothing
    on the training hot path syncs with the host. A split's metric states are reset when its
    epoch starts, not when it ends, so callbacks draw from them after the module computed them
    (``TaskFigures``).

    What validation chooses for the test (the task's ``validation_choices``: segmentation's Dice
    threshold) is kept in buffers under ``validation_choices``: they are saved in every checkpoint,
    so reloading the best checkpoint before testing brings back the choice of that checkpoint's
    epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Loss,
        task: Task,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        logit_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.task = task
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.logit_scale = logit_scale
        self.val_metrics = task.metrics()
        self.test_metrics = task.metrics()
        self.validation_choices = nn.Module()
        for name, value in task.validation_choices().items():
            self.validation_choices.register_buffer(name, torch.tensor(value))
        # the last training loss, detached: the non-finite guard checks it before the step
        self.last_loss: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        outputs = self.model(x)
        return outputs if self.logit_scale == 1.0 else outputs * self.logit_scale

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, target = batch
        loss, stats = self.loss.with_stats(self(inputs), target)
        self.last_loss = loss.detach()
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        for name, value in stats.items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=True)
        return loss

    def _evaluate(self, batch: tuple[Tensor, Tensor], split: str) -> None:
        inputs, target = batch
        outputs = self(inputs)
        self.log(
            f"{split}/loss", self.loss(outputs, target), on_epoch=True, prog_bar=split == "val"
        )
        self.task.update(getattr(self, f"{split}_metrics"), outputs, target)

    def _log_scalars(self, split: str, scalars: dict[str, Tensor]) -> None:
        self.log_dict({f"{split}/{name}": value for name, value in scalars.items()})

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        computed = self.val_metrics.compute()
        self._log_scalars("val", self.task.scalars(computed))
        if not self.trainer.sanity_checking:  # a few sanity batches choose nothing
            for name, value in self.task.choose(computed).items():
                self.validation_choices.get_buffer(name).copy_(value)

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        chosen = dict(self.validation_choices.named_buffers())
        scalars = self.task.test_scalars(self.test_metrics, self.test_metrics.compute(), chosen)
        self._log_scalars("test", scalars)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }
