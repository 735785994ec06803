"""Element-wise regression losses: prediction and target of the same shape, reduced by ``reduce``.

``[N, D]`` for regression, ``[N, 4]`` for boxes, ``[N, C, H, W]`` for image restoration; the
element-wise loss is reduced by the shared helper (``none`` keeps the input's shape).

- ``l1``: ``|y - ŷ|``, the median's loss, robust to outliers;
- ``mse``: ``(y - ŷ)²``, the mean's loss, pulled by outliers;
- ``smooth_l1``: ``0.5 r² / beta`` for ``|r| < beta``, else ``|r| - 0.5 beta`` (Girshick 2015,
  "Fast R-CNN");
- ``huber``: ``0.5 r²`` for ``|r| < delta``, else ``delta (|r| - 0.5 delta)`` (Huber 1964,
  "Robust Estimation of a Location Parameter").

``smooth_l1(beta) = huber(delta=beta) / beta``: the same curve, scaled so that smooth L1's slope
far out is 1 while Huber's is delta.
"""

import torch.nn.functional as F
from torch import Tensor

from losses.base import Loss, check_reduction, reduce
from losses.checks import check_float, check_range, check_same_shape

__all__ = [
    "L1",
    "MSE",
    "Huber",
    "SmoothL1",
    "check_huber",
    "check_l1",
    "check_mse",
    "check_smooth_l1",
    "huber",
    "l1",
    "mse",
    "smooth_l1",
]


def _check_inputs(name: str, prediction: Tensor, target: Tensor) -> None:
    check_float(name, "prediction", prediction)
    check_float(name, "target", target)
    check_same_shape(name, prediction, target)


def check_l1(*, reduction: str) -> None:
    check_reduction("l1", reduction)


def check_mse(*, reduction: str) -> None:
    check_reduction("mse", reduction)


def check_smooth_l1(*, beta: float, reduction: str) -> None:
    check_range("smooth_l1", "beta", beta, 0.0, low_open=True)
    check_reduction("smooth_l1", reduction)


def check_huber(*, delta: float, reduction: str) -> None:
    check_range("huber", "delta", delta, 0.0, low_open=True)
    check_reduction("huber", reduction)


def l1(prediction: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """Mean absolute error ``mean |y - ŷ|``; any shape, ``none`` keeps it.

    >>> import torch
    >>> prediction = torch.tensor([[3.0, 1.0], [1.0, 0.0]])
    >>> target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> round(l1(prediction, target).item(), 4)
    0.75
    """
    check_l1(reduction=reduction)
    _check_inputs("l1", prediction, target)
    return reduce(F.l1_loss(prediction, target, reduction="none"), reduction)


def mse(prediction: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """Mean squared error ``mean (y - ŷ)²``; any shape, ``none`` keeps it.

    >>> import torch
    >>> prediction = torch.tensor([[3.0, 1.0], [1.0, 0.0]])
    >>> target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> round(mse(prediction, target).item(), 4)
    1.25
    """
    check_mse(reduction=reduction)
    _check_inputs("mse", prediction, target)
    return reduce(F.mse_loss(prediction, target, reduction="none"), reduction)


def smooth_l1(
    prediction: Tensor, target: Tensor, *, beta: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """Smooth L1: ``0.5 r² / beta`` within ``beta`` of the target, ``|r| - 0.5 beta`` beyond.

    Slope 1 far out; any shape, ``none`` keeps it.

    >>> import torch
    >>> smooth_l1(torch.tensor([0.5, 3.0]), torch.zeros(2), reduction="none")
    tensor([0.1250, 2.5000])
    """
    check_smooth_l1(beta=beta, reduction=reduction)
    _check_inputs("smooth_l1", prediction, target)
    return reduce(F.smooth_l1_loss(prediction, target, beta=beta, reduction="none"), reduction)


def huber(
    prediction: Tensor, target: Tensor, *, delta: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """Huber: ``0.5 r²`` within ``delta`` of the target, ``delta (|r| - 0.5 delta)`` beyond.

    Slope delta far out; any shape, ``none`` keeps it.

    >>> import torch
    >>> huber(torch.tensor([0.5, 3.0]), torch.zeros(2), delta=2.0, reduction="none")
    tensor([0.1250, 4.0000])
    """
    check_huber(delta=delta, reduction=reduction)
    _check_inputs("huber", prediction, target)
    return reduce(F.huber_loss(prediction, target, delta=delta, reduction="none"), reduction)


class _ElementWise(Loss):
    """What the element-wise losses share: the tasks whose outputs they fit."""

    tasks = ("regression", "boxes", "restoration")


class L1(_ElementWise):
    """``loss=l1``: :func:`l1` as a module."""

    function = staticmethod(l1)
    check = staticmethod(check_l1)
    formula = "|y - ŷ|"
    reference = "PyTorch's nn.L1Loss"

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)


class MSE(_ElementWise):
    """``loss=mse``: :func:`mse` as a module."""

    function = staticmethod(mse)
    check = staticmethod(check_mse)
    formula = "(y - ŷ)²"
    reference = "PyTorch's nn.MSELoss"

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)


class SmoothL1(_ElementWise):
    """``loss=smooth_l1``: :func:`smooth_l1` as a module; ``beta > 0``."""

    function = staticmethod(smooth_l1)
    check = staticmethod(check_smooth_l1)
    formula = "0.5 r² / beta if |r| < beta, else |r| - 0.5 beta; r = y - ŷ"
    reference = 'Girshick 2015, "Fast R-CNN"'

    def __init__(self, *, beta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(beta=beta, reduction=reduction)


class Huber(_ElementWise):
    """``loss=huber``: :func:`huber` as a module; ``delta > 0``."""

    function = staticmethod(huber)
    check = staticmethod(check_huber)
    formula = "0.5 r² if |r| < delta, else delta (|r| - 0.5 delta); r = y - ŷ"
    reference = 'Huber 1964, "Robust Estimation of a Location Parameter"'

    def __init__(self, *, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(delta=delta, reduction=reduction)
