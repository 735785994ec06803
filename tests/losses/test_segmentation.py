"""Binary segmentation losses against built-ins, hand-written formulas and the seeds' pins."""

import inspect
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchmetrics.functional.classification import binary_f1_score, binary_jaccard_index

from losses import segmentation as seg
from losses._core import Loss

CONF = Path(__file__).resolve().parents[2] / "conf" / "loss"

# key -> (pure function, module class): every loss of the file.
LOSSES = {
    "bce": (seg.bce, seg.BCELoss),
    "bce_manual": (seg.bce_manual, seg.BCEManualLoss),
    "balanced_bce": (seg.balanced_bce, seg.BalancedBCELoss),
    "ohem_bce": (seg.ohem_bce, seg.OHEMBCELoss),
    "dice": (seg.dice, seg.DiceLoss),
    "tversky": (seg.tversky, seg.TverskyLoss),
}
STABLE = [key for key in LOSSES if key != "bce_manual"]
CONFIGS = {
    "bce": seg.BCELoss,
    "bce_manual": seg.BCEManualLoss,
    "balanced_bce": seg.BalancedBCELoss,
    "ohem_bce": seg.OHEMBCELoss,
    "dice": seg.DiceLoss,
    "dice_squared": seg.DiceLoss,
    "tversky": seg.TverskyLoss,
}


def sample(shape=(3, 1, 4, 5), dtype=torch.float32, seed=0, scale=2.0):
    generator = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(shape, generator=generator)).to(dtype)
    mask = (torch.rand(shape, generator=generator) < 0.3).to(dtype)
    return logits, mask


def softplus(x):
    return torch.log1p(torch.exp(x))


# ---- 1. reference values and 2. degenerate cases equal to built-ins -------------------------


def test_bce_pin_and_builtin():
    x, y = torch.tensor([0.4, 0.1]), torch.tensor([0.2, 0.8])
    assert seg.bce(x, y).item() == pytest.approx(0.7487, abs=1e-4)
    assert seg.BCELoss()(x, y).item() == pytest.approx(0.7487, abs=1e-4)
    logits, mask = sample()
    expected = F.binary_cross_entropy_with_logits(logits, mask, pos_weight=torch.tensor(3.0))
    torch.testing.assert_close(seg.BCELoss(pos_weight=3.0)(logits, mask), expected)
    expected = F.binary_cross_entropy_with_logits(logits, mask)
    torch.testing.assert_close(seg.bce(logits, mask), expected)


def test_bce_manual_pins_probability_form_and_matches_bce():
    probs, y = torch.tensor([0.4, 0.1]), torch.tensor([0.2, 0.8])
    logits = torch.logit(probs)
    assert seg.bce_manual(logits, y).item() == pytest.approx(1.2275, abs=1e-4)
    torch.testing.assert_close(seg.bce_manual(logits, y), F.binary_cross_entropy(probs, y))
    logits, mask = sample()  # moderate logits: both forms agree
    torch.testing.assert_close(seg.BCEManualLoss()(logits, mask), seg.bce(logits, mask))


def test_balanced_bce_hand_formula_batch_beta():
    x = torch.tensor([[0.4, 0.1], [-2.0, 1.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    beta = 0.75  # 3 negatives out of 4 in the batch, not per sample
    expected = (beta * softplus(-x[0, 0]) + (1 - beta) * softplus(x).flatten()[1:].sum()) / 4
    torch.testing.assert_close(seg.balanced_bce(x, y), expected)
    torch.testing.assert_close(seg.BalancedBCELoss()(x, y), expected)


def test_balanced_bce_per_sample_sum_reproduces_seed_002():
    # The seed loops over rows with a per-row beta and sums; calling ours per row does the same.
    x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
    y = torch.tensor([[1.0, 0, 0], [1, 1, 1], [0, 1, 1]])
    p, seed_loss = torch.sigmoid(x), 0.0
    for i in range(3):
        beta = 1 - y[i].sum() / 3
        log_p = torch.log(p[i]).clamp_min(-100)
        log_q = torch.log(1 - p[i]).clamp_min(-100)
        seed_loss += (-(beta * y[i] * log_p + (1 - beta) * (1 - y[i]) * log_q)).sum()
    ours = sum(seg.balanced_bce(x[i : i + 1], y[i : i + 1], reduction="sum") for i in range(3))
    torch.testing.assert_close(ours, seed_loss)


def test_balanced_bce_degenerate_cases_are_builtin():
    logits, mask = sample()
    half = 0.5 * F.binary_cross_entropy_with_logits(logits, mask)
    torch.testing.assert_close(seg.BalancedBCELoss(beta=0.5)(logits, mask), half)
    weight = 0.2 * mask + 0.8 * (1 - mask)
    expected = F.binary_cross_entropy_with_logits(logits, mask, weight=weight)
    torch.testing.assert_close(seg.balanced_bce(logits, mask, beta=0.2), expected)


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_balanced_bce_all_negative_or_positive_batch(fill):
    logits = torch.randn(2, 1, 3, 3, requires_grad=True)
    loss = seg.balanced_bce(logits, torch.full((2, 1, 3, 3), fill))
    loss.backward()
    assert loss.item() == 0.0  # nothing to balance against: beta is 1 (or 0)
    assert torch.isfinite(logits.grad).all()


def dbnet_reference(logits, target, negative_ratio):
    """Seed 002's ``BalanceCrossEntropyLoss`` on logits (int counts and ``topk``)."""
    positive = target.round()
    negative = 1 - positive
    positive_count = int(positive.sum())
    negative_count = min(int(negative.sum()), int(positive_count * negative_ratio))
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    negative_loss, _ = torch.topk((loss * negative).view(-1), negative_count)
    total = (loss * positive).sum() + negative_loss.sum()
    return total / (positive_count + negative_count + 1e-6)


@pytest.mark.parametrize("ratio", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_ohem_bce_equals_dbnet(ratio, seed):
    logits, mask = sample(seed=seed)
    expected = dbnet_reference(logits, mask, ratio)
    torch.testing.assert_close(seg.OHEMBCELoss(ratio, min_negatives=0)(logits, mask), expected)


def test_ohem_bce_hand_example():
    x = torch.tensor([2.0, -1.0, 0.5, -3.0, 1.0, 0.0])
    y = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    kept = softplus(torch.tensor([-2.0, 0.5, 1.0]))  # the positive and the two hardest negatives
    torch.testing.assert_close(seg.ohem_bce(x, y, 2.0, 0), kept.sum() / (3 + 1e-6))
    # min_negatives lifts the count above ratio * n_pos: the 3 hardest negatives
    kept = softplus(torch.tensor([-2.0, 0.5, 1.0, 0.0]))
    torch.testing.assert_close(seg.ohem_bce(x, y, 2.0, 3), kept.sum() / (4 + 1e-6))


def test_ohem_bce_keeping_every_negative_is_bce():
    logits, mask = sample()
    expected = F.binary_cross_entropy_with_logits(logits, mask)
    torch.testing.assert_close(seg.ohem_bce(logits, mask, negative_ratio=1e6), expected)


def test_ohem_bce_without_positives():
    logits = torch.tensor([[3.0, -1.0, 0.0, 2.0, -5.0]], requires_grad=True)
    empty = torch.zeros(1, 5)
    hardest = softplus(torch.tensor([3.0, 2.0]))
    torch.testing.assert_close(seg.ohem_bce(logits, empty, min_negatives=2), hardest.mean())
    dbnet = seg.ohem_bce(logits, empty, min_negatives=0)  # DBNet: nothing selected, loss 0
    dbnet.backward()
    assert dbnet.item() == 0.0
    assert torch.isfinite(logits.grad).all()


def seed_000_dice(logits, targets, scale=1000, eps=1e-6):
    """Seed 000's ``dice_loss`` (per sample, sums divided by ``scale``), for ``[N, H, W]``."""
    probs = logits.sigmoid()
    numerator = 2 * (probs / scale * targets).sum(dim=(-2, -1))
    denominator = (probs / scale).sum(dim=(-2, -1)) + (targets / scale).sum(dim=(-2, -1))
    return 1 - (numerator + eps) / (denominator + eps)


def test_dice_equals_seed_000():
    logits, mask = sample(shape=(4, 6, 7))
    expected = seed_000_dice(logits, mask)
    # The seed's eps on sums divided by 1000 is eps = 1e-3 on the plain sums.
    torch.testing.assert_close(seg.dice(logits, mask, eps=1e-3, reduction="none"), expected)
    torch.testing.assert_close(seg.DiceLoss(eps=1e-3)(logits, mask), expected.mean())


def test_dice_hand_formula_squared_and_batch():
    x = torch.tensor([[2.0, -1.0], [0.5, -3.0]])
    y = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    p = torch.sigmoid(x)
    per_sample = 1 - (2 * (p * y).sum(1) + 1) / (p.sum(1) + y.sum(1) + 1)
    torch.testing.assert_close(seg.dice(x, y, reduction="none"), per_sample)
    squared = 1 - (2 * (p * y).sum(1) + 1) / ((p * p).sum(1) + (y * y).sum(1) + 1)
    torch.testing.assert_close(seg.DiceLoss(squared=True, reduction="none")(x, y), squared)
    pooled = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
    torch.testing.assert_close(seg.DiceLoss(batch=True)(x, y), pooled)


@pytest.mark.parametrize("batch", [False, True])
def test_dice_on_hard_predictions_is_one_minus_f1(batch):
    logits, mask = sample(shape=(1, 1, 8, 8), dtype=torch.float64, scale=1.0)
    hard = torch.where(logits > 0, 30.0, -30.0).double()  # σ saturates: p in {0, 1}
    f1 = binary_f1_score(hard.sigmoid(), mask.long())
    loss = seg.dice(hard, mask, eps=1e-9, batch=batch)
    torch.testing.assert_close(loss, 1 - f1.double(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("squared", [False, True])
def test_dice_empty_masks(squared):
    empty = torch.zeros(2, 1, 4, 4)
    background = seg.dice(torch.full_like(empty, -100.0), empty, squared=squared)
    assert background.item() == 0.0
    foreground = seg.dice(torch.full_like(empty, 100.0), empty, squared=squared)
    assert foreground.item() == pytest.approx(1 - 1 / 17)  # 1 - eps / (Σ p + eps), Σ p = 16
    logits = torch.zeros_like(empty, requires_grad=True)
    seg.dice(logits, empty, squared=squared).backward()
    assert (logits.grad > 0).all()  # foreground predicted on an empty mask is pushed down


def test_tversky_hand_formula():
    x = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    p = torch.sigmoid(x)
    tp, fp, fn = (p * y).sum(), (p * (1 - y)).sum(), ((1 - p) * y).sum()
    expected = 1 - (tp + 1) / (tp + 0.3 * fp + 0.7 * fn + 1)
    torch.testing.assert_close(seg.TverskyLoss(alpha=0.3, beta=0.7)(x, y), expected)


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("eps", [0.5, 1e-3])
def test_tversky_half_half_is_dice_with_double_eps(batch, eps):
    logits, mask = sample()
    tversky = seg.TverskyLoss(eps=eps, batch=batch, reduction="sum")(logits, mask)
    dice = seg.DiceLoss(eps=2 * eps, batch=batch, reduction="sum")(logits, mask)
    torch.testing.assert_close(tversky, dice)


def test_tversky_one_one_on_hard_predictions_is_one_minus_iou():
    logits, mask = sample(shape=(1, 1, 8, 8), dtype=torch.float64, scale=1.0)
    hard = torch.where(logits > 0, 30.0, -30.0).double()
    iou = binary_jaccard_index(hard.sigmoid(), mask.long())
    loss = seg.tversky(hard, mask, alpha=1.0, beta=1.0, eps=1e-9)
    torch.testing.assert_close(loss, 1 - iou.double(), atol=1e-6, rtol=0)


# ---- 3. float64 gradcheck --------------------------------------------------------------------

GRADCHECK = [
    ("bce", {"pos_weight": 2.0}),
    ("bce_manual", {}),
    ("balanced_bce", {}),
    ("balanced_bce", {"beta": 0.3}),
    ("ohem_bce", {"negative_ratio": 1.0, "min_negatives": 2}),
    ("dice", {}),
    ("dice", {"batch": True, "squared": True}),
    ("tversky", {"alpha": 0.3, "beta": 0.7}),
    ("tversky", {"batch": True}),
]


@pytest.mark.parametrize(("key", "kwargs"), GRADCHECK)
def test_gradcheck(key, kwargs):
    logits, mask = sample(shape=(2, 1, 3, 3), dtype=torch.float64, scale=1.0)
    logits.requires_grad_(True)
    loss = LOSSES[key][1](**kwargs)
    assert torch.autograd.gradcheck(lambda x: loss(x, mask), (logits,))


# ---- 4. extreme logits -----------------------------------------------------------------------


def extreme(value):
    logits = torch.tensor([[value, -value, value, -value]]).reshape(1, 1, 2, 2)
    mask = torch.tensor([[1.0, 0.0, 0.0, 1.0]]).reshape(1, 1, 2, 2)  # right, right, wrong, wrong
    return logits.requires_grad_(True), mask


@pytest.mark.parametrize("key", STABLE)
@pytest.mark.parametrize("value", [100.0, 1e4])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_extreme_logits_are_finite(key, value, reduction):
    logits, mask = extreme(value)
    loss = LOSSES[key][1](reduction=reduction)(logits, mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("value", [100.0, 1e4])
def test_bce_manual_is_not_finite_on_purpose(value):
    wrong = torch.tensor([value], requires_grad=True)
    loss = seg.BCEManualLoss()(wrong, torch.tensor([0.0]))  # log(1 - σ(100)) = log(0)
    assert loss.item() == float("inf")
    loss.backward()
    assert not torch.isfinite(wrong.grad).any()
    right = seg.bce_manual(torch.tensor([value]), torch.tensor([1.0]))  # 0 * log(0)
    assert torch.isnan(right)
    logits, mask = extreme(value)
    assert not torch.isfinite(seg.bce_manual(logits, mask))
    assert torch.isfinite(seg.bce(logits, mask))  # the stable form of the same loss


# ---- 5. bad inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", LOSSES)
def test_bad_inputs_raise(key):
    function, module = LOSSES[key]
    logits, mask = sample()
    for call in (function, module()):
        with pytest.raises(TypeError, match=rf"{key}: expected target as a float mask .* int64"):
            call(logits, mask.long())
        with pytest.raises(TypeError, match=rf"{key}: expected logits as a floating tensor"):
            call(logits.long(), mask)
        with pytest.raises(ValueError, match=rf"{key}: expected target of the same shape"):
            call(logits, mask[:, 0])
        with pytest.raises(ValueError, match=rf"{key}: expected target values in \[0, 1\]"):
            call(logits, mask * 2)
    with pytest.raises(ValueError, match=rf"{key}: expected reduction in"):
        module(reduction="avg")
    with pytest.raises(ValueError, match=rf"{key}: expected reduction in"):
        function(logits, mask, reduction="avg")


@pytest.mark.parametrize(
    ("module", "kwargs", "error", "message"),
    [
        (seg.BCELoss, {"pos_weight": 0.0}, ValueError, r"bce: expected pos_weight > 0.0, got 0.0"),
        (seg.BCELoss, {"pos_weight": -2.0}, ValueError, r"bce: expected pos_weight > 0.0"),
        (seg.BalancedBCELoss, {"beta": 1.5}, ValueError, r"balanced_bce: expected beta >= 0.0 and"),
        (seg.BalancedBCELoss, {"beta": -0.1}, ValueError, r"balanced_bce: expected beta >= 0.0"),
        (
            seg.OHEMBCELoss,
            {"negative_ratio": -1.0},
            ValueError,
            r"ohem_bce: expected negative_ratio > 0.0",
        ),
        (seg.OHEMBCELoss, {"min_negatives": -1}, ValueError, r"ohem_bce: .* min_negatives >= 0"),
        (seg.OHEMBCELoss, {"min_negatives": 1.5}, TypeError, r"ohem_bce: .* min_negatives as an"),
        (seg.OHEMBCELoss, {"eps": 0.0}, ValueError, r"ohem_bce: expected eps > 0.0"),
        (seg.DiceLoss, {"eps": 0.0}, ValueError, r"dice: expected eps > 0.0, got 0.0"),
        (seg.TverskyLoss, {"alpha": -1.0}, ValueError, r"tversky: expected alpha >= 0.0, got -1.0"),
        (seg.TverskyLoss, {"beta": -1.0}, ValueError, r"tversky: expected beta >= 0.0, got -1.0"),
        (seg.TverskyLoss, {"eps": -1.0}, ValueError, r"tversky: expected eps > 0.0"),
    ],
)
def test_bad_hyperparameters_raise(module, kwargs, error, message):
    with pytest.raises(error, match=message):
        module(**kwargs)


# ---- 6. reductions ---------------------------------------------------------------------------

ELEMENTWISE = ["bce", "bce_manual", "balanced_bce", "ohem_bce"]
REDUCTION_CASES = [(key, {}) for key in LOSSES] + [
    ("ohem_bce", {"negative_ratio": 1.0, "min_negatives": 0}),  # mining drops some negatives
    ("dice", {"batch": True}),
    ("tversky", {"batch": True}),
]


@pytest.mark.parametrize(("key", "kwargs"), REDUCTION_CASES)
def test_reductions(key, kwargs):
    module = LOSSES[key][1]
    logits, mask = sample()
    none = module(reduction="none", **kwargs)(logits, mask)
    total = module(reduction="sum", **kwargs)(logits, mask)
    mean = module(reduction="mean", **kwargs)(logits, mask)
    if key in ELEMENTWISE:
        assert none.shape == logits.shape
    else:
        assert none.shape == (() if kwargs.get("batch") else logits.shape[:1])
    torch.testing.assert_close(total, none.sum())
    if key == "ohem_bce":
        n_pos, n_neg = int(mask.sum()), int((1 - mask).sum())
        ratio = kwargs.get("negative_ratio", 3.0)
        n_kept = n_pos + min(n_neg, max(int(ratio * n_pos), kwargs.get("min_negatives", 100)))
        assert int((none != 0).sum()) == n_kept  # BCE never reaches exactly 0 here
        torch.testing.assert_close(mean, none.sum() / (n_kept + 1e-6))
    else:
        torch.testing.assert_close(mean, none.mean())


@pytest.mark.parametrize("key", ["bce", "balanced_bce", "ohem_bce"])
@pytest.mark.parametrize("shape", [(7,), (2, 3), (2, 2, 3, 4, 5)])
def test_elementwise_losses_take_any_shape(key, shape):
    function = LOSSES[key][0]
    logits, mask = sample(shape=shape)
    assert function(logits, mask, reduction="none").shape == shape


# ---- 7. bf16 autocast ------------------------------------------------------------------------


@pytest.mark.parametrize("key", LOSSES)
def test_bf16_autocast_returns_float32(key):
    logits, mask = sample()
    module = LOSSES[key][1]()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = module(logits.bfloat16(), mask.bfloat16())
    assert loss.dtype == torch.float32
    expected = module(logits.bfloat16().float(), mask)
    torch.testing.assert_close(loss, expected)


# ---- configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "cls"), CONFIGS.items())
def test_config_instantiates_with_the_class_defaults(key, cls):
    config = OmegaConf.load(CONF / f"{key}.yaml")
    assert next(iter(config)) == "_target_"
    loss = instantiate(config)
    assert type(loss) is cls
    assert isinstance(loss, Loss)
    assert loss.tasks == ("segmentation",)
    parameters = inspect.signature(cls).parameters
    assert set(config) - {"_target_"} == set(parameters)
    for name, value in config.items():
        if name != "_target_" and not (key == "dice_squared" and name == "squared"):
            assert value == parameters[name].default, name
    assert getattr(loss, "squared", key == "dice_squared") == (key == "dice_squared")
