"""Binary dense-prediction (segmentation) losses: logits ``[N, 1, H, W]``, float mask ``{0, 1}``.

Every function takes raw logits and a float mask of the same shape (soft targets in ``[0, 1]`` are
accepted; values checked on CPU and in preflight); the pixel-wise losses work on any shape
``[N, ...]``. Keys:

- ``bce``: BCE with logits and ``pos_weight`` (PyTorch's ``BCEWithLogitsLoss``);
- ``bce_manual``: BCE written out on probabilities, unstable ON PURPOSE, to show NaN incidents;
- ``balanced_bce``: BCE with positives weighted by beta and negatives by 1 - beta (Xie and Tu
  2015, "Holistically-Nested Edge Detection");
- ``ohem_bce``: balanced BCE with online hard-negative mining (Liao et al. 2020, "Real-time
  Scene Text Detection with Differentiable Binarization", DBNet);
- ``dice``: soft Dice, per sample or pooled over the batch, optionally squared (Milletari et al.
  2016, "V-Net");
- ``tversky``: Tversky index loss (Salehi et al. 2017, "Tversky loss function for image
  segmentation using 3D fully convolutional deep networks").

Region losses (``dice``, ``tversky``) smooth with ``eps`` in numerator and denominator, so an
empty mask with an all-background prediction gives loss 0 and any foreground predicted on an
empty mask is penalised (libraries differ here: see :func:`dice`).
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.base import Loss, check_reduction, reduce
from losses.checks import check_binary_target, check_range, values_checkable

__all__ = [
    "BCEWithLogitsLoss",
    "BalancedBCEWithLogitsLoss",
    "DiceLoss",
    "ManualBCEWithLogitsLoss",
    "OHEMBCEWithLogitsLoss",
    "TverskyLoss",
    "balanced_bce",
    "bce",
    "bce_manual",
    "check_balanced_bce",
    "check_bce",
    "check_bce_manual",
    "check_dice",
    "check_ohem_bce",
    "check_tversky",
    "dice",
    "ohem_bce",
    "tversky",
]


def _check_int(name: str, key: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected {key} as an int, got {value!r}")
    check_range(name, key, value, low)


def _check_bool(name: str, key: str, value: bool) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected {key} as a bool, got {value!r}")


def check_bce(*, pos_weight: float | Tensor | None, reduction: str) -> None:
    """The hyperparameters of ``bce``: ``pos_weight > 0`` or None."""
    check_reduction("bce", reduction)
    if isinstance(pos_weight, Tensor):
        # the module's buffer: read back only where values are checked (no per-step sync)
        if values_checkable(pos_weight) and bool((pos_weight <= 0).any()):
            raise ValueError(f"bce: expected pos_weight > 0.0, got {pos_weight.tolist()}")
    elif pos_weight is not None:
        check_range("bce", "pos_weight", pos_weight, 0.0, low_open=True)


def bce(
    logits: Tensor,
    target: Tensor,
    *,
    pos_weight: float | Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Binary cross entropy on logits, ``-(w y log σ(x) + (1 - y) log(1 - σ(x)))``.

    ``pos_weight`` (w) multiplies the positive term, PyTorch's convention: w = n_neg / n_pos
    weighs the classes as if they were balanced. Computed by
    ``F.binary_cross_entropy_with_logits``, stable at any logit. ``reduction="none"`` gives the
    input's shape.

    >>> round(bce(torch.tensor([0.4, 0.1]), torch.tensor([0.2, 0.8])).item(), 4)
    0.7487
    """
    check_bce(pos_weight=pos_weight, reduction=reduction)
    check_binary_target("bce", logits, target)
    if pos_weight is not None:
        pos_weight = torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    loss = F.binary_cross_entropy_with_logits(
        logits, target, pos_weight=pos_weight, reduction="none"
    )
    return reduce(loss, reduction)


class BCEWithLogitsLoss(Loss):
    """``loss=bce``: :func:`bce` on logits (as ``nn.BCEWithLogitsLoss``); ``pos_weight`` > 0."""

    tasks = ("segmentation",)
    function = staticmethod(bce)
    check = staticmethod(check_bce)
    formula = "-(pos_weight y log σ(x) + (1 - y) log(1 - σ(x)))"
    reference = "PyTorch's nn.BCEWithLogitsLoss"

    def __init__(self, *, pos_weight: float | None = None, reduction: str = "mean") -> None:
        super().__init__(pos_weight=pos_weight, reduction=reduction)
        weight = None if pos_weight is None else torch.tensor(float(pos_weight))
        self.register_buffer("pos_weight", weight)

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        pos_weight = None if self.pos_weight is None else self.pos_weight.to(input.dtype)
        return bce(input, target, **{**self.hyperparameters, "pos_weight": pos_weight})


def check_bce_manual(*, reduction: str) -> None:
    """The hyperparameters of ``bce_manual``."""
    check_reduction("bce_manual", reduction)


def bce_manual(logits: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """BCE written out on probabilities, ``-(y log σ(x) + (1 - y) log(1 - σ(x)))``: UNSTABLE ON
    PURPOSE.

    DO NOT TRAIN WITH THIS FOR RESULTS. It exists to demonstrate NaN incidents: in float32, σ(x)
    rounds to exactly 1 from x ≈ 17 and to 0 below x ≈ -88, so ``log(1 - σ(x))`` or ``log σ(x)``
    is ``-inf``; the loss is ``inf`` for a confident wrong prediction and ``0 * -inf = NaN`` even
    for a confident right one, and the gradients are NaN. Use ``bce`` (``logsigmoid`` inside) for
    the same value computed stably. On moderate logits both agree; ``reduction="none"`` gives the
    input's shape.

    >>> x, y = torch.tensor([0.4, 0.1]), torch.tensor([0.2, 0.8])
    >>> round(bce_manual(x, y).item(), 4)
    0.7487
    >>> bce_manual(torch.tensor([100.0]), torch.tensor([0.0]))
    tensor(inf)
    """
    check_bce_manual(reduction=reduction)
    check_binary_target("bce_manual", logits, target)
    probs = torch.sigmoid(logits)
    loss = -(target * torch.log(probs) + (1 - target) * torch.log(1 - probs))
    return reduce(loss, reduction)


class ManualBCEWithLogitsLoss(Loss):
    """``loss=bce_manual``: :func:`bce_manual`, the UNSTABLE form kept to show NaN incidents."""

    tasks = ("segmentation",)
    stable = False
    function = staticmethod(bce_manual)
    check = staticmethod(check_bce_manual)
    formula = (
        "-(y log σ(x) + (1 - y) log(1 - σ(x))) on probabilities: inf/NaN once σ(x) rounds to 0 or 1"
    )
    reference = (
        "PyTorch's nn.BCEWithLogitsLoss written out without its log-sum-exp trick, unstable on "
        "purpose"
    )

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)


def check_balanced_bce(*, beta: float | None, per_image: bool, reduction: str) -> None:
    """The hyperparameters of ``balanced_bce``: ``beta`` in [0, 1] or None (then from the data,
    pooled over the batch or ``per_image``)."""
    check_reduction("balanced_bce", reduction)
    _check_bool("balanced_bce", "per_image", per_image)
    if beta is not None:
        check_range("balanced_bce", "beta", beta, 0.0, 1.0)
        if per_image:
            raise ValueError(
                f"balanced_bce: expected per_image=false with a fixed beta={beta} "
                "(per_image computes beta from each image's mask)"
            )


def balanced_bce(
    logits: Tensor,
    target: Tensor,
    *,
    beta: float | None = None,
    per_image: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Balanced BCE, ``-(β y log σ(x) + (1 - β)(1 - y) log(1 - σ(x)))`` (Xie and Tu 2015).

    β is fixed when given, else the share of negatives, ``1 - mean(y)``, so the positives and the
    negatives carry the same total weight, ``β n_pos = (1 - β) n_neg``.

    - Batch form (``per_image=False``, the default): one β from the whole batch, ``1 - mean(y)``
      over every element. A batch with no positive at all has β = 1 and loss 0 (an all-positive
      batch β = 0 and loss 0): there is nothing to balance against; no NaN either way.
    - ``per_image=True``: β_i = ``1 - mean(y_i)`` for each image i, as HED computes it. An image
      without positives (or without negatives) would have β_i = 1 (or 0), which zeroes the weight
      of all its pixels and leaves its false positives unpunished; such an image gets β_i = 0.5
      instead, the β of an exactly balanced image, so it still gets its loss (half its plain BCE).

    ``mean`` averages over all elements (as ``F.binary_cross_entropy_with_logits`` does with
    ``weight``); ``none`` gives the input's shape.

    >>> x, y = torch.tensor([[0.4, 0.1], [-2.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    >>> round(balanced_bce(x, y).item(), 4)  # β = 0.75 for every element
    0.2327
    >>> round(balanced_bce(x, y, beta=0.5).item(), 4)  # half the plain BCE
    0.3372
    >>> round(balanced_bce(x, y, per_image=True).item(), 4)  # β = 0.5 for both images
    0.3372
    """
    check_balanced_bce(beta=beta, per_image=per_image, reduction=reduction)
    check_binary_target("balanced_bce", logits, target)
    if per_image:
        positive_share = target.reshape(target.shape[0], -1).mean(1)
        one_class = (positive_share == 0) | (positive_share == 1)
        beta = torch.where(one_class, 0.5, 1 - positive_share)
        beta = beta.view(-1, *([1] * (target.ndim - 1)))
    elif beta is None:
        beta = 1 - target.mean()
    loss = -(
        beta * target * F.logsigmoid(logits) + (1 - beta) * (1 - target) * F.logsigmoid(-logits)
    )
    return reduce(loss, reduction)


class BalancedBCEWithLogitsLoss(Loss):
    """``loss=balanced_bce``: :func:`balanced_bce`; ``beta`` in [0, 1], None = from the masks."""

    tasks = ("segmentation",)
    function = staticmethod(balanced_bce)
    check = staticmethod(check_balanced_bce)
    formula = (
        "-(beta y log σ(x) + (1 - beta)(1 - y) log(1 - σ(x))), "
        "beta = 1 - mean(y) when null (per image with per_image)"
    )
    reference = 'Xie and Tu 2015, "Holistically-Nested Edge Detection"'

    def __init__(
        self, *, beta: float | None = None, per_image: bool = False, reduction: str = "mean"
    ) -> None:
        super().__init__(beta=beta, per_image=per_image, reduction=reduction)


def check_ohem_bce(
    *, negative_ratio: float, min_negatives: int, eps: float, reduction: str
) -> None:
    """The hyperparameters of ``ohem_bce``."""
    check_reduction("ohem_bce", reduction)
    check_range("ohem_bce", "negative_ratio", negative_ratio, 0.0, low_open=True)
    _check_int("ohem_bce", "min_negatives", min_negatives, 0)
    check_range("ohem_bce", "eps", eps, 0.0, low_open=True)


def ohem_bce(
    logits: Tensor,
    target: Tensor,
    *,
    negative_ratio: float = 3.0,
    min_negatives: int = 100,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    """All positives plus the hardest negatives (DBNet's ``BalanceCrossEntropyLoss``).

    Positives are the elements with ``target > 0.5``. Mining is over the whole BATCH, as DBNet
    does: the ``k = min(n_neg, max(floor(negative_ratio * n_pos), min_negatives))`` negatives
    with the highest BCE are kept, and ``mean = (Σ positive BCE + Σ top-k negative BCE) /
    (n_pos + k + eps)``. DBNet has no ``min_negatives`` (it is 0 there): a batch without
    foreground then gives loss 0 and never learns to suppress false positives; the floor keeps
    the ``min_negatives`` hardest negatives in that case. ``sum`` is the numerator; ``none``
    returns the per-element BCE in the input's shape with every element that was not selected
    set to 0 (its ``sum`` is the ``sum`` reduction). Ties among equal negative losses are
    broken arbitrarily. No host sync: the selection is a sort and a rank mask.

    >>> x = torch.tensor([2.0, -1.0, 0.5, -3.0, 1.0, 0.0])
    >>> y = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    >>> ohem_bce(x, y, negative_ratio=2.0, min_negatives=0, reduction="none")
    tensor([0.1269, 0.0000, 0.9741, 0.0000, 1.3133, 0.0000])
    >>> round(ohem_bce(x, y, negative_ratio=2.0, min_negatives=0).item(), 4)  # 2.4143 / 3
    0.8048
    """
    check_ohem_bce(
        negative_ratio=negative_ratio, min_negatives=min_negatives, eps=eps, reduction=reduction
    )
    check_binary_target("ohem_bce", logits, target)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    positive = target > 0.5
    n_pos = positive.sum()
    k = (n_pos * negative_ratio).floor().clamp_min(min_negatives).minimum(positive.numel() - n_pos)
    # Positives sort last; k never exceeds the number of negatives, so none of them is picked.
    order = loss.detach().masked_fill(positive, float("-inf")).flatten().argsort(descending=True)
    in_top_k = torch.arange(order.numel(), device=order.device) < k
    hard = torch.zeros_like(in_top_k).scatter(0, order, in_top_k).view_as(positive)
    kept = loss.where(positive | hard, 0.0)
    return reduce(kept, reduction, denominator=n_pos + k + eps)


class OHEMBCEWithLogitsLoss(Loss):
    """``loss=ohem_bce``: :func:`ohem_bce`, hard negatives mined over the batch."""

    tasks = ("segmentation",)
    function = staticmethod(ohem_bce)
    check = staticmethod(check_ohem_bce)
    formula = (
        "(Σ positive BCE + Σ top-k negative BCE) / (n_pos + k + eps), "
        "k = min(n_neg, max(floor(negative_ratio n_pos), min_negatives))"
    )
    reference = (
        'Liao et al. 2020, "Real-time Scene Text Detection with Differentiable Binarization" '
        "(DBNet)"
    )

    def __init__(
        self,
        *,
        negative_ratio: float = 3.0,
        min_negatives: int = 100,
        eps: float = 1e-6,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            negative_ratio=negative_ratio, min_negatives=min_negatives, eps=eps, reduction=reduction
        )


def _region_sum(tensor: Tensor, batch: bool) -> Tensor:
    """Sum per sample (``[N]``) or over the whole batch (0-dim)."""
    return tensor.sum() if batch else tensor.reshape(tensor.shape[0], -1).sum(1)


def check_dice(*, eps: float, batch: bool, squared: bool, reduction: str) -> None:
    """The hyperparameters of ``dice``: ``eps > 0``."""
    check_reduction("dice", reduction)
    check_range("dice", "eps", eps, 0.0, low_open=True)
    _check_bool("dice", "batch", batch)
    _check_bool("dice", "squared", squared)


def dice(
    logits: Tensor,
    target: Tensor,
    *,
    eps: float = 1.0,
    batch: bool = False,
    squared: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Soft Dice loss on logits, ``1 - (2 Σ p y + eps) / (Σ p + Σ y + eps)``, ``p = σ(x)``.

    ``batch=False`` sums over every dimension but the first, one Dice per sample, then reduces
    over samples; ``reduction="none"`` gives ``[N]``. ``batch=True`` pools the sums over the whole
    batch (one Dice, a 0-dim tensor whatever the reduction), so small objects weigh by their
    pixel count. ``squared=True`` uses V-Net's denominator ``Σ p² + Σ y²`` (Milletari et al.
    2016).

    ``eps`` smooths numerator and denominator (the common "smooth = 1"). With ``eps`` on both
    sides an empty mask with an all-background prediction gives loss 0 and the loss of
    foreground predicted on an empty mask, ``1 - eps / (Σ p + eps)``, grows towards 1 with the
    predicted area; a larger ``eps`` softens that push. (Libraries differ: smp returns 0 with no
    gradient on empty masks, denominator-only smoothing returns 1.) ``eps > 0``.

    >>> x = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
    >>> y = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    >>> round(dice(x, y).item(), 4)
    0.3154
    >>> dice(torch.full((1, 4), -100.0), torch.zeros(1, 4))  # empty mask, predicted empty
    tensor(0.)
    """
    check_dice(eps=eps, batch=batch, squared=squared, reduction=reduction)
    check_binary_target("dice", logits, target)
    probs = torch.sigmoid(logits)
    intersection = _region_sum(probs * target, batch)
    if squared:
        union = _region_sum(probs * probs, batch) + _region_sum(target * target, batch)
    else:
        union = _region_sum(probs, batch) + _region_sum(target, batch)
    loss = 1 - (2 * intersection + eps) / (union + eps)
    return reduce(loss, reduction)


class DiceLoss(Loss):
    """``loss=dice`` (and ``dice_squared``, the same with ``squared=True``): :func:`dice`."""

    tasks = ("segmentation",)
    function = staticmethod(dice)
    check = staticmethod(check_dice)
    formula = (
        "1 - (2 Σ p y + eps) / (Σ p + Σ y + eps), p = σ(x); squared: Σ p² + Σ y² in the denominator"
    )
    reference = (
        'Milletari et al. 2016, "V-Net: Fully Convolutional Neural Networks for Volumetric '
        'Medical Image Segmentation"'
    )

    def __init__(
        self,
        *,
        eps: float = 1.0,
        batch: bool = False,
        squared: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__(eps=eps, batch=batch, squared=squared, reduction=reduction)


def check_tversky(*, alpha: float, beta: float, eps: float, batch: bool, reduction: str) -> None:
    """The hyperparameters of ``tversky``: ``alpha, beta >= 0``, ``eps > 0``."""
    check_reduction("tversky", reduction)
    check_range("tversky", "alpha", alpha, 0.0)
    check_range("tversky", "beta", beta, 0.0)
    check_range("tversky", "eps", eps, 0.0, low_open=True)
    _check_bool("tversky", "batch", batch)


def tversky(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    eps: float = 1.0,
    batch: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Tversky loss on logits, ``1 - (TP + eps) / (TP + α FP + β FN + eps)`` (Salehi et al. 2017).

    On ``p = σ(x)``: ``TP = Σ p y``, ``FP = Σ p (1 - y)``, ``FN = Σ (1 - p) y``. α weighs false
    positives, β false negatives: β > α favours recall on small structures. Per sample
    (``none`` gives ``[N]``) or pooled over the batch as in :func:`dice`. With α = β = 0.5 the
    denominator is ``(Σ p + Σ y) / 2``, so it equals ``dice`` with eps doubled (the smoothing
    written as in the paper and in smp/MONAI; with eps = 0 the two coincide exactly).

    >>> x = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
    >>> y = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    >>> round(tversky(x, y, eps=0.5).item(), 4)  # = dice(x, y, eps=1.0)
    0.3154
    >>> round(tversky(x, y, alpha=0.3, beta=0.7).item(), 4)
    0.2703
    """
    check_tversky(alpha=alpha, beta=beta, eps=eps, batch=batch, reduction=reduction)
    check_binary_target("tversky", logits, target)
    probs = torch.sigmoid(logits)
    tp = _region_sum(probs * target, batch)
    fp = _region_sum(probs, batch) - tp
    fn = _region_sum(target, batch) - tp
    loss = 1 - (tp + eps) / (tp + alpha * fp + beta * fn + eps)
    return reduce(loss, reduction)


class TverskyLoss(Loss):
    """``loss=tversky``: :func:`tversky`; ``alpha`` weighs false positives, ``beta`` negatives."""

    tasks = ("segmentation",)
    function = staticmethod(tversky)
    check = staticmethod(check_tversky)
    formula = (
        "1 - (TP + eps) / (TP + alpha FP + beta FN + eps), "
        "TP = Σ p y, FP = Σ p (1 - y), FN = Σ (1 - p) y, p = σ(x)"
    )
    reference = (
        'Salehi et al. 2017, "Tversky loss function for image segmentation using 3D fully '
        'convolutional deep networks"'
    )

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        beta: float = 0.5,
        eps: float = 1.0,
        batch: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__(alpha=alpha, beta=beta, eps=eps, batch=batch, reduction=reduction)
