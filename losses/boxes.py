"""Box regression: the generalized IoU loss of matched boxes ``[N, 4]`` as ``(x1, y1, x2, y2)``.

GIoU (Rezatofighi et al. 2019, "Generalized Intersection over Union: A Metric and A Loss for
Bounding Box Regression") extends IoU with the smallest enclosing box C:
``GIoU = IoU - |C \\ (A ∪ B)| / |C|``, and the loss is ``1 - GIoU`` in [0, 2]. Unlike IoU it still
has a gradient when the boxes do not overlap. Equal to ``torchvision.ops.generalized_box_iou_loss``
(same ``eps``), except that inverted boxes (``x2 < x1`` or ``y2 < y1``) are rejected with an error
(values checked on CPU and in preflight), where torchvision silently computes a meaningless value;
zero-area boxes are fine.
"""

import torch
from torch import Tensor

from losses.base import Loss, check_reduction, reduce
from losses.checks import check_float, check_range, check_same_shape, describe, values_checkable

__all__ = ["GIoU", "check_giou", "giou"]


def _check_boxes(name: str, role: str, boxes: Tensor) -> None:
    check_float(name, role, boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"{name}: expected {role} boxes of shape [N, 4] (x1, y1, x2, y2), got {describe(boxes)}"
        )
    if values_checkable(boxes) and len(boxes):
        inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if inverted.any():
            i = int(inverted.nonzero()[0])
            raise ValueError(
                f"{name}: expected {role} boxes with x1 <= x2 and y1 <= y2, "
                f"got {role} box {i} = {[round(float(v), 4) for v in boxes[i]]}"
            )


def check_giou(*, eps: float, reduction: str) -> None:
    check_range("giou", "eps", eps, 0.0, low_open=True)
    check_reduction("giou", reduction)


def giou(
    prediction: Tensor, target: Tensor, *, eps: float = 1e-7, reduction: str = "mean"
) -> Tensor:
    """``1 - GIoU`` of matched boxes ``[N, 4]``; ``none`` gives ``[N]``.

    ``1 - I / (U + eps) + (C - U) / (C + eps)`` with I, U the intersection and union areas and C
    the area of the smallest enclosing box. Inverted boxes raise ``ValueError`` (values checked
    on CPU and in preflight).

    >>> prediction = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0], [2.0, 2.0, 3.0, 3.0]])
    >>> giou(prediction, target, reduction="none")
    tensor([0.6667, 1.7778])
    """
    check_giou(eps=eps, reduction=reduction)
    _check_boxes("giou", "prediction", prediction)
    _check_boxes("giou", "target", target)
    check_same_shape("giou", prediction, target)
    px1, py1, px2, py2 = prediction.unbind(dim=1)
    tx1, ty1, tx2, ty2 = target.unbind(dim=1)
    intersection = (torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp_min(0) * (
        torch.minimum(py2, ty2) - torch.maximum(py1, ty1)
    ).clamp_min(0)
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - intersection
    iou = intersection / (union + eps)
    enclosing = (torch.maximum(px2, tx2) - torch.minimum(px1, tx1)) * (
        torch.maximum(py2, ty2) - torch.minimum(py1, ty1)
    )
    return reduce(1 - iou + (enclosing - union) / (enclosing + eps), reduction)


class GIoU(Loss):
    """``loss=giou``: :func:`giou` as a module."""

    tasks = ("boxes",)
    function = staticmethod(giou)
    check = staticmethod(check_giou)
    formula = (
        "1 - I / (U + eps) + (C - U) / (C + eps); "
        "I, U the intersection and union areas, C the area of the smallest enclosing box"
    )
    reference = (
        'Rezatofighi et al. 2019, "Generalized Intersection over Union: A Metric and A Loss for '
        'Bounding Box Regression"'
    )

    def __init__(self, *, eps: float = 1e-7, reduction: str = "mean") -> None:
        super().__init__(eps=eps, reduction=reduction)
