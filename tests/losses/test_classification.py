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
    # the pin is KL(q || p): q = [0.1, 0.2, 0.7] is the target (the other way round gives 0.5505)
    assert round(kl_div(p.log(), q, reduction="sum").item(), 4) == 0.4322
    assert round(F.kl_div(p.log(), q, reduction="sum").item(), 4) == 0.4322
    assert round(F.kl_div(q.log(), p, reduction="sum").item(), 4) == 0.5505


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_equals_ce(reduction):
    x, y = _data()
    torch.testing.assert_close(NLL(reduction)(x, y), CrossEntropy(reduction=reduction)(x, y))


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


@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.5, 3.0]])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ce_options_match_torch(weight, label_smoothing, ignore_index, reduction):
    x, y = _data(n=16)
    y[:3] = ignore_index
    ce = CrossEntropy(weight, ignore_index, label_smoothing, reduction)
    expected = F.cross_entropy(
        x,
        y,
        weight=None if weight is None else torch.tensor(weight, dtype=x.dtype),
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    torch.testing.assert_close(ce(x, y), expected)


@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.5, 3.0]])
def test_all_ignored_batch_is_zero_not_nan(weight):
    x, _ = _data()
    x.requires_grad_(True)
    loss = CrossEntropy(weight=weight)(x, torch.full((8,), -100))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(x.grad == 0)
    assert torch.isnan(F.cross_entropy(x, torch.full((8,), -100)))  # PyTorch's choice, not ours
    # zero-weight targets only: nothing counted either
    assert (
        cross_entropy(x, torch.zeros(8, dtype=torch.long), torch.zeros(4, dtype=x.dtype)).item()
        == 0.0
    )


def test_ce_weight_of_the_wrong_length():
    x, y = _data()
    with pytest.raises(
        ValueError, match=r"ce: expected weight of shape \[4\] \(one per class\), got float32 \[3\]"
    ):
        CrossEntropy(weight=[1.0, 2.0, 3.0])(x.float(), y)
    with pytest.raises(
        ValueError, match=r"class_weighted_ce: expected weight of shape \[4\] \(one per class\)"
    ):
        ClassWeightedCE([10, 20, 30])(x, y)
    with pytest.raises(ValueError, match="ce: expected reduction in"):
        cross_entropy(x, y, reduction="avg")


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
    p = n / n.sum()
    log_weights = 1 / torch.log(1.02 + p)
    torch.testing.assert_close(
        class_weights(COUNTS, "log").double(), log_weights * 4 / log_weights.sum()
    )
    inverse = 1 / n
    torch.testing.assert_close(
        class_weights(COUNTS, "inverse").double(), inverse * 4 / inverse.sum()
    )


@pytest.mark.parametrize("scheme", ["inverse", "log", "effective"])
def test_an_empty_class_gets_a_finite_weight(scheme):
    # counted as 1: the weight of a class seen once, not inf
    weights = class_weights([10, 0, 5], scheme)
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights, class_weights([10, 1, 5], scheme))
    assert weights[1] == weights.max()
    x, y = _data(c=3)
    assert torch.isfinite(ClassWeightedCE([10, 0, 5], scheme=scheme)(x, y))


def test_kl_div_smoothing_and_soft_targets():
    x, y = _data()
    q = torch.full((8, 4), 0.1 / 3, dtype=x.dtype).scatter_(1, y[:, None], 0.9)
    expected = F.kl_div(F.log_softmax(x, 1), q, reduction="batchmean")
    torch.testing.assert_close(KLDiv(smoothing=0.1)(x, y), expected)
    torch.testing.assert_close(kl_div(x, q), expected)
    # smoothing 0: KL to a one-hot target is exactly CE
    torch.testing.assert_close(KLDiv(smoothing=0.0)(x, y), F.cross_entropy(x, y))
    # sum, and 'none' per sample [N]
    per = F.kl_div(F.log_softmax(x, 1), q, reduction="none").sum(1)
    torch.testing.assert_close(kl_div(x, q, reduction="none"), per)
    torch.testing.assert_close(kl_div(x, q, reduction="sum"), per.sum())
    # our 'mean' is batchmean, not PyTorch's 'mean' over N*C
    assert not torch.allclose(kl_div(x, q), per.sum() / q.numel())


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [0.0, 0.5, 1.0, 2.0])
def test_multi_margin_matches_torch(p, margin):
    x, y = _data()
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(
            MultiMargin(p, margin, reduction)(x, y),
            F.multi_margin_loss(x, y, p=p, margin=margin, reduction=reduction),
        )


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
    with pytest.raises(
        ValueError, match=r"kl_div: expected target rows that sum to 1 .*got row sums in \[3, 3\]"
    ):
        kl_div(torch.randn(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"kl_div: expected target rows .*values in \[-0.5, 1.5\]"):
        kl_div(torch.randn(1, 2), torch.tensor([[-0.5, 1.5]]))
    with pytest.raises(ValueError, match=r"kl_div: expected target of the same shape"):
        kl_div(torch.randn(2, 3), torch.full((2, 4), 0.25))


def test_configs_hold_the_constructor_defaults():
    import inspect
    from pathlib import Path

    from hydra.utils import get_class, instantiate
    from omegaconf import OmegaConf

    conf = Path(__file__).parents[2] / "conf" / "loss"
    x, y = _data(dtype=torch.float32)
    for key in MODULES:
        cfg = OmegaConf.load(conf / f"{key}.yaml")
        assert next(iter(cfg)) == "_target_", key
        signature = inspect.signature(get_class(cfg._target_))
        defaults = {name: p.default for name, p in signature.parameters.items()}
        assert {k: v for k, v in cfg.items() if k != "_target_"} == defaults, key
        if key == "class_weighted_ce":
            cfg.class_counts = COUNTS  # what the framework fills from the training split
        loss = instantiate(cfg, _convert_="all")
        assert loss.tasks == ("classification",), key
        assert torch.isfinite(loss(x, y)), key


def test_weighted_mean_divides_by_the_weights():
    x, y = _data()
    w = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=x.dtype)
    per = F.cross_entropy(x, y, reduction="none") * w[y]
    torch.testing.assert_close(cross_entropy(x, y, w), per.sum() / w[y].sum())
