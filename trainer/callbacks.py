"""Callbacks every run uses: the non-finite guard (with gradient norm), the task checkpoint, the
picture grid, the task's figures and PR curves, the embedding projector and the throughput
meter.

The ones that look at a run's model, metrics, loggers or run dir take a ``variant``: None in a
sequential run; in a lockstep run (``trainer.lockstep``) each variant gets its own instance,
which sees only that variant through ``pl_module.scope(variant)``.
"""

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch.optim import Optimizer
from torchvision.utils import make_grid

from trainer.figures import add_pr_curve
from trainer.module import Scope, lightning_logs_this_step

KINDS = ("loss", "grad", "param")
POLICIES = ("skip", "stop", "raise")


class NonFiniteError(RuntimeError):
    """Raised by the ``raise`` policy: names the step and the kinds of non-finite values."""


class VariantCallback(L.Callback):
    """A callback serving one run: the whole trainer (``variant`` None) or one lockstep variant.

    Each variant's instance has its own checkpointed state: its ``state_key`` names the variant,
    and a lockstep checkpoint of that variant files it under the sequential run's key again.
    """

    variant: int | None = None

    def scope(self, pl_module: L.LightningModule) -> Scope:
        return pl_module.scope(self.variant)

    @property
    def state_key(self) -> str:
        key = super().state_key
        return key if self.variant is None else variant_state_key(key, self.variant)


def variant_state_key(key: str, variant: int) -> str:
    """The state key of a lockstep variant's callback: the sequential key, then the variant."""
    return f"{key}@variant{variant}"


class NonFiniteGuard(VariantCallback):
    """Checks the loss, the gradients and the parameters before the optimizer steps.

    Before every step, the loss and the total gradient norm (a norm is finite only when every
    element is) are tested together, in one host read of their sum. The parameters are tested
    before the fit's first step (weights from an initialisation or a checkpoint), on Lightning's
    logging cadence and at every step whose loss or gradients look non-finite, not before every
    step: they change only through optimizer steps, a step with non-finite gradients is not
    taken, and one with finite gradients leaves finite parameters finite (AdamW's update is
    bounded by a multiple of its learning rate; SGD's overflows only for values near float32's
    limit), while reading every parameter each step took about 0.1 ms of a 2.5 ms step of the
    Fashion-MNIST MLP (235k parameters, batch 64, this project's 2-core CPU). A parameter
    that still turns non-finite between those checks makes the next forward pass, and so the
    loss, non-finite, which brings the check. The gradient norm (before clipping) is logged too,
    since it is computed anyway.

    Policies, applied when anything is NaN/Inf:

    - ``skip``: drop every gradient, so the optimizer step changes neither the parameters nor the
      optimizer state (momentum, Adam moments and step counts skip parameters without a gradient);
      after ``max_consecutive`` bad steps in a row, or once the parameters themselves are
      non-finite (a skipped step cannot repair them), stop as ``stop`` does;
    - ``stop``: skip this step, save a checkpoint, end the run cleanly (``stop_reason`` says why);
    - ``raise``: raise :class:`NonFiniteError` naming the step and the kinds.

    Logged (every ``log_every_n_steps`` and at every incident): ``nonfinite/{loss,grad,param}``
    running counts, ``nonfinite/skipped`` steps and
    ``nonfinite/first_step``; the full list of incidents goes to ``nonfinite.json`` in the run dir.
    """

    def __init__(
        self,
        policy: str = "skip",
        max_consecutive: int = 20,
        max_recorded: int = 1000,
        variant: int | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"nan_policy: expected one of {POLICIES}, got {policy!r}")
        if max_consecutive < 1:
            raise ValueError(f"nan_policy: expected max_consecutive >= 1, got {max_consecutive}")
        self.policy = policy
        self.variant = variant
        self.max_consecutive = max_consecutive
        self.max_recorded = max_recorded
        self.counts = dict.fromkeys(KINDS, 0)
        self.skipped = 0
        self.consecutive = 0
        self.first_step: int | None = None
        self.incidents: list[dict] = []
        self.stop_reason: str | None = None

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer
    ) -> None:
        if not pl_module.is_active(self.variant):
            return
        logs = lightning_logs_this_step(trainer)
        grads = [p.grad for p in self.params if p.grad is not None]
        last_loss = self.experiment.last_loss
        with torch.no_grad():
            if grads:
                grad_norm = torch.nn.utils.get_total_norm(grads)
            else:
                grad_norm = torch.zeros((), device=pl_module.device)
            loss = torch.zeros_like(grad_norm) if last_loss is None else last_loss.float()
            # the sum is finite when both are; one that overflows is sorted out below
            suspect = not self._finite(trainer, loss + grad_norm)
            bad: list[str] = []
            if suspect or logs or self.check_params:
                param_norm = torch.nn.utils.get_total_norm(self.params)
                flags = torch.stack(
                    [~loss.isfinite(), ~grad_norm.isfinite(), ~param_norm.isfinite()]
                )
                # summed over ranks under DDP, so every rank takes the same decision
                flags = trainer.strategy.reduce(flags.float(), reduce_op="sum").cpu().tolist()
                bad = [kind for kind, flag in zip(KINDS, flags, strict=True) if flag > 0]
                self.check_params = False
        if bad:
            self._handle(trainer, self.scope(pl_module), bad)
        else:
            self.consecutive = 0
        if bad or logs:
            # straight to the loggers, at the step Lightning gives this batch: on Lightning's
            # cadence, and at every incident off it (a value given to `log` off the cadence is
            # never written). Not through `log`, whose per-value bookkeeping costs more than the
            # guard's checks; the run's final counts come from `logged_counts`.
            values = {"train/grad_norm": float(grad_norm), **self.logged_counts()}
            for logger in self.scope(pl_module).loggers:
                logger.log_metrics(values, step=trainer.global_step)

    @staticmethod
    def _finite(trainer: L.Trainer, value: torch.Tensor) -> bool:
        """Whether ``value`` is finite on every rank: the one host read of a step."""
        return math.isfinite(trainer.strategy.reduce(value, reduce_op="sum").item())

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the experiment and its parameters, once (walking the module tree costs as much as the
        # checks): the optimizer's in a sequential run, one variant's group in a lockstep run
        self.experiment = self.scope(pl_module).experiment
        self.params = list(self.experiment.parameters())
        self.check_params = True

    def logged_counts(self) -> dict[str, float]:
        counts = {f"nonfinite/{kind}": float(n) for kind, n in self.counts.items()}
        counts["nonfinite/skipped"] = float(self.skipped)
        counts["nonfinite/first_step"] = float(-1 if self.first_step is None else self.first_step)
        return counts

    def _handle(self, trainer: L.Trainer, scope: Scope, bad: list[str]) -> None:
        step = trainer.global_step
        for kind in bad:
            self.counts[kind] += 1
        if self.first_step is None:
            self.first_step = step
        self.consecutive += 1
        if self.policy == "raise":
            self._record(step, bad, "raise")
            raise NonFiniteError(
                f"non-finite {' and '.join(bad)} at step {step} (nan_policy=raise)"
            )
        # no gradient: the optimizer step leaves these parameters and their state as they are
        for param in self.params:
            param.grad = None
        self.skipped += 1
        if self.policy == "skip" and "param" not in bad and self.consecutive < self.max_consecutive:
            self._record(step, bad, "skip")
            return
        if self.policy == "stop":
            self.stop_reason = f"non-finite {' and '.join(bad)} at step {step} (nan_policy=stop)"
        elif "param" in bad:
            self.stop_reason = (
                f"parameters became non-finite at step {step}: skipping cannot repair them"
            )
        else:
            self.stop_reason = f"{self.consecutive} consecutive non-finite steps up to step {step}"
        self._record(step, bad, "stop")
        trainer.save_checkpoint(scope.checkpoint_dir / "nonfinite-stop.ckpt")
        scope.stop()

    def _record(self, step: int, kinds: list[str], action: str) -> None:
        if len(self.incidents) < self.max_recorded:
            self.incidents.append({"step": step, "kinds": kinds, "action": action})

    def summary(self) -> dict:
        return {
            "policy": self.policy,
            "counts": self.counts,
            "skipped_steps": self.skipped,
            "first_step": self.first_step,
            "stop_reason": self.stop_reason,
            "incidents": self.incidents,
        }

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rank = "" if trainer.is_global_zero else f".rank{trainer.global_rank}"
        Path(self.scope(pl_module).run_dir, f"nonfinite{rank}.json").write_text(
            json.dumps(self.summary(), indent=2)
        )

    def state_dict(self) -> dict:
        return {k: v for k, v in self.summary().items() if k != "policy"} | {
            "consecutive": self.consecutive
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.counts = dict(state_dict["counts"])
        self.skipped = state_dict["skipped_steps"]
        self.first_step = state_dict["first_step"]
        self.stop_reason = state_dict["stop_reason"]
        self.incidents = list(state_dict["incidents"])
        self.consecutive = state_dict["consecutive"]


class PictureGrid(VariantCallback):
    """Each validation epoch, a grid of the first ``num_images`` validation samples to TensorBoard.

    Rows come from the task (segmentation: input, target mask, predicted probability); tasks
    without pictures log nothing.
    """

    def __init__(self, num_images: int = 8, variant: int | None = None) -> None:
        self.num_images = num_images
        self.variant = variant

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        scope = self.scope(pl_module)
        loggers = [lg for lg in scope.loggers if isinstance(lg, TensorBoardLogger)]
        active = pl_module.is_active(self.variant)
        if trainer.sanity_checking or not loggers or not trainer.is_global_zero or not active:
            return
        dataset = trainer.val_dataloaders.dataset
        inputs, target = dataset.__getitems__(list(range(min(self.num_images, len(dataset)))))
        with torch.no_grad():
            outputs = scope.experiment(inputs.to(pl_module.device)).float().cpu()
        rows = scope.experiment.task.picture_rows(inputs, target, outputs)
        if rows is None:
            return
        grid = make_grid(torch.cat([r.float() for r in rows]), nrow=len(inputs), pad_value=1.0)
        for logger in loggers:
            logger.experiment.add_image("val/pictures", grid, trainer.global_step)


class TaskFigures(VariantCallback):
    """The task's pictures (``task.figures``: confusion matrix, reliability diagram, regression
    scatter) and PR curves (``task.pr_curves``) to TensorBoard as ``<split>/<name>``, for the
    validation split every ``every_n_epochs`` epochs and at the last epoch (after the epoch's
    validation), and for the test split.

    They come from the split's metric states after the module computed them: the ``on_*_end``
    hooks run after the module's epoch end, and the module resets the states only when the next
    epoch starts. The PR counts are summed across processes, so every process asks for them;
    only process zero draws and writes. Nothing without a TensorBoard logger.
    """

    def __init__(self, every_n_epochs: int = 1, variant: int | None = None) -> None:
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(
                f"TaskFigures: expected every_n_epochs a positive int, got {every_n_epochs!r}"
            )
        self.every_n_epochs = every_n_epochs
        self.variant = variant

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if not trainer.sanity_checking and (
            epoch % self.every_n_epochs == 0 or epoch == trainer.max_epochs
        ):
            self._log(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module, "test")

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        scope = self.scope(pl_module)
        loggers = [lg for lg in scope.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers or (split == "val" and not pl_module.is_active(self.variant)):
            return
        task, metrics = scope.experiment.task, getattr(scope.experiment, f"{split}_metrics")
        curves = task.pr_curves(metrics)
        if not trainer.is_global_zero:
            return
        figures = task.figures(metrics)
        for logger in loggers:
            for name, counts in curves.items():
                add_pr_curve(logger.experiment, f"{split}/{name}", counts, trainer.global_step)
            for name, figure in figures.items():
                logger.experiment.add_figure(f"{split}/{name}", figure, trainer.global_step)


class EmbeddingProjector(VariantCallback):
    """The test split's embeddings, with their labels, to TensorBoard's projector (retrieval)."""

    def __init__(self, max_points: int = 2000, variant: int | None = None) -> None:
        self.max_points = max_points
        self.variant = variant

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs before the module's own hook, which computes and resets the metrics
        scope = self.scope(pl_module)
        found = scope.experiment.task.embeddings(scope.experiment.test_metrics)
        loggers = [lg for lg in scope.loggers if isinstance(lg, TensorBoardLogger)]
        if found is None or not loggers or not trainer.is_global_zero:
            return
        embeddings, labels = (t[: self.max_points].cpu() for t in found)
        for logger in loggers:
            logger.experiment.add_embedding(
                embeddings,
                metadata=labels.tolist(),
                global_step=trainer.global_step,
                tag="test/embeddings",
            )


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


class Checkpoint(VariantCallback, ModelCheckpoint):
    """Lightning's ModelCheckpoint for one run: in a lockstep group, one variant's checkpoints (the
    lockstep checkpoint writer keeps that variant's part of the trainer's checkpoint), none
    after the variant was stopped."""

    def __init__(self, *args: Any, variant: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.variant = variant

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if pl_module.is_active(self.variant):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.is_active(self.variant):
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.is_active(self.variant):
            super().on_validation_end(trainer, pl_module)


class TaskCheckpoint(Checkpoint):
    """The checkpoint that monitors the task's own metric (``val/acc``, ``val/dice``, ...)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        task = self.scope(pl_module).experiment.task
        self.monitor = f"{variant_prefix(self.variant)}val/{task.monitor}"
        self.mode = task.mode
        self.kth_value = torch.tensor(-torch.inf if task.mode == "max" else torch.inf)
        super().setup(trainer, pl_module, stage)


def variant_prefix(variant: int | None) -> str:
    """What a lockstep variant's logged names start with (``variant3/``); nothing without one."""
    return "" if variant is None else f"variant{variant}/"
