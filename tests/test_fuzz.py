"""Property-based tests over every loss config and each task it fits: random shapes, inputs up to
±1e4, empty and full masks, zero-area boxes, constant images, single-class batches. Outputs and gradients stay finite; ``reduction='none'`` keeps one
value per element or per sample. A loss class that sets ``stable = False`` (``bce_manual``, the
seeds' unstable form, kept on purpose) is shown to break instead."""

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from trainer.config import declared_tasks, instantiate_with_data

CONF = Path(__file__).resolve().parent.parent / "conf" / "loss"
NUM_CLASSES = 5
STATS = {"class_counts": [100, 50, 10, 5, 1]}


@st.composite
def logits(draw, shape: tuple[int, ...]) -> torch.Tensor:
    scale = draw(st.sampled_from([1.0, 10.0, 100.0, 1e4]))
    seed = draw(st.integers(0, 2**16))
    x = (
        torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        * scale
    )
    if draw(st.booleans()):  # saturated: every logit at ±scale
        x = x.sign() * scale
    return x


@st.composite
def classification(draw):
    n = draw(st.integers(1, 16))
    x = draw(logits((n, NUM_CLASSES)))
    single = draw(st.booleans())
    target = (
        torch.full((n,), draw(st.integers(0, NUM_CLASSES - 1)))
        if single
        else torch.randint(0, NUM_CLASSES, (n,))
    )
    return x, target


@st.composite
def segmentation(draw):
    n, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    x = draw(logits((n, 1, h, w)))
    kind = draw(st.sampled_from(["empty", "full", "random", "one_pixel"]))
    mask = {
        "empty": torch.zeros(n, 1, h, w),
        "full": torch.ones(n, 1, h, w),
        "random": (torch.rand(n, 1, h, w) < 0.1).float(),
        "one_pixel": torch.zeros(n, 1, h, w).index_put_(
            (torch.tensor([0]),) * 4, torch.tensor(1.0)
        ),
    }[kind]
    return x, mask.double()


@st.composite
def regression(draw):
    n, d = draw(st.integers(1, 16)), draw(st.integers(1, 4))
    return draw(logits((n, d))), draw(logits((n, d)))


@st.composite
def boxes(draw):
    n = draw(st.integers(1, 16))
    scale = draw(st.sampled_from([1.0, 100.0, 1e4]))
    sizes = draw(st.sampled_from([0.0, 1.0]))  # 0: zero-area boxes

    def valid(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        corner = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale
        return torch.cat(
            [corner, corner + torch.rand(n, 2, generator=g, dtype=torch.float64) * scale * sizes], 1
        )

    return valid(draw(st.integers(0, 2**16))), valid(draw(st.integers(0, 2**16)))


@st.composite
def restoration(draw):
    n, c = draw(st.integers(1, 3)), draw(st.sampled_from([1, 3]))
    h, w = draw(st.integers(11, 20)), draw(st.integers(11, 20))
    constant = draw(st.booleans())
    clean = (
        torch.zeros(n, c, h, w, dtype=torch.float64)
        if constant
        else torch.rand(n, c, h, w, dtype=torch.float64)
    )
    return draw(logits((n, c, h, w))), clean


@st.composite
def retrieval(draw):
    n = draw(st.integers(2, 16))
    labels = torch.randint(0, draw(st.integers(1, 4)), (n,))
    return draw(logits((n, draw(st.integers(1, 8))))), labels


INPUTS = {
    "classification": classification,
    "segmentation": segmentation,
    "regression": regression,
    "boxes": boxes,
    "restoration": restoration,
    "retrieval": retrieval,
}


def _cases():
    for path in sorted(CONF.glob("*.yaml")):
        for task in sorted(declared_tasks(OmegaConf.load(path)) & INPUTS.keys()):
            yield pytest.param(path.stem, task, id=f"{path.stem}-{task}")


def _loss(name: str, reduction: str | None = None):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    if reduction and "reduction" in cfg:
        cfg.reduction = reduction
    return instantiate_with_data(cfg, STATS)


@pytest.mark.parametrize(("name", "task"), list(_cases()))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_loss_and_gradients_stay_finite(name: str, task: str, data):
    loss_fn = _loss(name)
    x, target = data.draw(INPUTS[task]())
    x.requires_grad_(True)
    loss = loss_fn(x, target)
    (grad,) = torch.autograd.grad(loss, x)
    if getattr(loss_fn, "stable", True):
        assert torch.isfinite(loss), (name, loss)
        assert torch.isfinite(grad).all(), name
    per_item = _loss(name, "none")(x.detach(), target)
    # element-wise, per sample, per mined triplet/pair (1-D), or a scalar when nothing was mined
    assert per_item.ndim <= 1 or per_item.shape in (x.shape, target.shape), (name, per_item.shape)


def test_the_unstable_form_is_unstable_on_purpose():
    loss_fn = _loss("bce_manual")
    assert loss_fn.stable is False
    x = torch.tensor([[[[100.0, -100.0]]]], requires_grad=True)
    assert not torch.isfinite(loss_fn(x, torch.tensor([[[[0.0, 1.0]]]])))
