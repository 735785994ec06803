"""l1, mse, smooth_l1, huber: float64 formulas, a worked example, the smooth L1 / Huber identity,
errors."""

import inspect

import pytest
import torch

from losses import regression
from losses.base import Loss
from losses.regression import L1, MSE, Huber, SmoothL1, huber, smooth_l1


def _smooth_l1(r, beta):
    return torch.where(r.abs() < beta, 0.5 * r**2 / beta, r.abs() - 0.5 * beta)


def _huber(r, delta):
    return torch.where(r.abs() < delta, 0.5 * r**2, delta * (r.abs() - 0.5 * delta))


# module, element-wise float64 reference of the residual r = prediction - target, hyperparameters
MODULES = {
    "l1": (L1, lambda r: r.abs(), {}),
    "mse": (MSE, lambda r: r**2, {}),
    "smooth_l1": (SmoothL1, lambda r: _smooth_l1(r, 0.5), {"beta": 0.5}),
    "huber": (Huber, lambda r: _huber(r, 2.0), {"delta": 2.0}),
}
SHAPES = [(8, 1), (4, 4), (2, 3, 5, 5)]
REDUCE = {"mean": torch.mean, "sum": torch.sum, "none": lambda t: t}


def test_worked_example():
    prediction, target = (
        torch.tensor([[3.0, 1.0], [1.0, 0.0]]),
        torch.tensor([[1.0, 0.0], [1.0, 0.0]]),
    )
    assert L1()(prediction, target).item() == 0.75  # (2 + 1 + 0 + 0) / 4
    assert MSE()(prediction, target).item() == 1.25  # (4 + 1 + 0 + 0) / 4


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", SHAPES)
def test_equal_to_the_formula(name, reduction, shape):
    module, formula, kwargs = MODULES[name]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    y = torch.randn(shape, generator=g, dtype=torch.float64)
    expected = REDUCE[reduction](formula(x - y))
    torch.testing.assert_close(module(**kwargs, reduction=reduction)(x, y), expected)


def test_both_branches_are_exercised():
    # residuals on either side of beta = 0.5 and delta = 2: the formula test covers both pieces
    r = torch.tensor([0.1, 0.4, 1.0, 3.0, -5.0], dtype=torch.float64)
    torch.testing.assert_close(
        SmoothL1(beta=0.5, reduction="none")(r, torch.zeros_like(r)),
        torch.tensor([0.01, 0.16, 0.75, 2.75, 4.75], dtype=torch.float64),
    )
    torch.testing.assert_close(
        Huber(delta=2.0, reduction="none")(r, torch.zeros_like(r)),
        torch.tensor([0.005, 0.08, 0.5, 4.0, 8.0], dtype=torch.float64),
    )


@pytest.mark.parametrize("beta", [0.1, 1.0, 4.0])
def test_smooth_l1_is_huber_over_beta(beta):
    g = torch.Generator().manual_seed(1)
    x, y = (
        torch.randn(32, generator=g, dtype=torch.float64) * 5,
        torch.zeros(32, dtype=torch.float64),
    )
    torch.testing.assert_close(smooth_l1(x, y, beta=beta), huber(x, y, delta=beta) / beta)


@pytest.mark.parametrize("name", MODULES)
def test_gradcheck_and_extremes(name):
    module, _, kwargs = MODULES[name]
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: module(**kwargs)(t, y), (x,))
    big = torch.tensor([[1e4, -1e4], [100.0, -100.0]], requires_grad=True)
    loss = module(**kwargs)(big, torch.zeros(2, 2))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(big.grad).all()


@pytest.mark.parametrize("name", MODULES)
def test_bf16_autocast_computes_in_float32(name):
    module, formula, kwargs = MODULES[name]
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(4, 2, generator=g).bfloat16(), torch.randn(4, 2, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = module(**kwargs)(x, y)
    assert loss.dtype == torch.float32
    # from the bf16 input promoted exactly to float32: float32 rounding only
    torch.testing.assert_close(loss, formula(x.float() - y).mean())


LOSS_CLASSES = [
    c
    for _, c in inspect.getmembers(regression, inspect.isclass)
    if issubclass(c, Loss)
    and c.__module__ == regression.__name__
    and not c.__name__.startswith("_")
]


def test_every_module_is_covered():
    assert set(LOSS_CLASSES) == {module for module, _, _ in MODULES.values()}


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
        (lambda: MSE(reduction="median"), "mse: expected reduction in"),
        (lambda: smooth_l1(torch.zeros(1), torch.zeros(1), beta=-1.0), "smooth_l1: expected beta"),
        (lambda: huber(torch.zeros(1), torch.zeros(1), delta=0.0), "huber: expected delta"),
    ],
)
def test_bad_hyperparameters(build, message):
    with pytest.raises(ValueError) as error:
        build()
    assert str(error.value).startswith(message)
