"""``combo``: the weighted sum, its statistics, its tasks and its errors."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from losses import segmentation as seg
from losses._core import Loss
from losses.combo import Combo

CONF = Path(__file__).resolve().parents[2] / "conf" / "loss"


class Tasks(Loss):
    """A stand-in loss with chosen tasks, statistics and output shape."""

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
    return Combo({"dice": seg.DiceLoss(), "bce": seg.BCELoss(pos_weight=2.0)}, weights)


def test_weighted_sum_and_stats():
    logits, mask = sample()
    dice, bce = seg.dice(logits, mask), seg.bce(logits, mask, pos_weight=2.0)
    combo = dice_bce({"dice": 0.3, "bce": 2.0})
    loss, stats = combo.with_stats(logits, mask)
    torch.testing.assert_close(loss, 0.3 * dice + 2.0 * bce)
    torch.testing.assert_close(combo(logits, mask), loss)
    assert list(stats) == ["dice", "bce"]
    torch.testing.assert_close(stats["dice"], dice)
    torch.testing.assert_close(stats["bce"], bce)


def test_default_weights_are_one_and_stats_detached():
    logits, mask = sample()
    logits.requires_grad_(True)
    loss, stats = dice_bce().with_stats(logits, mask)
    torch.testing.assert_close(loss, seg.dice(logits, mask) + seg.bce(logits, mask, 2.0))
    assert loss.requires_grad
    assert not any(stat.requires_grad for stat in stats.values())


def test_components_statistics_are_prefixed():
    stat = torch.tensor(0.25)
    combo = Combo({"a": Tasks(stats={"active": stat}), "b": Tasks()})
    _, stats = combo.with_stats(*sample())
    assert list(stats) == ["a", "a/active", "b"]
    assert stats["a/active"] is stat


def test_tasks_are_the_intersection():
    combo = Combo(
        {
            "a": Tasks(("regression", "boxes", "segmentation")),
            "b": Tasks(("segmentation", "boxes")),
        }
    )
    assert combo.tasks == ("boxes", "segmentation")
    assert Combo.tasks == ()  # the class attribute is untouched
    assert dice_bce().tasks == ("segmentation",)


def test_components_are_submodules():
    combo = dice_bce()
    assert isinstance(combo.components, torch.nn.ModuleDict)
    assert "components.bce.pos_weight" in combo.state_dict()


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
        Combo(components, weights)


def test_non_scalar_component_raises():
    combo = Combo({"a": Tasks(), "b": Tasks(scalar=False)})
    message = r"combo: expected component 'b' to return a scalar, got float32 \[3\]"
    with pytest.raises(ValueError, match=message):
        combo(*sample())


def test_bad_inputs_reach_the_components():
    logits, mask = sample()
    with pytest.raises(TypeError, match=r"dice: expected target as a float mask"):
        dice_bce()(logits, mask.long())


def test_gradcheck():
    logits, mask = sample(torch.float64)
    logits = logits[:2, :, :2, :3].contiguous().requires_grad_(True)
    combo = dice_bce({"dice": 0.7, "bce": 1.5})
    assert torch.autograd.gradcheck(lambda x: combo(x, mask[:2, :, :2, :3]), (logits,))


@pytest.mark.parametrize("value", [100.0, 1e4])
def test_extreme_logits_are_finite(value):
    logits = torch.tensor([value, -value, value, -value]).reshape(1, 1, 2, 2).requires_grad_(True)
    mask = torch.tensor([1.0, 0.0, 0.0, 1.0]).reshape(1, 1, 2, 2)
    loss = dice_bce()(logits, mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()


def test_bf16_autocast_returns_float32():
    logits, mask = sample()
    combo = dice_bce()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, stats = combo.with_stats(logits.bfloat16(), mask.bfloat16())
    assert loss.dtype == torch.float32
    assert all(stat.dtype == torch.float32 for stat in stats.values())
    torch.testing.assert_close(loss, combo(logits.bfloat16().float(), mask))


def test_config_instantiates_and_overrides():
    config = OmegaConf.load(CONF / "combo.yaml")
    assert next(iter(config)) == "_target_"
    combo = instantiate(config)
    assert isinstance(combo, Combo)
    assert combo.weights == {"dice": 1.0, "bce": 1.0}
    assert type(combo.components["dice"]) is seg.DiceLoss
    assert type(combo.components["bce"]) is seg.BCELoss
    # What `loss.weights.dice=0.5 loss.components.dice.eps=0.1` does on the command line.
    overrides = OmegaConf.from_dotlist(["weights.dice=0.5", "components.dice.eps=0.1"])
    combo = instantiate(OmegaConf.merge(config, overrides))
    assert combo.weights == {"dice": 0.5, "bce": 1.0}
    assert combo.components["dice"].eps == 0.1
    logits, mask = sample()
    expected = 0.5 * seg.dice(logits, mask, eps=0.1) + seg.bce(logits, mask)
    torch.testing.assert_close(combo(logits, mask), expected)
