"""Image restoration losses (SSIM, MS-SSIM, their L1 mixes) on images ``[N, C, H, W]`` in [0, 1].

- ``ssim``: ``1 - SSIM`` (Wang et al. 2004, "Image Quality Assessment: From Error Visibility to
  Structural Similarity") with an 11x11 gaussian window, sigma 1.5, ``C1 = (0.01 L)²``,
  ``C2 = (0.03 L)²`` for data range L, computed as torchmetrics does (reflect padding by 5, every
  pixel's index averaged), so our SSIM equals
  ``torchmetrics.functional.structural_similarity_index_measure``; the gaussian filter runs as two
  1-D convolutions (22 instead of 121 multiply-adds per pixel). kornia's ``ssim_loss`` is
  ``(1 - SSIM) / 2``; ours is ``1 - SSIM``.
- ``ssim_l1``: ``alpha (1 - SSIM) + (1 - alpha) L1``, single-scale, alpha 0.84.
- ``ms_ssim_l1``: ``alpha (1 - MS-SSIM) + (1 - alpha) L1`` with alpha 0.84, Zhao et al. 2017
  ("Loss Functions for Image Restoration with Neural Networks"; they weight the L1 by a gaussian,
  we keep it plain). MS-SSIM (Wang, Simoncelli, Bovik 2003, "Multiscale structural similarity for
  image quality assessment") halves the image between scales (2x2 average pooling) and multiplies
  the contrast-structure term ``cs = (2 σ_xy + C2) / (σ_x² + σ_y² + C2)`` of every scale but the
  coarsest with the full SSIM of the coarsest, each to its exponent (0.0448, 0.2856, 0.3001,
  0.2363, 0.1333, finest first). It sees what one scale misses: on a smooth image with fine
  noise, SSIM at full resolution is low while the coarser scales, where the noise averages out,
  are nearly perfect.

MS-SSIM follows ``torchmetrics.functional.multiscale_structural_similarity_index_measure`` in
every convention, so the two are equal: the same gaussian window at every scale, ``cs`` averaged
over the pixels whose window lies inside the image (the reflect-padded border cropped) while the
coarsest scale's SSIM averages every pixel, and negative per-image terms clamped to 0 before the
powers (torchmetrics' default ``normalize="relu"``: a fractional power of a negative number is
NaN). Anti-correlated images thus read MS-SSIM 0, where that term stops pulling and the L1 term
still does. It uses as many scales as the image allows, up to five: a scale fits while the image,
halved that often, still holds the 11 px window (22 px for two scales, 44 for three, 88 for four,
176 for five). Five scales take Wang et al.'s exponents as published (rounded, they sum to
1.0001; torchmetrics' default ``betas``); fewer take the first ones, renormalised to sum 1,
so that MS-SSIM stays a weighted geometric mean of its terms, on SSIM's scale whatever the image
size (32 px images get two scales, weighted 0.136 and 0.864). torchmetrics asks for more before
it takes four exponents (99 px); from 99 px on, and below 88, the two agree.

SSIM's gradient is finite for constant images too: both stabilising constants are positive.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.base import Loss, check_reduction, reduce
from losses.checks import check_float, check_range, check_same_shape, describe

__all__ = [
    "MSSSIML1",
    "MS_SSIM_MIN_SIDE",
    "MS_SSIM_WEIGHTS",
    "SSIML1",
    "SSIMLoss",
    "check_ms_ssim_l1",
    "check_ssim",
    "check_ssim_l1",
    "ms_ssim",
    "ms_ssim_l1",
    "ms_ssim_scales",
    "ms_ssim_weights",
    "ssim",
    "ssim_l1",
    "ssim_loss",
]

WINDOW = 11
SIGMA = 1.5
PAD = (WINDOW - 1) // 2
# Wang et al. 2003's exponents per scale, finest first, fitted to human ratings
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# the smallest side MS-SSIM takes: two scales, the second (half size) still holding the window
MS_SSIM_MIN_SIDE = 2 * WINDOW


def _gaussian_1d(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    distance = torch.arange((1 - size) / 2, (1 + size) / 2, 1.0, dtype=dtype, device=device)
    kernel = torch.exp(-((distance / sigma) ** 2) / 2)
    return kernel / kernel.sum()


def _check_images(name: str, prediction: Tensor, target: Tensor, min_size: int, why: str) -> None:
    check_float(name, "prediction", prediction)
    check_float(name, "target", target)
    if prediction.ndim != 4:
        raise ValueError(
            f"{name}: expected images of shape [N, C, H, W], got {describe(prediction)}"
        )
    check_same_shape(name, prediction, target)
    if min(prediction.shape[-2:]) < min_size:
        raise ValueError(
            f"{name}: expected images of at least {min_size}x{min_size} pixels ({why}), "
            f"got {prediction.shape[-2]}x{prediction.shape[-1]}"
        )


def _check_data_range(name: str, data_range: float) -> None:
    check_range(name, "data_range", data_range, 0.0, low_open=True)


def _ssim_and_cs(prediction: Tensor, target: Tensor, data_range: float) -> tuple[Tensor, Tensor]:
    """Per image ``(SSIM, cs)``, each ``[N]``: SSIM over every pixel, cs inside the border."""
    c = prediction.shape[1]
    kernel = _gaussian_1d(WINDOW, SIGMA, prediction.dtype, prediction.device)
    rows, cols = (
        kernel.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1),
        kernel.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1),
    )
    stack = torch.cat(
        [prediction, target, prediction * prediction, target * target, prediction * target]
    )
    stack = F.pad(stack, (PAD, PAD, PAD, PAD), mode="reflect")
    filtered = F.conv2d(F.conv2d(stack, rows, groups=c), cols, groups=c)
    mu_p, mu_t, pp, tt, pt = filtered.split(len(prediction))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    var_p = (pp - mu_p**2).clamp_min(0)
    var_t = (tt - mu_t**2).clamp_min(0)
    cov = pt - mu_p * mu_t
    structure, spread = 2 * cov + c2, var_p + var_t + c2
    index = ((2 * mu_p * mu_t + c1) * structure) / ((mu_p**2 + mu_t**2 + c1) * spread)
    # torchmetrics averages cs only where the window needs no padding
    cs = (structure / spread)[..., PAD:-PAD, PAD:-PAD]
    return index.flatten(1).mean(1), cs.flatten(1).mean(1)


def _ssim(name: str, prediction: Tensor, target: Tensor, data_range: float) -> Tensor:
    _check_images(name, prediction, target, WINDOW, "the gaussian window")
    return _ssim_and_cs(prediction, target, data_range)[0]


def ms_ssim_scales(size: int) -> int:
    """How many MS-SSIM scales an image with shorter side ``size`` holds (0 if not even one).

    Each scale halves the image (flooring odd sizes, as 2x2 average pooling does); the coarsest
    must still hold the 11 px window. At most five, the scales Wang et al. 2003 weighted.

    >>> [ms_ssim_scales(s) for s in (10, 21, 22, 64, 88, 175, 176, 512)]
    [0, 1, 2, 3, 4, 4, 5, 5]
    """
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and size >> scales >= WINDOW:
        scales += 1
    return scales


def ms_ssim_weights(scales: int) -> tuple[float, ...]:
    """The exponents of ``scales`` MS-SSIM scales, finest first: all five as published, or the
    first ``scales`` renormalised to sum 1.

    >>> [round(w, 4) for w in ms_ssim_weights(2)]
    [0.1356, 0.8644]
    """
    if scales == len(MS_SSIM_WEIGHTS):
        return MS_SSIM_WEIGHTS
    first = MS_SSIM_WEIGHTS[:scales]
    return tuple(w / sum(first) for w in first)


def _ms_ssim(name: str, prediction: Tensor, target: Tensor, data_range: float) -> Tensor:
    _check_images(
        name, prediction, target, MS_SSIM_MIN_SIDE, "two scales of the 11x11 gaussian window"
    )
    scales = ms_ssim_scales(min(prediction.shape[-2:]))
    weights = ms_ssim_weights(scales)
    terms = []
    for scale in range(scales):
        if scale:
            prediction, target = F.avg_pool2d(prediction, 2), F.avg_pool2d(target, 2)
        similarity, cs = _ssim_and_cs(prediction, target, data_range)
        # negative terms clamped to 0 as torchmetrics' default normalize="relu" does: a
        # fractional power of a negative number is NaN
        terms.append((cs if scale < scales - 1 else similarity).relu() ** weights[scale])
    return torch.stack(terms).prod(0)


def ssim(prediction: Tensor, target: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Per-image SSIM ``[N]``, equal to torchmetrics' with a gaussian 11x11, sigma 1.5 window.

    >>> x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> ssim(x, x)
    tensor([1., 1.])
    """
    _check_data_range("ssim", data_range)
    return _ssim("ssim", prediction, target, data_range)


def ms_ssim(prediction: Tensor, target: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Per-image MS-SSIM ``[N]`` over :func:`ms_ssim_scales` scales, equal to torchmetrics'.

    ``prod_j relu(cs_j)^w_j`` over the finer scales times ``relu(SSIM)^w`` at the coarsest,
    ``w`` from :func:`ms_ssim_weights`. Images need at least
    22x22 pixels (two scales).

    >>> x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> ms_ssim(x, x)
    tensor([1., 1.])
    >>> round(ms_ssim(x, 1 - x)[0].item(), 4)  # anti-correlated: cs < 0, clamped
    0.0
    """
    _check_data_range("ms_ssim", data_range)
    return _ms_ssim("ms_ssim", prediction, target, data_range)


def check_ssim(*, data_range: float, reduction: str) -> None:
    _check_data_range("ssim", data_range)
    check_reduction("ssim", reduction)


def _check_mix(name: str, alpha: float, data_range: float, reduction: str) -> None:
    check_range(name, "alpha", alpha, 0.0, 1.0)
    _check_data_range(name, data_range)
    check_reduction(name, reduction)


def check_ssim_l1(*, alpha: float, data_range: float, reduction: str) -> None:
    _check_mix("ssim_l1", alpha, data_range, reduction)


def check_ms_ssim_l1(*, alpha: float, data_range: float, reduction: str) -> None:
    _check_mix("ms_ssim_l1", alpha, data_range, reduction)


def _mix(similarity: Tensor, prediction: Tensor, target: Tensor, alpha: float) -> Tensor:
    """``alpha (1 - similarity) + (1 - alpha) L1`` per image ``[N]``."""
    l1 = (prediction - target).abs().flatten(1).mean(1)
    return alpha * (1 - similarity) + (1 - alpha) * l1


def ssim_loss(
    prediction: Tensor, target: Tensor, *, data_range: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """``1 - SSIM`` per image (``none`` gives ``[N]``).

    >>> x = torch.zeros(1, 1, 11, 11)
    >>> round(ssim_loss(x, x + 0.5).item(), 4)
    0.9996
    """
    check_ssim(data_range=data_range, reduction=reduction)
    return reduce(1 - _ssim("ssim", prediction, target, data_range), reduction)


def ssim_l1(
    prediction: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.84,
    data_range: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """``alpha (1 - SSIM) + (1 - alpha) L1`` per image (``none`` gives ``[N]``).

    >>> x = torch.zeros(1, 1, 11, 11)
    >>> round(ssim_l1(x, x + 0.5).item(), 4)
    0.9197
    """
    check_ssim_l1(alpha=alpha, data_range=data_range, reduction=reduction)
    similarity = _ssim("ssim_l1", prediction, target, data_range)
    return reduce(_mix(similarity, prediction, target, alpha), reduction)


def ms_ssim_l1(
    prediction: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.84,
    data_range: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """``alpha (1 - MS-SSIM) + (1 - alpha) L1`` per image (``none`` gives ``[N]``).

    MS-SSIM as :func:`ms_ssim`; images need at least 22x22 pixels.

    >>> x = torch.zeros(1, 1, 22, 22)
    >>> round(ms_ssim_l1(x, x + 0.5).item(), 4)
    0.919
    """
    check_ms_ssim_l1(alpha=alpha, data_range=data_range, reduction=reduction)
    similarity = _ms_ssim("ms_ssim_l1", prediction, target, data_range)
    return reduce(_mix(similarity, prediction, target, alpha), reduction)


class SSIMLoss(Loss):
    """``loss=ssim``: :func:`ssim_loss` as a module."""

    tasks = ("restoration",)
    function = staticmethod(ssim_loss)
    check = staticmethod(check_ssim)
    formula = (
        "1 - SSIM per image; 11x11 gaussian window, sigma 1.5, "
        "C1 = (0.01 data_range)², C2 = (0.03 data_range)²"
    )
    reference = (
        'Wang et al. 2004, "Image Quality Assessment: From Error Visibility to Structural '
        'Similarity"'
    )

    def __init__(self, *, data_range: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(data_range=data_range, reduction=reduction)


class _SimilarityL1(Loss):
    """What the SSIM + L1 mixes share: the task and the constructor."""

    tasks = ("restoration",)

    def __init__(
        self, *, alpha: float = 0.84, data_range: float = 1.0, reduction: str = "mean"
    ) -> None:
        super().__init__(alpha=alpha, data_range=data_range, reduction=reduction)


class SSIML1(_SimilarityL1):
    """``loss=ssim_l1``: :func:`ssim_l1` as a module."""

    function = staticmethod(ssim_l1)
    check = staticmethod(check_ssim_l1)
    formula = "alpha (1 - SSIM) + (1 - alpha) mean |ŷ - y| per image"
    reference = (
        'Zhao et al. 2017, "Loss Functions for Image Restoration with Neural Networks" (the mix, '
        "there with MS-SSIM); SSIM: Wang et al. 2004"
    )


class MSSSIML1(_SimilarityL1):
    """``loss=ms_ssim_l1``: :func:`ms_ssim_l1` as a module."""

    function = staticmethod(ms_ssim_l1)
    check = staticmethod(check_ms_ssim_l1)
    formula = (
        "alpha (1 - MS-SSIM) + (1 - alpha) mean |ŷ - y| per image; "
        "MS-SSIM = Π_j relu(cs_j)^w_j over the finer scales times relu(SSIM)^w at the coarsest"
    )
    reference = (
        'Zhao et al. 2017, "Loss Functions for Image Restoration with Neural Networks"; MS-SSIM: '
        'Wang, Simoncelli and Bovik 2003, "Multiscale structural similarity for image quality '
        'assessment"'
    )
