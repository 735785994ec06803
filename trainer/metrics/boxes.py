"""Box metrics: the IoU of predicted and target boxes, and the share that overlaps enough."""

import torch
from torch import Tensor
from torchmetrics import Metric


def pairwise_box_iou(pred: Tensor, target: Tensor) -> Tensor:
    """IoU of matched boxes ``[N, 4]`` (x1, y1, x2, y2) -> ``[N]``.

    >>> pairwise_box_iou(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 0.0, 3.0, 2.0]]))
    tensor([0.3333])
    """
    top_left = torch.maximum(pred[:, :2], target[:, :2])
    bottom_right = torch.minimum(pred[:, 2:], target[:, 2:])
    intersection = (bottom_right - top_left).clamp_min(0).prod(dim=1)
    area = (pred[:, 2:] - pred[:, :2]).clamp_min(0).prod(dim=1) + (
        target[:, 2:] - target[:, :2]
    ).prod(dim=1)
    return intersection / (area - intersection).clamp_min(1e-12)


class BoxIoU(Metric):
    """Mean IoU of predicted and target boxes, and the share with IoU >= ``threshold``."""

    full_state_update = False

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold
        self.add_state(
            "iou_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("hits", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state(
            "count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, pred: Tensor, target: Tensor) -> None:
        iou = pairwise_box_iou(pred.float(), target.float())
        self.iou_sum += iou.sum()
        self.hits += (iou >= self.threshold).sum()
        self.count += len(iou)

    def compute(self) -> dict[str, Tensor]:
        count = self.count.clamp_min(1)
        return {
            "iou": (self.iou_sum / count).float(),
            f"iou{int(self.threshold * 100)}": (self.hits / count).float(),
        }
