"""ssim, ssim_l1, ms_ssim_l1: torchmetrics' SSIM and MS-SSIM (every scale count), the scale
rule, the clamp of negative terms, the single- vs multi-scale gap, gradients, errors."""

import inspect

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_ms
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from losses import restoration
from losses.base import Loss
from losses.restoration import (
    MSSSIML1,
    SSIML1,
    SSIMLoss,
    ms_ssim,
    ms_ssim_l1,
    ms_ssim_scales,
    ssim,
)

# Wang et al. 2003's exponents, written out here so the test does not read them from the module
PUBLISHED = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# float32 SSIM rounds differently from torchmetrics' (separable 1-D filters against its 2-D
# kernel): a few float32 ulps per pixel average, more after four rounds of pooling
ATOL = {torch.float32: 1e-5, torch.float64: 1e-12}
# torchmetrics raises to ``torch.tensor(betas)``, float32 even for float64 images: the exponents
# differ by ~1e-9 (float32 rounding of 0.0448 etc.), times |log cs| < 1
BETAS_ATOL = 1e-8


def _pair(n: int, c: int, size: int, dtype=torch.float64, seed: int = 0, noise: float = 0.1):
    """Random clean images and a noisy copy clamped to [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(n, c, size, size, generator=g, dtype=dtype)
    noisy = (clean + noise * torch.randn(clean.shape, generator=g, dtype=dtype)).clamp(0, 1)
    return noisy, clean


def _l1(prediction, target):
    return (prediction - target).abs().flatten(1).mean(1)


def _renormalised(scales: int) -> tuple[float, ...]:
    return tuple(w / sum(PUBLISHED[:scales]) for w in PUBLISHED[:scales])


# ---- SSIM ----


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ssim_equals_torchmetrics(channels, dtype):
    noisy, clean = _pair(3, channels, 32, dtype)
    expected = tm_ssim(noisy, clean, data_range=1.0, reduction="none")
    torch.testing.assert_close(ssim(noisy, clean), expected, atol=ATOL[dtype], rtol=0)
    torch.testing.assert_close(
        SSIMLoss()(noisy, clean), 1 - expected.mean(), atol=ATOL[dtype], rtol=0
    )
    assert SSIMLoss(data_range=2.0)(noisy, clean) < SSIMLoss()(noisy, clean)  # C1, C2 grow


def test_ssim_l1_is_the_documented_mix_of_torchmetrics_ssim_and_l1():
    noisy, clean = _pair(3, 1, 32)
    expected = 0.84 * (1 - tm_ssim(noisy, clean, data_range=1.0, reduction="none")) + 0.16 * _l1(
        noisy, clean
    )
    torch.testing.assert_close(SSIML1(reduction="none")(noisy, clean), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(SSIML1(alpha=0.0)(noisy, clean), _l1(noisy, clean).mean())


# ---- MS-SSIM ----


@pytest.mark.parametrize(("channels", "dtype"), [(1, torch.float64), (3, torch.float32)])
def test_ms_ssim_on_five_scales_equals_torchmetrics_default(channels, dtype):
    noisy, clean = _pair(2, channels, 192, dtype)
    assert ms_ssim_scales(192) == 5
    expected = tm_ms(noisy, clean, data_range=1.0, reduction="none")  # betas: the published five
    atol = max(ATOL[dtype], BETAS_ATOL)
    torch.testing.assert_close(ms_ssim(noisy, clean), expected, atol=atol, rtol=0)


@pytest.mark.parametrize(
    ("height", "width", "scales"),
    [(128, 128, 4), (64, 64, 3), (45, 70, 3), (32, 32, 2), (22, 40, 2)],
)
def test_ms_ssim_on_fewer_scales_equals_torchmetrics_with_renormalised_betas(height, width, scales):
    g = torch.Generator().manual_seed(height + width)
    clean = torch.rand(2, 1, height, width, generator=g, dtype=torch.float64)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert ms_ssim_scales(min(height, width)) == scales
    expected = tm_ms(noisy, clean, data_range=1.0, reduction="none", betas=_renormalised(scales))
    torch.testing.assert_close(ms_ssim(noisy, clean), expected, atol=BETAS_ATOL, rtol=0)
    # the scale count matters: one scale fewer gives a clearly different value
    if scales > 2:
        fewer = tm_ms(
            noisy, clean, data_range=1.0, reduction="none", betas=_renormalised(scales - 1)
        )
        assert (ms_ssim(noisy, clean) - fewer).abs().min() > 1e-4


def test_scales_are_the_halvings_that_still_hold_the_window():
    # a scale fits while the shorter side, halved (floored) that often, is still >= 11 px
    expected = {21: 1, 22: 2, 43: 2, 44: 3, 87: 3, 88: 4, 175: 4, 176: 5, 1000: 5}
    assert {size: ms_ssim_scales(size) for size in expected} == expected


def test_ms_ssim_l1_is_the_documented_mix_of_torchmetrics_ms_ssim_and_l1():
    noisy, clean = _pair(2, 3, 64)
    similarity = tm_ms(noisy, clean, data_range=1.0, reduction="none", betas=_renormalised(3))
    expected = 0.84 * (1 - similarity) + 0.16 * _l1(noisy, clean)
    torch.testing.assert_close(
        MSSSIML1(reduction="none")(noisy, clean), expected, atol=BETAS_ATOL, rtol=0
    )
    torch.testing.assert_close(
        MSSSIML1(alpha=0.3, reduction="sum")(noisy, clean),
        (0.3 * (1 - similarity) + 0.7 * _l1(noisy, clean)).sum(),
        atol=3 * BETAS_ATOL,
        rtol=0,
    )


def test_negative_terms_are_clamped_as_torchmetrics_does():
    # x against 1 - x: covariance -variance, so cs < 0 at every scale; a fractional power of a
    # negative number would be NaN. torchmetrics' default normalize="relu" clamps it to 0.
    _, clean = _pair(2, 1, 64)
    inverse = 1 - clean
    expected = tm_ms(clean, inverse, data_range=1.0, reduction="none", betas=_renormalised(3))
    assert torch.equal(expected, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(ms_ssim(clean, inverse), expected)
    # the MS-SSIM term then gives no gradient; the L1 term still pulls, and nothing is NaN
    x = clean.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(ms_ssim_l1(x, inverse), x)
    l1_only = torch.autograd.grad(0.16 * _l1(x, inverse).mean(), x)[0]
    torch.testing.assert_close(grad, l1_only, atol=1e-15, rtol=0)


def test_ms_ssim_sees_through_fine_noise_that_ssim_penalises():
    # A smooth 192 px image (6x6 random values, bilinearly upsampled) with per-pixel noise of
    # std 0.05: at full resolution the noise dominates the local variance, so single-scale SSIM
    # is low; two-fold to sixteen-fold coarser the noise has averaged out and the structure
    # matches. The two losses disagree by a factor of about five on the same pair.
    g = torch.Generator().manual_seed(0)
    small = torch.rand(1, 1, 6, 6, generator=g, dtype=torch.float64)
    clean = F.interpolate(small, size=192, mode="bilinear", align_corners=False)
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    single, multi = 1 - ssim(noisy, clean).item(), 1 - ms_ssim(noisy, clean).item()
    assert single == pytest.approx(0.64, abs=0.03) and multi == pytest.approx(0.12, abs=0.02)
    assert single > 4 * multi


def test_identical_images_lose_nothing():
    _, clean = _pair(2, 3, 32)
    for loss in (SSIMLoss(), SSIML1(), MSSSIML1()):
        assert loss(clean, clean).abs().item() < 1e-12  # C1, C2 > 0: exactly 1 up to rounding


# ---- all three: gradients, extremes, reductions, dtypes, errors ----

LOSSES = [SSIMLoss, SSIML1, MSSSIML1]
MIN_SIZE = {SSIMLoss: 11, SSIML1: 11, MSSSIML1: 22}


@pytest.mark.parametrize("loss", LOSSES)
def test_gradcheck_float64(loss):
    noisy, clean = _pair(1, 1, MIN_SIZE[loss] + 2)
    noisy.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss()(x, clean), (noisy,), fast_mode=True)


@pytest.mark.parametrize("loss", LOSSES)
def test_constant_and_extreme_images_stay_finite(loss):
    size = MIN_SIZE[loss] + 2
    g = torch.Generator().manual_seed(0)
    for x in (
        *(torch.full((1, 1, size, size), value) for value in (0.0, 1.0, 1e4, -1e4)),
        torch.randn(2, 3, size, size, generator=g) * 1e4,
        torch.randn(2, 3, size, size, generator=g).sign() * 1e4,
    ):
        x = x.clone().requires_grad_(True)
        out = loss()(x, torch.zeros_like(x))
        (grad,) = torch.autograd.grad(out, x)
        assert torch.isfinite(out) and torch.isfinite(grad).all()


@pytest.mark.parametrize("loss", LOSSES)
def test_reductions_and_bf16(loss):
    noisy, clean = _pair(3, 3, 32, torch.float32)
    per_image = loss(reduction="none")(noisy, clean)
    assert per_image.shape == (3,)
    torch.testing.assert_close(loss(reduction="sum")(noisy, clean), per_image.sum())
    torch.testing.assert_close(loss()(noisy, clean), per_image.mean())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss()(noisy.bfloat16(), clean)
    assert low.dtype == torch.float32
    # the bf16 input, promoted exactly, is computed in float32: as the float32 loss of it
    torch.testing.assert_close(low, loss()(noisy.bfloat16().float(), clean))


@pytest.mark.parametrize(
    ("loss", "prediction", "target", "error", "message"),
    [
        (
            SSIMLoss,
            torch.rand(2, 1, 8, 32),
            torch.rand(2, 1, 8, 32),
            ValueError,
            "ssim: expected images of at least 11x11 pixels (the gaussian window), got 8x32",
        ),
        (
            MSSSIML1,
            torch.rand(2, 1, 21, 64),
            torch.rand(2, 1, 21, 64),
            ValueError,
            "ms_ssim_l1: expected images of at least 22x22 pixels "
            "(two scales of the 11x11 gaussian window), got 21x64",
        ),
        (
            SSIMLoss,
            torch.rand(2, 32, 32),
            torch.rand(2, 32, 32),
            ValueError,
            "ssim: expected images of shape [N, C, H, W], got float32 [2, 32, 32]",
        ),
        (
            SSIML1,
            torch.rand(2, 1, 16, 16),
            torch.rand(2, 1, 16, 15),
            ValueError,
            "ssim_l1: expected target of the same shape",
        ),
        (
            MSSSIML1,
            torch.rand(2, 1, 32, 32),
            torch.zeros(2, 1, 32, 32, dtype=torch.uint8),
            TypeError,
            "ms_ssim_l1: expected target as a floating tensor, got uint8 [2, 1, 32, 32]",
        ),
    ],
)
def test_bad_images(loss, prediction, target, error, message):
    with pytest.raises(error) as raised:
        loss()(prediction, target)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: MSSSIML1(alpha=1.5),
            "ms_ssim_l1: expected alpha >= 0.0 and alpha <= 1.0, got 1.5",
        ),
        (lambda: SSIML1(alpha=-0.1), "ssim_l1: expected alpha >= 0.0 and alpha <= 1.0, got -0.1"),
        (lambda: SSIMLoss(data_range=0.0), "ssim: expected data_range > 0.0, got 0.0"),
        (lambda: MSSSIML1(reduction="avg"), "ms_ssim_l1: expected reduction in"),
        (lambda: ms_ssim(*_pair(1, 1, 32), data_range=-1.0), "ms_ssim: expected data_range > 0.0"),
    ],
)
def test_bad_hyperparameters(build, message):
    with pytest.raises(ValueError) as raised:
        build()
    assert str(raised.value).startswith(message)


LOSS_CLASSES = [
    c
    for _, c in inspect.getmembers(restoration, inspect.isclass)
    if issubclass(c, Loss)
    and c.__module__ == restoration.__name__
    and not c.__name__.startswith("_")
]


def test_every_module_is_covered():
    assert set(LOSS_CLASSES) == set(LOSSES)
