"""The training loop's steps and their logging: one LightningModule for every task, with the
model, the loss and the task injected; the task is used only through the ``Task`` base API
(``metrics``, ``update``, ``scalars``, ``validation_choices``, ``choose``, ``test_scalars``).

The steps take the function they log with (``log``): Lightning's hooks pass ``self.log``, and a
lockstep run (``trainer.lockstep``) passes one that files the values under the variant's name.
"""

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from losses.base import Loss
from trainer.config import instantiate_with_data
from trainer.tasks.base import Task

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]
LogFn = Callable[..., None]  # LightningModule.log's signature: (name, value, **options)


def lightning_logs_this_step(trainer: L.Trainer, stepped: bool = False) -> bool:
    """Whether Lightning writes this training batch's step metrics to the loggers: the public
    form of its logger connector's ``should_update_logs``, asked before the optimizer step or,
    with ``stepped``, after it.

    Lightning writes when the batch's 1-based step is a multiple of ``log_every_n_steps``, or the
    run is stopping. It counts batches that stepped, which with one optimizer is the global step;
    before the step, this batch's 1-based step is ``global_step + 1``, after it ``global_step``.
    A copy, since Lightning has no public form of the rule: ``tests/test_lightning_cadence.py``
    pins it against the steps Lightning writes.
    """
    every = trainer.log_every_n_steps
    step = trainer.global_step if stepped else trainer.global_step + 1
    return every > 0 and (step % every == 0 or trainer.should_stop)


class EpochMeans:
    """Means over an epoch's samples, by name: each value weighted by its batch size, summed on
    the values' device (no host sync per step), divided by the number of samples."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.samples = 0

    def update(self, values: dict[str, Tensor], batch_size: int) -> None:
        for name, value in values.items():
            weighted = value.float() * batch_size
            self.sums[name] = self.sums[name] + weighted if name in self.sums else weighted
        self.samples += batch_size

    def compute(self) -> dict[str, Tensor]:
        return {name: total / self.samples for name, total in self.sums.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "samples": self.samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.samples = dict(state["sums"]), int(state["samples"])


# a mid-epoch checkpoint's running means of the training epoch (a preempted run's: the continued
# epoch's train/loss_epoch averages all of its batches, those before the preemption too)
EPOCH_MEANS_KEY = "train_epoch_means"


def mid_epoch(trainer: L.Trainer) -> bool:
    """Whether a checkpoint is being saved from inside the training batch loop (a preemption's,
    or ``every_n_train_steps``), where the epoch's means are partial; epoch-end checkpoints are
    saved from validation or after the epoch's means were written."""
    return trainer.training


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
        self.step_values: dict[str, Tensor] = {}  # this step's loss and diagnostics, detached
        self.epoch_means = EpochMeans()

    @classmethod
    def from_config(cls, cfg: DictConfig, datamodule: Any, task: Task) -> "LossExperiment":
        """The run's model, loss, optimizer and scheduler from its config and data.

        The model is built first, from the seed alone: a loss that draws random numbers when it
        is built must not change the initial weights its variants share.
        """
        model = instantiate_with_data(cfg.model, datamodule.model_inputs)
        loss = instantiate_with_data(cfg.loss, datamodule.data_stats)
        return cls(
            model,
            loss,
            task,
            instantiate(cfg.optimizer),
            instantiate(cfg.scheduler),
            logit_scale=cfg.logit_scale,
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if mid_epoch(self.trainer):
            checkpoint[EPOCH_MEANS_KEY] = self.epoch_means.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if EPOCH_MEANS_KEY in checkpoint:
            self.epoch_means.load_state_dict(checkpoint[EPOCH_MEANS_KEY])

    def forward(self, x: Tensor) -> Tensor:
        outputs = self.model(x)
        return outputs if self.logit_scale == 1.0 else outputs * self.logit_scale

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self.train_loss(batch)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.log_train_step(self.log, self.trainer)

    def on_train_epoch_end(self) -> None:
        self.end_train_epoch(self.log)

    def train_loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """The step's loss; it and the loss's diagnostics are kept for :meth:`log_train_step`
        and added to the epoch's means.

        What Lightning's ``log(on_step=True, on_epoch=True)`` would write, at a fraction of its
        cost (its per-call bookkeeping costs more than a small model's step): ``train/<name>_step``
        on the steps Lightning writes, and ``train/<name>_epoch``, the mean over the epoch's
        samples (each step's value weighted by its batch size, as Lightning averages).
        """
        inputs, target = batch
        loss, stats = self.loss.with_stats(self(inputs), target)
        self.last_loss = loss.detach()
        self.step_values = {"loss": self.last_loss, **{k: v.detach() for k, v in stats.items()}}
        self.epoch_means.update(self.step_values, len(inputs))
        return loss

    def log_train_step(self, log: LogFn, trainer: L.Trainer) -> None:
        """After the optimizer step: the step's values, when Lightning writes this step."""
        if self.step_values and lightning_logs_this_step(trainer, stepped=True):
            for name, value in self.step_values.items():
                log(
                    f"train/{name}_step",
                    value,
                    on_step=True,
                    on_epoch=False,
                    prog_bar=name == "loss",
                )
        self.step_values = {}

    def end_train_epoch(self, log: LogFn) -> None:
        for name, value in self.epoch_means.compute().items():
            log(f"train/{name}_epoch", value, on_step=False, on_epoch=True)
        self.epoch_means.reset()

    def evaluate(self, batch: tuple[Tensor, Tensor], split: str, log: LogFn) -> None:
        inputs, target = batch
        outputs = self(inputs)
        log(f"{split}/loss", self.loss(outputs, target), on_epoch=True, prog_bar=split == "val")
        self.task.update(getattr(self, f"{split}_metrics"), outputs, target)

    def end_validation(self, log: LogFn, sanity_checking: bool) -> None:
        computed = self.val_metrics.compute()
        for name, value in self.task.scalars(computed).items():
            log(f"val/{name}", value)
        if not sanity_checking:  # a few sanity batches choose nothing
            for name, value in self.task.choose(computed).items():
                self.validation_choices.get_buffer(name).copy_(value)

    def end_test(self, log: LogFn) -> None:
        chosen = dict(self.validation_choices.named_buffers())
        scalars = self.task.test_scalars(self.test_metrics, self.test_metrics.compute(), chosen)
        for name, value in scalars.items():
            log(f"test/{name}", value)

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "val", self.log)

    def on_validation_epoch_end(self) -> None:
        self.end_validation(self.log, self.trainer.sanity_checking)

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "test", self.log)

    def on_test_epoch_end(self) -> None:
        self.end_test(self.log)

    def configure_optimizers(self):
        return self.with_scheduler(self.optimizer_factory(self.parameters()))

    def with_scheduler(self, optimizer: Optimizer) -> Any:
        """What ``configure_optimizers`` returns for ``optimizer``: with this run's scheduler."""
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }
