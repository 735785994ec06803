"""A test-only callback that signals its own process at a chosen training step, as a cluster or
a spot instance's notice would (imported by ``_target_`` in subprocess runs with ``tests/`` on
the path): a real signal through the operating system, at a step the test knows."""

import os
import signal

import lightning as L

from trainer.callbacks import VariantCallback


class SignalAtStep(VariantCallback):
    """``signum`` (a name: ``SIGTERM``, ``SIGUSR2``) to this process at the end of the training
    batch that makes the global step ``step``. A run resumed after it starts past that step, so
    the same command line (a requeued job's) does not signal again.

    A callback of the run, so a lockstep group takes it as it takes the run's others (one per
    variant): the first variant's signals the group's process once, as a cluster would."""

    def __init__(self, step: int, signum: str = "SIGTERM", variant: int | None = None) -> None:
        self.step = step
        self.signum = signal.Signals[signum]
        self.variant = variant

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step and self.variant in (None, 0):
            os.kill(os.getpid(), self.signum)
