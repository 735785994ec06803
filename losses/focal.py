"""Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection"; seed 002).

``FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)``: the cross entropy of each example scaled down by
how well it is already classified, so the many easy examples (background pixels, the majority
class) stop dominating the gradient. ``gamma = 0`` and no ``alpha`` is exactly cross entropy.

Two forms, one module (``loss=focal`` fits both tasks):

- softmax focal for multi-class logits ``[N, C]`` and int64 class indices ``[N]``;
- sigmoid focal for binary logits and a float {0, 1} mask of the same shape (torchvision's
  ``sigmoid_focal_loss``).

Numerics: ``log p_t`` comes from ``log_softmax`` / ``binary_cross_entropy_with_logits``, and the
modulating factor is ``exp(gamma * log(1 - p_t))`` with ``log(1 - p_t)`` itself taken in log space:
``logsumexp`` of the other classes' log-probabilities (softmax), ``logsigmoid(-x)`` or
``logsigmoid(x)`` (sigmoid). For ``gamma < 1`` the naive ``(1 - p_t) ** gamma`` has an infinite
derivative at ``p_t = 1``, which saturated logits reach in float32 (several libraries return NaN
gradients there); these forms are exact even where ``p_t`` rounds to 1 and their gradients stay
finite at logits of any size.
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
    describe,
    reduce,
)


def softmax_focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float | list[float] | Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Softmax focal loss ``-alpha_t (1 - p_t)^gamma log softmax(x)[y]``.

    Shapes: logits ``[N, C]``, target int64 ``[N]``; ``reduction="none"`` gives ``[N]``.
    ``alpha``: None (no weighting), a list (or tensor) of C per-class weights (``alpha_t`` is the
    target class's weight), or a float, which multiplies every class alike and so only rescales
    the loss (kept for symmetry with the binary form). ``mean`` is over the N examples, not over
    the weights (torchvision's convention), so ``gamma=0`` with class weights is not weighted CE's
    ``mean``, which divides by the sum of the targets' weights.

    >>> x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
    >>> y = torch.tensor([0, 2, 1])
    >>> round(softmax_focal_loss(x, y, gamma=0.0).item(), 4)  # = cross entropy (seed 002's 3x3)
    1.3077
    >>> round(softmax_focal_loss(x, y, gamma=2.0).item(), 4)
    0.7247
    """
    check_class_target("focal", logits, target)
    check_class_values("focal", target, logits.shape[1])
    check_range("focal", "gamma", gamma, 0.0)
    check_reduction("focal", reduction)
    log_p = F.log_softmax(logits, dim=1)
    loss = -log_p.gather(1, target[:, None]).squeeze(1)
    if gamma != 0:
        # log(1 - p_t) = log sum_{c != y} p_c. The target's entry is filled with the lowest finite
        # value rather than -inf, so that C = 1 (p_t = 1 always) still has a finite gradient.
        others = log_p.scatter(1, target[:, None], torch.finfo(log_p.dtype).min)
        loss = torch.exp(gamma * torch.logsumexp(others, dim=1)) * loss
    if alpha is not None:
        weights = torch.as_tensor(alpha, dtype=loss.dtype, device=loss.device)
        if weights.ndim == 0:
            loss = weights * loss
        elif weights.shape == logits.shape[1:]:
            loss = weights[target] * loss
        else:
            raise ValueError(
                f"focal: expected alpha as a float or {logits.shape[1]} per-class weights, "
                f"got {describe(weights)}"
            )
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
    by the number of positives). Soft targets in [0, 1] follow torchvision too:
    ``p_t = y p + (1 - y)(1 - p)``.

    >>> x, y = torch.tensor([0.4, 0.1]), torch.tensor([0.2, 0.8])
    >>> round(sigmoid_focal_loss(x, y, gamma=0.0, alpha=None).item(), 4)  # = BCE with logits
    0.7487
    >>> round(sigmoid_focal_loss(x, y, gamma=2.0, alpha=0.25).item(), 4)
    0.112
    """
    check_binary_target("focal", logits, target)
    check_range("focal", "gamma", gamma, 0.0)
    check_reduction("focal", reduction)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if gamma != 0:
        # log(1 - p_t) = log(y (1 - p) + (1 - y) p); for a hard mask one term is log 0 = -inf,
        # which logaddexp drops with a zero (not NaN) gradient
        log_1m_p_t = torch.logaddexp(
            torch.log(target) + F.logsigmoid(-logits), torch.log1p(-target) + F.logsigmoid(logits)
        )
        loss = torch.exp(gamma * log_1m_p_t) * loss
    if alpha is not None and alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return reduce(loss, reduction)


class FocalLoss(Loss):
    """``loss=focal``: softmax focal for class indices, sigmoid focal for binary masks.

    The form follows the target: int64 class indices -> :func:`softmax_focal_loss`, a floating
    mask -> :func:`sigmoid_focal_loss`. ``alpha``:

    - a float in [0, 1] weights the positives of a binary mask (torchvision's convention); for
      multi-class targets it is not used, since one weight shared by every class would only
      rescale the loss (and with it the learning rate), which would confound comparisons;
    - a list of C per-class weights: multi-class only (a binary mask then raises);
    - None or -1 turns the weighting off.

    So ``loss=focal`` runs on both tasks with its default config, and ``gamma=0`` with
    ``alpha=None`` (or -1) is exactly CE / BCE with logits.
    """

    tasks = ("classification", "segmentation")

    def __init__(
        self, gamma: float = 2.0, alpha: float | list[float] | None = 0.25, reduction: str = "mean"
    ) -> None:
        super().__init__()
        check_range("focal", "gamma", gamma, 0.0)
        check_reduction("focal", reduction)
        class_alpha = None
        if isinstance(alpha, int | float):
            if alpha != -1 and not 0 <= alpha <= 1:
                raise ValueError(
                    f"focal: expected alpha >= 0.0 and alpha <= 1.0, got {alpha} "
                    "(-1 or null turn the weighting off; a list gives per-class weights)"
                )
        elif alpha is not None:
            if len(alpha) == 0 or min(alpha) < 0:
                raise ValueError(
                    f"focal: expected non-negative class weights alpha, got {list(alpha)}"
                )
            class_alpha = torch.tensor(list(alpha), dtype=torch.float32)
            alpha = None
        self.gamma = gamma
        self.alpha = alpha
        self.register_buffer("class_alpha", class_alpha)
        self.reduction = reduction

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        if target.is_floating_point():
            if self.class_alpha is not None:
                raise ValueError(
                    "focal: expected a float alpha for a binary mask, got "
                    f"{len(self.class_alpha)} per-class weights"
                )
            return sigmoid_focal_loss(input, target, self.gamma, self.alpha, self.reduction)
        alpha = None if self.class_alpha is None else self.class_alpha.to(input.dtype)
        return softmax_focal_loss(input, target, self.gamma, alpha, self.reduction)
