"""A seventh task defined here and nowhere else: a datamodule, a task class and configs in a
temporary config directory (reached through ``hydra.searchpath``) train end to end through
``train.train`` and go through the same contract and fuzz checks as the shipped tasks. It shows
what adding a task takes, and that nothing else in the repository has to change.

The toy task: predict the scaled sum of 8 standard-normal features (mean absolute error).
"""

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import FAST_TRAINER
from hypothesis import given
from hypothesis import strategies as st
from test_contract import check_overfits, check_task_contract, data_config_for, declared_pairs
from test_fuzz import FUZZ, check_finite_and_shaped
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MetricCollection

from datasets._base import InMemoryDataModule, TensorBatches
from losses.regression import L1
from train import train
from trainer.tasks import TASKS, Task, register
from trainer.tasks.base import logits

FEATURES = 8


class ToyDataModule(InMemoryDataModule):
    """``data=toy``: rows of ``FEATURES`` standard-normal values, target their sum / sqrt(D)."""

    task = "toy"
    name = "toy"
    num_classes = 1  # unused: one output value

    def __init__(self, n_train: int, n_val: int, n_test: int, batch_size: int, seed: int = 0):
        super().__init__(batch_size, eval_batch_size=n_val)
        self.sizes, self.seed = (n_train, n_val, n_test), seed

    @property
    def model_inputs(self) -> dict:
        return {"in_shape": [FEATURES], "num_outputs": 1}

    def build_splits(self) -> tuple[TensorBatches, TensorBatches, TensorBatches]:
        g = torch.Generator().manual_seed(self.seed)
        splits = []
        for n in self.sizes:
            x = torch.randn(n, FEATURES, generator=g)
            splits.append(TensorBatches(x, x.sum(1, keepdim=True) / math.sqrt(FEATURES)))
        return tuple(splits)


class ToyTask(Task):
    """Mean absolute error of the predicted sums."""

    name = "toy"
    monitor = "mae"
    mode = "min"

    def metrics(self) -> MetricCollection:
        return MetricCollection({"mae": MeanAbsoluteError()})

    def loss_inputs(self) -> st.SearchStrategy[tuple[Tensor, Tensor]]:
        rows = st.integers(1, 16)
        return rows.flatmap(lambda n: st.tuples(logits((n, 1)), logits((n, 1))))

    def reference_batch(self, seed: int) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(16, 1, generator=g) * 0.1, torch.randn(16, 1, generator=g)


class ToyL1(L1):
    """``loss=toy_l1``: the shipped L1, declared for the toy task."""

    tasks = ("toy",)


CONFIGS = {
    "data/toy.yaml": f"""\
defaults:
  - override /model@_global_.model: mlp
  - override /loss@_global_.loss: toy_l1

_target_: {__name__}.ToyDataModule
n_train: 256
n_val: 64
n_test: 64
batch_size: 32
seed: 0
""",
    "loss/toy_l1.yaml": f"""\
_target_: {__name__}.ToyL1
reduction: mean
""",
}


@pytest.fixture
def toy_conf(tmp_path_factory) -> Path:
    """A config directory holding only the toy task's data and loss configs."""
    conf = tmp_path_factory.mktemp("toy_conf")
    for relative, text in CONFIGS.items():
        (conf / relative).parent.mkdir(exist_ok=True)
        (conf / relative).write_text(text)
    return conf


@pytest.fixture
def toy_task():
    """``ToyTask`` registered for one test: the registry holds only the shipped tasks otherwise."""
    register(ToyTask)
    yield ToyTask
    del TASKS[ToyTask.name]


def test_the_toy_task_trains_end_to_end(make_cfg, tmp_path: Path, toy_conf: Path, toy_task):
    cfg = make_cfg(
        "data=toy",
        f"hydra.searchpath=['file://{toy_conf}']",
        "model.hidden=[16]",
        *FAST_TRAINER,
        tiny=False,
    )
    assert (cfg.loss._target_, cfg.model._target_) == (f"{__name__}.ToyL1", "trainer.models.MLP")
    metrics = train(cfg)
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "completed"
    assert math.isfinite(metrics["test/mae"]) and math.isfinite(metrics["train/loss_epoch"])


def test_the_contract_picks_up_the_toy_task(toy_conf: Path, toy_task):
    assert list(declared_pairs(toy_conf)) == [("toy_l1", "toy")]
    check_task_contract("toy", toy_conf)
    check_overfits(toy_conf, "toy_l1", "toy")


@FUZZ
@given(data=st.data())
def test_the_fuzz_tests_pick_up_the_toy_task(toy_conf: Path, toy_task, data: st.DataObject):
    check_finite_and_shaped(toy_conf, "toy_l1", "toy", data)


def test_an_unregistered_task_fails_instead_of_being_skipped(toy_conf: Path):
    assert "toy" not in TASKS
    with pytest.raises(pytest.fail.Exception, match="task 'toy' has no registered task class"):
        check_overfits(toy_conf, "toy_l1", "toy")
    with pytest.raises(pytest.fail.Exception, match="task 'toy' has no registered task class"):
        check_finite_and_shaped(toy_conf, "toy_l1", "toy", data=None)
    # the shipped configs hold no toy data: the contract's data check fails on them
    assert data_config_for("toy") is None
    with pytest.raises(AssertionError, match="task toy has no data config"):
        check_task_contract("toy")
