"""ce, nll, class_weighted_ce, kl_div, bce_onehot, multi_margin: references, stability, errors."""

import pytest
import torch
import torch.nn.functional as F

from losses.classification import (
    NLL,
    BCEOneHot,
    ClassWeightedCE,
    CrossEntropy,
    KLDiv,
    MultiMargin,
    class_weights,
    cross_entropy,
    kl_div,
)

SEED_X = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
SEED_Y = torch.tensor([0, 2, 1])
COUNTS = [500, 100, 20, 5]

MODULES = {
    "ce": lambda r="mean": CrossEntropy(reduction=r),
    "nll": lambda r="mean": NLL(reduction=r),
    "class_weighted_ce": lambda r="mean": ClassWeightedCE(COUNTS, reduction=r),
    "kl_div": lambda r="mean": KLDiv(reduction=r),
    "bce_onehot": lambda r="mean": BCEOneHot(reduction=r),
    "multi_margin": lambda r="mean": MultiMargin(reduction=r),
}


def _data(n=8, c=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, c, generator=g, dtype=dtype), torch.randint(0, c, (n,), generator=g)


def test_seed_pins():
    assert round(CrossEntropy()(SEED_X, SEED_Y).item(), 4) == 1.3077
    assert round(NLL()(SEED_X, SEED_Y).item(), 4) == 1.3077
    p, q = torch.tensor([[0.5, 0.2, 0.3]]), torch.tensor([[0.1, 0.2, 0.7]])
    assert round(kl_div(p.log(), q, reduction="sum").item(), 4) == 0.4322


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_equal_to_torch_builtins(reduction):
    x, y = _data()
    one_hot = F.one_hot(y, 4).double()
    cases = {
        "ce": F.cross_entropy(x, y, reduction=reduction),
        "nll": F.nll_loss(F.log_softmax(x, 1), y, reduction=reduction),
        "bce_onehot": F.binary_cross_entropy_with_logits(x, one_hot, reduction=reduction),
        "multi_margin": F.multi_margin_loss(x, y, reduction=reduction),
    }
    for name, expected in cases.items():
        torch.testing.assert_close(MODULES[name](reduction)(x, y), expected, msg=name)


def test_ce_options_match_torch():
    x, y = _data()
    weight = [1.0, 2.0, 0.5, 3.0]
    ce = CrossEntropy(weight=weight, label_smoothing=0.1)
    expected = F.cross_entropy(
        x, y, weight=torch.tensor(weight, dtype=x.dtype), label_smoothing=0.1
    )
    torch.testing.assert_close(ce(x, y), expected)
    y_ignored = y.clone()
    y_ignored[:3] = -100
    torch.testing.assert_close(CrossEntropy()(x, y_ignored), F.cross_entropy(x, y_ignored))


def test_all_ignored_batch_is_zero_not_nan():
    x, _ = _data()
    assert CrossEntropy()(x, torch.full((8,), -100)).item() == 0.0
    assert torch.isnan(F.cross_entropy(x, torch.full((8,), -100)))  # PyTorch's choice, not ours


def test_class_weighted_ce_is_weighted_ce_with_the_scheme_weights():
    x, y = _data()
    for scheme in ("inverse", "log", "effective"):
        weights = class_weights(COUNTS, scheme)
        assert weights.sum().item() == pytest.approx(4.0)
        assert torch.all(weights[:-1] <= weights[1:])  # rarer classes weigh more
        expected = F.cross_entropy(x, y, weight=weights.double())
        torch.testing.assert_close(ClassWeightedCE(COUNTS, scheme=scheme)(x, y), expected)
    n = torch.tensor(COUNTS, dtype=torch.float64)
    effective = (1 - 0.999) / (1 - 0.999**n)
    torch.testing.assert_close(
        class_weights(COUNTS, "effective").double(),
        effective * 4 / effective.sum(),
        atol=1e-6,
        rtol=1e-6,
    )
    assert torch.isfinite(class_weights([10, 0, 5], "inverse")).all()  # an empty class: no inf


def test_kl_div_smoothing_and_soft_targets():
    x, y = _data()
    q = torch.full((8, 4), 0.1 / 3, dtype=x.dtype).scatter_(1, y[:, None], 0.9)
    expected = F.kl_div(F.log_softmax(x, 1), q, reduction="batchmean")
    torch.testing.assert_close(KLDiv(smoothing=0.1)(x, y), expected)
    torch.testing.assert_close(kl_div(x, q), expected)
    # smoothing 0: KL to a one-hot target is exactly CE
    torch.testing.assert_close(KLDiv(smoothing=0.0)(x, y), F.cross_entropy(x, y))


@pytest.mark.parametrize("name", MODULES)
def test_gradcheck_float64(name):
    x, y = _data(n=5, c=4)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: MODULES[name]()(t, y), (x,))


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.parametrize("scale", [100.0, 1e4])
def test_extreme_logits_stay_finite(name, scale):
    x = torch.tensor(
        [[scale, -scale, 0.0, scale], [-scale, scale, scale, -scale]], requires_grad=True
    )
    loss = MODULES[name]()(x, torch.tensor([1, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", MODULES)
def test_none_shape_and_bf16(name):
    x, y = _data(dtype=torch.float32)
    expected = (8, 4) if name == "bce_onehot" else (8,)
    assert MODULES[name]("none")(x, y).shape == expected
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert MODULES[name]()(x.bfloat16(), y).dtype == torch.float32


@pytest.mark.parametrize("name", MODULES)
def test_wrong_target_dtype_and_shape(name):
    x = torch.randn(8, 10)
    with pytest.raises(
        TypeError,
        match=rf"{name}: expected target int64 class indices of shape \[8\], got int32 \[8\]",
    ):
        MODULES[name]()(x, torch.zeros(8, dtype=torch.int32))
    with pytest.raises((TypeError, ValueError), match=rf"{name}: expected"):
        MODULES[name]()(x, torch.zeros(8, 10, dtype=torch.long))
    with pytest.raises(
        ValueError, match=rf"{name}: expected class indices in \[0, 10\), got values in \[0, 12\]"
    ):
        MODULES[name]()(x, torch.tensor([0, 1, 2, 3, 4, 5, 6, 12]))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: CrossEntropy(label_smoothing=1.5),
            "ce: expected label_smoothing >= 0.0 and label_smoothing <= 1.0, got 1.5",
        ),
        (lambda: CrossEntropy(weight=[1.0, -1.0]), "ce: expected non-negative class weights"),
        (
            lambda: ClassWeightedCE(None),
            "class_weighted_ce: expected class_counts of the training split, got None",
        ),
        (lambda: ClassWeightedCE(COUNTS, scheme="sqrt"), "class_weighted_ce: expected scheme in"),
        (
            lambda: ClassWeightedCE(COUNTS, beta=1.0),
            "class_weighted_ce: expected beta > 0.0 and beta < 1.0, got 1.0",
        ),
        (
            lambda: KLDiv(smoothing=1.0),
            "kl_div: expected smoothing >= 0.0 and smoothing < 1.0, got 1.0",
        ),
        (lambda: MultiMargin(p=3), "multi_margin: expected p in"),
        (lambda: MultiMargin(margin=-1.0), "multi_margin: expected margin >= 0.0, got -1.0"),
        (lambda: NLL(reduction="avg"), "nll: expected reduction in"),
    ],
)
def test_bad_hyperparameters(build, message):
    with pytest.raises(ValueError) as error:
        build()
    assert str(error.value).startswith(message)


def test_kl_div_rejects_rows_that_are_not_distributions():
    with pytest.raises(ValueError, match="kl_div: expected target rows that sum to 1"):
        kl_div(torch.randn(2, 3), torch.ones(2, 3))


def test_weighted_mean_divides_by_the_weights():
    x, y = _data()
    w = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=x.dtype)
    per = F.cross_entropy(x, y, reduction="none") * w[y]
    torch.testing.assert_close(cross_entropy(x, y, w), per.sum() / w[y].sum())
