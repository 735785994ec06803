"""``combo``: the weighted sum, its statistics, its tasks and its errors."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from losses import segmentation as seg
from losses.base import Loss
from losses.combo import Combo, combo

CONF = Path(__file__).resolve().parents[2] / "conf" / "loss"


class Tasks(Loss):
    """A stand-in loss with chosen tasks, statistics and output shape."""

    @staticmethod
    def check() -> None:
        """No hyperparameters to check."""

    def __init__(self, tasks=("segmentation",), stats=None, scalar=True) -> None:
        super().__init__()
        self.tasks = tasks
        self.stats = stats or {}
        self.scalar = scalar

    def compute_with_stats(self, input, target):
        loss = (input - target).abs().flatten(1).mean(1)
        return (loss.mean() if self.scalar else loss), dict(self.stats)


def sample(dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    logits = (2 * torch.randn(3, 1, 4, 5, generator=generator)).to(dtype)
    mask = (torch.rand(3, 1, 4, 5, generator=generator) < 0.3).to(dtype)
    return logits, mask


def dice_bce(weights=None):
    components = {"dice": seg.DiceLoss(), "bce": seg.BCEWithLogitsLoss(pos_weight=2.0)}
    return Combo(components=components, weights=weights)


def softplus(x):
    return torch.logaddexp(torch.zeros_like(x), x)


def dice_reference(x, y, eps=1.0):
    """Per-sample soft Dice loss on logits in float64, averaged over samples."""
    p, y = torch.sigmoid(x.double()).flatten(1), y.double().flatten(1)
    return (1 - (2 * (p * y).sum(1) + eps) / (p.sum(1) + y.sum(1) + eps)).mean()


def bce_reference(x, y, pos_weight=1.0):
    """``-(w y log σ(x) + (1 - y) log(1 - σ(x)))`` in float64, exact at any logit, mean."""
    x, y = x.double(), y.double()
    return (pos_weight * y * softplus(-x) + (1 - y) * softplus(x)).mean()


def test_weighted_sum_and_stats():
    logits, mask = sample()
    dice = dice_reference(logits, mask)
    bce = F.binary_cross_entropy_with_logits(logits, mask, pos_weight=torch.tensor(2.0)).double()
    torch.testing.assert_close(bce, bce_reference(logits, mask, 2.0), rtol=1e-6, atol=0.0)
    module = dice_bce({"dice": 0.3, "bce": 2.0})
    loss, stats = module.with_stats(logits, mask)
    # float32 against float64 references: a few roundings of 2^-24 relative each
    tol = {"rtol": 1e-6, "atol": 0.0}
    torch.testing.assert_close(loss.double(), 0.3 * dice + 2.0 * bce, **tol)
    torch.testing.assert_close(module(logits, mask), loss)
    weights = {"dice": 0.3, "bce": 2.0}
    torch.testing.assert_close(
        combo(logits, mask, components=dict(module.components), weights=weights), loss
    )
    assert list(stats) == ["dice", "bce"]
    torch.testing.assert_close(stats["dice"].double(), dice, **tol)
    torch.testing.assert_close(stats["bce"].double(), bce, **tol)


def test_default_weights_are_one_and_stats_detached():
    logits, mask = sample()
    logits.requires_grad_(True)
    loss, stats = dice_bce().with_stats(logits, mask)
    expected = dice_reference(logits, mask) + bce_reference(logits, mask, 2.0)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=0.0)  # float32 rounding
    assert loss.requires_grad
    assert not any(stat.requires_grad for stat in stats.values())


def test_components_statistics_are_prefixed():
    stat = torch.tensor(0.25)
    module = Combo(components={"a": Tasks(stats={"active": stat}), "b": Tasks()})
    _, stats = module.with_stats(*sample())
    assert list(stats) == ["a", "a/active", "b"]
    assert stats["a/active"] is stat


def test_tasks_are_the_intersection():
    module = Combo(
        components={
            "a": Tasks(("regression", "boxes", "segmentation")),
            "b": Tasks(("segmentation", "boxes")),
        }
    )
    assert module.tasks == ("boxes", "segmentation")
    assert Combo.tasks == ()  # the class attribute is untouched
    assert dice_bce().tasks == ("segmentation",)


def test_components_are_submodules():
    module = dice_bce()
    assert isinstance(module.components, torch.nn.ModuleDict)
    assert "components.bce.pos_weight" in module.state_dict()
    assert module.hyperparameters == {"weights": {"dice": 1.0, "bce": 1.0}}  # plain values


@pytest.mark.parametrize(
    ("components", "weights", "error", "message"),
    [
        ({}, None, ValueError, r"combo: expected at least one component, got none"),
        ({"a": torch.nn.L1Loss()}, None, TypeError, r"combo: .* 'a' as a Loss module, got L1Loss"),
        (
            {"a": Tasks(("regression",)), "b": Tasks(("segmentation",))},
            None,
            ValueError,
            r"combo: expected components sharing a task, got a: \('regression',\), b: \('segm",
        ),
        (
            {"a": Tasks(), "b": Tasks()},
            {"a": 1.0},
            ValueError,
            r"combo: expected weights for exactly the components \['a', 'b'\], got .* \['a'\]",
        ),
        ({"a": Tasks()}, {"a": 1.0, "c": 1.0}, ValueError, r"combo: expected weights for exactly"),
        (
            {"a": Tasks(), "b": Tasks()},
            {"a": 1.0, "b": -0.5},
            ValueError,
            r"combo: expected weight of 'b' >= 0.0, got -0.5",
        ),
        (
            {"a": seg.DiceLoss(reduction="none")},
            None,
            ValueError,
            r"combo: expected component 'a' with reduction 'mean' or 'sum', got 'none'",
        ),
    ],
)
def test_bad_arguments_raise(components, weights, error, message):
    with pytest.raises(error, match=message):
        Combo(components=components, weights=weights)
    if weights is not None:  # the function runs the same check
        with pytest.raises(error, match=message):
            combo(*sample(), components=components, weights=weights)


def test_non_scalar_component_raises():
    module = Combo(components={"a": Tasks(), "b": Tasks(scalar=False)})
    message = r"combo: expected component 'b' to return a scalar, got float32 \[3\]"
    with pytest.raises(ValueError, match=message):
        module(*sample())


def test_bad_inputs_reach_the_components():
    logits, mask = sample()
    with pytest.raises(TypeError, match=r"dice: expected target as a float mask"):
        dice_bce()(logits, mask.long())


def test_gradcheck():
    logits, mask = sample(torch.float64)
    logits = logits[:2, :, :2, :3].contiguous().requires_grad_(True)
    module = dice_bce({"dice": 0.7, "bce": 1.5})
    assert torch.autograd.gradcheck(lambda x: module(x, mask[:2, :, :2, :3]), (logits,))


@pytest.mark.parametrize("value", [100.0, 1e4])
def test_extreme_logits_have_the_exact_value_and_finite_gradients(value):
    logits = torch.tensor([value, -value, value, -value]).reshape(1, 1, 2, 2).requires_grad_(True)
    mask = torch.tensor([1.0, 0.0, 0.0, 1.0]).reshape(1, 1, 2, 2)
    loss = dice_bce()(logits, mask)
    loss.backward()
    x = logits.detach()
    expected = dice_reference(x, mask) + bce_reference(x, mask, 2.0)  # 0.4 + (3 v + ~0) / 4
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=0.0)  # float32 rounding
    assert torch.isfinite(logits.grad).all()


def test_bf16_autocast_returns_the_float32_value():
    logits, mask = sample()
    module = dice_bce()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, stats = module.with_stats(logits.bfloat16(), mask.bfloat16())
    assert loss.dtype == torch.float32
    assert all(stat.dtype == torch.float32 for stat in stats.values())
    # bf16 inputs upcast exactly and the same float32 computation follows: equal to the bit
    expected = module(logits.bfloat16().float(), mask)
    torch.testing.assert_close(loss, expected, rtol=0.0, atol=0.0)


def test_config_instantiates_and_overrides():
    config = OmegaConf.load(CONF / "combo.yaml")
    assert next(iter(config)) == "_target_"
    module = instantiate(config)
    assert isinstance(module, Combo)
    assert module.hyperparameters["weights"] == {"dice": 1.0, "bce": 1.0}
    assert type(module.components["dice"]) is seg.DiceLoss
    assert type(module.components["bce"]) is seg.BCEWithLogitsLoss
    # What `loss.weights.dice=0.5 loss.components.dice.eps=0.1` does on the command line.
    overrides = OmegaConf.from_dotlist(["weights.dice=0.5", "components.dice.eps=0.1"])
    module = instantiate(OmegaConf.merge(config, overrides))
    assert module.hyperparameters["weights"] == {"dice": 0.5, "bce": 1.0}
    assert module.components["dice"].hyperparameters["eps"] == 0.1
    logits, mask = sample()
    expected = 0.5 * dice_reference(logits, mask, eps=0.1) + bce_reference(logits, mask)
    torch.testing.assert_close(module(logits, mask).double(), expected, rtol=1e-6, atol=0.0)
