"""One contract for every loss config and every registered task: each task has a data config,
test examples (``tests/task_examples/<task>.py``) that give every data config of the task a tiny
budget and the losses it names that fit it, and a replayable reference batch; each loss composes
with a data config of every task it declares, trains a few steps end to end, and fits its task's
reference batch. A new ``conf/loss/*.yaml`` or a new task is tested the moment it exists
(``tests/test_toy_task.py`` adds one to a copy of the repository and watches these tests pick it
up).
"""

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import strategies as st
from omegaconf import OmegaConf
from task_examples import (
    DATA_TASKS,
    TASK_DATA,
    data_configs,
    default_model,
    example_modules,
    examples,
    loss_stats,
    stream_loss_pair,
    tiny_budget,
)
from torch import Tensor, nn

from train import train
from trainer.config import declared_tasks, instantiate_with_data
from trainer.tasks import TASKS, Task

CONF = Path(__file__).resolve().parent.parent / "conf"
LOSSES = sorted(p.stem for p in (CONF / "loss").glob("*.yaml"))
# the overfit test: Adam on the outputs themselves, its step size decaying to 0 so the last steps
# settle instead of oscillating around the minimum
STEPS, LR = 60, 0.1
# every shipped loss can reach (near) 0 on its reference batch (none has a floor: Dice and
# Tversky are smoothed to 0 at a perfect prediction, KL to a soft target is 0 at that target), so
# halving it is a clear decrease; measured, each ends below a quarter of its start
FACTOR = 0.5


def declared_pairs() -> Iterator[tuple[str, str]]:
    """``(loss config, task)`` for every task each ``conf/loss/*.yaml`` declares."""
    for path in sorted((CONF / "loss").glob("*.yaml")):
        for task in sorted(declared_tasks(OmegaConf.load(path))):
            yield path.stem, task


def pair_params() -> list:
    """:func:`declared_pairs` as pytest parameters named ``loss-task``."""
    return [pytest.param(loss, task, id=f"{loss}-{task}") for loss, task in declared_pairs()]


def task_class(task: str) -> type[Task]:
    """The registered class of ``task``, or a failure saying which tasks are registered."""
    if task not in TASKS:
        pytest.fail(f"task {task!r} has no registered task class; registered: {sorted(TASKS)}")
    return TASKS[task]


def load_loss(name: str, task: Task, reduction: str | None = None) -> nn.Module:
    """The loss of ``conf/loss/<name>.yaml``, built with the task's example data stats."""
    cfg = OmegaConf.load(CONF / "loss" / f"{name}.yaml")
    if reduction is not None:
        cfg.reduction = reduction
    return instantiate_with_data(cfg, loss_stats(task))


class _FlippedGradient(torch.autograd.Function):
    """Identity forward, negated gradient: a loss whose gradient points the wrong way."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return -grad


def overfit_ratio(
    loss_fn: nn.Module, outputs: Tensor, target: Tensor, steps: int = STEPS, lr: float = LR
) -> float:
    """Final over initial loss after ``steps`` Adam steps on ``outputs`` as a free parameter."""
    torch.manual_seed(0)  # random triplet mining draws from torch's global generator
    param = nn.Parameter(outputs.clone())
    optimizer = torch.optim.Adam([param], lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    with torch.no_grad():
        initial = float(loss_fn(param, target))
    if not initial > 0:
        raise ValueError(f"the reference batch starts at loss {initial}: nothing to lower")
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(param, target).backward()
        optimizer.step()
        scheduler.step()
    with torch.no_grad():
        return float(loss_fn(param, target)) / initial


def check_overfits(name: str, task_name: str) -> None:
    """The loss falls below ``FACTOR`` of its start on the task's reference batch."""
    task = task_class(task_name).example()
    outputs, target = task.reference_batch(seed=0)
    ratio = overfit_ratio(load_loss(name, task), outputs, target)
    assert ratio < FACTOR, f"{name} on {task_name}: loss fell to {ratio:.3f} of its start"


def loss_names(pair: tuple[list[str], list[str]]) -> list[str]:
    """The loss configs a pair of override lists chooses (``loss=<name>``)."""
    return [o.split("=", 1)[1] for overrides in pair for o in overrides if o.startswith("loss=")]


def check_task_contract(task_name: str) -> None:
    """The task has a data config, test examples (fuzz inputs, a tiny budget for each of its
    data configs and their models, two pairs of losses that fit it) and a replayable reference
    batch."""
    assert data_configs(task_name), f"task {task_name} has no data config"
    task = task_class(task_name).example()
    first, again, other = task.reference_batch(0), task.reference_batch(0), task.reference_batch(1)
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(first[0], other[0]), f"{task_name}: reference_batch ignores its seed"
    module = examples(task_name)
    inputs = module.loss_inputs(task)
    assert isinstance(inputs, st.SearchStrategy), f"{task_name}: no input strategy"
    assert set(module.TINY_DATA) == set(data_configs(task_name)), f"{task_name}: TINY_DATA"
    for data in data_configs(task_name):
        assert tiny_budget(data, default_model(data)), data
    fitting = {loss for loss, task in declared_pairs() if task == task_name}
    for pair in (module.LOSS_PAIR, stream_loss_pair(task_name)):
        assert len(pair) == 2 and set(loss_names(pair)) <= fitting, (task_name, pair)


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_config_is_a_lab_note(loss: str):
    text = (CONF / "loss" / f"{loss}.yaml").read_text()
    first_key = next(line for line in text.splitlines() if line and not line.startswith("#"))
    assert first_key.startswith("_target_:"), f"{loss}.yaml: _target_ must come first"
    assert declared_tasks(OmegaConf.load(CONF / "loss" / f"{loss}.yaml")), (
        f"{loss} declares no task"
    )


@pytest.mark.parametrize("task", sorted(TASKS))
def test_task_has_data_and_contract_inputs(task: str):
    check_task_contract(task)


def test_every_task_of_the_data_configs_and_examples_is_registered():
    assert set(DATA_TASKS.values()) == set(TASKS) == set(TASK_DATA)
    assert set(example_modules()) == set(TASKS), "an examples module without a registered task"


@pytest.mark.parametrize(("loss", "task"), pair_params())
def test_loss_lowers_on_its_reference_batch(loss: str, task: str):
    check_overfits(loss, task)


@pytest.mark.parametrize(("loss", "task"), pair_params())
def test_calling_a_loss_changes_none_of_its_state(loss: str, task: str):
    # the rule for losses (no state changed in forward): a call leaves its buffers, parameters
    # and attributes as they were, and the same batch gives the same value again (random mining
    # draws from the global generator: seeded alike before each call)
    example = task_class(task).example()
    loss_fn = load_loss(loss, example)
    outputs, target = example.reference_batch(seed=0)
    state = {key: value.clone() for key, value in loss_fn.state_dict().items()}
    attributes = repr({k: v for k, v in vars(loss_fn).items() if not k.startswith("_")})
    values = []
    for _ in range(2):
        torch.manual_seed(0)
        values.append(loss_fn(outputs, target))
    torch.testing.assert_close(values[0], values[1], rtol=0, atol=0)
    after = loss_fn.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[key], value) for key, value in state.items()), loss
    assert repr({k: v for k, v in vars(loss_fn).items() if not k.startswith("_")}) == attributes


@pytest.mark.parametrize("broken", ["flipped_gradient", "zero_lr"])
def test_the_overfit_check_catches_a_loss_that_does_not_learn(broken: str):
    task = TASKS["classification"].example()
    outputs, target = task.reference_batch(seed=0)
    ce = load_loss("ce", task)
    if broken == "flipped_gradient":
        ratio = overfit_ratio(lambda x, y: ce(_FlippedGradient.apply(x), y), outputs, target)
        assert ratio > 1.0  # ascends: the loss rises
    else:
        assert overfit_ratio(ce, outputs, target, lr=0.0) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize(("loss", "task"), pair_params())
def test_loss_trains_on_every_task_it_declares(make_cfg, tmp_path: Path, loss: str, task: str):
    assert task in TASK_DATA, f"task {task} has no data config"
    metrics = train(make_cfg(f"data={TASK_DATA[task]}", f"loss={loss}"))
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "completed"
    assert math.isfinite(metrics["train/loss_epoch"])
    assert math.isfinite(metrics["test/loss"])
