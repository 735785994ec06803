"""Multi-class classification losses: logits ``[N, C]``, target int64 class indices ``[N]``."""

import torch
import torch.nn.functional as F
from torch import Tensor

from losses._core import Loss, check_class_target, check_class_values, check_range, check_reduction


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Cross entropy ``-log softmax(x)[y]`` (seeds 001-003).

    Shapes: logits ``[N, C]``, target int64 ``[N]``; ``reduction="none"`` gives ``[N]``.
    A weighted ``mean`` divides by the sum of the targets' weights (PyTorch's convention).
    When every target is ``ignore_index`` the mean is 0 (PyTorch gives NaN by design; a batch
    with nothing to learn should not count as a NaN incident).

    The seeds' 3x3 example:

    >>> import torch
    >>> x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
    >>> round(cross_entropy(x, torch.tensor([0, 2, 1])).item(), 4)
    1.3077
    """
    check_class_target("ce", logits, target)
    check_class_values("ce", target, logits.shape[1], ignore_index)
    loss = F.cross_entropy(
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction="none",
    )
    if reduction != "mean":
        return loss if reduction == "none" else loss.sum()
    kept = target != ignore_index
    weights = kept.to(loss.dtype) if weight is None else weight[target.where(kept, 0)] * kept
    return loss.sum() / weights.sum().clamp_min(1e-12)


class CrossEntropy(Loss):
    """``loss=ce``: :func:`cross_entropy` as a module; ``weight`` is a list of C class weights."""

    tasks = ("classification",)

    def __init__(
        self,
        weight: list[float] | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_reduction("ce", reduction)
        check_range("ce", "label_smoothing", label_smoothing, 0.0, 1.0)
        if weight is not None and min(weight) < 0:
            raise ValueError(f"ce: expected non-negative class weights, got {list(weight)}")
        self.register_buffer(
            "weight", None if weight is None else torch.tensor(weight, dtype=torch.float32)
        )
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.reduction = reduction

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.to(input.dtype)
        return cross_entropy(
            input, target, weight, self.ignore_index, self.label_smoothing, self.reduction
        )
