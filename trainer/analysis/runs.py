"""The runs below a directory, as the report reads them: status, config, metrics and curves.

A run is any directory holding the ``status.json`` that ``train.py`` writes; the seed means in
``_variants/`` and a tuned suite's trials (``_search/``) are not runs to compare.
"""

import json
import logging
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainer.search import trials as search_trials

SCORED = ("completed", "stopped")  # a stopped run (nan_policy=stop) was tested: its result counts
VARIANTS_DIR = "_variants"  # the TensorBoard seed-mean runs; holds no status.json of its own

Curve = list[tuple[int, float, float, float]]  # (step, mean, min, max) over seeds


@dataclass
class Run:
    path: Path
    loss: str
    overrides: list[str]  # the job's command-line overrides, seed excluded
    seed: int
    config: DictConfig
    status: str  # completed | stopped | failed | running (killed before it could say)
    reason: str
    metrics: dict[str, float]
    nonfinite: int
    task: str | None  # None: the run failed before its data said which task it is
    ranking_metric: str | None  # without the split prefix: "dice"
    mode: str | None
    selection_value: float  # the validation metric of the tested checkpoint (NaN: none)
    variant: str = ""  # the loss and the overrides that differ between the compared runs
    knobs: dict[str, Any] = field(default_factory=dict)  # the tuned hyperparameters' values

    @property
    def scored(self) -> bool:
        return self.status in SCORED


def load_run(status_path: Path) -> Run:
    run_dir = status_path.parent
    status = json.loads(status_path.read_text())
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    choices = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.runtime.choices
    overrides = [
        o
        for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
        if o.split("=")[0] != "seed"
    ]
    nonfinite_path = run_dir / "nonfinite.json"
    nonfinite = (
        json.loads(nonfinite_path.read_text()) if nonfinite_path.exists() else {"counts": {}}
    )
    selection = status.get("selection") or {}
    value = selection.get("value")
    return Run(
        path=run_dir,
        loss=choices.loss,
        overrides=overrides,
        seed=int(config.seed),
        config=config,
        status=status["status"],
        reason=(
            status.get("error") or status.get("stop_reason") or preempted_reason(status, run_dir)
        ),
        metrics=status.get("metrics", {}),
        nonfinite=sum(nonfinite["counts"].values()),
        task=status.get("task"),
        ranking_metric=status.get("ranking_metric"),
        mode=status.get("mode"),
        selection_value=math.nan if value is None else float(value),
    )


def status_paths(sweep_dir: Path) -> list[Path]:
    """The ``status.json`` of every run below ``sweep_dir`` to compare, in path order."""
    return [
        p
        for p in sorted(sweep_dir.rglob("status.json"))
        # a tuned suite's trials are not compared: only the winners, retrained on fresh seeds
        if not {VARIANTS_DIR, search_trials.SEARCH_DIR} & set(p.relative_to(sweep_dir).parts)
    ]


def read_searches(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """A tuned suite's searches (``_search/<variant>/optimization_results.yaml``), by variant."""
    return {
        (results := search_trials.read_results(path))["name"]: results
        for path in sorted(
            (sweep_dir / search_trials.SEARCH_DIR).glob(f"*/{search_trials.RESULTS_FILE}")
        )
    }


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve of a run's TensorBoard event files: ``{tag: [(step, value)]}``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # it narrates every file it opens
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 1, "tensors": 1})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def mean_curve(curves: list[list[tuple[int, float]]]) -> Curve:
    """(step, mean, min, max) over seeds, at each step they all logged."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for curve in curves:
        for step, value in dict(curve).items():  # a step logged twice counts once: the last
            by_step[step].append(value)
    return [
        (s, statistics.fmean(v), min(v), max(v))
        for s, v in sorted(by_step.items())
        if len(v) == len(curves)
    ]


def per_seed(runs: list[Run], metric: str) -> dict[int, float]:
    """``{seed: metric}`` of the scored runs; a seed run twice (gathered sweeps) is averaged."""
    values: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        value = run.metrics.get(metric, math.nan) if run.scored else math.nan
        if not math.isnan(value):
            values[run.seed].append(float(value))
    return {seed: statistics.fmean(v) for seed, v in sorted(values.items())}


def preempted_reason(status: dict, run_dir: Path) -> str:
    """What a run that ended preempted (and was not requeued) needs: where it stopped, and the
    command that continues it; ``""`` for any other run."""
    if status.get("status") != "preempted" or not status.get("preemptions"):
        return ""
    last = status["preemptions"][-1]
    return (
        f"by {last['signal']} at step {last['step']}, checkpoint saved: continue with "
        f"python train.py resume={run_dir}"
    )


def status_counts(runs: list[Run]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for run in runs:
        counts[run.status] += 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def failures(runs: list[Run]) -> str:
    """``seed 1: failed: ValueError: ...; seed 2: running`` for the runs that did not complete."""
    return "; ".join(
        ": ".join([f"seed {r.seed}", r.status, *([" ".join(r.reason.split())] if r.reason else [])])
        for r in runs
        if r.status != "completed"
    )
