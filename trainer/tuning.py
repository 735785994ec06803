"""Hyperparameter searches on validation: search spaces, trials, median pruning, results.

``python train.py -m hparams_search=focal`` searches one loss (``conf/hparams_search/<loss>.yaml``)
and ``python train.py -m suite=NAME tune=true`` searches every variant of a suite with the same
number of trials, then retrains each winner (Musgrave et al. 2020, "A metric learning reality
check": compare losses at equal tuning budgets, hyperparameters chosen on validation only).

Why our own sweeper drives Optuna's ask-and-tell API rather than Hydra's ``hydra-optuna-sweeper``:
that plugin's last release (1.3.0) requires ``optuna<3.0.0``, from before Optuna's current
distributions, and it *replaces* the sweeper, so a tuned suite (a search per variant, then the
winners on the suite's seeds) could not be one command on top of the suite sweeper. With
ask-and-tell the suite sweeper (``hydra_plugins/losscmp/suite_sweeper.py``) runs every trial as an
ordinary job through whichever launcher is configured, and one mechanism serves both commands.

A trial is a run of ``train.py`` with ``skip_test=true`` (the test split never guides a search);
its objective is ``selection.value`` in its ``status.json``: the validation value of the ranking
metric of the checkpoint that would be tested, in the task's direction. A failed trial is told
to Optuna as failed and the search goes on. Pruning follows Optuna's ``MedianPruner`` rule, but
across processes: the sweeper passes the per-epoch median of the completed trials' validation
curves into each new trial's config, and :class:`MedianStop` ends a trial that is worse than that
median after the warm-up epochs; the sweeper then tells Optuna the trial was pruned, with the
intermediate values its curve file holds.
"""

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import optuna
from omegaconf import DictConfig, OmegaConf

CURVE_FILE = "validation_curve.json"  # written by MedianStop: the per-epoch validation values
RESULTS_FILE = "optimization_results.yaml"
SEARCH_DIR = "_search"  # a tuned suite's trials, a folder per variant: not among the compared runs
EDGE_SHARE = 0.05  # a best value within 5 % of its range (log range for log scales) of an end


# ---------------------------------------------------------------------------------------------
# search spaces


def space_of(node: DictConfig | None) -> dict[str, DictConfig]:
    """``{"loss.gamma": {low: 0, high: 5}, ...}``: the parameters of a search space config, by
    override key. A parameter is a mapping with ``low``/``high`` (a float range; ``log: true``
    for a log scale; ``or_null: true`` for "this range, or null") or ``choices``; ``when:
    {key: value}`` makes it conditional on a parameter sampled before it."""
    params: dict[str, DictConfig] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, DictConfig) and ("low" in value or "choices" in value):
            params[prefix] = value
        elif isinstance(value, DictConfig):
            for key in value:
                walk(value._get_node(key), f"{prefix}.{key}" if prefix else str(key))

    if node is not None:
        walk(node, "")
    return params


def suggest(trial: optuna.Trial, space: Mapping[str, DictConfig]) -> dict[str, Any]:
    """The trial's value of every parameter of ``space`` whose ``when`` holds, by override key."""
    values: dict[str, Any] = {}
    for key, param in space.items():
        when = param.get("when") or {}
        if any(values.get(k) != v for k, v in when.items()):
            continue
        if "choices" in param:
            values[key] = trial.suggest_categorical(key, list(param.choices))
            continue
        # "a range or null" is a categorical switch and a range sampled only when it is on: a
        # conditional space, which TPE models as such (it never draws the range for null)
        if param.get("or_null") and trial.suggest_categorical(f"{key} is null", [False, True]):
            values[key] = None
            continue
        values[key] = trial.suggest_float(
            key, float(param.low), float(param.high), log=bool(param.get("log", False))
        )
    return values


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """``["loss.gamma=1.5", "loss.alpha=null"]``: values as Hydra overrides, floats in full."""

    def text(value: Any) -> str:
        if value is None:
            return "null"
        return repr(value) if isinstance(value, float) else str(value)

    return [f"{key}={text(value)}" for key, value in values.items()]


def at_edge(space: Mapping[str, DictConfig], values: Mapping[str, Any]) -> list[str]:
    """The float parameters whose value lies within :data:`EDGE_SHARE` of an end of its range:
    the best may lie outside it, so the range should grow."""
    edges = []
    for key, value in values.items():
        param = space.get(key)
        if param is None or "low" not in param or value is None:
            continue
        scale = math.log if param.get("log", False) else float
        low, high, where = scale(float(param.low)), scale(float(param.high)), scale(float(value))
        share = (where - low) / (high - low)
        if share <= EDGE_SHARE or share >= 1 - EDGE_SHARE:
            end = param.low if share <= EDGE_SHARE else param.high
            edges.append(f"{key}={value:.4g} is at the edge of [{param.low}, {param.high}] ({end})")
    return edges


# ---------------------------------------------------------------------------------------------
# in the trial: the per-epoch curve and the median stop


class MedianStop(L.Callback):
    """Record the task's validation metric after every validation epoch (``validation_curve.json``
    in ``dirpath``) and, given the per-epoch ``median`` of the completed trials, end the fit at
    the first epoch past ``warmup_epochs`` whose value is worse than that epoch's median.
    ``stop_reason`` (``pruned at epoch ...``) makes the run's status ``stopped``."""

    def __init__(self, dirpath: str, median: Sequence[float] | None, warmup_epochs: int) -> None:
        self.path = Path(dirpath) / CURVE_FILE
        self.median = list(median or [])
        self.warmup_epochs = warmup_epochs
        self.values: list[float] = []
        self.stop_reason: str | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the module's on_validation_epoch_end, which logs the epoch's metrics
        if trainer.sanity_checking:
            return
        task = pl_module.task
        metric = f"val/{task.monitor}"
        value = float(trainer.callback_metrics[metric])
        self.values.append(value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"metric": metric, "values": self.values}))
        epoch = len(self.values) - 1
        if epoch < self.warmup_epochs or epoch >= len(self.median):
            return
        median = self.median[epoch]
        worse = value < median if task.mode == "max" else value > median
        if worse:
            self.stop_reason = (
                f"pruned at epoch {epoch}: {metric} {value:.4g} worse than the completed "
                f"trials' median {median:.4g}"
            )
            trainer.should_stop = True


def epoch_medians(curves: Sequence[Sequence[float]]) -> list[float]:
    """The median over ``curves`` at each epoch every curve reached."""
    length = min((len(c) for c in curves), default=0)
    return [statistics.median(c[epoch] for c in curves) for epoch in range(length)]


# ---------------------------------------------------------------------------------------------
# the trial's record, read back by the sweeper (any launcher: the run dir is the interface)


@dataclass
class TrialResult:
    status: str  # completed | stopped | failed | running (killed before it could say)
    value: float | None  # selection.value: validation metric of the checkpoint to be tested
    curve: list[float]
    pruned: bool


def read_trial(run_dir: Path) -> TrialResult:
    status_path, curve_path = run_dir / "status.json", run_dir / CURVE_FILE
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    curve = json.loads(curve_path.read_text())["values"] if curve_path.exists() else []
    value = (status.get("selection") or {}).get("value")
    usable = status.get("status") in ("completed", "stopped") and value is not None
    return TrialResult(
        status=status.get("status", "failed"),
        value=float(value) if usable and not math.isnan(float(value)) else None,
        curve=curve,
        pruned=str(status.get("stop_reason") or "").startswith("pruned"),
    )


def read_mode(run_dir: Path) -> str | None:
    """The direction (``max``/``min``) the run's task records in its ``status.json``."""
    path = run_dir / "status.json"
    return json.loads(path.read_text()).get("mode") if path.exists() else None


def objective(run_dir: Path) -> float | None:
    """What ``main()`` returns: the run's ``selection.value`` (None: no usable value)."""
    return read_trial(Path(run_dir)).value


# ---------------------------------------------------------------------------------------------
# one search


@dataclass
class Search:
    """One seeded TPE search over ``space``, driven by ask-and-tell: ``run(trial_number,
    overrides, median)`` launches a trial and returns its run dir."""

    name: str
    space: dict[str, DictConfig]
    direction: str  # "maximize" | "minimize"
    n_trials: int
    sampler_seed: int
    startup_trials: int  # completed trials before pruning starts (MedianPruner's n_startup)
    study: optuna.Study = field(init=False)
    curves: list[list[float]] = field(default_factory=list)  # of the completed trials
    history: list[tuple[int, str, float | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweeper logs each trial
        self.study = optuna.create_study(
            study_name=self.name,
            direction=self.direction,
            sampler=optuna.samplers.TPESampler(seed=self.sampler_seed),
        )

    def run(self, launch: Callable[[int, list[str], list[float] | None], Path]) -> None:
        for _ in range(self.n_trials):
            trial = self.study.ask()
            values = suggest(trial, self.space)
            enough = len(self.curves) >= self.startup_trials
            run_dir = launch(
                trial.number, as_overrides(values), epoch_medians(self.curves) if enough else None
            )
            result = read_trial(run_dir)
            for epoch, value in enumerate(result.curve):
                trial.report(value, epoch)
            if result.pruned:
                state = optuna.trial.TrialState.PRUNED
                self.study.tell(trial, state=state)
            elif result.value is None:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(trial, result.value)
                self.curves.append(result.curve)
            self.history.append((trial.number, self.study.trials[-1].state.name, result.value))

    @property
    def best(self) -> optuna.trial.FrozenTrial | None:
        completed = self.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        return self.study.best_trial if completed else None

    def best_values(self) -> dict[str, Any]:
        """The best trial's values by override key (a null switch read back as its null)."""
        best = self.best
        if best is None:
            return {}
        values = {}
        for key in self.space:
            if best.params.get(f"{key} is null"):
                values[key] = None
            elif key in best.params:
                values[key] = best.params[key]
        return values

    def results(self, fixed: Sequence[str] = ()) -> dict[str, Any]:
        """What ``optimization_results.yaml`` holds: the best values and validation value, the
        counts by state, each trial's state and value, and the edge warnings."""
        states = [t.state.name for t in self.study.trials]
        best = self.best_values()
        return {
            "name": self.name,
            "direction": self.direction,
            "best_params": best,
            "best_value": None if self.best is None else float(self.best.value),
            "best_trial": None if self.best is None else self.best.number,
            "fixed": list(fixed),
            "n_trials": len(states),
            "n_pruned": states.count("PRUNED"),
            "n_failed": states.count("FAIL"),
            "sampler": {"name": "TPESampler", "seed": self.sampler_seed},
            "trials": [
                {"number": n, "state": state, "value": value} for n, state, value in self.history
            ],
            "edge_warnings": at_edge(self.space, best),
            "space": {key: OmegaConf.to_container(param) for key, param in self.space.items()},
        }


def write_results(path: Path, results: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(dict(results)), path)


def read_results(path: Path) -> dict[str, Any]:
    loaded = OmegaConf.to_container(OmegaConf.load(path))
    assert isinstance(loaded, dict)
    return loaded
