"""One contract for every loss config and every registered task: each task has a data config
and contract inputs; each loss composes with a data config of every task it declares, trains a
few steps end to end, and fits its task's reference batch. A new ``conf/loss/*.yaml`` or a new
task is tested the moment it exists.

The helpers take a config directory, so a task defined elsewhere (``tests/test_toy_task.py``)
goes through the same checks.
"""

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra.utils import get_class
from hypothesis import strategies as st
from omegaconf import OmegaConf
from torch import Tensor, nn

from train import train
from trainer.config import declared_tasks, instantiate_with_data
from trainer.tasks import TASKS, Task

CONF = Path(__file__).resolve().parent.parent / "conf"
LOSSES = sorted(p.stem for p in (CONF / "loss").glob("*.yaml"))
# data configs that need files on disk: the contract prefers the synthetic ones of a task
NEEDS_FILES = ("fashion_mnist",)
# the overfit test: Adam on the outputs themselves, its step size decaying to 0 so the last steps
# settle instead of oscillating around the minimum
STEPS, LR = 60, 0.1
# every shipped loss can reach (near) 0 on its reference batch (none has a floor: Dice and
# Tversky are smoothed to 0 at a perfect prediction, KL to a soft target is 0 at that target), so
# halving it is a clear decrease; measured, each ends below a quarter of its start
FACTOR = 0.5


def declared_pairs(conf_dir: Path = CONF) -> Iterator[tuple[str, str]]:
    """``(loss config, task)`` for every task each ``conf_dir/loss/*.yaml`` declares."""
    for path in sorted((conf_dir / "loss").glob("*.yaml")):
        for task in sorted(declared_tasks(OmegaConf.load(path))):
            yield path.stem, task


def pair_params(conf_dir: Path = CONF) -> list:
    """:func:`declared_pairs` as pytest parameters named ``loss-task``."""
    return [
        pytest.param(loss, task, id=f"{loss}-{task}") for loss, task in declared_pairs(conf_dir)
    ]


def data_config_for(task: str, conf_dir: Path = CONF) -> str | None:
    """A data config of ``conf_dir/data`` whose datamodule declares ``task`` (synthetic first)."""
    names = sorted(
        (p.stem for p in (conf_dir / "data").glob("*.yaml")),
        key=lambda stem: (stem in NEEDS_FILES, stem),
    )
    return next(
        (
            name
            for name in names
            if get_class(OmegaConf.load(conf_dir / "data" / f"{name}.yaml")._target_).task == task
        ),
        None,
    )


def task_class(task: str) -> type[Task]:
    """The registered class of ``task``, or a failure saying which tasks are registered."""
    if task not in TASKS:
        pytest.fail(f"task {task!r} has no registered task class; registered: {sorted(TASKS)}")
    return TASKS[task]


def load_loss(conf_dir: Path, name: str, task: Task, reduction: str | None = None) -> nn.Module:
    """The loss of ``conf_dir/loss/<name>.yaml``, built with the task's example data stats."""
    cfg = OmegaConf.load(conf_dir / "loss" / f"{name}.yaml")
    if reduction is not None:
        cfg.reduction = reduction
    return instantiate_with_data(cfg, task.loss_stats())


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


def check_overfits(conf_dir: Path, name: str, task_name: str) -> None:
    """The loss falls below ``FACTOR`` of its start on the task's reference batch."""
    task = task_class(task_name).example()
    outputs, target = task.reference_batch(seed=0)
    ratio = overfit_ratio(load_loss(conf_dir, name, task), outputs, target)
    assert ratio < FACTOR, f"{name} on {task_name}: loss fell to {ratio:.3f} of its start"


def check_task_contract(task_name: str, conf_dir: Path = CONF) -> None:
    """The task has a data config, contract inputs and a replayable reference batch."""
    assert data_config_for(task_name, conf_dir), f"task {task_name} has no data config"
    task = task_class(task_name).example()
    first, again, other = task.reference_batch(0), task.reference_batch(0), task.reference_batch(1)
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(first[0], other[0]), f"{task_name}: reference_batch ignores its seed"
    assert isinstance(task.loss_inputs(), st.SearchStrategy), f"{task_name}: no input strategy"


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


@pytest.mark.parametrize(("loss", "task"), pair_params())
def test_loss_lowers_on_its_reference_batch(loss: str, task: str):
    check_overfits(CONF, loss, task)


@pytest.mark.parametrize("broken", ["flipped_gradient", "zero_lr"])
def test_the_overfit_check_catches_a_loss_that_does_not_learn(broken: str):
    task = TASKS["classification"].example()
    outputs, target = task.reference_batch(seed=0)
    ce = load_loss(CONF, "ce", task)
    if broken == "flipped_gradient":
        ratio = overfit_ratio(lambda x, y: ce(_FlippedGradient.apply(x), y), outputs, target)
        assert ratio > 1.0  # ascends: the loss rises
    else:
        assert overfit_ratio(ce, outputs, target, lr=0.0) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize(("loss", "task"), pair_params())
def test_loss_trains_on_every_task_it_declares(make_cfg, tmp_path: Path, loss: str, task: str):
    data = data_config_for(task)
    assert data, f"task {task} has no data config"
    metrics = train(make_cfg(f"data={data}", f"loss={loss}"))
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "completed"
    assert math.isfinite(metrics["train/loss_epoch"])
    assert math.isfinite(metrics["test/loss"])
