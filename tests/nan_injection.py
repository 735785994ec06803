"""Test-only losses that inject a non-finite value where a test wants it (imported by
``_target_`` in subprocess runs with ``tests/`` on PYTHONPATH)."""

import torch
from torch import Tensor

from losses.segmentation import BCELoss

BAD_STEP = 2


class NaNOnRankOne(BCELoss):
    """BCE, except that rank 1's loss is NaN at training step ``BAD_STEP`` (counts its calls)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        loss = super().compute(input, target)
        if not torch.is_grad_enabled():
            return loss
        self.calls += 1
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        return loss * float("nan") if rank == 1 and self.calls == BAD_STEP + 1 else loss
