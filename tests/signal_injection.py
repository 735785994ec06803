"""A test-only callback that signals its own process at a chosen training step, as a cluster or
a spot instance's notice would (imported by ``_target_`` in subprocess runs with ``tests/`` on
the path): a real signal through the operating system, at a step the test knows."""

import os
import signal

import lightning as L


class SignalAtStep(L.Callback):
    """``signum`` (a name: ``SIGTERM``, ``SIGUSR2``) to this process at the end of the training
    batch that makes the global step ``step``. A run resumed after it starts past that step, so
    the same command line (a requeued job's) does not signal again."""

    def __init__(self, step: int, signum: str = "SIGTERM") -> None:
        self.step = step
        self.signum = signal.Signals[signum]

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
