"""Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection"; seed 002).

``FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)``: the cross entropy of each example scaled down by
how well it is already classified, so the many easy examples (background pixels, the majority
class) stop dominating the gradient. ``gamma = 0`` and no ``alpha`` is exactly cross entropy.

Two forms, one module (``loss=focal`` fits both tasks):

- softmax focal for multi-class logits ``[N, C]`` and int64 class indices ``[N]``;
- sigmoid focal for binary logits and a float {0, 1} mask of the same shape (torchvision's
  ``sigmoid_focal_loss``).

Numerics: ``log p_t`` comes from ``log_softmax`` / ``logsigmoid``, and the modulating factor is
``exp(gamma * log(1 - p_t))`` with ``log(1 - p_t)`` computed stably (``log1p(-exp(log p_t))`` split
at ``log 0.5``, or ``logsigmoid(-x)`` in the binary case). For ``gamma < 1`` the naive
``(1 - p_t) ** gamma`` has an infinite derivative at ``p_t = 1``, which saturated logits reach in
float32: several libraries return NaN gradients there; these forms stay finite.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from losses._core import (
    Loss,
    check_binary_target,
    check_class_target,
    check_class_values,
    check_range,
    check_reduction,
    reduce,
)


def _log1mexp(log_p: Tensor) -> Tensor:
    """``log(1 - exp(log_p))`` for ``log_p <= 0``, accurate over the whole range (Mächler 2012)."""
    log_p = log_p.clamp_max(0)
    return torch.where(
        log_p > -0.6931471805599453,
        torch.log(-torch.expm1(log_p)),
        torch.log1p(-torch.exp(log_p)),
    )


def _modulate(log_p_t: Tensor, log_1m_p_t: Tensor, gamma: float) -> Tensor:
    """``-(1 - p_t)^gamma log p_t`` with the factor taken in log space (finite gradients)."""
    if gamma == 0:
        return -log_p_t
    # exp(-inf) = 0 when p_t is exactly 1: a zero weight, with a zero (not NaN) gradient, since
    # log_1m_p_t is clamped away from -inf before the multiplication by gamma
    factor = torch.exp(gamma * log_1m_p_t.clamp_min(-1e4))
    return -factor * log_p_t


def softmax_focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float | list[float] | Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Softmax focal loss ``-alpha_t (1 - p_t)^gamma log softmax(x)[y]``.

    Shapes: logits ``[N, C]``, target int64 ``[N]``; ``reduction="none"`` gives ``[N]``.
    ``alpha``: None (no weighting), or a list of C per-class weights (``alpha_t`` is the target
    class's weight). ``mean`` is over the N examples (not over the weights).

    >>> x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
    >>> y = torch.tensor([0, 2, 1])
    >>> round(softmax_focal_loss(x, y, gamma=0.0).item(), 4)  # = cross entropy (seed 002's 3x3)
    1.3077
    >>> round(softmax_focal_loss(x, y, gamma=2.0).item(), 4)
    0.7247
    """
    check_class_target("focal", logits, target)
    check_class_values("focal", target, logits.shape[1])
    check_reduction("focal", reduction)
    log_p_t = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    loss = _modulate(log_p_t, _log1mexp(log_p_t), gamma)
    if alpha is not None:
        weights = torch.as_tensor(alpha, dtype=loss.dtype, device=loss.device)
        loss = loss * (weights[target] if weights.ndim else weights)
    return reduce(loss, reduction)


def sigmoid_focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float | None = 0.25,
    reduction: str = "mean",
) -> Tensor:
    """Sigmoid focal loss, equal to ``torchvision.ops.sigmoid_focal_loss``.

    ``alpha`` weights the positives (``1 - alpha`` the negatives); None or a negative value turns
    the weighting off (torchvision's -1). Shapes: logits and mask alike (``[N, 1, H, W]``);
    ``reduction="none"`` gives that shape; ``mean`` is over all elements (RetinaNet instead divides
    by the number of positives).

    >>> x, y = torch.tensor([0.4, 0.1]), torch.tensor([0.2, 0.8])
    >>> round(sigmoid_focal_loss(x, y, gamma=0.0, alpha=None).item(), 4)  # = BCE with logits
    0.7487
    """
    check_binary_target("focal", logits, target)
    check_reduction("focal", reduction)
    log_p = F.logsigmoid(logits)
    log_1m_p = F.logsigmoid(-logits)
    # soft targets interpolate: log p_t = y log p + (1 - y) log(1 - p), as torchvision's form
    ce = -(target * log_p + (1 - target) * log_1m_p)
    log_1m_p_t = target * log_1m_p + (1 - target) * log_p
    loss = ce if gamma == 0 else torch.exp(gamma * log_1m_p_t.clamp_min(-1e4)) * ce
    if alpha is not None and alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return reduce(loss, reduction)


class FocalLoss(Loss):
    """``loss=focal``: softmax focal for class indices, sigmoid focal for binary masks.

    The form follows the target: int64 class indices -> :func:`softmax_focal_loss`, a floating
    mask -> :func:`sigmoid_focal_loss`. ``alpha``: a float in [0, 1] weights the positives of a
    binary mask (torchvision's convention) and is not used for multi-class targets, where a
    scalar weight of every class would only rescale the loss; a list gives multi-class per-class
    weights; None turns weighting off. So ``loss=focal`` runs on both tasks with one config.
    """

    tasks = ("classification", "segmentation")

    def __init__(
        self, gamma: float = 2.0, alpha: float | list[float] | None = 0.25, reduction: str = "mean"
    ) -> None:
        super().__init__()
        check_range("focal", "gamma", gamma, 0.0)
        check_reduction("focal", reduction)
        if isinstance(alpha, int | float):
            check_range("focal", "alpha", alpha, 0.0, 1.0)
        elif alpha is not None and min(alpha) < 0:
            raise ValueError(f"focal: expected non-negative class weights alpha, got {list(alpha)}")
        self.gamma = gamma
        self.alpha = alpha if alpha is None or isinstance(alpha, int | float) else list(alpha)
        self.reduction = reduction

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        scalar = self.alpha is None or isinstance(self.alpha, int | float)
        if target.is_floating_point():
            if not scalar:
                raise ValueError(
                    f"focal: expected a scalar alpha for binary masks, got {self.alpha}"
                )
            return sigmoid_focal_loss(input, target, self.gamma, self.alpha, self.reduction)
        return softmax_focal_loss(
            input, target, self.gamma, None if scalar else self.alpha, self.reduction
        )
