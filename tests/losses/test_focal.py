"""focal: softmax and sigmoid forms against references, alpha per form, saturated logits, errors."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal

from losses.focal import FocalLoss, focal_loss, sigmoid_focal_loss, softmax_focal_loss

GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]
CONF = Path(__file__).resolve().parents[2] / "conf" / "loss" / "focal.yaml"
# float32 is good to about 1e-7 relative; below float32's smallest normal number the value is
# subnormal or 0, so such entries compare absolutely
FLOAT32_TOL = {"rtol": 1e-6, "atol": torch.finfo(torch.float32).tiny}


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def _softmax_reference(x, y, gamma, alpha=None):
    """The paper's formula in float64, on probabilities: for moderate logits."""
    p_t = F.softmax(x.double(), dim=1).gather(1, y[:, None]).squeeze(1)
    loss = -((1 - p_t) ** gamma) * torch.log(p_t)
    return loss * torch.as_tensor(alpha, dtype=torch.float64)[y] if alpha is not None else loss


def _softmax_reference_log_space(x, y, gamma):
    """The same in float64 log space, exact at saturated logits: ``-log p_t = lse(x) - x_t``,
    ``log(1 - p_t) = lse(x without x_t) - lse(x)``."""
    x = x.double()
    lse = torch.logsumexp(x, dim=1)
    others = x.scatter(1, y[:, None], float("-inf"))
    log_1m_p_t = torch.logsumexp(others, dim=1) - lse
    return torch.exp(gamma * log_1m_p_t) * (lse - x.gather(1, y[:, None]).squeeze(1))


def _sigmoid_reference_log_space(x, y, gamma, alpha):
    """Sigmoid focal on a hard mask in float64: ``-log σ(x) = logaddexp(0, -x)``."""
    x, y = x.double(), y.double()
    minus_log_p_t = y * torch.logaddexp(torch.zeros_like(x), -x) + (1 - y) * torch.logaddexp(
        torch.zeros_like(x), x
    )
    minus_log_1m_p_t = y * torch.logaddexp(torch.zeros_like(x), x) + (1 - y) * torch.logaddexp(
        torch.zeros_like(x), -x
    )
    weight = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    return weight * torch.exp(-gamma * minus_log_1m_p_t) * minus_log_p_t


@pytest.mark.parametrize("gamma", GAMMAS)
def test_softmax_matches_the_formula(gamma):
    x, y = torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 5, (16,))
    alpha = [0.1, 0.2, 0.3, 0.2, 0.2]
    for a in (None, alpha):
        expected = _softmax_reference(x, y, gamma, a)
        kwargs = {"gamma": gamma, "alpha": a}
        torch.testing.assert_close(softmax_focal_loss(x, y, **kwargs, reduction="none"), expected)
        torch.testing.assert_close(softmax_focal_loss(x, y, **kwargs), expected.mean())
        torch.testing.assert_close(
            softmax_focal_loss(x, y, **kwargs, reduction="sum"), expected.sum()
        )


@pytest.mark.parametrize("alpha", [None, -1.0, "auto"])
def test_gamma_zero_is_cross_entropy_on_both_tasks(alpha):
    x, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    torch.testing.assert_close(FocalLoss(gamma=0.0, alpha=alpha)(x, y), F.cross_entropy(x, y))
    if alpha == "auto":  # 0.25 on a mask: weighted BCE, not plain BCE (tested below)
        return
    logits, mask = torch.randn(2, 1, 5, 5), (torch.rand(2, 1, 5, 5) > 0.8).float()
    expected = F.binary_cross_entropy_with_logits(logits, mask)
    torch.testing.assert_close(FocalLoss(gamma=0.0, alpha=alpha)(logits, mask), expected)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_auto_alpha_is_no_weighting_on_class_indices(gamma):
    x, y = torch.randn(16, 10), torch.randint(0, 10, (16,))
    expected = _softmax_reference(x, y, gamma).mean().float()
    torch.testing.assert_close(FocalLoss(gamma=gamma, alpha="auto")(x, y), expected)
    torch.testing.assert_close(FocalLoss(gamma=gamma)(x, y), expected)  # the module's default


@pytest.mark.parametrize("gamma", GAMMAS)
def test_auto_alpha_is_retinanets_quarter_on_binary_masks(gamma):
    logits = torch.randn(2, 1, 6, 6, dtype=torch.float64) * 3
    mask = (torch.rand(2, 1, 6, 6) > 0.7).double()
    expected = tv_sigmoid_focal(logits, mask, alpha=0.25, gamma=gamma, reduction="mean")
    torch.testing.assert_close(FocalLoss(gamma=gamma, alpha="auto")(logits, mask), expected)
    torch.testing.assert_close(focal_loss(logits, mask, gamma=gamma), expected)


@pytest.mark.parametrize("alpha", [0.25, 0.75, 0.0, 1.0])
def test_a_float_alpha_on_class_indices_raises(alpha):
    # it used to be ignored silently (the shipped default 0.25 on fashion_mnist)
    x, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    message = (
        r"focal: a float alpha weights the positives of a binary mask; for 10 classes give a "
        rf"list of 10 weights, 'auto' or null, got alpha={alpha}"
    )
    with pytest.raises(ValueError, match=message):
        FocalLoss(alpha=alpha)(x, y)
    with pytest.raises(ValueError, match=message):
        softmax_focal_loss(x, y, alpha=alpha)


def test_per_class_alpha():
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 3, (8,))
    weights = [0.2, 1.0, 3.0]
    expected = _softmax_reference(x, y, 2.0, weights)
    torch.testing.assert_close(softmax_focal_loss(x, y, alpha=weights, reduction="none"), expected)
    # the module keeps per-class weights as a buffer (moves with .to(), saved in the state dict)
    module = FocalLoss(alpha=weights, reduction="none")
    assert "class_alpha" in module.state_dict()
    torch.testing.assert_close(module(x, y), expected)
    with pytest.raises(ValueError, match=r"focal: expected alpha as 3 per-class weights"):
        softmax_focal_loss(x, y, alpha=[1.0, 2.0])
    with pytest.raises(ValueError, match="focal: expected a float alpha for a binary mask"):
        module(torch.randn(2, 1, 3, 3), torch.zeros(2, 1, 3, 3))


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [0.25, 0.75, -1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sigmoid_equals_torchvision(gamma, alpha, reduction):
    logits, mask = (
        torch.randn(2, 1, 6, 6, dtype=torch.float64) * 3,
        (torch.rand(2, 1, 6, 6) > 0.7).double(),
    )
    expected = tv_sigmoid_focal(logits, mask, alpha=alpha, gamma=gamma, reduction=reduction)
    ours = sigmoid_focal_loss(logits, mask, gamma=gamma, alpha=alpha, reduction=reduction)
    torch.testing.assert_close(ours, expected)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [0.25, -1.0])
def test_sigmoid_soft_targets_equal_torchvision(gamma, alpha):
    logits = torch.randn(4, 1, 5, 5, dtype=torch.float64) * 3
    soft = torch.rand(4, 1, 5, 5, dtype=torch.float64)
    expected = tv_sigmoid_focal(logits, soft, alpha=alpha, gamma=gamma, reduction="none")
    ours = sigmoid_focal_loss(logits, soft, gamma=gamma, alpha=alpha, reduction="none")
    torch.testing.assert_close(ours, expected)


def test_module_dispatches_on_the_target():
    logits = torch.randn(4, 3)
    assert FocalLoss()(logits, torch.tensor([0, 1, 2, 1])).shape == ()
    dense = FocalLoss(reduction="none")(torch.randn(2, 1, 3, 3), torch.zeros(2, 1, 3, 3))
    assert dense.shape == (2, 1, 3, 3)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_gradcheck_float64(gamma):
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (6,))
    weights = [0.5, 1.0, 2.0, 1.0]
    assert torch.autograd.gradcheck(
        lambda t: softmax_focal_loss(t, y, gamma=gamma, alpha=weights), (x,)
    )
    logits = torch.randn(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    mask = (torch.rand(2, 1, 3, 3) > 0.5).double()
    assert torch.autograd.gradcheck(
        lambda t: sigmoid_focal_loss(t, mask, gamma=gamma, alpha=0.25), (logits,)
    )


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("scale", [100.0, 1e4])
def test_saturated_logits_have_the_exact_value_and_finite_gradients(gamma, scale):
    # gamma < 1 has an infinite derivative of (1 - p)^gamma at p = 1: the log-space form is finite
    x = torch.tensor([[scale, -scale, 0.0], [-scale, scale, 0.0]], requires_grad=True)
    y = torch.tensor([0, 0])
    loss = FocalLoss(gamma=gamma, alpha=None, reduction="none")(x, y)
    loss.sum().backward()
    torch.testing.assert_close(
        loss.double(), _softmax_reference_log_space(x.detach(), y, gamma), **FLOAT32_TOL
    )
    assert torch.isfinite(x.grad).all()
    logits = torch.tensor([[[[scale, -scale], [scale, -scale]]]], requires_grad=True)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    loss = FocalLoss(gamma=gamma, reduction="none")(logits, mask)
    loss.sum().backward()
    expected = _sigmoid_reference_log_space(logits.detach(), mask, gamma, 0.25)
    torch.testing.assert_close(loss.double(), expected, **FLOAT32_TOL)
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_gradients_finite_over_every_logit_margin(gamma):
    # where p_t rounds to 1 in float32 (margins ~17 to ~104) the log-space forms must not divide
    # 0 by 0 anywhere: sweep the margin densely for both forms
    margin = torch.linspace(-200.0, 200.0, 4001, requires_grad=True)
    x = torch.stack([margin, torch.zeros_like(margin)], dim=1)
    softmax_focal_loss(x, torch.zeros(len(margin), dtype=torch.long), gamma=gamma).backward()
    assert torch.isfinite(margin.grad).all()
    logits = torch.linspace(-200.0, 200.0, 4001, requires_grad=True)
    sigmoid_focal_loss(logits, (torch.arange(4001) % 2).float(), gamma=gamma).backward()
    assert torch.isfinite(logits.grad).all()


def test_single_class_softmax_is_finite():
    x = torch.randn(4, 1, requires_grad=True)
    loss = softmax_focal_loss(x, torch.zeros(4, dtype=torch.long), gamma=0.5)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(x.grad).all()


def test_default_config_runs_on_both_tasks():
    cfg = OmegaConf.load(CONF)
    assert next(iter(cfg)) == "_target_"
    assert cfg.alpha == "auto"
    loss = instantiate(cfg, _convert_="all")
    assert loss.tasks == ("classification", "segmentation")
    x, y = torch.randn(8, 10), torch.randint(0, 10, (8,))  # fashion_mnist's shapes
    torch.testing.assert_close(loss(x, y), _softmax_reference(x, y, cfg.gamma).mean().float())
    logits, mask = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    expected = tv_sigmoid_focal(logits, mask, alpha=0.25, gamma=cfg.gamma, reduction="mean")
    torch.testing.assert_close(loss(logits, mask), expected)


def test_bf16_autocast_computes_in_float32_with_the_float32_value():
    x = torch.randn(4, 3).bfloat16()
    y = torch.tensor([0, 1, 2, 0])
    logits = torch.randn(2, 1, 3, 3).bfloat16()
    mask = (torch.rand(2, 1, 3, 3) > 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = FocalLoss()(x, y)
        dense = FocalLoss()(logits, mask.bfloat16())
    assert loss.dtype == dense.dtype == torch.float32
    # bf16 inputs upcast exactly and the same float32 computation follows: equal to the bit (a
    # loss computed in bf16 would be off by ~1e-3)
    torch.testing.assert_close(loss, FocalLoss()(x.float(), y), rtol=0.0, atol=0.0)
    torch.testing.assert_close(dense, FocalLoss()(logits.float(), mask), rtol=0.0, atol=0.0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions_and_none_shapes(reduction):
    x, y = torch.randn(6, 4), torch.randint(0, 4, (6,))
    per = _softmax_reference(x, y, 2.0).float()
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    torch.testing.assert_close(FocalLoss(alpha=None, reduction=reduction)(x, y), expected)


def test_pure_functions_check_gamma_and_reduction():
    x, y = torch.randn(4, 3), torch.randint(0, 3, (4,))
    with pytest.raises(ValueError, match=r"focal: expected gamma >= 0.0, got -0.5"):
        softmax_focal_loss(x, y, gamma=-0.5)
    with pytest.raises(ValueError, match=r"focal: expected reduction in"):
        sigmoid_focal_loss(x, torch.zeros(4, 3), reduction="avg")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"gamma": -1.0}, ValueError, "focal: expected gamma >= 0.0, got -1.0"),
        ({"alpha": 1.5}, ValueError, "focal: expected alpha >= 0.0 and alpha <= 1.0, got 1.5"),
        ({"alpha": -0.5}, ValueError, "focal: expected alpha >= 0.0 and alpha <= 1.0, got -0.5"),
        ({"alpha": []}, ValueError, "focal: expected alpha as a list of class weights"),
        ({"alpha": [0.5, -0.1]}, ValueError, "focal: expected non-negative class weights alpha"),
        ({"alpha": "balanced"}, TypeError, "focal: expected alpha as 'auto', a float"),
        ({"alpha": True}, TypeError, "focal: expected alpha as 'auto', a float"),
        ({"reduction": "avg"}, ValueError, "focal: expected reduction in"),
    ],
)
def test_bad_hyperparameters(kwargs, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace("[", r"\[")):
        FocalLoss(**kwargs)


@pytest.mark.parametrize(
    ("logits", "target", "error", "message"),
    [
        (
            torch.zeros(8, 10),
            torch.linspace(-2.0, 2.0, 80).view(8, 10),
            ValueError,
            r"focal: expected target values in \[0, 1\]",
        ),
        (
            torch.zeros(8, 10),
            torch.full((8,), 0.5),
            ValueError,
            r"focal: expected target of the same shape as the input float32 \[8, 10\]",
        ),
        (
            torch.zeros(8, 10),
            torch.zeros(8, 10, dtype=torch.long),
            TypeError,
            r"focal: expected target int64 class indices of shape \[8\], got int64 \[8, 10\]",
        ),
        (
            torch.zeros(8, 10),
            torch.full((8,), 10),
            ValueError,
            r"focal: expected class indices in \[0, 10\)",
        ),
        (
            torch.zeros(2, 1, 4, 4),
            torch.full((2, 1, 4, 4), 2.0),
            ValueError,
            r"focal: expected target values in \[0, 1\]",
        ),
    ],
)
def test_bad_tensors(logits, target, error, message):
    with pytest.raises(error, match=message):
        FocalLoss()(logits, target)
