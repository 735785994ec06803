"""The lockstep group's Lightning module: K experiments trained side by side on the same batches."""

from collections.abc import Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from torch import Tensor, nn

from trainer.callbacks.variant import Scope, variant_prefix
from trainer.module import EPOCH_MEANS_KEY, LogFn, LossExperiment, mid_epoch


def variant_name(variant: int) -> str:
    return variant_prefix(variant).rstrip("/")


class LockstepExperiment(L.LightningModule):
    """K experiments trained side by side on the same batches, in one Lightning module.

    The experiments are submodules, so Lightning moves them (parameters, buffers, metric
    states) to the device. A variant stopped by its non-finite guard is masked out: no forward
    pass, no gradient (its parameter group skips the update), no validation, no checkpoint.
    """

    def __init__(
        self,
        experiments: Sequence[LossExperiment],
        run_dirs: Sequence[Path],
        checkpoint_dirs: Sequence[Path],
        loggers: Sequence[Sequence[Logger]],
    ) -> None:
        super().__init__()
        self.variants = nn.ModuleList(experiments)
        self.run_dirs = list(run_dirs)
        self.checkpoint_dirs = list(checkpoint_dirs)
        self.variant_loggers = [list(lgs) for lgs in loggers]
        self.active = [True] * len(experiments)

    def scope(self, variant: int | None = None) -> Scope:
        if variant is None:
            raise ValueError("lockstep: each callback of a group serves one variant (variant=k)")
        return Scope(
            self.variants[variant],
            self.variant_loggers[variant],
            self.run_dirs[variant],
            self.checkpoint_dirs[variant],
            partial(self.stop_variant, variant),
        )

    def log_variant(
        self, variant: int, name: str, value: Any, prog_bar: bool = False, **options: Any
    ) -> None:
        """``self.log`` under the variant's name; only the first variant in the progress bar."""
        self.log(
            f"{variant_prefix(variant)}{name}", value, prog_bar=prog_bar and variant == 0, **options
        )

    def stop_variant(self, variant: int) -> None:
        self.active[variant] = False
        if not any(self.active):
            self.trainer.should_stop = True

    def _active(self) -> list[tuple[int, LossExperiment, LogFn]]:
        return [
            (k, experiment, partial(self.log_variant, k))
            for k, experiment in enumerate(self.variants)
            if self.active[k]
        ]

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """The sum of the active variants' losses, for Lightning's one backward pass and step.

        The models share no parameter, so the sum's backward pass gives each model the gradients
        of its own loss. It holds the K graphs (activations) at once; a backward pass per variant
        right after its forward would hold one, and measured on this 2-core CPU it made the
        sweep slower (8 U-Nets: peak memory 2761 MiB down to 1924 MiB, but a 4-U-Net lockstep sweep
        took 62-64 s instead of 54-59 s, two runs each, interleaved).
        """
        active = self._active()
        losses = []
        for k, experiment, _ in active:
            # each variant draws from the random state the step starts with; the last one
            # leaves the state where one sequential step would
            forked = k != active[-1][0]
            with self._forked_rng() if forked else nullcontext():
                losses.append(experiment.train_loss(batch))
        return sum(losses)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # every variant that trained this step, one stopped in it included
        for k, experiment in enumerate(self.variants):
            experiment.log_train_step(partial(self.log_variant, k), self.trainer)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if mid_epoch(self.trainer):  # each variant's running means, a part each
            checkpoint[EPOCH_MEANS_KEY] = [v.epoch_means.state_dict() for v in self.variants]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if EPOCH_MEANS_KEY in checkpoint:
            for experiment, state in zip(self.variants, checkpoint[EPOCH_MEANS_KEY], strict=True):
                experiment.epoch_means.load_state_dict(state)

    def on_train_epoch_end(self) -> None:
        for k, experiment in enumerate(self.variants):  # a variant stopped this epoch too
            experiment.end_train_epoch(partial(self.log_variant, k))

    def is_active(self, variant: int | None = None) -> bool:
        return self.active[variant]

    def _forked_rng(self):
        cuda = self.device.type == "cuda"
        return torch.random.fork_rng(devices=[self.device] if cuda else [], device_type="cuda")

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Per variant, as each sequential run clips its own gradients."""
        if not gradient_clip_val:
            return
        for experiment in self.variants:
            grads = [p for p in experiment.parameters() if p.grad is not None]
            if gradient_clip_algorithm == "value":
                nn.utils.clip_grad_value_(grads, gradient_clip_val)
            else:
                nn.utils.clip_grad_norm_(grads, gradient_clip_val)

    def on_validation_epoch_start(self) -> None:
        for experiment in self.variants:
            experiment.val_metrics.reset()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        for _, experiment, log_fn in self._active():
            experiment.evaluate(batch, "val", log_fn)

    def on_validation_epoch_end(self) -> None:
        for _, experiment, log_fn in self._active():
            experiment.end_validation(log_fn, self.trainer.sanity_checking)

    def on_test_epoch_start(self) -> None:
        for experiment in self.variants:
            experiment.test_metrics.reset()

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        for k, experiment in enumerate(self.variants):  # stopped variants are tested too
            experiment.evaluate(batch, "test", partial(self.log_variant, k))

    def on_test_epoch_end(self) -> None:
        for k, experiment in enumerate(self.variants):
            experiment.end_test(partial(self.log_variant, k))

    def configure_optimizers(self):
        """One optimizer, one parameter group per variant (named after it), each with the
        hyperparameters its own optimizer config gives it; the first variant's scheduler."""
        # a throwaway optimizer per variant: its group holds the variant's settings
        own = [e.optimizer_factory(e.parameters()) for e in self.variants]
        groups = [{**opt.param_groups[0], "name": variant_name(k)} for k, opt in enumerate(own)]
        return self.variants[0].with_scheduler(type(own[0])(groups))
