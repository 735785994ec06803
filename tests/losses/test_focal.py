"""focal: softmax and sigmoid forms against references, stability at saturated logits, errors."""

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


def test_gamma_zero_is_cross_entropy_on_both_tasks():
    x, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    torch.testing.assert_close(FocalLoss(gamma=0.0, alpha=None)(x, y), F.cross_entropy(x, y))
    logits, mask = torch.randn(2, 1, 5, 5), (torch.rand(2, 1, 5, 5) > 0.8).float()
    expected = F.binary_cross_entropy_with_logits(logits, mask)
    torch.testing.assert_close(FocalLoss(gamma=0.0, alpha=None)(logits, mask), expected)


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


def test_bf16_autocast_computes_in_float32():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = FocalLoss()(torch.randn(4, 3, dtype=torch.bfloat16), torch.tensor([0, 1, 2, 0]))
    assert loss.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gamma": -1.0}, "focal: expected gamma >= 0.0, got -1.0"),
        ({"alpha": 1.5}, "focal: expected alpha >= 0.0 and alpha <= 1.0, got 1.5"),
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
