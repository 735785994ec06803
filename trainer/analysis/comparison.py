"""The comparison itself: variants named, hyperparameters selected, baseline, verdicts, ranks.

``compare_runs(sweep_dir)`` reads every run below ``sweep_dir`` and compares them task by task;
``compare_task`` ranks the variants of one task. The statistics (``trainer.analysis.stats``)
follow Musgrave et al. 2020 ("A metric learning reality check": same budget, hyperparameters
chosen on validation), Bouthillier et al. 2021 ("Accounting for variance in machine learning
benchmarks": seeds vary init and data order, comparisons pair them) and Agarwal et al. 2021
("Deep reinforcement learning at the edge of the statistical precipice": intervals and the
probability of improvement). The task facts (its plain loss, the curves worth drawing) come from
the task registry, so a new task needs nothing here.
"""

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainer.analysis import regime, stats
from trainer.analysis.runs import (
    Curve,
    Run,
    failures,
    load_run,
    mean_curve,
    per_seed,
    read_scalars,
    read_searches,
    status_counts,
    status_paths,
)
from trainer.config import run_name
from trainer.tasks import TASKS

CONVERGENCE_SHARE = 0.95  # a variant has converged once it reaches 95 % of the best final metric

Candidate = tuple[dict[str, Any], float, int]  # a candidate's knob values, val mean, runs valued


@dataclass
class Row:
    """One variant of a comparison."""

    variant: str
    runs: list[Run]  # the runs that enter the ranking (after hyperparameter selection)
    status: str
    failures: str
    selected: dict[str, Any]
    metric: stats.Interval
    others: dict[str, stats.Interval]  # every test metric, the ranking metric included
    per_seed: dict[int, float]
    vs_baseline: stats.Paired | None = None
    p_holm: float = math.nan
    # the difference vs the baseline at the level of its Holm-adjusted test, in the metric's range
    diff: stats.Interval | None = None
    verdict: str = "n/a"
    regime: list[str] = field(default_factory=list)  # flags in words (trainer.analysis.regime)
    rank: int | None = None
    steps_to_95: int | None = None
    nonfinite: int = 0


@dataclass
class Comparison:
    """The variants of one task, ranked by one metric."""

    task: str
    metric: str  # "test/dice"
    mode: str
    val_tag: str  # the validation curve of the metric that picks checkpoints: "val/dice"
    baseline: str | None
    baseline_reason: str
    rows: list[Row]
    select: list[str]
    tuning: dict[str, list[Candidate]]  # candidates per variant
    curves: dict[str, dict[str, Curve]]  # variant -> tag -> curve
    # tune=true: each variant's search (its optimization_results.yaml), by variant name
    searches: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Report:
    sweep_dir: Path
    comparisons: list[Comparison]
    runs: list[Run]
    untasked: list[Run]  # runs without a task: failed before training, or from an older train.py
    summary: Path = field(init=False)

    def __post_init__(self) -> None:
        self.summary = self.sweep_dir / "summary.md"


def sign(mode: str) -> int:
    return 1 if mode == "max" else -1


def _or_inf(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _curve_tags(task: str, ranking_metric: str) -> list[str]:
    """The validation and training curves a comparison averages over seeds and draws."""
    extra = TASKS[task].curve_metrics if task in TASKS else ()
    return [f"val/{ranking_metric}", "val/loss", "train/loss_epoch", *(f"val/{m}" for m in extra)]


def _knob_values(run: Run, keys: list[str]) -> dict[str, Any]:
    values, absent = {}, object()
    for key in keys:
        value = OmegaConf.select(run.config, key, default=absent)
        if value is absent:
            raise ValueError(f"compare: --select {key}: not a key of the config of {run.path}")
        values[key] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return values


def _select(runs: list[Run], mode: str) -> tuple[list[Run], dict[str, Any], list[Candidate]]:
    """The runs of the knob values with the best mean validation metric of the tested checkpoint,
    those values, and every candidate (values, mean, runs with a value).

    The means are over those seeds every candidate ran, where they share any: a staged suite runs
    its grid on the first seed and only the chosen value on the others, and that choice is what
    the shared seed says (a mean over more seeds would compare the winner on other terms)."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[json.dumps(run.knobs, sort_keys=True, default=str)].append(run)
    valued = [
        {r.seed for r in g if r.scored and not math.isnan(r.selection_value)}
        for g in groups.values()
    ]
    shared = set.intersection(*valued) if valued else set()
    candidates = []
    for group in groups.values():
        values = [
            r.selection_value
            for r in group
            if r.scored and not math.isnan(r.selection_value) and (not shared or r.seed in shared)
        ]
        mean = statistics.fmean(values) if values else math.nan
        candidates.append((group, mean, len(values)))
    finite = [c for c in candidates if not math.isnan(c[1])]
    if not finite:
        return [], {}, [(g[0].knobs, m, n) for g, m, n in candidates]
    best = max(finite, key=lambda c: sign(mode) * c[1])
    return best[0], dict(best[0][0].knobs), [(g[0].knobs, m, n) for g, m, n in candidates]


def _one(runs: list[Run], attribute: str) -> str:
    values = {getattr(r, attribute) for r in runs}
    if len(values) != 1:
        raise ValueError(f"compare: the runs of one task disagree on {attribute}: {sorted(values)}")
    return values.pop()


def _metric_and_mode(
    runs: list[Run], metric: str | None, mode: str | None
) -> tuple[str, str, str, str]:
    """The runs' ranking metric and direction, and the metric and direction to rank by."""
    ranking_metric, run_mode = _one(runs, "ranking_metric"), _one(runs, "mode")
    metric = metric or f"test/{ranking_metric}"
    if metric != f"test/{ranking_metric}" and mode is None:
        raise ValueError(
            f"compare: --metric {metric}: say --mode max or --mode min (the runs record the "
            f"direction of {ranking_metric} only)"
        )
    return ranking_metric, run_mode, metric, mode or run_mode


def _name_variants(
    runs: list[Run], select: list[str], searches: dict[str, dict[str, Any]]
) -> dict[str, list[Run]]:
    """The runs by variant, each named by its loss and the overrides that set it apart from the
    other runs; the tuned keys (``select``, a tuned suite's searches) stay out of the names."""
    for run in runs:
        run.knobs = _knob_values(run, select)
    tuning_keys = set(select) | {key for s in searches.values() for key in s["best_params"]}
    shared = set.intersection(*(set(run.overrides) for run in runs))
    variants: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        named = [
            o
            for o in run.overrides
            if o not in shared and o.split("=", 1)[0].lstrip("+~") not in tuning_keys
        ]
        run.variant = run_name(run.loss, named)
        variants[run.variant].append(run)
    return variants


def metric_range(task: str, tag: str) -> tuple[float, float]:
    """The values ``tag`` can take, as the task says (unbounded for a task not registered)."""
    return TASKS[task].metric_range(tag) if task in TASKS else (-math.inf, math.inf)


def _row(
    name: str, group: list[Run], chosen: list[Run], selected: dict, metric: str, task: str
) -> Row:
    test_keys = list(dict.fromkeys(k for r in group for k in r.metrics if k.startswith("test/")))
    seeds = per_seed(chosen, metric)

    def interval(tag: str, values: dict[int, float]) -> stats.Interval:
        return stats.within(stats.t_interval(list(values.values())), *metric_range(task, tag))

    return Row(
        variant=name,
        runs=chosen,
        status=status_counts(group),
        failures=failures(group),
        selected=selected,
        metric=interval(metric, seeds),
        others={k: interval(k, per_seed(chosen, k)) for k in test_keys},
        per_seed=seeds,
        nonfinite=sum(r.nonfinite for r in group),
    )


def compare_task(
    runs: list[Run],
    metric: str | None = None,
    mode: str | None = None,
    baseline: str | None = None,
    select: Sequence[str] | None = None,
    read_curves: bool = True,
    searches: dict[str, dict[str, Any]] | None = None,
) -> Comparison:
    """Rank the variants of one task's runs (see the module docstring); ``searches``: the
    variants' searches of a tuned suite, whose tuned keys stay out of the variant names."""
    task = runs[0].task
    ranking_metric, run_mode, metric, mode = _metric_and_mode(runs, metric, mode)
    searches = searches or {}
    if select is None:
        declared = OmegaConf.select(runs[0].config, "suite.select", default=None)
        # a tuned suite's searches chose its selected keys (tune=true searches them): its runs
        # hold one value per variant, nothing left to select
        select = list(declared) if declared is not None and not searches else []
    select = list(select)
    rows, tuning = [], {}
    for name, group in sorted(_name_variants(runs, select, searches).items()):
        chosen, selected = group, {}
        if select:
            chosen, selected, tuning[name] = _select(group, run_mode)
        rows.append(_row(name, group, chosen, selected, metric, task))
    baseline, baseline_reason = _baseline(rows, task, baseline, runs[0].config)
    _verdicts(rows, baseline, mode, metric_range(task, metric))
    _rank(rows, mode)
    curves = _variant_curves(rows, _curve_tags(task, ranking_metric)) if read_curves else {}
    _steps_to_95(rows, curves, f"val/{ranking_metric}", run_mode)
    _regime(rows, curves, f"val/{ranking_metric}", run_mode, task)
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0, -sign(mode) * _or_inf(r.metric.mean)))
    return Comparison(
        task,
        metric,
        mode,
        f"val/{ranking_metric}",
        baseline,
        baseline_reason,
        rows,
        select,
        tuning,
        curves,
        {row.variant: searches[row.variant] for row in rows if row.variant in searches},
    )


def _baseline(
    rows: list[Row], task: str, requested: str | None, config: DictConfig
) -> tuple[str | None, str]:
    """``--baseline`` if it names a variant, else the suite's ``baseline``, else the variant that
    is the task's plain loss; and why."""
    names = [r.variant for r in rows]
    if requested in names:
        return requested, "--baseline"
    declared = OmegaConf.select(config, "suite.baseline", default=None)
    if declared is not None and declared in names:
        return declared, "the suite's `baseline`"
    plain = TASKS[task].plain_loss if task in TASKS else None
    plain_rows = [r for r in rows if r.runs and all(run.loss == plain for run in r.runs)]
    note = f"the suite's baseline {declared} is not a variant; " if declared is not None else ""
    if len(plain_rows) == 1:
        return plain_rows[0].variant, f"{note}the task's plain loss"
    return None, f"{note}no baseline: pass --baseline NAME for verdicts"


def _verdicts(
    rows: list[Row], baseline: str | None, mode: str, bounds: tuple[float, float]
) -> None:
    """Each variant against the baseline: one Holm family per table (every variant of it), and
    the difference's interval at each test's adjusted level, within ``[low - high, high -
    low]`` for a metric in ``[low, high]``."""
    if baseline is None:
        return
    reference = next(r for r in rows if r.variant == baseline)
    compared = [r for r in rows if r is not reference]
    for row in compared:
        row.vs_baseline = stats.paired(row.per_seed, reference.per_seed, mode)
    adjusted = stats.holm([r.vs_baseline.p_value for r in compared])
    low, high = bounds
    for row, p in zip(compared, adjusted, strict=True):
        paired = row.vs_baseline
        row.p_holm = p
        row.verdict = stats.verdict(p, paired.diff.mean, paired.n, mode)
        row.diff = stats.within(
            stats.adjusted_interval(paired.diffs, paired.p_value, p), low - high, high - low
        )
    reference.verdict = "baseline"


def _regime(rows: list[Row], curves: dict, tag: str, mode: str, task: str) -> None:
    """The regime flags of every variant (``trainer.analysis.regime``)."""
    plain = TASKS[task].plain_loss if task in TASKS else None
    for row in rows:
        flags = [
            regime.unfinished([run.status for run in row.runs]),
            regime.still_improving(curves.get(row.variant, {}).get(tag, []), mode, tag),
        ]
        loss, prior = row.others.get("test/loss"), row.others.get("test/prior_loss")
        if plain and loss and prior and row.runs and all(r.loss == plain for r in row.runs):
            flags.append(regime.worse_than_trivial(loss.mean, prior.mean, plain))
        row.regime = [flag for flag in flags if flag]


def _rank(rows: list[Row], mode: str) -> None:
    means = [r.metric.mean for r in rows]
    scored = [i for i, m in enumerate(means) if not math.isnan(m)]
    if not scored:
        return
    top = max(scored, key=lambda i: sign(mode) * means[i])
    p_raw = [
        math.nan if i == top else stats.paired(r.per_seed, rows[top].per_seed, mode).p_value
        for i, r in enumerate(rows)
    ]
    for row, rank in zip(rows, stats.ranks_with_ties(means, stats.holm(p_raw), mode), strict=True):
        row.rank = rank


def _variant_curves(rows: list[Row], tags: list[str]) -> dict[str, dict[str, Curve]]:
    curves = {}
    for row in rows:
        scalars = [read_scalars(run.path) for run in row.runs if run.scored]
        curves[row.variant] = {
            tag: mean_curve([s[tag] for s in scalars if tag in s])
            for tag in tags
            if any(tag in s for s in scalars)
        }
    return curves


def _steps_to_95(rows: list[Row], curves: dict, tag: str, mode: str) -> None:
    direction = sign(mode)
    finals = [c[tag][-1][1] for c in curves.values() if c.get(tag)]
    if not finals:
        return
    best = max(finals, key=lambda v: direction * v)
    target = best * CONVERGENCE_SHARE if direction > 0 else best / CONVERGENCE_SHARE
    for row in rows:
        curve = curves.get(row.variant, {}).get(tag, [])
        row.steps_to_95 = next((s for s, m, *_ in curve if direction * (m - target) >= 0), None)


def compare_runs(
    sweep_dir: Path,
    metric: str | None = None,
    mode: str | None = None,
    baseline: str | None = None,
    select: Sequence[str] | None = None,
    read_curves: bool = True,
) -> Report:
    """Every run below ``sweep_dir``, compared task by task. ``metric`` (and its ``mode``) and
    ``baseline`` apply to the tasks whose runs have them; naming none of them is an error."""
    sweep_dir = Path(sweep_dir)
    searches = read_searches(sweep_dir)
    runs = [load_run(p) for p in status_paths(sweep_dir)]
    if not runs:
        raise FileNotFoundError(f"compare: no runs (status.json) below {sweep_dir}")
    by_task: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if run.task is not None:
            by_task[run.task].append(run)
    comparisons = []
    for _, group in sorted(by_task.items()):
        logged = metric is not None and any(metric in r.metrics for r in group)
        comparisons.append(
            compare_task(
                group,
                metric if logged else None,
                mode if logged else None,
                baseline,
                select,
                read_curves,
                searches,
            )
        )
    if metric is not None and not any(c.metric == metric for c in comparisons):
        raise ValueError(f"compare: --metric {metric}: no run below {sweep_dir} recorded it")
    if baseline is not None and not any(c.baseline == baseline for c in comparisons):
        names = ", ".join(r.variant for c in comparisons for r in c.rows)
        raise ValueError(f"compare: --baseline {baseline} is not a variant; variants: {names}")
    untasked = [r for r in runs if r.task is None]
    everywhere = set.intersection(*(set(run.overrides) for run in runs))
    for run in untasked:  # named by what sets it apart from every other run of the directory
        run.variant = run_name(run.loss, [o for o in run.overrides if o not in everywhere])
    return Report(sweep_dir, comparisons, runs, untasked)
