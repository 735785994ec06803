"""ce, nll, class_weighted_ce, kl_div, bce_onehot, multi_margin: references, stability, errors."""

import inspect
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from losses.classification import (
    BCEOneHot,
    ClassWeightedCE,
    CrossEntropy,
    LogSoftmaxKLDiv,
    LogSoftmaxNLL,
    MultiMargin,
    class_weighted_ce,
    class_weights,
    cross_entropy,
    kl_div,
    multi_margin,
    nll,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "loss"
# a 3x3 example with a hand-checked cross entropy of 1.3077
PIN_X = torch.tensor([[0.2, 0.3, 0.4], [-0.02, -0.13, 0.2], [0.5, -0.3, 0.73]])
PIN_Y = torch.tensor([0, 2, 1])
COUNTS = [500, 100, 20, 5]

MODULES = {
    "ce": lambda r="mean": CrossEntropy(reduction=r),
    "nll": lambda r="mean": LogSoftmaxNLL(reduction=r),
    "class_weighted_ce": lambda r="mean": ClassWeightedCE(class_counts=COUNTS, reduction=r),
    "kl_div": lambda r="mean": LogSoftmaxKLDiv(reduction=r),
    "bce_onehot": lambda r="mean": BCEOneHot(reduction=r),
    "multi_margin": lambda r="mean": MultiMargin(reduction=r),
}


def _data(n=8, c=4, dtype=torch.float64, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(n, c, generator=g, dtype=torch.float64)
    return x.to(dtype), torch.randint(0, c, (n,), generator=g)


def _effective_weights(counts, beta=0.999):
    """Cui et al. 2019's class-balanced weights in float64, normalised to sum to C."""
    n = torch.tensor(counts, dtype=torch.float64)
    w = (1 - beta) / (1 - beta**n)
    return w * len(counts) / w.sum()


def _reference(name, x, y):
    """Each default-config loss as a float64 formula: ``-log softmax(x)_y = lse(x) - x_y``,
    ``softplus(x) = logaddexp(0, x)``; reduced as the config does (``mean``)."""
    x = x.double()
    n, c = x.shape
    lse = torch.logsumexp(x, dim=1)
    x_y = x[torch.arange(n), y]
    if name in ("ce", "nll"):
        return (lse - x_y).mean()
    if name == "class_weighted_ce":
        w = _effective_weights(COUNTS)[y]
        return (w * (lse - x_y)).sum() / w.sum()
    if name == "kl_div":  # smoothing 0.1
        q = torch.full_like(x, 0.1 / (c - 1))
        q[torch.arange(n), y] = 0.9
        return (q * (torch.log(q) - (x - lse[:, None]))).sum(1).mean()
    if name == "bce_onehot":
        one_hot = torch.zeros_like(x)
        one_hot[torch.arange(n), y] = 1.0
        return (torch.logaddexp(torch.zeros_like(x), x) - one_hot * x).mean()
    if name == "multi_margin":  # p = 1, margin = 1
        hinge = (1 - x_y[:, None] + x).clamp_min(0)
        hinge[torch.arange(n), y] = 0.0
        return (hinge.sum(1) / c).mean()
    raise KeyError(name)


def test_pinned_values():
    assert round(CrossEntropy()(PIN_X, PIN_Y).item(), 4) == 1.3077
    assert round(LogSoftmaxNLL()(PIN_X, PIN_Y).item(), 4) == 1.3077
    p, q = torch.tensor([[0.5, 0.2, 0.3]]), torch.tensor([[0.1, 0.2, 0.7]])
    # the pin is KL(q || p): q = [0.1, 0.2, 0.7] is the target (the other way round gives 0.5505)
    assert round(kl_div(p.log(), q, reduction="sum").item(), 4) == 0.4322
    assert round(F.kl_div(p.log(), q, reduction="sum").item(), 4) == 0.4322
    assert round(F.kl_div(q.log(), p, reduction="sum").item(), 4) == 0.5505


@pytest.mark.parametrize("name", MODULES)
def test_matches_the_float64_formula(name):
    x, y = _data(n=16, scale=3.0)
    torch.testing.assert_close(MODULES[name]()(x, y), _reference(name, x, y))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_equals_ce(reduction):
    x, y = _data()
    ce = CrossEntropy(reduction=reduction)(x, y)
    torch.testing.assert_close(LogSoftmaxNLL(reduction=reduction)(x, y), ce)
    torch.testing.assert_close(nll(x, y, reduction=reduction), ce)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_equal_to_torch_builtins(reduction):
    x, y = _data()
    one_hot = F.one_hot(y, 4).double()
    q = torch.full((8, 4), 0.1 / 3, dtype=x.dtype).scatter_(1, y[:, None], 0.9)
    kl_per_sample = F.kl_div(F.log_softmax(x, 1), q, reduction="none").sum(1)
    cases = {
        "ce": F.cross_entropy(x, y, reduction=reduction),
        "nll": F.nll_loss(F.log_softmax(x, 1), y, reduction=reduction),
        "bce_onehot": F.binary_cross_entropy_with_logits(x, one_hot, reduction=reduction),
        "multi_margin": F.multi_margin_loss(x, y, reduction=reduction),
        "kl_div": {"mean": kl_per_sample.mean(), "sum": kl_per_sample.sum()}.get(
            reduction, kl_per_sample
        ),
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
    ce = CrossEntropy(
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    expected = F.cross_entropy(
        x,
        y,
        weight=None if weight is None else torch.tensor(weight, dtype=x.dtype),
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    torch.testing.assert_close(ce(x, y), expected)
    kwargs = {"ignore_index": ignore_index, "label_smoothing": label_smoothing}
    torch.testing.assert_close(
        cross_entropy(x, y, weight=weight, **kwargs, reduction=reduction), expected
    )


@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.5, 3.0]])
def test_all_ignored_batch_is_zero_not_nan(weight):
    x, _ = _data()
    x.requires_grad_(True)
    loss = CrossEntropy(weight=weight)(x, torch.full((8,), -100))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(x.grad == 0)
    assert torch.isnan(F.cross_entropy(x, torch.full((8,), -100)))  # PyTorch's choice, not ours
    # zero-weight targets only: nothing counted either
    zero_weights = torch.zeros(4, dtype=x.dtype)
    assert cross_entropy(x, torch.zeros(8, dtype=torch.long), weight=zero_weights).item() == 0.0


def test_ce_weight_of_the_wrong_length():
    x, y = _data()
    with pytest.raises(
        ValueError, match=r"ce: expected weight of shape \[4\] \(one per class\), got float32 \[3\]"
    ):
        CrossEntropy(weight=[1.0, 2.0, 3.0])(x.float(), y)
    with pytest.raises(
        ValueError, match=r"class_weighted_ce: expected weight of shape \[4\] \(one per class\)"
    ):
        ClassWeightedCE(class_counts=[10, 20, 30])(x, y)
    with pytest.raises(ValueError, match="ce: expected reduction in"):
        cross_entropy(x, y, reduction="avg")


def test_class_weighted_ce_is_ce_with_the_schemes_weights():
    x, y = _data()
    n = torch.tensor(COUNTS, dtype=torch.float64)
    inverse = 1 / n
    log = 1 / torch.log(1.02 + n / n.sum())
    formulas = {
        "inverse": inverse * 4 / inverse.sum(),
        "log": log * 4 / log.sum(),
        "effective": _effective_weights(COUNTS),
    }
    for scheme, expected_weights in formulas.items():
        weights = class_weights(COUNTS, scheme=scheme)
        assert weights.dtype == torch.float32
        # float32 weights against the float64 formula: one float32 rounding, 2^-24 relative
        torch.testing.assert_close(weights.double(), expected_weights, rtol=2**-24, atol=0.0)
        assert torch.all(weights[:-1] <= weights[1:])  # rarer classes weigh more
        expected = F.cross_entropy(x, y, weight=expected_weights)
        # the module's weights are float32: the loss carries their 2^-24 relative rounding
        tol = {"rtol": 2**-23, "atol": 0.0}
        torch.testing.assert_close(
            ClassWeightedCE(class_counts=COUNTS, scheme=scheme)(x, y), expected, **tol
        )
        torch.testing.assert_close(
            class_weighted_ce(x, y, class_counts=COUNTS, scheme=scheme), expected, **tol
        )


@pytest.mark.parametrize("scheme", ["inverse", "log", "effective"])
def test_an_empty_class_gets_a_finite_weight(scheme):
    # counted as 1: the weight of a class seen once, not inf
    weights = class_weights([10, 0, 5], scheme=scheme)
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights, class_weights([10, 1, 5], scheme=scheme))
    assert weights[1] == weights.max()
    x, y = _data(c=3)
    assert torch.isfinite(ClassWeightedCE(class_counts=[10, 0, 5], scheme=scheme)(x, y))


def test_kl_div_smoothing_and_soft_targets():
    x, y = _data()
    q = torch.full((8, 4), 0.1 / 3, dtype=x.dtype).scatter_(1, y[:, None], 0.9)
    expected = F.kl_div(F.log_softmax(x, 1), q, reduction="batchmean")
    torch.testing.assert_close(LogSoftmaxKLDiv(smoothing=0.1)(x, y), expected)
    torch.testing.assert_close(kl_div(x, q), expected)
    # smoothing 0: KL to a one-hot target is exactly CE
    torch.testing.assert_close(LogSoftmaxKLDiv(smoothing=0.0)(x, y), F.cross_entropy(x, y))
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
        expected = torch.nn.MultiMarginLoss(p=p, margin=margin, reduction=reduction)(x, y)
        torch.testing.assert_close(
            MultiMargin(p=p, margin=margin, reduction=reduction)(x, y), expected
        )
        torch.testing.assert_close(
            multi_margin(x, y, p=p, margin=margin, reduction=reduction), expected
        )


@pytest.mark.parametrize("name", MODULES)
def test_gradcheck_float64(name):
    x, y = _data(n=5, c=4)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: MODULES[name]()(t, y), (x,))


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.parametrize("scale", [100.0, 1e4])
def test_saturated_logits_have_the_exact_value_and_finite_gradients(name, scale):
    x = torch.tensor(
        [[scale, -scale, 0.0, scale], [-scale, scale, scale, -scale]], requires_grad=True
    )
    y = torch.tensor([1, 0])
    loss = MODULES[name]()(x, y)
    loss.backward()
    # float32 at logits of 1e4: a few roundings of values near 2e4, each 2^-24 relative
    torch.testing.assert_close(loss.double(), _reference(name, x.detach(), y), rtol=1e-6, atol=0.0)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", MODULES)
def test_none_shape_and_bf16_values(name):
    x, y = _data(dtype=torch.float32)
    expected = (8, 4) if name == "bce_onehot" else (8,)
    assert MODULES[name]("none")(x, y).shape == expected
    x16 = x.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = MODULES[name]()(x16, y)
    assert loss.dtype == torch.float32
    # bf16 inputs upcast exactly and the same float32 computation follows: equal to the bit (a
    # loss computed in bf16 would be off by ~1e-3 relative)
    torch.testing.assert_close(loss, MODULES[name]()(x16.float(), y), rtol=0.0, atol=0.0)


@pytest.mark.parametrize("name", MODULES)
def test_wrong_target_dtype_and_shape(name):
    x, _ = _data(n=8, c=10, dtype=torch.float32)
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
        (lambda: CrossEntropy(weight=[]), "ce: expected weight as a list of class weights"),
        (
            lambda: ClassWeightedCE(class_counts=None),
            "class_weighted_ce: expected class_counts of the training split, got None",
        ),
        (
            lambda: ClassWeightedCE(class_counts=[3, -1]),
            "class_weighted_ce: expected non-negative class_counts",
        ),
        (
            lambda: ClassWeightedCE(class_counts=COUNTS, scheme="sqrt"),
            "class_weighted_ce: expected scheme in",
        ),
        (
            lambda: ClassWeightedCE(class_counts=COUNTS, beta=1.0),
            "class_weighted_ce: expected beta > 0.0 and beta < 1.0, got 1.0",
        ),
        (
            lambda: LogSoftmaxKLDiv(smoothing=1.0),
            "kl_div: expected smoothing >= 0.0 and smoothing < 1.0, got 1.0",
        ),
        (
            lambda: kl_div(PIN_X, PIN_Y, smoothing=1.0),  # the function runs the same check
            "kl_div: expected smoothing >= 0.0 and smoothing < 1.0, got 1.0",
        ),
        (lambda: MultiMargin(p=3), "multi_margin: expected p in"),
        (lambda: multi_margin(PIN_X, PIN_Y, p=3), "multi_margin: expected p in"),
        (lambda: MultiMargin(margin=-1.0), "multi_margin: expected margin >= 0.0, got -1.0"),
        (lambda: LogSoftmaxNLL(reduction="avg"), "nll: expected reduction in"),
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
        kl_div(torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"kl_div: expected target rows .*values in \[-0.5, 1.5\]"):
        kl_div(torch.zeros(1, 2), torch.tensor([[-0.5, 1.5]]))
    with pytest.raises(ValueError, match=r"kl_div: expected target of the same shape"):
        kl_div(torch.zeros(2, 3), torch.full((2, 4), 0.25))


def test_configs_hold_the_constructor_defaults():
    x, y = _data(dtype=torch.float32)
    for key in MODULES:
        cfg = OmegaConf.load(CONF / f"{key}.yaml")
        assert next(iter(cfg)) == "_target_", key
        signature = inspect.signature(get_class(cfg._target_))
        defaults = {name: p.default for name, p in signature.parameters.items()}
        assert {k: v for k, v in cfg.items() if k != "_target_"} == defaults, key
        if key == "class_weighted_ce":
            cfg.class_counts = COUNTS  # what the framework fills from the training split
        loss = instantiate(cfg, _convert_="all")
        assert loss.tasks == ("classification",), key
        # a float32 loss against float64: a few roundings of 2^-24 relative each
        expected = _reference(key, x, y)
        torch.testing.assert_close(loss(x, y).double(), expected, rtol=1e-6, atol=0.0, msg=key)


def test_weighted_mean_divides_by_the_weights():
    x, y = _data()
    w = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=x.dtype)
    per = F.cross_entropy(x, y, reduction="none") * w[y]
    torch.testing.assert_close(cross_entropy(x, y, weight=w), per.sum() / w[y].sum())
