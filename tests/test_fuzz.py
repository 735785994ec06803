"""Property-based tests over every loss config and each task it declares, on inputs drawn from
the task's own strategy (``loss_inputs`` of ``tests/task_examples/<task>.py``: random shapes,
logits up to ±1e4, empty, full and one-pixel masks, zero-area boxes, constant images,
single-class batches). Outputs and gradients stay finite; ``reduction='none'`` gives one value
per element, per sample, or per mined pair or triplet as the task's examples say
(``per_item_shapes``). A declared task without a registered class or test examples fails. A loss class that sets ``stable = False`` (``bce_manual``, the textbook
``-(y log σ(x) + (1 - y) log(1 - σ(x)))``, kept on purpose) is shown to break instead.

Hypothesis runs derandomized (the same examples on every run), and every tensor comes from drawn
values or a torch generator seeded from a drawn integer, so a failure replays exactly.
"""

import functools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from task_examples import examples, per_item_shapes
from test_contract import CONF, load_loss, pair_params, task_class
from torch import nn

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@functools.cache
def built_loss(name: str, task_name: str, reduction: str | None = None) -> nn.Module:
    """The loss built once per worker for the task's example data stats, not once per drawn
    batch: hypothesis draws 40 of them per test, and reading and instantiating the config for
    each was most of the test's time. A call changes no state of a loss (``test_contract``), so
    one instance sees every batch."""
    return load_loss(name, task_class(task_name).example(), reduction)


@functools.cache
def takes_reduction(name: str) -> bool:
    return "reduction" in OmegaConf.load(CONF / "loss" / f"{name}.yaml")


def check_finite_and_shaped(name: str, task_name: str, data: st.DataObject) -> None:
    """One drawn batch through the loss: finite value and gradient (unless the loss says it is
    unstable), and ``reduction='none'`` of a shape the task allows."""
    task = task_class(task_name).example()
    x, target = data.draw(examples(task_name).loss_inputs(task), label="outputs, target")
    x.requires_grad_(True)
    loss_fn = built_loss(name, task_name)
    loss = loss_fn(x, target)
    (grad,) = torch.autograd.grad(loss, x)
    if getattr(loss_fn, "stable", True):
        assert torch.isfinite(loss), (name, loss)
        assert torch.isfinite(grad).all(), name
    if takes_reduction(name):
        per_item_fn = built_loss(name, task_name, reduction="none")
        per_item = per_item_fn(x.detach(), target)
        allowed = per_item_shapes(task, per_item_fn, x, target)
        assert tuple(per_item.shape) in allowed, (name, tuple(per_item.shape), allowed)
    else:  # made of other losses (combo), each reducing to a scalar
        assert loss.ndim == 0, (name, tuple(loss.shape))


@pytest.mark.parametrize(("name", "task"), pair_params())
@FUZZ
@given(data=st.data())
def test_loss_and_gradients_stay_finite(name: str, task: str, data: st.DataObject):
    check_finite_and_shaped(name, task, data)


def test_the_unstable_form_is_unstable_on_purpose():
    task = task_class("segmentation").example()
    loss_fn = load_loss("bce_manual", task)
    assert loss_fn.stable is False
    x = torch.tensor([[[[100.0, -100.0]]]], requires_grad=True)
    assert not torch.isfinite(loss_fn(x, torch.tensor([[[[0.0, 1.0]]]])))
