"""Multi-class classification losses: logits ``[N, C]``, target int64 class indices ``[N]``.

Every loss here takes logits and applies ``log_softmax`` (or the sigmoid, ``bce_onehot``) itself;
class indices outside ``[0, C)`` raise (values checked on CPU and in preflight).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.base import Loss, check_reduction, reduce
from losses.checks import (
    check_class_target,
    check_class_values,
    check_range,
    check_same_shape,
    describe,
    values_checkable,
)

__all__ = [
    "BCEOneHot",
    "ClassWeightedCE",
    "CrossEntropy",
    "LogSoftmaxKLDiv",
    "LogSoftmaxNLL",
    "MultiMargin",
    "bce_onehot",
    "check_bce_onehot",
    "check_class_weighted_ce",
    "check_class_weights",
    "check_cross_entropy",
    "check_kl_div",
    "check_multi_margin",
    "check_nll",
    "class_weighted_ce",
    "class_weights",
    "cross_entropy",
    "kl_div",
    "multi_margin",
    "nll",
]

CLASS_WEIGHT_SCHEMES = ("inverse", "log", "effective")


def _check_class_weights_tensor(name: str, key: str, weight: Sequence[float] | Tensor) -> None:
    """A 1-D, non-empty list (or tensor) of non-negative class weights."""
    weights = torch.as_tensor(weight)
    if weights.ndim != 1 or weights.numel() == 0:
        raise ValueError(f"{name}: expected {key} as a list of class weights, got {weight!r}")
    if values_checkable(weights) and bool((weights < 0).any()):
        raise ValueError(f"{name}: expected non-negative class weights, got {weights.tolist()}")


def _cross_entropy(
    name: str,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    reduction: str,
) -> Tensor:
    """Cross entropy once the hyperparameters are checked; ``name`` starts the error messages."""
    check_class_target(name, logits, target)
    check_class_values(name, target, logits.shape[1], ignore_index)
    if weight is not None and weight.shape != logits.shape[1:]:
        raise ValueError(
            f"{name}: expected weight of shape [{logits.shape[1]}] (one per class), "
            f"got {describe(weight)}"
        )
    loss = F.cross_entropy(
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction="none",
    )
    kept = target != ignore_index
    weights = kept.to(loss.dtype) if weight is None else weight[target.where(kept, 0)] * kept
    total = weights.sum()
    # nothing counted (all ignored, or all zero-weight): every term is 0, so 0 / 1 = 0, not NaN
    return reduce(loss, reduction, denominator=torch.where(total > 0, total, 1.0))


def check_cross_entropy(
    *,
    weight: Sequence[float] | Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    reduction: str,
) -> None:
    """The hyperparameters of ``ce``."""
    if weight is not None:
        _check_class_weights_tensor("ce", "weight", weight)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ce: expected ignore_index as an int, got {ignore_index!r}")
    check_range("ce", "label_smoothing", label_smoothing, 0.0, 1.0)
    check_reduction("ce", reduction)


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    weight: Sequence[float] | Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Cross entropy ``-log softmax(x)[y]``, PyTorch's ``F.cross_entropy``.

    Shapes: logits ``[N, C]``, target int64 ``[N]``; ``reduction="none"`` gives ``[N]``.
    ``weight``: C class weights. A weighted ``mean`` divides by the sum of the targets' weights
    (PyTorch's convention). When every target is ``ignore_index`` (or has weight 0) the mean is 0
    with a zero gradient (PyTorch gives NaN by design; a batch with nothing to learn should not
    count as a NaN incident).

    >>> x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
    >>> round(cross_entropy(x, torch.tensor([0, 2, 1])).item(), 4)
    1.3077
    """
    check_cross_entropy(
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    if weight is not None:
        weight = torch.as_tensor(weight, dtype=logits.dtype, device=logits.device)
    return _cross_entropy("ce", logits, target, weight, ignore_index, label_smoothing, reduction)


class CrossEntropy(Loss):
    """``loss=ce``: :func:`cross_entropy` as a module; ``weight`` (C floats) is a buffer."""

    tasks = ("classification",)
    function = staticmethod(cross_entropy)
    check = staticmethod(check_cross_entropy)
    formula = (
        "-log softmax(x)[y]; with class weights, weight[y] times it and the mean over Σ weight[y]"
    )
    reference = "PyTorch's F.cross_entropy"

    def __init__(
        self,
        *,
        weight: list[float] | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )
        self.register_buffer(
            "weight", None if weight is None else torch.tensor(weight, dtype=torch.float32)
        )

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.to(input.dtype)
        return cross_entropy(input, target, **{**self.hyperparameters, "weight": weight})


def check_nll(*, reduction: str) -> None:
    """The hyperparameters of ``nll``."""
    check_reduction("nll", reduction)


def nll(logits: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """``log_softmax`` of the logits, then the negative log-likelihood of the target class.

    Cross entropy spelled out in its two steps (PyTorch's ``nll_loss`` after ``log_softmax``):
    ``nll == ce`` exactly. Shapes as :func:`cross_entropy`.

    >>> x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
    >>> round(nll(x, torch.tensor([0, 2, 1])).item(), 4)
    1.3077
    """
    check_nll(reduction=reduction)
    check_class_target("nll", logits, target)
    check_class_values("nll", target, logits.shape[1])
    return reduce(-F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1), reduction)


class LogSoftmaxNLL(Loss):
    """``loss=nll``: :func:`nll`; takes logits (unlike ``nn.NLLLoss``, which takes log-probs)."""

    tasks = ("classification",)
    function = staticmethod(nll)
    check = staticmethod(check_nll)
    formula = "-log softmax(x)[y] in two steps, log_softmax then NLL: equal to ce"
    reference = "PyTorch's F.nll_loss after F.log_softmax"

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)


def check_class_weights(
    *, class_counts: Sequence[int] | None, scheme: str, beta: float, log_offset: float
) -> None:
    """The arguments of :func:`class_weights` (``class_weighted_ce``'s first four)."""
    if class_counts is None:
        raise ValueError(
            "class_weighted_ce: expected class_counts of the training split, got None "
            "(the loss needs the training class counts: the framework fills them from the "
            "datamodule when the config leaves them null)"
        )
    if len(class_counts) == 0 or min(class_counts) < 0:
        raise ValueError(
            "class_weighted_ce: expected non-negative class_counts, one per class, "
            f"got {list(class_counts)}"
        )
    if scheme not in CLASS_WEIGHT_SCHEMES:
        raise ValueError(
            f"class_weighted_ce: expected scheme in {CLASS_WEIGHT_SCHEMES}, got {scheme!r}"
        )
    check_range("class_weighted_ce", "beta", beta, 0.0, 1.0, low_open=True, high_open=True)
    check_range("class_weighted_ce", "log_offset", log_offset, 1.0, low_open=True)


def class_weights(
    class_counts: Sequence[int],
    *,
    scheme: str = "effective",
    beta: float = 0.999,
    log_offset: float = 1.02,
) -> Tensor:
    """Per-class weights from training counts, normalised to sum to C (float32 ``[C]``).

    - ``inverse``: ``w_c ∝ 1 / n_c``;
    - ``log``: ``w_c = 1 / log(a + p_c)`` with ``p_c`` the class frequency (Paszke et al. 2016,
      "ENet: A Deep Neural Network Architecture for Real-Time Semantic Segmentation");
    - ``effective``: ``w_c ∝ (1 - beta) / (1 - beta^n_c)`` (Cui et al. 2019, "Class-Balanced Loss
      Based on Effective Number of Samples").

    An empty class (``n_c = 0``) is counted as 1, so it gets the largest weight (that of a class
    seen once), not infinity; since it never appears as a target, it only shifts the others'
    share of the normalisation.

    >>> class_weights([100, 10, 1], scheme="inverse")
    tensor([0.0270, 0.2703, 2.7027])
    """
    check_class_weights(class_counts=class_counts, scheme=scheme, beta=beta, log_offset=log_offset)
    n = torch.tensor(list(class_counts), dtype=torch.float64).clamp_min(1)
    if scheme == "inverse":
        weights = 1 / n
    elif scheme == "log":
        weights = 1 / torch.log(log_offset + n / n.sum())
    else:
        weights = (1 - beta) / (1 - beta**n)
    return (weights * len(n) / weights.sum()).float()


def check_class_weighted_ce(
    *,
    class_counts: Sequence[int] | None,
    scheme: str,
    beta: float,
    log_offset: float,
    reduction: str,
) -> None:
    """The hyperparameters of ``class_weighted_ce``."""
    check_class_weights(class_counts=class_counts, scheme=scheme, beta=beta, log_offset=log_offset)
    check_reduction("class_weighted_ce", reduction)


def class_weighted_ce(
    logits: Tensor,
    target: Tensor,
    *,
    class_counts: Sequence[int],
    scheme: str = "effective",
    beta: float = 0.999,
    log_offset: float = 1.02,
    reduction: str = "mean",
) -> Tensor:
    """Cross entropy weighted by :func:`class_weights` of ``class_counts`` (the training counts).

    The weighted ``mean`` divides by the sum of the targets' weights (PyTorch's convention), as
    :func:`cross_entropy`; ``none`` gives ``[N]``.

    >>> x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
    >>> y = torch.tensor([0, 2, 1])
    >>> round(class_weighted_ce(x, y, class_counts=[1, 1, 1]).item(), 4)  # equal counts: = ce
    1.3077
    """
    check_class_weighted_ce(
        class_counts=class_counts,
        scheme=scheme,
        beta=beta,
        log_offset=log_offset,
        reduction=reduction,
    )
    weight = class_weights(class_counts, scheme=scheme, beta=beta, log_offset=log_offset)
    weight = weight.to(dtype=logits.dtype, device=logits.device)
    return _cross_entropy("class_weighted_ce", logits, target, weight, -100, 0.0, reduction)


class ClassWeightedCE(Loss):
    """``loss=class_weighted_ce``: :func:`class_weighted_ce`, the weights computed once.

    ``class_counts`` is filled from the training split by the framework when the config leaves it
    null; the weights are a buffer (they move with the module and are saved in its state).
    """

    tasks = ("classification",)
    function = staticmethod(class_weighted_ce)
    check = staticmethod(check_class_weighted_ce)
    formula = (
        "-w_y log softmax(x)[y], the mean over Σ w_y; w from the training counts n_c, normalised "
        "to sum to C: (1 - beta) / (1 - beta^n_c) (effective), 1 / n_c (inverse) or "
        "1 / log(log_offset + p_c) (log)"
    )
    reference = (
        'Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples"; '
        'log scheme: Paszke et al. 2016, "ENet: A Deep Neural Network Architecture for '
        'Real-Time Semantic Segmentation"'
    )

    def __init__(
        self,
        *,
        class_counts: list[int] | None = None,
        scheme: str = "effective",
        beta: float = 0.999,
        log_offset: float = 1.02,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            class_counts=class_counts,
            scheme=scheme,
            beta=beta,
            log_offset=log_offset,
            reduction=reduction,
        )
        weight = class_weights(class_counts, scheme=scheme, beta=beta, log_offset=log_offset)
        self.register_buffer("weight", weight)

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        weight = self.weight.to(input.dtype)
        reduction = self.hyperparameters["reduction"]
        return _cross_entropy("class_weighted_ce", input, target, weight, -100, 0.0, reduction)


def check_kl_div(*, smoothing: float, reduction: str) -> None:
    """The hyperparameters of ``kl_div``."""
    check_range("kl_div", "smoothing", smoothing, 0.0, 1.0, high_open=True)
    check_reduction("kl_div", reduction)


def kl_div(
    logits: Tensor, target: Tensor, *, smoothing: float = 0.1, reduction: str = "mean"
) -> Tensor:
    """``KL(q || softmax(x))`` with soft targets ``q``: ``Σ_c q_c (log q_c - log softmax(x)_c)``.

    ``target``: int64 class indices ``[N]`` turned into ``q`` by label smoothing (``1 - smoothing``
    on the true class, the rest spread evenly over the others; Szegedy et al. 2016, "Rethinking
    the Inception Architecture for Computer Vision"), or a float distribution ``[N, C]`` (rows
    summing to 1, values checked on CPU and in preflight). ``mean`` is ``batchmean`` (the sum over
    classes, averaged over samples: the real KL; PyTorch's ``mean`` divides by N*C); ``none``
    gives ``[N]``. Zero entries of ``q`` add 0.

    Target [0.1, 0.2, 0.7] against the distribution [0.5, 0.2, 0.3] (whose log is a valid logit
    vector):

    >>> q = torch.tensor([[0.1, 0.2, 0.7]])
    >>> round(kl_div(torch.tensor([[0.5, 0.2, 0.3]]).log(), q, reduction="sum").item(), 4)
    0.4322
    """
    check_kl_div(smoothing=smoothing, reduction=reduction)
    if logits.ndim != 2 or not logits.is_floating_point():
        raise ValueError(f"kl_div: expected logits as floating [N, C], got {describe(logits)}")
    if target.is_floating_point():
        check_same_shape("kl_div", logits, target)
        if values_checkable(target) and target.numel():
            sums = target.sum(1)
            if (sums - 1).abs().max() > 1e-4 or target.min() < 0:
                raise ValueError(
                    "kl_div: expected target rows that sum to 1 (a distribution over classes), "
                    f"got row sums in [{float(sums.min()):.4g}, {float(sums.max()):.4g}] and "
                    f"values in [{float(target.min()):.4g}, {float(target.max()):.4g}]"
                )
        q = target
    else:
        check_class_target("kl_div", logits, target)
        check_class_values("kl_div", target, logits.shape[1])
        c = logits.shape[1]
        q = torch.full_like(logits, smoothing / max(c - 1, 1)).scatter_(
            1, target[:, None], 1 - smoothing
        )
    log_p = F.log_softmax(logits, dim=1)
    per_sample = torch.where(q > 0, q * (torch.log(q.clamp_min(1e-38)) - log_p), 0.0).sum(1)
    return reduce(per_sample, reduction)


class LogSoftmaxKLDiv(Loss):
    """``loss=kl_div``: :func:`kl_div` on logits (``nn.KLDivLoss`` takes log-probabilities)."""

    tasks = ("classification",)
    function = staticmethod(kl_div)
    check = staticmethod(check_kl_div)
    formula = (
        "Σ_c q_c (log q_c - log softmax(x)_c), q = 1 - smoothing on y and smoothing / (C - 1) on "
        "every other class (or a given distribution)"
    )
    reference = (
        'label smoothing: Szegedy et al. 2016, "Rethinking the Inception Architecture for '
        'Computer Vision"'
    )

    def __init__(self, *, smoothing: float = 0.1, reduction: str = "mean") -> None:
        super().__init__(smoothing=smoothing, reduction=reduction)


def check_bce_onehot(*, reduction: str) -> None:
    """The hyperparameters of ``bce_onehot``."""
    check_reduction("bce_onehot", reduction)


def bce_onehot(logits: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """One-vs-rest BCE on one-hot targets: the multi-label view of a single-label task.

    Equal to ``F.binary_cross_entropy_with_logits(logits, one_hot(target).float())``: ``mean`` is
    over all N*C elements and ``none`` gives ``[N, C]``.

    >>> x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
    >>> round(bce_onehot(x, torch.tensor([0, 2, 1])).item(), 4)
    0.8032
    """
    check_bce_onehot(reduction=reduction)
    check_class_target("bce_onehot", logits, target)
    check_class_values("bce_onehot", target, logits.shape[1])
    one_hot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
    return reduce(F.binary_cross_entropy_with_logits(logits, one_hot, reduction="none"), reduction)


class BCEOneHot(Loss):
    """``loss=bce_onehot``: :func:`bce_onehot` as a module."""

    tasks = ("classification",)
    function = staticmethod(bce_onehot)
    check = staticmethod(check_bce_onehot)
    formula = "-(t log σ(x) + (1 - t) log(1 - σ(x))) over all N·C entries, t = one_hot(y)"
    reference = "PyTorch's F.binary_cross_entropy_with_logits on one-hot targets"

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)


def check_multi_margin(*, p: int, margin: float, reduction: str) -> None:
    """The hyperparameters of ``multi_margin``: ``p`` in (1, 2), ``margin >= 0``."""
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"multi_margin: expected p in (1, 2), got {p!r}")
    check_range("multi_margin", "margin", margin, 0.0)
    check_reduction("multi_margin", reduction)


def multi_margin(
    logits: Tensor, target: Tensor, *, p: int = 1, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """Multi-class hinge ``sum_{i != y} max(0, margin - x_y + x_i)^p / C`` (nn.MultiMarginLoss).

    ``none`` gives ``[N]``.

    >>> x = torch.tensor([[0.1, 0.2, 0.4, 0.8]])
    >>> round(multi_margin(x, torch.tensor([3])).item(), 4)
    0.325
    """
    check_multi_margin(p=p, margin=margin, reduction=reduction)
    check_class_target("multi_margin", logits, target)
    check_class_values("multi_margin", target, logits.shape[1])
    return reduce(
        F.multi_margin_loss(logits, target, p=p, margin=margin, reduction="none"), reduction
    )


class MultiMargin(Loss):
    """``loss=multi_margin``: :func:`multi_margin` as a module."""

    tasks = ("classification",)
    function = staticmethod(multi_margin)
    check = staticmethod(check_multi_margin)
    formula = "Σ_{i ≠ y} max(0, margin - x_y + x_i)^p / C"
    reference = "PyTorch's nn.MultiMarginLoss"

    def __init__(self, *, p: int = 1, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(p=p, margin=margin, reduction=reduction)
