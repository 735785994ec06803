"""Binary segmentation losses against built-ins, float64 formulas written here and pinned values."""

import inspect
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchmetrics.functional.classification import binary_f1_score, binary_jaccard_index

from losses import segmentation as seg
from losses.base import Loss

CONF = Path(__file__).resolve().parents[2] / "conf" / "loss"

# key -> (pure function, module class): every loss of the file.
LOSSES = {
    "bce": (seg.bce, seg.BCEWithLogitsLoss),
    "bce_manual": (seg.bce_manual, seg.ManualBCEWithLogitsLoss),
    "balanced_bce": (seg.balanced_bce, seg.BalancedBCEWithLogitsLoss),
    "ohem_bce": (seg.ohem_bce, seg.OHEMBCEWithLogitsLoss),
    "dice": (seg.dice, seg.DiceLoss),
    "tversky": (seg.tversky, seg.TverskyLoss),
}
STABLE = [key for key in LOSSES if key != "bce_manual"]
BCE, BALANCED, OHEM = (
    seg.BCEWithLogitsLoss,
    seg.BalancedBCEWithLogitsLoss,
    seg.OHEMBCEWithLogitsLoss,
)
CONFIGS = {
    "bce": seg.BCEWithLogitsLoss,
    "bce_manual": seg.ManualBCEWithLogitsLoss,
    "balanced_bce": seg.BalancedBCEWithLogitsLoss,
    "ohem_bce": seg.OHEMBCEWithLogitsLoss,
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
    """``log(1 + e^x)`` in float64, exact at any logit (``-log σ(-x)``)."""
    x = torch.as_tensor(x, dtype=torch.float64)
    return torch.logaddexp(torch.zeros_like(x), x)


def _reference(key, x, y, reduction="mean"):
    """Each loss at its defaults as a float64 formula on ``[N, ...]`` (``-log σ(x) = softplus(-x)``,
    ``-log(1 - σ(x)) = softplus(x)``)."""
    x, y = x.double(), y.double()
    bce = y * softplus(-x) + (1 - y) * softplus(x)
    if key in ("bce", "bce_manual"):
        per = bce
    elif key == "balanced_bce":  # beta: the share of negatives in the batch
        beta = 1 - y.mean()
        per = beta * y * softplus(-x) + (1 - beta) * (1 - y) * softplus(x)
    elif key == "ohem_bce":  # on these small inputs min_negatives = 100 keeps every negative
        assert y.numel() - y.sum() <= 100
        return {"mean": bce.sum() / (y.numel() + 1e-6), "sum": bce.sum()}[reduction]
    else:
        p = torch.sigmoid(x).reshape(len(x), -1)
        y = y.reshape(len(y), -1)
        tp = (p * y).sum(1)
        if key == "dice":
            per = 1 - (2 * tp + 1) / (p.sum(1) + y.sum(1) + 1)
        else:  # tversky, alpha = beta = 0.5
            fp, fn = (p * (1 - y)).sum(1), ((1 - p) * y).sum(1)
            per = 1 - (tp + 1) / (tp + 0.5 * fp + 0.5 * fn + 1)
    return {"mean": per.mean(), "sum": per.sum()}[reduction]


# ---- 1. reference values and 2. degenerate cases equal to built-ins -------------------------


def test_bce_pin_and_builtin():
    x, y = torch.tensor([0.4, 0.1]), torch.tensor([0.2, 0.8])
    assert seg.bce(x, y).item() == pytest.approx(0.7487, abs=1e-4)
    assert seg.BCEWithLogitsLoss()(x, y).item() == pytest.approx(0.7487, abs=1e-4)  # 4 digits
    logits, mask = sample()
    expected = F.binary_cross_entropy_with_logits(logits, mask, pos_weight=torch.tensor(3.0))
    torch.testing.assert_close(seg.BCEWithLogitsLoss(pos_weight=3.0)(logits, mask), expected)
    torch.testing.assert_close(seg.bce(logits, mask, pos_weight=3.0), expected)
    expected = F.binary_cross_entropy_with_logits(logits, mask)
    torch.testing.assert_close(seg.bce(logits, mask), expected)


def test_bce_manual_pins_probability_form_and_matches_bce():
    probs, y = torch.tensor([0.4, 0.1]), torch.tensor([0.2, 0.8])
    logits = torch.logit(probs)
    assert seg.bce_manual(logits, y).item() == pytest.approx(1.2275, abs=1e-4)  # 4 digits
    torch.testing.assert_close(seg.bce_manual(logits, y), F.binary_cross_entropy(probs, y))
    logits, mask = sample()  # moderate logits: both forms agree
    torch.testing.assert_close(seg.ManualBCEWithLogitsLoss()(logits, mask), seg.bce(logits, mask))


def test_balanced_bce_hand_formula_batch_beta():
    x = torch.tensor([[0.4, 0.1], [-2.0, 1.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    beta = 0.75  # 3 negatives out of 4 in the batch, not per sample
    expected = (beta * softplus(-x[0, 0]) + (1 - beta) * softplus(x).flatten()[1:].sum()) / 4
    torch.testing.assert_close(seg.balanced_bce(x, y), expected.float())
    torch.testing.assert_close(seg.BalancedBCEWithLogitsLoss()(x, y), expected.float())


def _per_image_balanced_bce_reference(x, y):
    """Per-image balanced BCE in float64, image by image: β_i = 1 - mean(y_i), and 0.5 for an
    image with one class only (our choice: the β of a balanced image, so it keeps its loss)."""
    x, y = x.double(), y.double()
    rows = []
    for x_i, y_i in zip(x, y, strict=True):
        share = y_i.mean()
        beta = 0.5 if share in (0.0, 1.0) else 1 - share
        rows.append(beta * y_i * softplus(-x_i) + (1 - beta) * (1 - y_i) * softplus(x_i))
    return torch.stack(rows)


def test_balanced_bce_per_image_beta():
    x = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73], [1.5, -2.0, 0.1]])
    y = torch.tensor([[1.0, 0, 0], [1, 1, 1], [0, 1, 1], [0, 0, 0]])  # all-positive, all-negative
    expected = _per_image_balanced_bce_reference(x, y)
    loss = seg.BalancedBCEWithLogitsLoss(per_image=True, reduction="none")
    torch.testing.assert_close(loss(x, y).double(), expected, rtol=1e-6, atol=0.0)
    mean = seg.balanced_bce(x, y, per_image=True)
    torch.testing.assert_close(mean.double(), expected.mean(), rtol=1e-6, atol=0.0)
    # per image differs from the batch's pooled beta (5 positives of 12: beta = 7/12 everywhere)
    assert not torch.allclose(seg.balanced_bce(x, y), mean)


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_balanced_bce_all_negative_or_positive_batch(fill):
    logits, _ = sample(shape=(2, 1, 3, 3))
    logits.requires_grad_(True)
    target = torch.full((2, 1, 3, 3), fill)
    loss = seg.balanced_bce(logits, target)
    loss.backward()
    assert loss.item() == 0.0  # the batch form: nothing to balance against, beta is 1 (or 0)
    assert torch.isfinite(logits.grad).all()
    # per image, each such image gets beta = 0.5: half its plain BCE, with a gradient
    per_image = seg.balanced_bce(logits, target, per_image=True)
    expected = _per_image_balanced_bce_reference(logits.detach(), target).mean()
    torch.testing.assert_close(per_image.double(), expected, rtol=1e-6, atol=0.0)
    assert per_image.item() > 0.0


def test_balanced_bce_per_image_on_a_batch_with_an_empty_image():
    logits, mask = sample(shape=(3, 1, 4, 5))
    mask[1] = 0.0  # an image without foreground among images with some
    expected = _per_image_balanced_bce_reference(logits, mask)
    ours = seg.balanced_bce(logits, mask, per_image=True, reduction="none")
    torch.testing.assert_close(ours.double(), expected, rtol=1e-6, atol=0.0)
    assert ours[1].sum() > 0  # the empty image's false positives still cost


def test_balanced_bce_degenerate_cases_are_builtin():
    logits, mask = sample()
    half = 0.5 * F.binary_cross_entropy_with_logits(logits, mask)
    torch.testing.assert_close(seg.BalancedBCEWithLogitsLoss(beta=0.5)(logits, mask), half)
    weight = 0.2 * mask + 0.8 * (1 - mask)
    expected = F.binary_cross_entropy_with_logits(logits, mask, weight=weight)
    torch.testing.assert_close(seg.balanced_bce(logits, mask, beta=0.2), expected)


def dbnet_reference(logits, target, negative_ratio):
    """DBNet's ``BalanceCrossEntropyLoss`` (Liao et al. 2020) on logits: int counts, ``topk``."""
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
    loss = seg.OHEMBCEWithLogitsLoss(negative_ratio=ratio, min_negatives=0)
    torch.testing.assert_close(loss(logits, mask), expected)


def test_ohem_bce_hand_example():
    x = torch.tensor([2.0, -1.0, 0.5, -3.0, 1.0, 0.0])
    y = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    kept = softplus(torch.tensor([-2.0, 0.5, 1.0]))  # the positive and the two hardest negatives
    expected = (kept.sum() / (3 + 1e-6)).float()
    torch.testing.assert_close(seg.ohem_bce(x, y, negative_ratio=2.0, min_negatives=0), expected)
    # min_negatives lifts the count above ratio * n_pos: the 3 hardest negatives
    kept = softplus(torch.tensor([-2.0, 0.5, 1.0, 0.0]))
    expected = (kept.sum() / (4 + 1e-6)).float()
    torch.testing.assert_close(seg.ohem_bce(x, y, negative_ratio=2.0, min_negatives=3), expected)


def test_ohem_bce_keeping_every_negative_is_bce():
    logits, mask = sample()
    expected = F.binary_cross_entropy_with_logits(logits, mask)
    torch.testing.assert_close(seg.ohem_bce(logits, mask, negative_ratio=1e6), expected)


def test_ohem_bce_without_positives():
    logits = torch.tensor([[3.0, -1.0, 0.0, 2.0, -5.0]], requires_grad=True)
    empty = torch.zeros(1, 5)
    hardest = softplus(torch.tensor([3.0, 2.0]))
    torch.testing.assert_close(seg.ohem_bce(logits, empty, min_negatives=2), hardest.mean().float())
    dbnet = seg.ohem_bce(logits, empty, min_negatives=0)  # DBNet: nothing selected, loss 0
    dbnet.backward()
    assert dbnet.item() == 0.0
    assert torch.isfinite(logits.grad).all()


def scaled_sums_dice(logits, targets, scale=1000, eps=1e-6):
    """A per-sample Dice whose sums are divided by ``scale`` before smoothing, for ``[N, H, W]``."""
    probs = logits.sigmoid()
    numerator = 2 * (probs / scale * targets).sum(dim=(-2, -1))
    denominator = (probs / scale).sum(dim=(-2, -1)) + (targets / scale).sum(dim=(-2, -1))
    return 1 - (numerator + eps) / (denominator + eps)


def test_dice_with_scaled_sums_is_dice_with_scaled_eps():
    logits, mask = sample(shape=(4, 6, 7))
    expected = scaled_sums_dice(logits, mask)
    # eps on sums divided by 1000 is eps = 1e-3 on the plain sums
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
    # torchmetrics answers in float32 (rounding up to 6e-8 here); eps = 1e-9 and
    # σ(30) = 1 - 9e-14 move our value by about 1e-9 from the hard F1
    torch.testing.assert_close(loss, 1 - f1.double(), atol=1e-7, rtol=0)


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
    # torchmetrics answers in float32 (rounding up to 6e-8 here); eps = 1e-9 and
    # σ(30) = 1 - 9e-14 move our value by about 1e-9 from the hard IoU
    torch.testing.assert_close(loss, 1 - iou.double(), atol=1e-7, rtol=0)


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
def test_extreme_logits_have_the_exact_value_and_finite_gradients(key, value, reduction):
    logits, mask = extreme(value)
    loss = LOSSES[key][1](reduction=reduction)(logits, mask)
    loss.backward()
    # float32 against float64: a few roundings of 2^-24 relative each
    expected = _reference(key, logits.detach(), mask, reduction)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=0.0)
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("value", [100.0, 1e4])
def test_bce_manual_is_not_finite_on_purpose(value):
    wrong = torch.tensor([value], requires_grad=True)
    loss = seg.ManualBCEWithLogitsLoss()(wrong, torch.tensor([0.0]))  # log(1 - σ(100)) = log(0)
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
        (BCE, {"pos_weight": 0.0}, ValueError, r"bce: expected pos_weight > 0.0, got 0.0"),
        (BCE, {"pos_weight": -2.0}, ValueError, r"bce: expected pos_weight > 0.0"),
        (BALANCED, {"beta": 1.5}, ValueError, r"balanced_bce: expected beta >= 0.0 and"),
        (BALANCED, {"beta": -0.1}, ValueError, r"balanced_bce: expected beta >= 0.0"),
        (BALANCED, {"beta": 0.3, "per_image": True}, ValueError, r"balanced_bce: expected per_"),
        (BALANCED, {"per_image": 1}, TypeError, r"balanced_bce: expected per_image as a bool"),
        (OHEM, {"negative_ratio": -1.0}, ValueError, r"ohem_bce: expected negative_ratio > 0.0"),
        (OHEM, {"min_negatives": -1}, ValueError, r"ohem_bce: .* min_negatives >= 0"),
        (OHEM, {"min_negatives": 1.5}, TypeError, r"ohem_bce: .* min_negatives as an"),
        (OHEM, {"eps": 0.0}, ValueError, r"ohem_bce: expected eps > 0.0"),
        (seg.DiceLoss, {"eps": 0.0}, ValueError, r"dice: expected eps > 0.0, got 0.0"),
        (seg.DiceLoss, {"batch": "yes"}, TypeError, r"dice: expected batch as a bool"),
        (seg.TverskyLoss, {"alpha": -1.0}, ValueError, r"tversky: expected alpha >= 0.0, got -1.0"),
        (seg.TverskyLoss, {"beta": -1.0}, ValueError, r"tversky: expected beta >= 0.0, got -1.0"),
        (seg.TverskyLoss, {"eps": -1.0}, ValueError, r"tversky: expected eps > 0.0"),
    ],
)
def test_bad_hyperparameters_raise(module, kwargs, error, message):
    with pytest.raises(error, match=message):
        module(**kwargs)
    function = {cls: key for key, (_, cls) in LOSSES.items()}[module]
    logits, mask = sample()
    with pytest.raises(error, match=message):  # the function runs the same check
        LOSSES[function][0](logits, mask, **kwargs)


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
def test_bf16_autocast_returns_the_float32_value(key):
    logits, mask = sample()
    module = LOSSES[key][1]()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = module(logits.bfloat16(), mask.bfloat16())
    assert loss.dtype == torch.float32
    # bf16 inputs upcast exactly and the same float32 computation follows: equal to the bit (a
    # loss computed in bf16 would be off by ~1e-3 relative)
    expected = module(logits.bfloat16().float(), mask)
    torch.testing.assert_close(loss, expected, rtol=0.0, atol=0.0)


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
    assert loss.hyperparameters.get("squared", False) == (key == "dice_squared")
