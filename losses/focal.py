"""Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection"): both forms, one module.

``FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)``: the cross entropy of each example scaled down by
how well it is already classified, so the many easy examples (background pixels, the majority
class) stop dominating the gradient. ``gamma = 0`` and no ``alpha`` is exactly cross entropy.

Two forms, one module (``loss=focal`` fits both tasks):

- softmax focal for multi-class logits ``[N, C]`` and int64 class indices ``[N]``;
- sigmoid focal for binary logits and a float {0, 1} mask of the same shape (torchvision's
  ``sigmoid_focal_loss``).

``alpha`` depends on the form: ``"auto"`` (the default) is 0.25 on a binary mask (RetinaNet's
weight of the positives) and no weighting on class indices; a float in [0, 1] weights the
positives of a binary mask and raises on class indices (one weight shared by all classes would
only rescale the loss, and with it the learning rate); a list of C weights is per class, for
class indices only; ``None`` or -1 turns the weighting off.

Numerics: ``log p_t`` comes from ``log_softmax`` / ``binary_cross_entropy_with_logits``, and the
modulating factor is ``exp(gamma * log(1 - p_t))`` with ``log(1 - p_t)`` itself taken in log space:
``logsumexp`` of the other classes' log-probabilities (softmax), ``logsigmoid(-x)`` or
``logsigmoid(x)`` (sigmoid). For ``gamma < 1`` the naive ``(1 - p_t) ** gamma`` has an infinite
derivative at ``p_t = 1``, which saturated logits reach in float32 (several libraries return NaN
gradients there); these forms are exact even where ``p_t`` rounds to 1 and their gradients stay
finite at logits of any size.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.base import Loss, check_reduction, reduce
from losses.checks import (
    check_binary_target,
    check_class_target,
    check_class_values,
    check_range,
    describe,
    values_checkable,
)

__all__ = ["FocalLoss", "check_focal", "focal_loss", "sigmoid_focal_loss", "softmax_focal_loss"]

Alpha = str | float | Sequence[float] | Tensor | None

# RetinaNet's weight of the positives (Lin et al. 2017, Table 1b: best with gamma = 2)
BINARY_AUTO_ALPHA = 0.25


def check_focal(*, gamma: float, alpha: Alpha, reduction: str) -> None:
    """The hyperparameters of ``focal``: ``gamma >= 0``; ``alpha`` as in the module doc."""
    check_range("focal", "gamma", gamma, 0.0)
    check_reduction("focal", reduction)
    if isinstance(alpha, bool) or (isinstance(alpha, str) and alpha != "auto"):
        raise TypeError(
            "focal: expected alpha as 'auto', a float, a list of class weights or null, "
            f"got {alpha!r}"
        )
    kind = _alpha_kind(alpha)
    if kind == "float" and not 0 <= alpha <= 1:
        raise ValueError(
            f"focal: expected alpha >= 0.0 and alpha <= 1.0, got {alpha} "
            "(-1 or null turn the weighting off; a list gives per-class weights)"
        )
    if kind == "per_class":
        weights = torch.as_tensor(alpha)
        if weights.ndim != 1 or weights.numel() == 0:
            raise ValueError(f"focal: expected alpha as a list of class weights, got {alpha!r}")
        if values_checkable(weights) and bool((weights < 0).any()):
            raise ValueError(
                f"focal: expected non-negative class weights alpha, got {weights.tolist()}"
            )


def _alpha_kind(alpha: Alpha) -> str:
    """``auto``, ``off`` (None or -1), ``float`` (a weight of the positives) or ``per_class``."""
    if isinstance(alpha, str):
        return "auto"
    if alpha is None or (isinstance(alpha, int | float) and alpha == -1):
        return "off"
    return "float" if isinstance(alpha, int | float) else "per_class"


def softmax_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: Alpha = None,
    reduction: str = "mean",
) -> Tensor:
    """Softmax focal loss ``-alpha_t (1 - p_t)^gamma log softmax(x)[y]``.

    Shapes: logits ``[N, C]``, target int64 ``[N]`` in ``[0, C)`` (values checked on CPU and in
    preflight); ``reduction="none"`` gives ``[N]``. ``alpha``: None, -1 or ``"auto"`` (no
    weighting), or C per-class weights (``alpha_t`` is the target class's weight); a float raises
    (it is the binary form's weight of the positives). ``mean`` is over the N examples, not over
    the weights (torchvision's convention), so ``gamma=0`` with class weights is not weighted CE's
    ``mean``, which divides by the sum of the targets' weights.

    >>> x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
    >>> y = torch.tensor([0, 2, 1])
    >>> round(softmax_focal_loss(x, y, gamma=0.0).item(), 4)  # = cross entropy
    1.3077
    >>> round(softmax_focal_loss(x, y, gamma=2.0).item(), 4)
    0.7247
    """
    check_focal(gamma=gamma, alpha=alpha, reduction=reduction)
    check_class_target("focal", logits, target)
    check_class_values("focal", target, logits.shape[1])
    kind = _alpha_kind(alpha)
    if kind == "float":
        c = logits.shape[1]
        raise ValueError(
            "focal: a float alpha weights the positives of a binary mask; for "
            f"{c} classes give a list of {c} weights, 'auto' or null, got alpha={alpha}"
        )
    log_p = F.log_softmax(logits, dim=1)
    loss = -log_p.gather(1, target[:, None]).squeeze(1)
    if gamma != 0:
        # log(1 - p_t) = log sum_{c != y} p_c. The target's entry is filled with the lowest finite
        # value rather than -inf, so that C = 1 (p_t = 1 always) still has a finite gradient.
        others = log_p.scatter(1, target[:, None], torch.finfo(log_p.dtype).min)
        loss = torch.exp(gamma * torch.logsumexp(others, dim=1)) * loss
    if kind == "per_class":
        weights = torch.as_tensor(alpha, dtype=loss.dtype, device=loss.device)
        if weights.shape != logits.shape[1:]:
            raise ValueError(
                f"focal: expected alpha as {logits.shape[1]} per-class weights, "
                f"got {describe(weights)}"
            )
        loss = weights[target] * loss
    return reduce(loss, reduction)


def sigmoid_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: Alpha = BINARY_AUTO_ALPHA,
    reduction: str = "mean",
) -> Tensor:
    """Sigmoid focal loss, equal to ``torchvision.ops.sigmoid_focal_loss``.

    ``alpha`` weights the positives (``1 - alpha`` the negatives); ``"auto"`` is 0.25; None or -1
    turns the weighting off (torchvision's -1); class weights raise. Shapes: logits and mask alike
    (``[N, 1, H, W]``), mask values in [0, 1] (checked on CPU and in preflight);
    ``reduction="none"`` gives that shape; ``mean`` is over all elements (RetinaNet instead divides
    by the number of positives). Soft targets in [0, 1] follow torchvision too:
    ``p_t = y p + (1 - y)(1 - p)``.

    >>> x, y = torch.tensor([0.4, 0.1]), torch.tensor([0.2, 0.8])
    >>> round(sigmoid_focal_loss(x, y, gamma=0.0, alpha=None).item(), 4)  # = BCE with logits
    0.7487
    >>> round(sigmoid_focal_loss(x, y, gamma=2.0, alpha=0.25).item(), 4)
    0.112
    """
    check_focal(gamma=gamma, alpha=alpha, reduction=reduction)
    check_binary_target("focal", logits, target)
    kind = _alpha_kind(alpha)
    if kind == "per_class":
        raise ValueError(
            f"focal: expected a float alpha for a binary mask, got {len(alpha)} per-class weights"
        )
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if gamma != 0:
        # log(1 - p_t) = log(y (1 - p) + (1 - y) p); for a hard mask one term is log 0 = -inf,
        # which logaddexp drops with a zero (not NaN) gradient
        log_1m_p_t = torch.logaddexp(
            torch.log(target) + F.logsigmoid(-logits), torch.log1p(-target) + F.logsigmoid(logits)
        )
        loss = torch.exp(gamma * log_1m_p_t) * loss
    if kind != "off":
        alpha = BINARY_AUTO_ALPHA if kind == "auto" else alpha
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return reduce(loss, reduction)


def focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: Alpha = "auto",
    reduction: str = "mean",
) -> Tensor:
    """The form follows the target: int64 class indices -> :func:`softmax_focal_loss`, a floating
    mask -> :func:`sigmoid_focal_loss`; ``alpha="auto"`` resolves per form (module doc).

    >>> x, y = torch.tensor([[0.4, -0.3]]), torch.tensor([[1.0, 0.0]])
    >>> focal_loss(x, y) == sigmoid_focal_loss(x, y, alpha=0.25)
    tensor(True)
    """
    form = sigmoid_focal_loss if target.is_floating_point() else softmax_focal_loss
    return form(input, target, gamma=gamma, alpha=alpha, reduction=reduction)


class FocalLoss(Loss):
    """``loss=focal``: :func:`focal_loss`, softmax focal for class indices, sigmoid for masks.

    ``gamma=0`` with ``alpha=None`` (or -1) is exactly CE / BCE with logits; ``alpha="auto"``
    lets the default config run on both tasks (the task is known only at the first batch, so it
    resolves then). Per-class weights are a buffer (they move with the module).
    """

    tasks = ("classification", "segmentation")
    function = staticmethod(focal_loss)
    check = staticmethod(check_focal)
    formula = (
        "-alpha_t (1 - p_t)^gamma log p_t, p_t the probability of the target: "
        "softmax(x)[y] on class indices, σ(x) on a mask's positives and 1 - σ(x) on its negatives"
    )
    reference = 'Lin et al. 2017, "Focal Loss for Dense Object Detection"'

    def __init__(
        self, *, gamma: float = 2.0, alpha: Alpha = "auto", reduction: str = "mean"
    ) -> None:
        super().__init__(gamma=gamma, alpha=alpha, reduction=reduction)
        per_class = _alpha_kind(alpha) == "per_class"
        self.register_buffer(
            "class_alpha", torch.tensor(list(alpha), dtype=torch.float32) if per_class else None
        )

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        if self.class_alpha is None:
            return super().compute(input, target)
        alpha = self.class_alpha.to(input.dtype)
        return focal_loss(input, target, **{**self.hyperparameters, "alpha": alpha})
