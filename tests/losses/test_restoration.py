"""ssim and ms_ssim_l1: torchmetrics' SSIM to 1e-4, identities, gradients, the window check, errors."""

import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from losses.restoration import MSSSIML1, SSIMLoss, ssim


def _pair(c: int, dtype=torch.float32, size: int = 32, seed: int = 0, smooth: bool = False):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(3, c, size // 4, size // 4, generator=g, dtype=dtype)
    clean = (
        torch.nn.functional.interpolate(clean, size=size, mode="bilinear")
        if smooth
        else torch.rand(3, c, size, size, generator=g, dtype=dtype)
    )
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=g, dtype=dtype)).clamp(0, 1)
    return noisy, clean


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("smooth", [False, True])
def test_ssim_equals_torchmetrics(channels, dtype, smooth):
    noisy, clean = _pair(channels, dtype, smooth=smooth)
    expected = tm_ssim(noisy, clean, data_range=1.0, reduction="none").to(dtype)
    torch.testing.assert_close(ssim(noisy, clean), expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(SSIMLoss()(noisy, clean), 1 - expected.mean(), atol=1e-4, rtol=0)


def test_identical_images_lose_nothing():
    _, clean = _pair(1)
    assert SSIMLoss()(clean, clean).abs().item() < 1e-6
    assert MSSSIML1()(clean, clean).abs().item() < 1e-6


def test_ms_ssim_l1_is_the_documented_mix():
    noisy, clean = _pair(1, torch.float64)
    l1 = (noisy - clean).abs().flatten(1).mean(1)
    expected = 0.84 * (1 - ssim(noisy, clean)) + 0.16 * l1
    torch.testing.assert_close(MSSSIML1(reduction="none")(noisy, clean), expected)
    torch.testing.assert_close(MSSSIML1(alpha=0.0)(noisy, clean), l1.mean())


@pytest.mark.parametrize("loss", [SSIMLoss, MSSSIML1])
def test_gradcheck_float64(loss):
    noisy, clean = _pair(1, torch.float64, size=16)
    noisy = noisy[:1].requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss()(x, clean[:1]), (noisy,), fast_mode=True)


@pytest.mark.parametrize("loss", [SSIMLoss, MSSSIML1])
def test_constant_and_extreme_images_stay_finite(loss):
    for value in (0.0, 1.0, 1e4):
        x = torch.full((1, 1, 16, 16), value, requires_grad=True)
        out = loss()(x, torch.zeros(1, 1, 16, 16))
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("loss", [SSIMLoss, MSSSIML1])
def test_none_shape_and_bf16(loss):
    noisy, clean = _pair(3)
    assert loss(reduction="none")(noisy, clean).shape == (3,)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert loss()(noisy.bfloat16(), clean).dtype == torch.float32


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
            SSIMLoss,
            torch.rand(2, 32, 32),
            torch.rand(2, 32, 32),
            ValueError,
            "ssim: expected images of shape [N, C, H, W], got float32 [2, 32, 32]",
        ),
        (
            SSIMLoss,
            torch.rand(2, 1, 16, 16),
            torch.rand(2, 1, 16, 15),
            ValueError,
            "ssim: expected target of the same shape",
        ),
        (
            MSSSIML1,
            torch.rand(2, 1, 16, 16),
            torch.zeros(2, 1, 16, 16, dtype=torch.uint8),
            TypeError,
            "ms_ssim_l1: expected target as a floating tensor, got uint8 [2, 1, 16, 16]",
        ),
    ],
)
def test_bad_images(loss, prediction, target, error, message):
    with pytest.raises(error) as raised:
        loss()(prediction, target)
    assert str(raised.value).startswith(message)


def test_bad_hyperparameters():
    with pytest.raises(
        ValueError, match=r"ms_ssim_l1: expected alpha >= 0.0 and alpha <= 1.0, got 1.5"
    ):
        MSSSIML1(alpha=1.5)
    with pytest.raises(ValueError, match=r"ssim: expected data_range > 0.0, got 0.0"):
        SSIMLoss(data_range=0.0)
