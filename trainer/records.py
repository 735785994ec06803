"""What a run records about itself: ``status.json``, the hyperparameters every logger gets at the
start (with TensorBoard's HParams entry), the final metrics, and which weights were tested."""

import functools
import importlib.util
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from tensorboard.plugins.hparams import summary_v2 as hparams_summary

from trainer.config import ConfigError
from trainer.hparams_experiment import experiment_summary
from trainer.preemption import Preempted
from trainer.tasks import Task

log = logging.getLogger(__name__)

# Overrides that change how a run is carried out, not which variant it is. The seed stays out so
# that TensorBoard puts a variant's seeds into one session group.
NOT_A_VARIANT = ("seed", "resume", "ckpt_path", "trainer.enable_progress_bar", "skip_test")
NOT_A_VARIANT_PREFIXES = ("hydra.", "paths.", "callbacks.optuna_pruning.")


def _plain(value: Any) -> bool | int | float | str:
    return value if isinstance(value, bool | int | float | str) else str(value)


def _flatten(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), node


def variant_hparams(
    cfg: DictConfig, choices: Mapping[str, Any], overrides: Sequence[str]
) -> dict[str, bool | int | float | str]:
    """What defines the run's variant: the data, model and loss choices, every ``loss.*`` value,
    the job's own overrides (``overrides``: Hydra's ``overrides.task``) but for those in
    :data:`NOT_A_VARIANT`, and ``test_ckpt`` (which weights the test metrics come from).

    A group override (``optimizer=sgd``) gives the choice, any other its resolved value.
    """
    params: dict[str, bool | int | float | str] = {
        group: str(choices.get(group)) for group in ("data", "model", "loss")
    }
    for key, value in _flatten(OmegaConf.to_container(cfg.loss, resolve=True)):
        if not key.split(".")[-1].startswith("_"):
            params[f"loss.{key}"] = _plain(value)
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in NOT_A_VARIANT or key.startswith(NOT_A_VARIANT_PREFIXES):
            continue
        params[key] = _plain(choices[key] if key in choices else OmegaConf.select(cfg, key))
    params["test_ckpt"] = cfg.test_ckpt
    return params


def metric_tags(task: Task) -> list[str]:
    """The scalar tags that hold a run's results: the loss and the task's metrics, on val and test.

    The names come from the task itself, through its metrics on its own reference batch: a
    task's ``scalars`` may expand one metric into several (per-class recall), so the metric
    collection's keys alone would name tags that never exist.
    """
    metrics = task.metrics()
    task.update(metrics, *task.reference_batch(seed=0))
    computed = metrics.compute()
    chosen = {name: torch.tensor(value) for name, value in task.validation_choices().items()}
    names = {"val": task.scalars(computed), "test": task.test_scalars(metrics, computed, chosen)}
    return [
        f"{split}/{name}" for split, found in names.items() for name in ("loss", *sorted(found))
    ]


@rank_zero_only
def write_hparams_entry(
    logger: TensorBoardLogger,
    params: Mapping[str, Any],
    metric_tags: Sequence[str],
    in_sweep: bool,
) -> None:
    """TensorBoard's HParams entry for the run, at its start: the session start (the values)
    and, for a run on its own, the experiment (its hyperparameters are the columns, its
    ``metric_tags`` the metrics). A sweep's run (``in_sweep``) leaves the experiment to the sweep,
    which writes one for all its runs when it ends (``trainer.hparams_experiment``, which says
    why): TensorBoard shows a single experiment, and one run's would name every run's columns.

    Built with TensorBoard's own protos rather than Lightning's ``log_hyperparams(params,
    metrics)`` or torch's ``summary.hparams``: those write the metric values as scalars
    (Lightning, at step 0) and a session-end record with status SUCCESS, so a run that is killed
    later would look finished. Here the plugin reads each metric from the run's own
    ``val/...``/``test/...`` scalars, and a run's session has no end until it has one.
    """
    writer = logger.experiment.file_writer  # the SummaryWriter's open event file
    if not in_sweep:
        writer.add_summary(experiment_summary([params], metric_tags))
    # the session group is a hash of the values: without the seed, one group per variant
    writer.add_summary(hparams_summary.hparams_pb(dict(params)))
    writer.flush()


def _tolerated(
    warn: Callable[[str], None], logger: Logger, what: str, call: Callable[[], Any]
) -> None:
    """Run one logger call; a failure is logged and passed to ``warn``, never raised: the
    run's own results (checkpoints, status.json, the other loggers) do not depend on it."""
    try:
        call()
    except Exception as error:
        message = f"{type(logger).__name__}.{what}: {type(error).__name__}: {error}"
        log.warning("logger failed, the run goes on: %s", message, exc_info=True)
        warn(message)


def log_start(
    loggers: Sequence[Logger],
    params: Mapping[str, Any],
    metric_tags: Sequence[str],
    warn: Callable[[str], None],
    in_sweep: bool,
) -> None:
    """Every logger gets the hyperparameters before fit, so a killed or running job shows them;
    TensorBoard also gets its HParams entry (:func:`write_hparams_entry`; ``in_sweep``: the job
    is one of a multirun's)."""
    for logger in loggers:
        # TensorBoardLogger without metrics (default_hp_metric off) only keeps them for its
        # hparams.yaml; the others store them their own way
        _tolerated(warn, logger, "log_hyperparams", lambda lg=logger: lg.log_hyperparams(params))
        if isinstance(logger, TensorBoardLogger):
            _tolerated(
                warn,
                logger,
                "HParams entry",
                lambda lg=logger: write_hparams_entry(lg, params, metric_tags, in_sweep),
            )
        _tolerated(warn, logger, "save", logger.save)


def log_end(
    loggers: Sequence[Logger], step: int, metrics: Mapping[str, float], warn: Callable[[str], None]
) -> None:
    """The final metrics, at the last step, to every logger but TensorBoard (whose HParams read
    them from the run's scalar tags): one record of the whole result in each store."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            continue
        _tolerated(
            warn, logger, "log_metrics", lambda lg=logger: lg.log_metrics(dict(metrics), step=step)
        )
        _tolerated(warn, logger, "save", logger.save)


# Loggers whose package requirements.txt leaves out, by class name: the package each one needs
OPTIONAL_PACKAGES = {"MLFlowLogger": "mlflow", "WandbLogger": "wandb"}


def build_loggers(logger_cfg: DictConfig, warn: Callable[[str], None]) -> list[Logger]:
    """The configured loggers, each one whose ``finalize`` passes its failures to ``warn`` instead
    of raising them; a missing optional package is one line that says how to install it, before
    anything is built (Lightning would raise deep inside the logger's constructor).

    Lightning calls ``finalize`` inside ``fit`` and ``test``, after their loops: a logger that
    fails there (an upload, a closed server) would turn a finished fit or test into an error.
    Each logger is an instance of :func:`tolerant_class` of its configured class, so it keeps its
    type, which Lightning and the callbacks check (``isinstance(logger, TensorBoardLogger)``).
    """
    nodes = {name: node for name, node in logger_cfg.items() if node is not None}
    for name, node in nodes.items():
        package = OPTIONAL_PACKAGES.get(str(node.get("_target_", "")).rsplit(".", 1)[-1])
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"logger={name} needs the {package} package: .venv/bin/pip install {package}"
            )
    loggers = []
    for node in nodes.values():
        configured = instantiate(node, _partial_=True)
        tolerant = tolerant_class(configured.func)
        loggers.append(tolerant(*configured.args, on_failure=warn, **configured.keywords))
    return loggers


@functools.cache
def tolerant_class(logger_class: type[Logger]) -> type[Logger]:
    """A subclass of ``logger_class`` whose ``finalize`` failures go to the ``on_failure`` its
    constructor takes, instead of up through Lightning's ``fit``/``test``."""

    def __init__(self, *args: Any, on_failure: Callable[[str], None], **kwargs: Any) -> None:
        logger_class.__init__(self, *args, **kwargs)
        self.on_failure = on_failure

    def finalize(self, status: str) -> None:
        call = functools.partial(logger_class.finalize, self, status)
        _tolerated(self.on_failure, self, f"finalize({status!r})", call)

    namespace = {"__init__": __init__, "finalize": finalize, "__module__": logger_class.__module__}
    return type(logger_class.__name__, (logger_class,), namespace)


FINAL_METRICS = ("val/", "test/", "train/loss_epoch", "perf/")


def final_metrics(logged: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The last logged validation/test values, training loss and throughput in ``logged`` (the
    trainer's ``callback_metrics``), as plain floats."""
    return {
        name: float(value)
        for name, value in logged.items()
        if name.startswith(FINAL_METRICS) and value.numel() == 1
    }


def nonfinite_counts(callbacks: Sequence[L.Callback]) -> dict[str, float]:
    """The non-finite guard's final counts (``nonfinite/loss``, ...), which it writes to the
    loggers itself: the run's record of its incidents."""
    return {
        name: value
        for callback in callbacks
        if hasattr(callback, "logged_counts")
        for name, value in callback.logged_counts().items()
    }


def first_stop_reason(callbacks: Sequence[L.Callback]) -> str | None:
    """Why a callback ended the run early (the non-finite guard, median pruning), if one did."""
    return next((c.stop_reason for c in callbacks if getattr(c, "stop_reason", None)), None)


def task_record(task: Task, test_ckpt: str) -> dict[str, str]:
    """What ``status.json`` says about the task before training: how the comparison ranks runs
    (``ranking_metric`` without split prefix, ``mode``) and which weights will be tested."""
    return {
        "task": task.name,
        "ranking_metric": task.monitor,
        "mode": task.mode,
        "test_ckpt": test_ckpt,
    }


def selection(
    checkpoint: ModelCheckpoint | None,
    task: Task,
    tested_path: str | None,
    fit_metrics: Mapping[str, float],
) -> dict[str, Any]:
    """The validation value of the weights that were tested: the ``checkpoint`` callback's
    monitored score when its best checkpoint was tested (``tested_path``), else the last
    validation's value."""
    metric = f"val/{task.monitor}"
    value = float(checkpoint.best_model_score) if tested_path else fit_metrics.get(metric)
    return {"metric": metric, "value": value, "checkpoint": "best" if tested_path else "last"}


class StatusRecord(dict):
    """The fields of ``status.json``; every change is written at once, so a killed run still
    says what it was (``running``, its task, its warnings, the preemptions it resumed from)."""

    def __init__(self, path: Path, **fields: Any) -> None:
        super().__init__(status="running", pid=os.getpid(), **fields)
        self.path = path
        self.save()

    @classmethod
    def create(cls, output_dir: Path, resumed: bool = False) -> "StatusRecord":
        """The record of a run starting in ``output_dir`` (created if need be); a ``resumed``
        run keeps the ``preemptions`` its earlier record lists."""
        path = Path(output_dir) / "status.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        earlier = json.loads(path.read_text()) if resumed and path.is_file() else {}
        kept = {"preemptions": earlier["preemptions"]} if earlier.get("preemptions") else {}
        return cls(path, **kept)

    def update(self, *args: Any, **fields: Any) -> None:
        super().update(*args, **fields)
        self.save()

    def fail(self, error: BaseException) -> None:
        """The run ends as ``failed``, with the error's type and message; or, stopped by a
        preemption (:class:`~trainer.preemption.Preempted`), as ``preempted``, where and with
        which checkpoint added to its ``preemptions``."""
        if isinstance(error, Preempted):
            self.setdefault("preemptions", []).append(error.record)
            self.update(status="preempted")
            return
        self.update(status="failed", error=f"{type(error).__name__}: {error}")

    def warn(self, message: str) -> None:
        """Add a problem that did not stop the run (a logger that failed) to ``warnings``."""
        self.setdefault("warnings", []).append(message)
        self.save()

    def save(self) -> None:
        # a temporary file, then a rename: a reader (the comparison report of a sweep still
        # running) never sees half a file
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(self, indent=2))
        partial.replace(self.path)


def read_status(run_dir: Path) -> dict[str, Any]:
    """A run dir's ``status.json`` as written (empty when it has none)."""
    path = Path(run_dir) / "status.json"
    return json.loads(path.read_text()) if path.is_file() else {}


@contextmanager
def recorded_status(output_dir: Path, resumed: bool = False) -> Iterator[StatusRecord]:
    """``status.json`` in the run dir: ``running``, then what the run ends as.

    The body may set ``status`` (``completed`` or ``stopped``) and add fields; an exception is
    recorded as ``failed`` with its message (a preemption as ``preempted``), then propagates.
    """
    record = StatusRecord.create(output_dir, resumed)
    try:
        yield record
    except BaseException as error:
        record.fail(error)
        raise
