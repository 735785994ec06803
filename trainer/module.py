"""One LightningModule for every task: the model, the loss and the task's metrics are injected."""

from collections.abc import Callable, Iterable

import lightning as L
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from losses._core import Loss
from trainer.tasks import Task

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


class LossExperiment(L.LightningModule):
    """Trains ``model`` with ``loss``; logs the loss per step/epoch and the task metrics per epoch.

    Per step only the loss (and the loss's own diagnostics) is logged, and Lightning writes it every
    ``log_every_n_steps``; the task metrics are computed on validation and test only, so nothing
    on the training hot path syncs with the host.
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
        self.val_metrics = task.metrics().clone(prefix="val/")
        self.test_metrics = task.metrics().clone(prefix="test/")
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

    def _log_metrics(self, split: str) -> None:
        metrics = getattr(self, f"{split}_metrics")
        self.log_dict(self.task.scalars(metrics.compute()), prog_bar=False)
        metrics.reset()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }
