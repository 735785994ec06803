"""Each task's test examples, one module per task named after it (``tests/task_examples/<task>.py``,
found by the task's name, never listed), and the task facts the tests derive from the task
registry, the data configs and those modules.

A task's examples module holds what only the tests need of the task:

* ``loss_inputs(task)``: a hypothesis strategy of ``(outputs, target)`` float64 batches of any
  size the task's losses accept, edge cases included; every tensor comes from drawn values or a
  drawn seed (the fuzz tests);
* ``loss_stats(task)``, optional (``{}`` without): the ``data_stats`` a datamodule of the task
  would give its losses (class counts for weighted losses), consistent with ``loss_inputs`` and
  the task's ``reference_batch``;
* ``per_item_shapes(loss, outputs, target)``, optional (:func:`elementwise_shapes` without): the
  shapes a loss with ``reduction="none"`` may give on a batch;
* ``TINY_DATA``: for each data config of the task, the data overrides that make a fit and test
  take seconds;
* ``TINY_MODEL``: how to shrink each model the task's data configs pick, unless another task's
  module shrinks it already (a model is shrunk one way everywhere);
* ``LOSS_PAIR``: two losses that fit the task, as overrides, whose steps draw no random numbers
  (lockstep compares their variants with sequential runs exactly);
  ``LOSS_PAIR_TOUCHING_STREAMS``, optional (``LOSS_PAIR`` without): two of which one draws random
  numbers or reads the training data before the model is built (the paired design holds all the
  same).

Which data configs belong to a task comes from ``conf/data`` (the ``task`` of each config's
``_target_`` class), the model a data config picks from its defaults list (composed), the ranking
metric and the reference batch from the task's class in ``trainer.tasks.TASKS``.
"""

import functools
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class
from omegaconf import OmegaConf
from torch import Tensor

from trainer.tasks import Task

CONF = Path(__file__).resolve().parents[2] / "conf"
# data config -> the task its datamodule declares
DATA_TASKS = {
    path.stem: get_class(OmegaConf.load(path)._target_).task
    for path in sorted((CONF / "data").glob("*.yaml"))
}
# data config -> whether its datamodule reads the user's files (``datasets.files.FileDataModule``)
FROM_FILES = {
    path.stem: getattr(get_class(OmegaConf.load(path)._target_), "from_files", False)
    for path in sorted((CONF / "data").glob("*.yaml"))
}


def data_configs(task: str) -> list[str]:
    """The data configs whose datamodule declares ``task``, by name."""
    return [data for data, declared in DATA_TASKS.items() if declared == task]


def builtin_data(task: str) -> str:
    """The first data config of ``task`` by name whose datamodule reads no user files (not
    ``from_files``): built-in data, which needs no exported layout; the first of all when the
    task has only file data."""
    configs = data_configs(task)
    return next((data for data in configs if not FROM_FILES[data]), configs[0])


# task -> its first built-in data config by name (one run of every task)
TASK_DATA = {task: builtin_data(task) for task in sorted(set(DATA_TASKS.values()))}


def example_modules() -> list[str]:
    """The names of the examples modules in this package: one per task."""
    return sorted(module.name for module in pkgutil.iter_modules(__path__))


def examples(task: str) -> ModuleType:
    """The examples module of ``task``, or a failure naming the file it should be."""
    try:
        return importlib.import_module(f"{__name__}.{task}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{task}":
            raise
        pytest.fail(f"task {task!r} has no test examples: expected tests/{__name__}/{task}.py")


def loss_stats(task: Task) -> dict[str, Any]:
    """The ``data_stats`` the task's losses are built with in the contract and fuzz tests."""
    return getattr(examples(task.name), "loss_stats", lambda task: {})(task)


def elementwise_shapes(loss: Any, outputs: Tensor, target: Tensor) -> set[tuple[int, ...]]:
    """Element-wise (the outputs' or the target's shape) or one value per sample ``[N]``."""
    return {tuple(outputs.shape), tuple(target.shape), (len(outputs),)}


def per_item_shapes(task: Task, loss: Any, outputs: Tensor, target: Tensor) -> set[tuple[int, ...]]:
    """Shapes ``loss`` with ``reduction="none"`` may give on a batch of ``task``."""
    shapes = getattr(examples(task.name), "per_item_shapes", elementwise_shapes)
    return shapes(loss, outputs, target)


def stream_loss_pair(task: str) -> tuple[list[str], list[str]]:
    """Two losses of ``task`` of which one may draw random numbers or read the training data
    before the model is built (the task's ``LOSS_PAIR`` when it names none)."""
    module = examples(task)
    return getattr(module, "LOSS_PAIR_TOUCHING_STREAMS", module.LOSS_PAIR)


def tiny_models() -> dict[str, list[str]]:
    """Every task's model shrink overrides, by model config; a model two tasks shrink
    differently is an error."""
    merged: dict[str, list[str]] = {}
    for name in example_modules():
        for model, overrides in examples(name).TINY_MODEL.items():
            if merged.setdefault(model, overrides) != overrides:
                raise ValueError(
                    f"model {model}: shrunk as {merged[model]} and as {overrides} ({name})"
                )
    return merged


@functools.cache
def choices(*overrides: str) -> dict[str, str]:
    """The config group choices ``conf/train.yaml`` composes to with ``overrides``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    GlobalHydra.instance().clear()
    return dict(cfg.hydra.runtime.choices)


def default_data() -> str:
    """The data config ``python train.py`` trains on."""
    return choices()["data"]


def default_model(data: str) -> str:
    """The model config ``data=<data>`` picks (its defaults list, else ``train.yaml``'s)."""
    return choices(f"data={data}")["model"]


def tiny_budget(data: str, model: str | None = None) -> list[str]:
    """The data and model overrides that shrink a run of ``data`` (with ``model``, or the model
    the data config picks) to seconds."""
    model = model or default_model(data)
    shrink = tiny_models()
    if model not in shrink:
        raise ValueError(f"model {model}: no task's examples module shrinks it (TINY_MODEL)")
    tiny_data = examples(DATA_TASKS[data]).TINY_DATA
    if data not in tiny_data:
        raise ValueError(f"data {data}: its task's examples module gives it no TINY_DATA")
    return [*tiny_data[data], *shrink[model]]
