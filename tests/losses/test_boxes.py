"""giou: torchvision's values, a hand-computed pair, non-overlapping gradients, inverted boxes
rejected, errors."""

import inspect

import pytest
import torch
from torchvision.ops import generalized_box_iou_loss

from losses import boxes
from losses.base import Loss
from losses.boxes import GIoU, giou


def _boxes(n: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=g, dtype=dtype)
    return torch.cat([corner, corner + torch.rand(n, 2, generator=g, dtype=dtype) * 0.5], dim=1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_equal_to_torchvision(reduction):
    p, t = _boxes(64, 0), _boxes(64, 1)
    torch.testing.assert_close(
        GIoU(reduction=reduction)(p, t), generalized_box_iou_loss(p, t, reduction=reduction)
    )


def test_hand_computed_pair():
    # [0, 2]² against [1, 3] x [0, 2]: I = 2, U = 6, C = 3 x 2 = 6: 1 - 1/3 + 0
    # [0, 1]² against [2, 3]²: I = 0, U = 2, C = 9: 1 - 0 + 7/9
    p = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0, 3.0, 2.0], [2.0, 2.0, 3.0, 3.0]], dtype=torch.float64)
    expected = torch.tensor([1 - 2 / (6 + 1e-7), 1 + 7 / (9 + 1e-7)], dtype=torch.float64)
    torch.testing.assert_close(GIoU(reduction="none")(p, t), expected)


def test_identical_boxes_give_zero_and_disjoint_ones_still_have_a_gradient():
    b = _boxes(8)
    torch.testing.assert_close(giou(b, b), torch.zeros((), dtype=b.dtype), atol=1e-5, rtol=0)  # eps
    p = torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    loss = giou(p, torch.tensor([[2.0, 2.0, 3.0, 3.0]], dtype=torch.float64))
    loss.backward()
    assert loss.item() > 1.0 and p.grad.abs().sum() > 0  # IoU would be 0 with zero gradient


def test_gradcheck_float64():
    p, t = _boxes(6, 0).requires_grad_(True), _boxes(6, 1)
    assert torch.autograd.gradcheck(lambda x: giou(x, t), (p,))


def test_zero_area_and_extreme_boxes_stay_finite():
    p = torch.tensor([[0.5, 0.5, 0.5, 0.5], [-1e4, -1e4, 1e4, 1e4]], requires_grad=True)
    loss = GIoU()(p, torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(p.grad).all()


def test_bf16_autocast_computes_in_float32():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (
            GIoU()(_boxes(4, dtype=torch.bfloat16), _boxes(4, 1, torch.float32)).dtype
            == torch.float32
        )


@pytest.mark.parametrize(
    ("prediction", "target", "error", "message"),
    [
        (
            torch.tensor([[0.5, 0.0, 0.2, 1.0]]),
            torch.tensor([[0.0, 0.0, 1.0, 1.0]]),
            ValueError,
            r"giou: expected prediction boxes with x1 <= x2 and y1 <= y2, got prediction box 0 = \[0.5, 0.0, 0.2, 1.0\]",
        ),
        (
            torch.tensor([[0.0, 0.0, 1.0, 1.0]]),
            torch.tensor([[0.0, 0.9, 1.0, 0.1]]),
            ValueError,
            r"giou: expected target boxes with x1 <= x2 and y1 <= y2",
        ),
        (
            torch.rand(4, 5),
            torch.rand(4, 5),
            ValueError,
            r"giou: expected prediction boxes of shape \[N, 4\] \(x1, y1, x2, y2\), got float32 \[4, 5\]",
        ),
        (
            torch.tensor([[0.0, 0.0, 1.0, 1.0]]),
            torch.tensor([[0, 0, 1, 1]]),
            TypeError,
            r"giou: expected target as a floating tensor, got int64 \[1, 4\]",
        ),
    ],
)
def test_bad_boxes(prediction, target, error, message):
    with pytest.raises(error, match=message):
        GIoU()(prediction, target)


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match=r"giou: expected eps > 0.0, got 0.0"):
        GIoU(eps=0.0)
    with pytest.raises(ValueError, match=r"giou: expected reduction in"):
        giou(_boxes(2), _boxes(2), reduction="avg")


LOSS_CLASSES = [
    c
    for _, c in inspect.getmembers(boxes, inspect.isclass)
    if issubclass(c, Loss) and c.__module__ == boxes.__name__ and not c.__name__.startswith("_")
]


def test_every_module_is_covered():
    assert set(LOSS_CLASSES) == {GIoU}
