"""The task base class and the task registry: what every task owns, and how a datamodule's ``task``
name finds its class.

A task owns everything that differs between kinds of problem: the metric collection, the metric
that ranks runs (``monitor``, without the split prefix, and its ``mode``), the transform from model
outputs to what the metrics consume (``update``), the flat scalars logged (``scalars``), what a
validation epoch chooses for the test to apply (``validation_choices``, ``choose``,
``test_scalars``), the pictures drawn from the metric states (``figures``, ``pr_curves``), the
validation samples shown (``picture_rows``), the projector's embeddings (``embeddings``), and a
small fixed batch of its outputs and targets (``reference_batch``: the run records name the
metrics from it, the contract tests fit it). What only the tests need of a task (the fuzz
strategies, the losses' example data stats, tiny budgets) lives in ``tests/task_examples/``.
"""

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics import MetricCollection

from trainer.metrics import ThresholdCounts

MODES = ("max", "min")


class Task:
    """Base of every task; a subclass sets ``name``, ``monitor`` and ``mode`` and overrides what
    its outputs need (``metrics`` and ``reference_batch`` always).

    ``name`` is the string a datamodule declares in its ``task`` and a loss in its ``tasks``.
    """

    name: ClassVar[str] = ""
    monitor: ClassVar[str] = ""  # metric name (without the split prefix) that ranks runs
    mode: ClassVar[str] = "max"
    # metrics of the collection whose results are not scalars (a matrix, a sample) and only feed
    # ``figures``: ``scalars`` leaves them out
    picture_metrics: ClassVar[tuple[str, ...]] = ()
    # the loss a comparison report takes as its baseline when a suite names none (the task's
    # textbook loss), or None when the task has no single plain loss
    plain_loss: ClassVar[str | None] = None
    # validation metrics (without the split prefix) the report draws beside the ranking metric
    curve_metrics: ClassVar[tuple[str, ...]] = ()
    # metrics whose values lie in [0, 1] (a name, or a family prefix ending in "/"; a name's
    # "@..." suffix is a variant of it): the report keeps their intervals in that range
    unit_metrics: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def metric_range(cls, tag: str) -> tuple[float, float]:
        """The values ``tag`` (``test/dice@val_threshold``, ``recall/cat``) can take: [0, 1]
        for the unit metrics, else unbounded."""
        name = tag.split("/", 1)[1] if tag.startswith(("train/", "val/", "test/")) else tag
        base = name.split("@", 1)[0]
        for unit in cls.unit_metrics:
            if base == unit or (unit.endswith("/") and name.startswith(unit)):
                return 0.0, 1.0
        return -math.inf, math.inf

    @classmethod
    def from_datamodule(cls, datamodule: Any) -> "Task":
        """The task for a datamodule; tasks that need the data's metadata (classes) or what the
        training split gives (its ``data_stats``: class counts, target mean) override it."""
        return cls()

    @classmethod
    def example(cls) -> "Task":
        """An instance without a datamodule (the metric names of the findings, the tests); a task
        that needs the data's metadata gives example values of it."""
        return cls()

    def metrics(self) -> MetricCollection:
        """A fresh collection of the task's metrics (the module clones one per split)."""
        raise NotImplementedError(f"task {self.name}: metrics() is not implemented")

    def update(self, metrics: MetricCollection, outputs: Tensor, target: Tensor) -> None:
        """Feed one batch of model outputs and targets to ``metrics``."""
        metrics.update(outputs, target)

    def scalars(self, computed: Mapping[str, Any]) -> dict[str, Tensor]:
        """The computed metrics (keys without the split prefix) as named scalars for the loggers,
        :attr:`picture_metrics` left out."""
        return {k: v for k, v in computed.items() if k not in self.picture_metrics}

    def validation_choices(self) -> dict[str, float]:
        """What a validation epoch chooses for the test to apply, by name, with the value it has
        before any validation (segmentation: the Dice-maximising threshold, 0.5 at first)."""
        return {}

    def choose(self, computed: Mapping[str, Any]) -> dict[str, Tensor]:
        """The :meth:`validation_choices` made by one validation epoch's computed metrics."""
        return {}

    def test_scalars(
        self, metrics: MetricCollection, computed: Mapping[str, Any], chosen: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """The test split's scalars, given the values ``chosen`` on validation: a task that
        chooses reports the test at those choices instead of choosing again on the test."""
        return self.scalars(computed)

    def figures(self, metrics: MetricCollection) -> dict[str, Figure]:
        """Pictures of a split drawn from its metric states, by name (without the split prefix).

        Called on process zero only, after the module computed ``metrics``: their ``compute()``
        returns the cached values and communicates nothing.
        """
        return {}

    def pr_curves(self, metrics: MetricCollection) -> dict[str, ThresholdCounts]:
        """A split's binned precision-recall counts for TensorBoard's PR curves, by name.

        Called on every process: the counts are summed across processes (a collective)."""
        return {}

    def picture_rows(self, inputs: Tensor, target: Tensor, outputs: Tensor) -> list[Tensor] | None:
        """Image rows ``[n, C, H, W]`` in [0, 1] shown each validation epoch, or None."""
        return None

    def embeddings(self, metrics: MetricCollection) -> tuple[Tensor, Tensor] | None:
        """The split's embeddings and labels for TensorBoard's projector, or None."""
        return None

    def reference_batch(self, seed: int) -> tuple[Tensor, Tensor]:
        """One small fixed batch: outputs as a freshly initialised model would give them and
        targets the outputs can be fitted to (the contract's overfit test optimises the outputs;
        the run records compute the metrics' names from it)."""
        raise NotImplementedError(f"task {self.name}: reference_batch() is not implemented")


TASKS: dict[str, type[Task]] = {}


def register(task: type[Task]) -> type[Task]:
    """Class decorator: add ``task`` to :data:`TASKS` under its ``name``, after checking that it
    names itself, its ranking metric and a known mode, and that the name is not taken."""
    if not task.name or not task.monitor:
        raise ValueError(f"task {task.__name__}: expected a name and a monitor metric, got none")
    if task.mode not in MODES:
        raise ValueError(f"task {task.name}: expected mode in {MODES}, got {task.mode!r}")
    if TASKS.get(task.name, task) is not task:
        raise ValueError(f"task {task.name}: the name is taken by {TASKS[task.name].__name__}")
    TASKS[task.name] = task
    return task


def build_task(datamodule: Any) -> Task:
    """The task object for a datamodule, by the ``task`` name it declares.

    >>> from types import SimpleNamespace
    >>> task = build_task(SimpleNamespace(task="regression", data_stats={"target_mean": 0.5}))
    >>> task.name, task.monitor, task.mode, task.target_mean
    ('regression', 'mae', 'min', 0.5)
    >>> build_task(SimpleNamespace(task="ranking"))
    Traceback (most recent call last):
    ...
    ValueError: no task class for task 'ranking'; known: ['boxes', 'classification', ...]
    """
    if datamodule.task not in TASKS:
        raise ValueError(f"no task class for task {datamodule.task!r}; known: {sorted(TASKS)}")
    return TASKS[datamodule.task].from_datamodule(datamodule)
