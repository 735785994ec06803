"""A seventh task, added to a copy of the repository in exactly the five artifacts a task takes:
a datamodule (``datasets/toy.py``), its data config (``conf/data/toy.yaml``), a task class
(``trainer/tasks/toy.py``), its test examples (``tests/task_examples/toy.py``), and its name in
the ``tasks`` of the losses that fit it (the element-wise regression losses). Nothing else in the
copy changes, and the copy's parametrized tests pick the task up by themselves: the contract
(training end to end included), the fuzz tests, the task tests, the paired design and lockstep
run it and pass.

The toy task: predict the scaled sum of 8 standard-normal features (mean absolute error).
"""

import filecmp
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from task_examples import examples
from test_contract import check_overfits, check_task_contract
from test_fuzz import check_finite_and_shaped

from trainer.tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent
# what the copy holds: the code, the configs and the tests (no outputs, data or docs)
COPIED = ("conf", "datasets", "hydra_plugins", "losses", "tests", "trainer")
COPIED_FILES = ("pyproject.toml", "train.py")
# the fifth artifact: the toy's name added to the tasks of the losses that fit it
LOSS_MODULE = "losses/regression.py"
FITTING = 'tasks = ("regression", "boxes", "restoration")'
TOY_FILES = {
    "datasets/toy.py": '''\
"""``data=toy``: rows of standard-normal features, the target their sum / sqrt(D)."""

import math

import torch

from datasets._base import InMemoryDataModule, TensorBatches


class ToyDataModule(InMemoryDataModule):
    task = "toy"
    name = "toy"
    num_classes = 1  # unused: one output value

    def __init__(
        self, n_train: int, n_val: int, n_test: int, batch_size: int, features: int, seed: int
    ):
        super().__init__(batch_size, eval_batch_size=n_val)
        self.sizes, self.features, self.seed = (n_train, n_val, n_test), features, seed

    @property
    def model_inputs(self) -> dict:
        return {"in_shape": [self.features], "num_outputs": 1}

    def build_splits(self) -> tuple[TensorBatches, TensorBatches, TensorBatches]:
        g = torch.Generator().manual_seed(self.seed)
        splits = []
        for n in self.sizes:
            x = torch.randn(n, self.features, generator=g)
            splits.append(TensorBatches(x, x.sum(1, keepdim=True) / math.sqrt(self.features)))
        return tuple(splits)
''',
    "conf/data/toy.yaml": """\
_target_: datasets.toy.ToyDataModule
defaults:
  - override /model@_global_.model: mlp
  - override /loss@_global_.loss: l1

n_train: 512
n_val: 128
n_test: 128
batch_size: 32
features: 8
seed: 0
""",
    "trainer/tasks/toy.py": '''\
"""The toy task: one predicted value per row against its target."""

import torch
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MetricCollection

from trainer.tasks.base import Task, register


@register
class Toy(Task):
    """Mean absolute error of the predicted values."""

    name = "toy"
    monitor = "mae"
    mode = "min"

    def metrics(self) -> MetricCollection:
        return MetricCollection({"mae": MeanAbsoluteError()})

    def reference_batch(self, seed: int) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(16, 1, generator=g) * 0.1, torch.randn(16, 1, generator=g)
''',
    "tests/task_examples/toy.py": '''\
"""The toy task's test examples."""

from hypothesis import strategies as st
from strategies import logits

TINY_DATA = {"toy": ["data.n_train=256", "data.n_val=64", "data.n_test=64"]}
TINY_MODEL = {}  # model=mlp: the regression examples shrink it
LOSS_PAIR = (["loss=l1"], ["loss=mse"])


def loss_inputs(task):
    rows = st.integers(1, 16)
    return rows.flatmap(lambda n: st.tuples(logits((n, 1)), logits((n, 1))))
''',
}
# what the copy's parametrized tests must run on the toy task, and pass
TESTS = (
    "test_contract",
    "test_fuzz",
    "test_tasks",
    "test_task_figures",
    "test_paired",
    "test_lockstep",
)
FITS = ("huber", "l1", "mse", "smooth_l1")
EXPECTED = {
    "test_contract::test_task_has_data_and_contract_inputs[toy]",
    "test_contract::test_every_task_of_the_data_configs_and_examples_is_registered",
    *(f"test_contract::test_loss_lowers_on_its_reference_batch[{loss}-toy]" for loss in FITS),
    *(f"test_contract::test_loss_trains_on_every_task_it_declares[{loss}-toy]" for loss in FITS),
    *(f"test_fuzz::test_loss_and_gradients_stay_finite[{loss}-toy]" for loss in FITS),
    "test_tasks::test_every_task_of_the_data_configs_is_registered_with_a_ranking_metric",
    "test_tasks::test_the_ranking_metric_is_among_the_scalars[toy]",
    "test_tasks::test_tasks_without_pictures_or_embeddings_say_none[toy]",
    "test_tasks::test_tasks_draw_their_figures_and_pr_curves_from_the_metric_states[toy]",
    "test_task_figures::test_metric_tags_hold_scalars_only[toy]",
    "test_paired::test_every_task_has_a_data_config_and_a_loss_pair",
    "test_paired::test_two_losses_at_one_seed_share_weights_and_batches[toy]",
    "test_lockstep::test_every_task_has_a_loss_pair",
    "test_lockstep::test_lockstep_variants_follow_their_sequential_runs[toy]",
}


def copy_with_the_toy_task(copy: Path) -> None:
    """The repository's code, configs and tests in ``copy``, plus the toy task's artifacts."""
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".hypothesis")
    for name in COPIED:
        shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    for name in COPIED_FILES:
        shutil.copy2(ROOT / name, copy / name)
    for relative, text in TOY_FILES.items():
        (copy / relative).write_text(text)
    losses = (copy / LOSS_MODULE).read_text()
    assert losses.count(FITTING) == 1, f"{LOSS_MODULE}: the regression losses' tasks moved"
    (copy / LOSS_MODULE).write_text(losses.replace(FITTING, FITTING[:-1] + ', "toy")'))


def changed_files(copy: Path) -> set[str]:
    """Files of ``copy`` that the repository lacks or holds with other bytes."""
    changed = set()
    for path in copy.rglob("*"):
        original = ROOT / path.relative_to(copy)
        if path.is_file() and not (original.is_file() and filecmp.cmp(path, original, False)):
            changed.add(path.relative_to(copy).as_posix())
    return changed


def outcomes(junit: Path) -> dict[str, str]:
    """``module::test[id]`` -> passed, failed, error or skipped, from a JUnit XML report."""
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname").rsplit(".", 1)[-1]
        states = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        results[f"{module}::{case.get('name')}"] = states[0] if states else "passed"
    return results


@pytest.mark.slow
def test_the_parametrized_tests_pick_up_a_task_added_in_five_artifacts(tmp_path: Path):
    copy = tmp_path / "repo"
    copy_with_the_toy_task(copy)
    assert changed_files(copy) == {*TOY_FILES, LOSS_MODULE}
    junit = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the copy's code only
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            # the toy's cases and the checks that every task has what it needs
            *("-k", "toy or (every_task and not it_declares)", f"--junitxml={junit}"),
            *(f"tests/{name}.py" for name in TESTS),
        ],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    ran = outcomes(junit)
    assert result.returncode == 0, result.stdout[-3000:]
    assert {name: ran.get(name) for name in EXPECTED} == dict.fromkeys(EXPECTED, "passed")
    assert set(ran.values()) == {"passed"}, ran


def test_a_task_without_a_class_or_examples_fails_instead_of_being_skipped():
    assert "toy" not in TASKS
    with pytest.raises(pytest.fail.Exception, match="task 'toy' has no registered task class"):
        check_overfits("l1", "toy")
    with pytest.raises(pytest.fail.Exception, match="task 'toy' has no registered task class"):
        check_finite_and_shaped("l1", "toy", data=None)
    with pytest.raises(pytest.fail.Exception, match="task 'toy' has no test examples: expected"):
        examples("toy")
    with pytest.raises(AssertionError, match="task toy has no data config"):
        check_task_contract("toy")
