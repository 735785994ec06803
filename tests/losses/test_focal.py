"""focal: softmax and sigmoid forms against references, stability at saturated logits, errors."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal

from losses.focal import FocalLoss, sigmoid_focal_loss, softmax_focal_loss

GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]


def _softmax_reference(x, y, gamma, alpha=None):
    p_t = F.softmax(x, dim=1).gather(1, y[:, None]).squeeze(1)
    loss = -((1 - p_t) ** gamma) * torch.log(p_t)
    return loss * torch.as_tensor(alpha)[y] if alpha is not None else loss


@pytest.mark.parametrize("gamma", GAMMAS)
def test_softmax_matches_the_formula(gamma):
    x, y = torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 5, (16,))
    alpha = [0.1, 0.2, 0.3, 0.2, 0.2]
    for a in (None, alpha):
        expected = _softmax_reference(x, y, gamma, a)
        torch.testing.assert_close(softmax_focal_loss(x, y, gamma, a, "none"), expected)
        torch.testing.assert_close(softmax_focal_loss(x, y, gamma, a), expected.mean())
        torch.testing.assert_close(softmax_focal_loss(x, y, gamma, a, "sum"), expected.sum())


@pytest.mark.parametrize("alpha", [None, -1.0, 0.25])
def test_gamma_zero_is_cross_entropy_on_both_tasks(alpha):
    x, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    # a float alpha is not used by the multi-class form: still exactly CE
    torch.testing.assert_close(FocalLoss(gamma=0.0, alpha=alpha)(x, y), F.cross_entropy(x, y))
    if alpha == 0.25:
        return
    logits, mask = torch.randn(2, 1, 5, 5), (torch.rand(2, 1, 5, 5) > 0.8).float()
    expected = F.binary_cross_entropy_with_logits(logits, mask)
    torch.testing.assert_close(FocalLoss(gamma=0.0, alpha=alpha)(logits, mask), expected)


def test_softmax_alpha_forms():
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 3, (8,))
    plain = softmax_focal_loss(x, y, 2.0, None, "none")
    torch.testing.assert_close(softmax_focal_loss(x, y, 2.0, 0.5, "none"), 0.5 * plain)
    weights = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(softmax_focal_loss(x, y, 2.0, weights, "none"), weights[y] * plain)
    # the module keeps per-class weights as a buffer (moves with .to(), saved in the state dict)
    module = FocalLoss(alpha=[0.2, 1.0, 3.0], reduction="none")
    assert "class_alpha" in module.state_dict()
    torch.testing.assert_close(module(x, y), weights[y] * plain)
    with pytest.raises(
        ValueError, match=r"focal: expected alpha as a float or 3 per-class weights"
    ):
        softmax_focal_loss(x, y, 2.0, [1.0, 2.0])
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
    torch.testing.assert_close(sigmoid_focal_loss(logits, mask, gamma, alpha, reduction), expected)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [0.25, -1.0])
def test_sigmoid_soft_targets_equal_torchvision(gamma, alpha):
    logits = torch.randn(4, 1, 5, 5, dtype=torch.float64) * 3
    soft = torch.rand(4, 1, 5, 5, dtype=torch.float64)
    expected = tv_sigmoid_focal(logits, soft, alpha=alpha, gamma=gamma, reduction="none")
    torch.testing.assert_close(sigmoid_focal_loss(logits, soft, gamma, alpha, "none"), expected)


def test_module_dispatches_on_the_target():
    logits = torch.randn(4, 3)
    assert FocalLoss()(logits, torch.tensor([0, 1, 2, 1])).shape == ()
    assert FocalLoss(reduction="none")(torch.randn(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)).shape == (
        2,
        1,
        3,
        3,
    )


@pytest.mark.parametrize("gamma", GAMMAS)
def test_gradcheck_float64(gamma):
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (6,))
    assert torch.autograd.gradcheck(
        lambda t: softmax_focal_loss(t, y, gamma, [0.5, 1.0, 2.0, 1.0]), (x,)
    )
    logits = torch.randn(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    mask = (torch.rand(2, 1, 3, 3) > 0.5).double()
    assert torch.autograd.gradcheck(lambda t: sigmoid_focal_loss(t, mask, gamma, 0.25), (logits,))


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("scale", [100.0, 1e4])
def test_saturated_logits_stay_finite(gamma, scale):
    # gamma < 1 has an infinite derivative of (1 - p)^gamma at p = 1: the log-space form is finite
    x = torch.tensor([[scale, -scale, 0.0], [-scale, scale, 0.0]], requires_grad=True)
    loss = FocalLoss(gamma=gamma, alpha=None)(x, torch.tensor([0, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    logits = torch.tensor([[[[scale, -scale], [scale, -scale]]]], requires_grad=True)
    loss = FocalLoss(gamma=gamma)(logits, torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_gradients_finite_over_every_logit_margin(gamma):
    # where p_t rounds to 1 in float32 (margins ~17 to ~104) the log-space forms must not divide
    # 0 by 0 anywhere: sweep the margin densely for both forms
    margin = torch.linspace(-200.0, 200.0, 4001, requires_grad=True)
    x = torch.stack([margin, torch.zeros_like(margin)], dim=1)
    softmax_focal_loss(x, torch.zeros(len(margin), dtype=torch.long), gamma).backward()
    assert torch.isfinite(margin.grad).all()
    logits = torch.linspace(-200.0, 200.0, 4001, requires_grad=True)
    sigmoid_focal_loss(logits, (torch.arange(4001) % 2).float(), gamma).backward()
    assert torch.isfinite(logits.grad).all()


def test_single_class_softmax_is_finite():
    x = torch.randn(4, 1, requires_grad=True)
    loss = softmax_focal_loss(x, torch.zeros(4, dtype=torch.long), 0.5)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(x.grad).all()


def test_default_config_runs_on_both_tasks():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(__file__).parents[2] / "conf" / "loss" / "focal.yaml")
    assert next(iter(cfg)) == "_target_"
    loss = instantiate(cfg, _convert_="all")
    assert loss.tasks == ("classification", "segmentation")
    x, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    torch.testing.assert_close(loss(x, y), softmax_focal_loss(x, y, cfg.gamma))
    logits, mask = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    expected = tv_sigmoid_focal(logits, mask, alpha=cfg.alpha, gamma=cfg.gamma, reduction="mean")
    torch.testing.assert_close(loss(logits, mask), expected)


def test_bf16_autocast_computes_in_float32():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = FocalLoss()(torch.randn(4, 3, dtype=torch.bfloat16), torch.tensor([0, 1, 2, 0]))
        dense = FocalLoss()(
            torch.randn(2, 1, 3, 3, dtype=torch.bfloat16), torch.ones(2, 1, 3, 3).bfloat16()
        )
    assert loss.dtype == dense.dtype == torch.float32


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions_and_none_shapes(reduction):
    x, y = torch.randn(6, 4), torch.randint(0, 4, (6,))
    per = softmax_focal_loss(x, y, 2.0, None, "none")
    assert per.shape == (6,)
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    torch.testing.assert_close(FocalLoss(alpha=None, reduction=reduction)(x, y), expected)


def test_pure_functions_check_gamma_and_reduction():
    x, y = torch.randn(4, 3), torch.randint(0, 3, (4,))
    with pytest.raises(ValueError, match=r"focal: expected gamma >= 0.0, got -0.5"):
        softmax_focal_loss(x, y, -0.5)
    with pytest.raises(ValueError, match=r"focal: expected reduction in"):
        sigmoid_focal_loss(x, torch.zeros(4, 3), 2.0, 0.25, "avg")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gamma": -1.0}, "focal: expected gamma >= 0.0, got -1.0"),
        ({"alpha": 1.5}, "focal: expected alpha >= 0.0 and alpha <= 1.0, got 1.5"),
        ({"alpha": -0.5}, "focal: expected alpha >= 0.0 and alpha <= 1.0, got -0.5"),
        ({"alpha": []}, "focal: expected non-negative class weights alpha"),
        ({"alpha": [0.5, -0.1]}, "focal: expected non-negative class weights alpha"),
        ({"reduction": "avg"}, "focal: expected reduction in"),
    ],
)
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        FocalLoss(**kwargs)


@pytest.mark.parametrize(
    ("logits", "target", "error", "message"),
    [
        (
            torch.randn(8, 10),
            torch.randn(8, 10),
            ValueError,
            r"focal: expected target values in \[0, 1\]",
        ),
        (
            torch.randn(8, 10),
            torch.rand(8),
            ValueError,
            r"focal: expected target of the same shape as the input float32 \[8, 10\]",
        ),
        (
            torch.randn(8, 10),
            torch.zeros(8, 10, dtype=torch.long),
            TypeError,
            r"focal: expected target int64 class indices of shape \[8\], got int64 \[8, 10\]",
        ),
        (
            torch.randn(8, 10),
            torch.full((8,), 10),
            ValueError,
            r"focal: expected class indices in \[0, 10\)",
        ),
        (
            torch.randn(2, 1, 4, 4),
            torch.full((2, 1, 4, 4), 2.0),
            ValueError,
            r"focal: expected target values in \[0, 1\]",
        ),
    ],
)
def test_bad_tensors(logits, target, error, message):
    with pytest.raises(error, match=message):
        FocalLoss()(logits, target)
