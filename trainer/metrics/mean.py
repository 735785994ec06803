"""The base of the metrics that average a per-sample quantity: a float64 sum and a count, summed
across processes, and their ratio."""

import torch
from torch import Tensor
from torchmetrics import Metric


class Float64Mean(Metric):
    """``compute() = total / count`` (NaN with nothing counted), the sum in float64; a subclass's
    ``update`` adds to ``self.total`` and ``self.count``."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state(
            "total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def compute(self) -> Tensor:
        return (self.total / self.count).float()
