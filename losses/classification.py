"""Multi-class classification losses: logits ``[N, C]``, target int64 class indices ``[N]``."""

import torch
import torch.nn.functional as F
from torch import Tensor

from losses._core import (
    Loss,
    check_class_target,
    check_class_values,
    check_range,
    check_reduction,
    check_same_shape,
    describe,
    reduce,
    values_checkable,
)


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    name: str = "ce",
) -> Tensor:
    """Cross entropy ``-log softmax(x)[y]`` (seeds 001-003).

    Shapes: logits ``[N, C]``, target int64 ``[N]``; ``reduction="none"`` gives ``[N]``.
    A weighted ``mean`` divides by the sum of the targets' weights (PyTorch's convention).
    ``name`` is the loss key that error messages start with.
    When every target is ``ignore_index`` (or has weight 0) the mean is 0 with a zero gradient
    (PyTorch gives NaN by design; a batch with nothing to learn should not count as a NaN
    incident).

    The seeds' 3x3 example:

    >>> import torch
    >>> x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
    >>> round(cross_entropy(x, torch.tensor([0, 2, 1])).item(), 4)
    1.3077
    """
    check_class_target(name, logits, target)
    check_class_values(name, target, logits.shape[1], ignore_index)
    check_range(name, "label_smoothing", label_smoothing, 0.0, 1.0)
    check_reduction(name, reduction)
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


def nll(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """``log_softmax`` then the negative log-likelihood of the target class (seeds 002, 003).

    The seeds spell CE out this way to show the two are one loss: ``nll == ce`` exactly.

    >>> x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
    >>> round(nll(x, torch.tensor([0, 2, 1])).item(), 4)
    1.3077
    """
    check_class_target("nll", logits, target)
    check_class_values("nll", target, logits.shape[1])
    check_reduction("nll", reduction)
    return reduce(-F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1), reduction)


def class_weights(
    counts: list[int], scheme: str, beta: float = 0.999, log_offset: float = 1.02
) -> Tensor:
    """Per-class weights from training counts, normalised to sum to C.

    - ``inverse``: ``w_c ∝ 1 / n_c``;
    - ``log``: ``w_c = 1 / log(a + p_c)`` with ``p_c`` the class frequency (ENet, seed 002);
    - ``effective``: ``w_c ∝ (1 - beta) / (1 - beta^n_c)`` (Cui et al. 2019, effective number).

    An empty class (``n_c = 0``) is counted as 1, so it gets the largest weight (that of a class
    seen once), not infinity; since it never appears as a target, it only shifts the others'
    share of the normalisation.

    >>> class_weights([100, 10, 1], "inverse")
    tensor([0.0270, 0.2703, 2.7027])
    """
    if len(counts) == 0 or min(counts) < 0:
        raise ValueError(
            f"class_weighted_ce: expected non-negative class_counts, one per class, got {counts}"
        )
    n = torch.tensor(counts, dtype=torch.float64).clamp_min(1)
    if scheme == "inverse":
        weights = 1 / n
    elif scheme == "log":
        weights = 1 / torch.log(log_offset + n / n.sum())
    elif scheme == "effective":
        weights = (1 - beta) / (1 - beta**n)
    else:
        raise ValueError(
            f"class_weighted_ce: expected scheme in ('inverse', 'log', 'effective'), got {scheme!r}"
        )
    return (weights * len(counts) / weights.sum()).float()


def kl_div(
    logits: Tensor, target: Tensor, smoothing: float = 0.1, reduction: str = "mean"
) -> Tensor:
    """``KL(q || softmax(x))`` with soft targets ``q`` (seeds 001, 003, 004).

    ``target``: int64 class indices ``[N]`` turned into ``q`` by label smoothing (``1 - smoothing``
    on the true class, the rest spread evenly over the others), or a float distribution ``[N, C]``.
    ``mean`` is ``batchmean`` (the sum over classes, averaged over samples: the real KL;
    PyTorch's ``mean`` divides by N*C); ``none`` gives ``[N]``. Zero entries of ``q`` add 0.

    The catalogue's pin, target [0.1, 0.2, 0.7] against the distribution [0.5, 0.2, 0.3] (whose
    log is a valid logit vector):

    >>> q = torch.tensor([[0.1, 0.2, 0.7]])
    >>> round(kl_div(torch.tensor([[0.5, 0.2, 0.3]]).log(), q, reduction="sum").item(), 4)
    0.4322
    """
    check_reduction("kl_div", reduction)
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
        check_range("kl_div", "smoothing", smoothing, 0.0, 1.0, high_open=True)
        c = logits.shape[1]
        q = torch.full_like(logits, smoothing / max(c - 1, 1)).scatter_(
            1, target[:, None], 1 - smoothing
        )
    log_p = F.log_softmax(logits, dim=1)
    per_sample = torch.where(q > 0, q * (torch.log(q.clamp_min(1e-38)) - log_p), 0.0).sum(1)
    return reduce(per_sample, reduction)


def bce_onehot(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """One-vs-rest BCE on one-hot targets: the multi-label view of one task (seeds 002, 003).

    Equal to ``F.binary_cross_entropy_with_logits(logits, one_hot(target).float())``: ``mean`` is
    over all N*C elements and ``none`` gives ``[N, C]``.

    >>> x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
    >>> round(bce_onehot(x, torch.tensor([0, 2, 1])).item(), 4)
    0.8032
    """
    check_class_target("bce_onehot", logits, target)
    check_class_values("bce_onehot", target, logits.shape[1])
    check_reduction("bce_onehot", reduction)
    one_hot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
    return reduce(F.binary_cross_entropy_with_logits(logits, one_hot, reduction="none"), reduction)


def multi_margin(
    logits: Tensor, target: Tensor, p: int = 1, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """Multi-class hinge ``sum_{i != y} max(0, margin - x_y + x_i)^p / C`` (nn.MultiMarginLoss).

    ``none`` gives ``[N]``.

    >>> x = torch.tensor([[0.1, 0.2, 0.4, 0.8]])
    >>> round(multi_margin(x, torch.tensor([3])).item(), 4)
    0.325
    """
    check_class_target("multi_margin", logits, target)
    check_class_values("multi_margin", target, logits.shape[1])
    check_reduction("multi_margin", reduction)
    return reduce(
        F.multi_margin_loss(logits, target, p=p, margin=margin, reduction="none"), reduction
    )


class NLL(Loss):
    """``loss=nll``: :func:`nll` as a module."""

    tasks = ("classification",)

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction("nll", reduction)
        self.reduction = reduction

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return nll(input, target, self.reduction)


class ClassWeightedCE(Loss):
    """``loss=class_weighted_ce``: CE weighted by :func:`class_weights` of the training counts.

    ``class_counts`` is filled from the training split by the framework when the config leaves it
    null; the weights are computed once here (a class with count 0 is counted as 1). The weighted
    ``mean`` divides by the sum of the targets' weights (PyTorch's convention), via
    :func:`cross_entropy`; ``none`` gives ``[N]``.
    """

    tasks = ("classification",)

    def __init__(
        self,
        class_counts: list[int] | None = None,
        scheme: str = "effective",
        beta: float = 0.999,
        log_offset: float = 1.02,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if class_counts is None:
            raise ValueError(
                "class_weighted_ce: expected class_counts of the training split, got None "
                "(the loss needs the training class counts: the framework fills them from the "
                "datamodule when the config leaves them null)"
            )
        check_range("class_weighted_ce", "beta", beta, 0.0, 1.0, low_open=True, high_open=True)
        check_range("class_weighted_ce", "log_offset", log_offset, 1.0, low_open=True)
        check_reduction("class_weighted_ce", reduction)
        self.register_buffer("weight", class_weights(list(class_counts), scheme, beta, log_offset))
        self.reduction = reduction

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        weight = self.weight.to(input.dtype)
        return cross_entropy(
            input, target, weight, reduction=self.reduction, name="class_weighted_ce"
        )


class KLDiv(Loss):
    """``loss=kl_div``: :func:`kl_div` against label-smoothed targets."""

    tasks = ("classification",)

    def __init__(self, smoothing: float = 0.1, reduction: str = "mean") -> None:
        super().__init__()
        check_range("kl_div", "smoothing", smoothing, 0.0, 1.0, high_open=True)
        check_reduction("kl_div", reduction)
        self.smoothing = smoothing
        self.reduction = reduction

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return kl_div(input, target, self.smoothing, self.reduction)


class BCEOneHot(Loss):
    """``loss=bce_onehot``: :func:`bce_onehot` as a module."""

    tasks = ("classification",)

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction("bce_onehot", reduction)
        self.reduction = reduction

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return bce_onehot(input, target, self.reduction)


class MultiMargin(Loss):
    """``loss=multi_margin``: :func:`multi_margin` as a module."""

    tasks = ("classification",)

    def __init__(self, p: int = 1, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        if p not in (1, 2):
            raise ValueError(f"multi_margin: expected p in (1, 2), got {p}")
        check_range("multi_margin", "margin", margin, 0.0)
        check_reduction("multi_margin", reduction)
        self.p = p
        self.margin = margin
        self.reduction = reduction

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return multi_margin(input, target, self.p, self.margin, self.reduction)
