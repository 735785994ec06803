"""The base of the callbacks that serve one run, and what such a callback sees of it (its scope):
the whole trainer in a sequential run, one variant in a lockstep group (``trainer.lockstep``)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import Logger


@dataclass
class Scope:
    """What a callback serving one run sees of it: in a sequential run the whole trainer, in a
    lockstep run one variant (its experiment, its loggers, its run dir)."""

    experiment: L.LightningModule  # the run's LossExperiment
    loggers: Sequence[Logger]
    run_dir: Path
    checkpoint_dir: Path  # where the run's checkpoints go (its checkpoint callback's dirpath)
    stop: Callable[[], None]  # end this run's training; the others of a lockstep group go on


class VariantCallback(L.Callback):
    """A callback serving one run: the whole trainer (``variant`` None) or one lockstep variant.

    Each variant's instance has its own checkpointed state: its ``state_key`` names the variant,
    and a lockstep checkpoint of that variant files it under the sequential run's key again.
    """

    variant: int | None = None

    def scope(self, pl_module: L.LightningModule) -> Scope:
        """The run this callback serves: the whole trainer, or its variant of a lockstep group."""
        if self.variant is not None:
            return pl_module.scope(self.variant)
        trainer = pl_module.trainer
        checkpoint = trainer.checkpoint_callback
        return Scope(
            pl_module,
            trainer.loggers,
            Path(trainer.default_root_dir),
            Path(checkpoint.dirpath if checkpoint else trainer.default_root_dir),
            lambda: setattr(trainer, "should_stop", True),
        )

    def active(self, pl_module: L.LightningModule) -> bool:
        """Whether the run still trains: a sequential run until it ends, a lockstep variant until
        its guard stops it."""
        return self.variant is None or pl_module.is_active(self.variant)

    @property
    def state_key(self) -> str:
        key = super().state_key
        return key if self.variant is None else variant_state_key(key, self.variant)


def variant_state_key(key: str, variant: int) -> str:
    """The state key of a lockstep variant's callback: the sequential key, then the variant."""
    return f"{key}@variant{variant}"


def variant_prefix(variant: int | None) -> str:
    """What a lockstep variant's logged names start with (``variant3/``); nothing without one."""
    return "" if variant is None else f"variant{variant}/"
