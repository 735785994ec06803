"""Image restoration losses on predicted and clean images ``[N, C, H, W]`` in [0, 1].

- ``ssim``: ``1 - SSIM`` (Wang et al. 2004; seed 004) with an 11x11 gaussian window, sigma 1.5,
  ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²`` for data range L, computed as torchmetrics does
  (reflect padding by 5, every pixel's index averaged), so our SSIM equals
  ``torchmetrics.functional.structural_similarity_index_measure``; the gaussian filter runs as two
  1-D convolutions (22 instead of 121 multiply-adds per pixel). kornia's ``ssim_loss`` is
  ``(1 - SSIM) / 2``; ours is ``1 - SSIM``.
- ``ms_ssim_l1``: ``alpha (1 - SSIM) + (1 - alpha) L1`` with alpha 0.84, after Zhao et al. 2017.
  Zhao et al. mix *multi-scale* SSIM with a gaussian-weighted L1; on 28-64 px images five scales do
  not fit, so this is the catalogue's single-scale form with plain L1 (the name keeps the paper's).

SSIM's gradient is finite for constant images too: both stabilising constants are positive.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from losses._core import (
    Loss,
    check_float,
    check_range,
    check_reduction,
    check_same_shape,
    describe,
    reduce,
)

WINDOW = 11
SIGMA = 1.5


def _gaussian_1d(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    distance = torch.arange((1 - size) / 2, (1 + size) / 2, 1.0, dtype=dtype, device=device)
    kernel = torch.exp(-((distance / sigma) ** 2) / 2)
    return kernel / kernel.sum()


def _check_images(name: str, prediction: Tensor, target: Tensor, window: int) -> None:
    check_float(name, "prediction", prediction)
    check_float(name, "target", target)
    if prediction.ndim != 4:
        raise ValueError(
            f"{name}: expected images of shape [N, C, H, W], got {describe(prediction)}"
        )
    check_same_shape(name, prediction, target)
    if min(prediction.shape[-2:]) < window:
        raise ValueError(
            f"{name}: expected images of at least {window}x{window} pixels (the gaussian window), "
            f"got {prediction.shape[-2]}x{prediction.shape[-1]}"
        )


def ssim(prediction: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image SSIM ``[N]``, equal to torchmetrics' with a gaussian 11x11, sigma 1.5 window.

    >>> x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> ssim(x, x)
    tensor([1., 1.])
    """
    _check_images("ssim", prediction, target, WINDOW)
    c = prediction.shape[1]
    pad = (WINDOW - 1) // 2
    kernel = _gaussian_1d(WINDOW, SIGMA, prediction.dtype, prediction.device)
    rows, cols = (
        kernel.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1),
        kernel.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1),
    )
    stack = torch.cat(
        [prediction, target, prediction * prediction, target * target, prediction * target]
    )
    stack = F.pad(stack, (pad, pad, pad, pad), mode="reflect")
    filtered = F.conv2d(F.conv2d(stack, rows, groups=c), cols, groups=c)
    mu_p, mu_t, pp, tt, pt = filtered.split(len(prediction))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    var_p = (pp - mu_p**2).clamp_min(0)
    var_t = (tt - mu_t**2).clamp_min(0)
    cov = pt - mu_p * mu_t
    index = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / (
        (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    )
    return index.flatten(1).mean(1)


def ssim_loss(
    prediction: Tensor, target: Tensor, data_range: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """``1 - SSIM`` per image (``none`` gives ``[N]``)."""
    check_reduction("ssim", reduction)
    return reduce(1 - ssim(prediction, target, data_range), reduction)


def ms_ssim_l1(
    prediction: Tensor,
    target: Tensor,
    alpha: float = 0.84,
    data_range: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """``alpha (1 - SSIM) + (1 - alpha) L1`` per image (``none`` gives ``[N]``).

    >>> x = torch.zeros(1, 1, 11, 11)
    >>> round(ms_ssim_l1(x, x + 0.5).item(), 4)
    0.9197
    """
    check_reduction("ms_ssim_l1", reduction)
    _check_images("ms_ssim_l1", prediction, target, WINDOW)
    l1 = (prediction - target).abs().flatten(1).mean(1)
    return reduce(alpha * (1 - ssim(prediction, target, data_range)) + (1 - alpha) * l1, reduction)


class SSIMLoss(Loss):
    """``loss=ssim``: :func:`ssim_loss` as a module."""

    tasks = ("restoration",)

    def __init__(self, data_range: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        check_range("ssim", "data_range", data_range, 0.0, low_open=True)
        check_reduction("ssim", reduction)
        self.data_range = data_range
        self.reduction = reduction

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return ssim_loss(input, target, self.data_range, self.reduction)


class MSSSIML1(Loss):
    """``loss=ms_ssim_l1``: :func:`ms_ssim_l1` as a module."""

    tasks = ("restoration",)

    def __init__(
        self, alpha: float = 0.84, data_range: float = 1.0, reduction: str = "mean"
    ) -> None:
        super().__init__()
        check_range("ms_ssim_l1", "alpha", alpha, 0.0, 1.0)
        check_range("ms_ssim_l1", "data_range", data_range, 0.0, low_open=True)
        check_reduction("ms_ssim_l1", reduction)
        self.alpha = alpha
        self.data_range = data_range
        self.reduction = reduction

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return ms_ssim_l1(input, target, self.alpha, self.data_range, self.reduction)
