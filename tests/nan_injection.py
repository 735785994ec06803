"""Test-only losses that inject a non-finite value where a test wants it (imported by
``_target_`` in subprocess runs with ``tests/`` on PYTHONPATH)."""

from typing import ClassVar

import torch
from torch import Tensor

from losses.segmentation import BCEWithLogitsLoss

BAD_STEP = 2


class NaNAtStep(BCEWithLogitsLoss):
    """BCE, except that the training loss of step ``bad_step`` is NaN (on ``bad_rank`` only, when
    set). Counts its training calls: state in ``forward`` is acceptable in a test double."""

    bad_step: ClassVar[int] = BAD_STEP
    bad_rank: ClassVar[int | None] = None

    def __init__(self, **hyperparameters) -> None:
        super().__init__(**hyperparameters)
        self.training_calls = 0

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        loss = super().compute(input, target)
        if not torch.is_grad_enabled():
            return loss
        self.training_calls += 1
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        on_rank = self.bad_rank is None or rank == self.bad_rank
        return loss * float("nan") if on_rank and self.training_calls == self.bad_step + 1 else loss


class NaNOnRankOne(NaNAtStep):
    """NaN at step ``BAD_STEP`` on rank 1 only: the DDP guard must decide the same on every rank."""

    bad_rank = 1
