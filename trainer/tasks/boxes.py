"""The box task: one predicted box ``[N, 4]`` ``(x1, y1, x2, y2)`` per image against the target
box, both in image units."""

import torch
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MetricCollection

from trainer.metrics import BoxIoU
from trainer.tasks.base import Task, register


@register
class Boxes(Task):
    """Mean IoU of the predicted boxes, the share with IoU >= 0.5, and the coordinates' MAE."""

    name = "boxes"
    monitor = "iou"
    unit_metrics = ("iou", "iou50")

    def metrics(self) -> MetricCollection:
        return MetricCollection({"box": BoxIoU(threshold=0.5), "coord_mae": MeanAbsoluteError()})

    def update(self, metrics: MetricCollection, outputs: Tensor, target: Tensor) -> None:
        metrics["box"].update(outputs, target)
        metrics["coord_mae"].update(outputs.float(), target)

    def reference_batch(self, seed: int) -> tuple[Tensor, Tensor]:
        """16 target boxes inside the unit image; predictions near the centre box of side 0.5,
        as a fresh sigmoid head gives them (``model=box_cnn``)."""
        g = torch.Generator().manual_seed(seed)
        corner = torch.rand(16, 2, generator=g) * 0.6
        target = torch.cat([corner, corner + 0.1 + torch.rand(16, 2, generator=g) * 0.3], dim=1)
        centre = 0.5 + 0.05 * torch.randn(16, 2, generator=g)
        outputs = torch.cat([centre - 0.25, centre + 0.25], dim=1)
        return outputs, target
