"""l1, mse, smooth_l1, huber: torch built-ins, seed pins, the smooth L1 / Huber identity, errors."""

import pytest
import torch
import torch.nn.functional as F

from losses.regression import L1, MSE, Huber, SmoothL1, huber, smooth_l1

MODULES = {
    "l1": (L1, F.l1_loss, {}),
    "mse": (MSE, F.mse_loss, {}),
    "smooth_l1": (SmoothL1, F.smooth_l1_loss, {"beta": 0.5}),
    "huber": (Huber, F.huber_loss, {"delta": 2.0}),
}
SHAPES = [(8, 1), (4, 4), (2, 3, 5, 5)]


def test_seed_pins():
    prediction, target = (
        torch.tensor([[3.0, 1.0], [1.0, 0.0]]),
        torch.tensor([[1.0, 0.0], [1.0, 0.0]]),
    )
    assert L1()(prediction, target).item() == 0.75
    assert MSE()(prediction, target).item() == 1.25


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", SHAPES)
def test_equal_to_torch(name, reduction, shape):
    module, reference, kwargs = MODULES[name]
    x, y = torch.randn(shape, dtype=torch.float64) * 3, torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(
        module(**kwargs, reduction=reduction)(x, y), reference(x, y, reduction=reduction, **kwargs)
    )


@pytest.mark.parametrize("beta", [0.1, 1.0, 4.0])
def test_smooth_l1_is_huber_over_beta(beta):
    x, y = torch.randn(32, dtype=torch.float64) * 5, torch.zeros(32, dtype=torch.float64)
    torch.testing.assert_close(smooth_l1(x, y, beta), huber(x, y, beta) / beta)


@pytest.mark.parametrize("name", MODULES)
def test_gradcheck_and_extremes(name):
    module, _, kwargs = MODULES[name]
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: module(**kwargs)(t, y), (x,))
    big = torch.tensor([[1e4, -1e4], [100.0, -100.0]], requires_grad=True)
    loss = module(**kwargs)(big, torch.zeros(2, 2))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(big.grad).all()


@pytest.mark.parametrize("name", MODULES)
def test_bf16_autocast_computes_in_float32(name):
    module, _, kwargs = MODULES[name]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (
            module(**kwargs)(torch.randn(4, 2, dtype=torch.bfloat16), torch.randn(4, 2)).dtype
            == torch.float32
        )


@pytest.mark.parametrize("name", MODULES)
def test_bad_inputs(name):
    module, _, kwargs = MODULES[name]
    loss = module(**kwargs)
    with pytest.raises(
        ValueError,
        match=rf"{name}: expected target of the same shape as the input float32 \[8, 1\], got float32 \[8\]",
    ):
        loss(torch.randn(8, 1), torch.randn(8))
    with pytest.raises(
        TypeError, match=rf"{name}: expected target as a floating tensor, got int64 \[8, 1\]"
    ):
        loss(torch.randn(8, 1), torch.zeros(8, 1, dtype=torch.long))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SmoothL1(beta=0.0), "smooth_l1: expected beta > 0.0, got 0.0"),
        (lambda: Huber(delta=-1.0), "huber: expected delta > 0.0, got -1.0"),
        (lambda: L1(reduction="median"), "l1: expected reduction in"),
    ],
)
def test_bad_hyperparameters(build, message):
    with pytest.raises(ValueError) as error:
        build()
    assert str(error.value).startswith(message)
