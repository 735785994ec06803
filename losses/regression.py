"""Pixel-wise and coordinate-wise regression losses: prediction and target of the same shape.

``[N, D]`` for regression, ``[N, 4]`` for boxes, ``[N, C, H, W]`` for image restoration; the
element-wise loss is reduced by the shared helper (``none`` keeps the input's shape).

- ``l1``: ``|y - ŷ|``, the median's loss, robust to outliers (seeds 001, 003, 004);
- ``mse``: ``(y - ŷ)²``, the mean's loss, pulled by outliers (seeds 001, 003, 004);
- ``smooth_l1``: ``0.5 r² / beta`` for ``|r| < beta``, else ``|r| - 0.5 beta`` (seed 004);
- ``huber``: ``0.5 r²`` for ``|r| < delta``, else ``delta (|r| - 0.5 delta)``.

``smooth_l1(beta) = huber(delta=beta) / beta``: the same curve, scaled so that smooth L1's slope
far out is 1 while Huber's is delta.
"""

import torch.nn.functional as F
from torch import Tensor

from losses._core import Loss, check_float, check_range, check_reduction, check_same_shape, reduce


def _check(name: str, prediction: Tensor, target: Tensor, reduction: str) -> None:
    check_float(name, "prediction", prediction)
    check_float(name, "target", target)
    check_same_shape(name, prediction, target)
    check_reduction(name, reduction)


def l1(prediction: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean absolute error. Seed 003's 2x2 example:

    >>> import torch
    >>> prediction = torch.tensor([[3.0, 1.0], [1.0, 0.0]])
    >>> target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> round(l1(prediction, target).item(), 4)
    0.75
    """
    _check("l1", prediction, target, reduction)
    return reduce(F.l1_loss(prediction, target, reduction="none"), reduction)


def mse(prediction: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error. Seed 003's 2x2 example:

    >>> import torch
    >>> prediction = torch.tensor([[3.0, 1.0], [1.0, 0.0]])
    >>> target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> round(mse(prediction, target).item(), 4)
    1.25
    """
    _check("mse", prediction, target, reduction)
    return reduce(F.mse_loss(prediction, target, reduction="none"), reduction)


def smooth_l1(
    prediction: Tensor, target: Tensor, beta: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """Smooth L1: quadratic within ``beta`` of the target, linear (slope 1) beyond.

    >>> import torch
    >>> smooth_l1(torch.tensor([0.5, 3.0]), torch.zeros(2), reduction="none")
    tensor([0.1250, 2.5000])
    """
    _check("smooth_l1", prediction, target, reduction)
    return reduce(F.smooth_l1_loss(prediction, target, beta=beta, reduction="none"), reduction)


def huber(
    prediction: Tensor, target: Tensor, delta: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """Huber: quadratic within ``delta`` of the target, linear (slope delta) beyond.

    >>> import torch
    >>> huber(torch.tensor([0.5, 3.0]), torch.zeros(2), delta=2.0, reduction="none")
    tensor([0.1250, 4.0000])
    """
    _check("huber", prediction, target, reduction)
    return reduce(F.huber_loss(prediction, target, delta=delta, reduction="none"), reduction)


class _Pointwise(Loss):
    """The shared constructor of the element-wise losses; ``key`` names the loss in errors."""

    key = ""
    tasks = ("regression", "boxes", "restoration")

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(self.key, reduction)
        self.reduction = reduction


class L1(_Pointwise):
    """``loss=l1``: :func:`l1` as a module."""

    key = "l1"

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return l1(input, target, self.reduction)


class MSE(_Pointwise):
    """``loss=mse``: :func:`mse` as a module."""

    key = "mse"

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return mse(input, target, self.reduction)


class SmoothL1(_Pointwise):
    """``loss=smooth_l1``: :func:`smooth_l1` as a module; ``beta > 0``."""

    key = "smooth_l1"

    def __init__(self, beta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        check_range("smooth_l1", "beta", beta, 0.0, low_open=True)
        self.beta = beta

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return smooth_l1(input, target, self.beta, self.reduction)


class Huber(_Pointwise):
    """``loss=huber``: :func:`huber` as a module; ``delta > 0``."""

    key = "huber"

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        check_range("huber", "delta", delta, 0.0, low_open=True)
        self.delta = delta

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return huber(input, target, self.delta, self.reduction)
