"""The comparison report of a directory of runs: per-variant intervals, paired verdicts against a
baseline, ranks with ties, tuned hyperparameters, tables, pictures and TensorBoard seed means.

``write_report(sweep_dir)`` reads every run below ``sweep_dir`` (any directory holding the
``status.json`` that ``train.py`` writes, ``_variants/`` excepted), so it works on a multirun
directory, a suite, or ``outputs/`` as a whole; runs of different tasks get one section each.
Failed, stopped and unfinished runs are listed, never dropped. The statistics (``trainer.stats``)
follow Musgrave et al. 2020 ("A metric learning reality check": same budget, hyperparameters
chosen on validation), Bouthillier et al. 2021 ("Accounting for variance in machine learning
benchmarks": seeds vary init and data order, comparisons pair them) and Agarwal et al. 2021
("Deep reinforcement learning at the edge of the statistical precipice": intervals and the
probability of improvement).
"""

import csv
import json
import logging
import math
import shutil
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from omegaconf import DictConfig, OmegaConf

from trainer import stats
from trainer.config import run_name
from trainer.search import trials as search_trials

log = logging.getLogger(__name__)
CONVERGENCE_SHARE = 0.95  # a variant has converged once it reaches 95 % of the best final metric
SCORED = ("completed", "stopped")  # a stopped run (nan_policy=stop) was tested: its result counts
PLAIN_LOSS = {"classification": "ce", "segmentation": "bce", "regression": "mse"}
VARIANTS_DIR = "_variants"  # the TensorBoard seed-mean runs; holds no status.json of its own
TAIL_SHARE = 1 / 3  # per-class recall marks the last third of the classes as the tail
VERDICT_COLOURS = {
    "better": "tab:green",
    "worse": "tab:red",
    "tie": "tab:gray",
    "n/a": "lightgray",
    "baseline": "black",
}


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
    verdict: str = "n/a"
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
    tuning: dict[str, list[tuple[dict[str, Any], float, int]]]  # candidates: knobs, val mean, n
    curves: dict[str, dict[str, list[tuple[int, float, float, float]]]]  # variant -> tag -> curve
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
        reason=status.get("error") or status.get("stop_reason") or "",
        metrics=status.get("metrics", {}),
        nonfinite=sum(nonfinite["counts"].values()),
        task=status.get("task"),
        ranking_metric=status.get("ranking_metric"),
        mode=status.get("mode"),
        selection_value=math.nan if value is None else float(value),
    )


def _read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # it narrates every file it opens
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 1, "tensors": 1})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float, float, float]]:
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


def _curve_tags(task: str, ranking_metric: str) -> list[str]:
    tags = [f"val/{ranking_metric}", "val/loss", "train/loss_epoch"]
    return tags + (["val/balanced_acc", "val/min_recall"] if task == "classification" else [])


def _per_seed(runs: list[Run], metric: str) -> dict[int, float]:
    """``{seed: metric}`` of the scored runs; a seed run twice (gathered sweeps) is averaged."""
    values: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        value = run.metrics.get(metric, math.nan) if run.scored else math.nan
        if not math.isnan(value):
            values[run.seed].append(float(value))
    return {seed: statistics.fmean(v) for seed, v in sorted(values.items())}


def _knob_values(run: Run, keys: list[str]) -> dict[str, Any]:
    values, absent = {}, object()
    for key in keys:
        value = OmegaConf.select(run.config, key, default=absent)
        if value is absent:
            raise ValueError(f"compare: --select {key}: not a key of the config of {run.path}")
        values[key] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return values


def _select(
    runs: list[Run], mode: str
) -> tuple[list[Run], dict[str, Any], list[tuple[dict[str, Any], float, int]]]:
    """The runs of the knob values with the best mean validation metric of the tested checkpoint,
    those values, and every candidate (values, mean, runs with a value).

    The means are over those seeds every candidate ran, where they share any: a staged suite runs
    its grid on the first seed and only the chosen value on the others, and that choice is what
    the shared seed says (a mean over more seeds would compare the winner on other terms)."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[json.dumps(run.knobs, sort_keys=True, default=str)].append(run)
    sign = 1 if mode == "max" else -1
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
    best = max(finite, key=lambda c: sign * c[1])
    return best[0], dict(best[0][0].knobs), [(g[0].knobs, m, n) for g, m, n in candidates]


def _status_counts(runs: list[Run]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for run in runs:
        counts[run.status] += 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _failures(runs: list[Run]) -> str:
    """``seed 1: failed: ValueError: ...; seed 2: running`` for the runs that did not complete."""
    return "; ".join(
        ": ".join([f"seed {r.seed}", r.status, *([" ".join(r.reason.split())] if r.reason else [])])
        for r in runs
        if r.status != "completed"
    )


def _one(runs: list[Run], attribute: str) -> str:
    values = {getattr(r, attribute) for r in runs}
    if len(values) != 1:
        raise ValueError(f"compare: the runs of one task disagree on {attribute}: {sorted(values)}")
    return values.pop()


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
    ranking_metric, run_mode = _one(runs, "ranking_metric"), _one(runs, "mode")
    metric = metric or f"test/{ranking_metric}"
    if metric != f"test/{ranking_metric}" and mode is None:
        raise ValueError(
            f"compare: --metric {metric}: say --mode max or --mode min (the runs record the "
            f"direction of {ranking_metric} only)"
        )
    mode = mode or run_mode
    if select is None:
        declared = OmegaConf.select(runs[0].config, "suite.select", default=None)
        select = list(declared) if declared is not None else []
    select = list(select)
    for run in runs:
        run.knobs = _knob_values(run, select)
    searches = searches or {}
    tuning_keys = set(select) | {key for s in searches.values() for key in s["best_params"]}
    shared = set.intersection(*(set(run.overrides) for run in runs))
    for run in runs:
        named = [
            o
            for o in run.overrides
            if o not in shared and o.split("=", 1)[0].lstrip("+~") not in tuning_keys
        ]
        run.variant = run_name(run.loss, named)
    variants: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        variants[run.variant].append(run)

    rows, tuning = [], {}
    for name, group in sorted(variants.items()):
        chosen, selected = group, {}
        if select:
            chosen, selected, tuning[name] = _select(group, run_mode)
        test_keys = list(
            dict.fromkeys(k for r in group for k in r.metrics if k.startswith("test/"))
        )
        per_seed = _per_seed(chosen, metric)
        rows.append(
            Row(
                variant=name,
                runs=chosen,
                status=_status_counts(group),
                failures=_failures(group),
                selected=selected,
                metric=stats.t_interval(list(per_seed.values())),
                others={
                    k: stats.t_interval(list(_per_seed(chosen, k).values())) for k in test_keys
                },
                per_seed=per_seed,
                nonfinite=sum(r.nonfinite for r in group),
            )
        )

    baseline, baseline_reason = _baseline(rows, task, baseline, runs[0].config)
    _verdicts(rows, baseline, mode)
    _rank(rows, mode)
    curves = _variant_curves(rows, _curve_tags(task, ranking_metric)) if read_curves else {}
    _steps_to_95(rows, curves, f"val/{ranking_metric}", run_mode)
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0, -_sign(mode) * _or_inf(r.metric.mean)))
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


def _sign(mode: str) -> int:
    return 1 if mode == "max" else -1


def _or_inf(value: float) -> float:
    return -math.inf if math.isnan(value) else value


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
    plain = PLAIN_LOSS.get(task)
    plain_rows = [r for r in rows if r.runs and all(run.loss == plain for run in r.runs)]
    note = f"the suite's baseline {declared} is not a variant; " if declared is not None else ""
    if len(plain_rows) == 1:
        return plain_rows[0].variant, f"{note}the task's plain loss"
    return None, f"{note}no baseline: pass --baseline NAME for verdicts"


def _verdicts(rows: list[Row], baseline: str | None, mode: str) -> None:
    if baseline is None:
        return
    reference = next(r for r in rows if r.variant == baseline)
    compared = [r for r in rows if r is not reference]
    for row in compared:
        row.vs_baseline = stats.paired(row.per_seed, reference.per_seed, mode)
    adjusted = stats.holm([r.vs_baseline.p_value for r in compared])
    for row, p in zip(compared, adjusted, strict=True):
        row.p_holm = p
        row.verdict = stats.verdict(p, row.vs_baseline.diff.mean, row.vs_baseline.n, mode)
    reference.verdict = "baseline"


def _rank(rows: list[Row], mode: str) -> None:
    means = [r.metric.mean for r in rows]
    scored = [i for i, m in enumerate(means) if not math.isnan(m)]
    if not scored:
        return
    top = max(scored, key=lambda i: _sign(mode) * means[i])
    p_raw = [
        math.nan if i == top else stats.paired(r.per_seed, rows[top].per_seed, mode).p_value
        for i, r in enumerate(rows)
    ]
    for row, rank in zip(rows, stats.ranks_with_ties(means, stats.holm(p_raw), mode), strict=True):
        row.rank = rank


def _variant_curves(
    rows: list[Row], tags: list[str]
) -> dict[str, dict[str, list[tuple[int, float, float, float]]]]:
    curves = {}
    for row in rows:
        scalars = [_read_scalars(run.path) for run in row.runs if run.scored]
        curves[row.variant] = {
            tag: _mean_curve([s[tag] for s in scalars if tag in s])
            for tag in tags
            if any(tag in s for s in scalars)
        }
    return curves


def _steps_to_95(rows: list[Row], curves: dict, tag: str, mode: str) -> None:
    sign = _sign(mode)
    finals = [c[tag][-1][1] for c in curves.values() if c.get(tag)]
    if not finals:
        return
    best = max(finals, key=lambda v: sign * v)
    target = best * CONVERGENCE_SHARE if sign > 0 else best / CONVERGENCE_SHARE
    for row in rows:
        curve = curves.get(row.variant, {}).get(tag, [])
        row.steps_to_95 = next((s for s, m, *_ in curve if sign * (m - target) >= 0), None)


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
    paths = [
        p
        for p in sorted(sweep_dir.rglob("status.json"))
        # a tuned suite's trials are not compared: only the winners, retrained on fresh seeds
        if not {VARIANTS_DIR, search_trials.SEARCH_DIR} & set(p.relative_to(sweep_dir).parts)
    ]
    searches = {
        (results := search_trials.read_results(path))["name"]: results
        for path in sorted(
            (sweep_dir / search_trials.SEARCH_DIR).glob(f"*/{search_trials.RESULTS_FILE}")
        )
    }
    runs = [load_run(p) for p in paths]
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


# ---------------------------------------------------------------------------------------------
# tables


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _interval(iv: stats.Interval) -> str:
    if math.isnan(iv.mean):
        return "n/a"
    if math.isnan(iv.low):
        return f"{iv.mean:.4f} [n/a]"
    return f"{iv.mean:.4f} [{iv.low:.4f}, {iv.high:.4f}]"


def _mean_std(iv: stats.Interval) -> str:
    if math.isnan(iv.mean):
        return "n/a"
    return f"{iv.mean:.4f} ± {'n/a' if math.isnan(iv.std) else f'{iv.std:.4f}'}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _knobs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _section(comparison: Comparison) -> list[str]:
    c, better = comparison, "higher" if comparison.mode == "max" else "lower"
    base = next((r for r in c.rows if r.variant == c.baseline), None)
    lines = [
        f"## {c.task}: {len(c.rows)} variants ranked by {c.metric} ({better} is better)",
        "",
        f"{c.metric}: mean over seeds [95 % Student-t interval]; n/a with one seed. Rank: the best "
        "mean and every variant a paired t-test (Holm-adjusted) cannot separate from it share "
        "rank 1; the rest follow by mean.",
    ]
    pairs = [r.vs_baseline.n for r in c.rows if r.vs_baseline is not None]
    if base is not None:
        lines += [
            "",
            f"Baseline: `{c.baseline}` ({c.baseline_reason}). Δ: variant − baseline over "
            "seeds both ran [95 % paired t-interval]; p: paired t-test (scipy.stats.ttest_rel), "
            f"Holm-adjusted over the {len(pairs)} variant{'s' * (len(pairs) != 1)} compared; "
            "verdict `better`/`worse` at "
            "p < 0.05, else `tie` (not evidence of equality), `n/a` below 2 paired seeds; "
            "P(improve): share of the shared seeds on which the variant wins (ties half). MDE: "
            "the smallest mean difference that test detects with 80 % power at α = 0.05 "
            "(noncentral t, before Holm), given the observed std of the paired differences.",
        ]
        fewest = min(pairs, default=0)
        if 2 <= fewest <= 5:
            d = stats.min_detectable_effect(fewest, 1.0)
            lines += [
                "",
                f"**{fewest} paired seeds: only large effects are caught.** With {fewest} pairs, "
                f"a paired t-test has 80 % power only for a mean difference of {d:.1f}× the std "
                "of the paired differences; smaller real differences mostly read as `tie`.",
            ]
    else:
        lines += ["", f"No verdicts: {c.baseline_reason}."]
    head = ["rank", "variant", "n", c.metric]
    if base is not None:
        head += [f"Δ vs {c.baseline}", "p (Holm)", "P(improve)", "MDE", "verdict"]
    head += ["steps_to_95", "nonfinite", "status"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in c.rows:
        cells = [
            "" if row.rank is None else str(row.rank),
            f"**{row.variant}**" if row.rank == 1 else row.variant,
            str(row.metric.n),
            _interval(row.metric),
        ]
        if base is not None:
            paired = row.vs_baseline
            cells += (
                ["—", "—", "—", "—", "baseline"]
                if paired is None
                else [
                    _interval(paired.diff),
                    _p(row.p_holm),
                    _num(paired.p_improve, 2),
                    _num(paired.mde),
                    row.verdict,
                ]
            )
        cells += [
            "" if row.steps_to_95 is None else str(row.steps_to_95),
            str(row.nonfinite),
            row.status,
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines += [
        "",
        "`steps_to_95`: first validation step at which the seed mean of the validation metric "
        f"reaches {CONVERGENCE_SHARE:.0%} of the best final value of any variant (empty: never).",
    ]
    other_keys = [
        k
        for k in dict.fromkeys(k for r in c.rows for k in r.others)
        # test/loss is each variant's own loss: its values do not compare across variants
        if k not in (c.metric, "test/loss") and "/recall/" not in k
    ]
    if other_keys:
        lines += [
            "",
            "Other test metrics (mean ± std over seeds):",
            "",
            "| variant | " + " | ".join(other_keys) + " |",
            "|" + "---|" * (len(other_keys) + 1),
        ]
        for row in c.rows:
            cells = [_mean_std(row.others.get(k, stats.t_interval([]))) for k in other_keys]
            lines.append(f"| {row.variant} | " + " | ".join(cells) + " |")
    if c.select:
        lines += [
            "",
            f"Tuned on validation ({', '.join(c.select)}): per variant, the value with the best "
            "mean validation metric of the tested checkpoint; only its runs are ranked.",
            "",
            "| variant | chosen | candidates: val mean (n) |",
            "|---|---|---|",
        ]
        for row in c.rows:
            candidates = "; ".join(
                f"{_knobs(k)}: {_num(m)} ({n})" for k, m, n in c.tuning.get(row.variant, [])
            )
            lines.append(f"| {row.variant} | {_knobs(row.selected) or 'n/a'} | {candidates} |")
    if c.searches:
        lines += _search_lines(c)
    failures = [(r.variant, r.failures) for r in c.rows if r.failures]
    if failures:
        lines += ["", "Runs that did not complete:", ""]
        lines += [f"- {name}: {text}" for name, text in failures]
    return lines


def _search_lines(c: Comparison) -> list[str]:
    """The tuned suite's searches: per variant, what was chosen and what the search cost."""
    any_search = next(iter(c.searches.values()))
    lines = [
        "",
        f"Tuned before comparing: per variant, a TPE search of "
        f"{any_search['n_trials']} trials (sampler seed {any_search['sampler']['seed']}) on "
        f"{c.val_tag}, the validation value of the checkpoint a run tests, median-pruned; each "
        "best configuration retrained on the suite's seeds, whose runs are the ones ranked above "
        "(the trials, on their own seed, are not). Best-so-far per trial: `tuning.png`.",
        "",
        "| variant | chosen | trials | pruned | failed | best validation |",
        "|---|---|---|---|---|---|",
    ]
    warnings = []
    for row in c.rows:
        search = c.searches.get(row.variant)
        if search is None:
            continue
        cells = [
            row.variant,
            _knobs(search["best_params"]) or "n/a (no trial completed)",
            str(search["n_trials"]),
            str(search["n_pruned"]),
            str(search["n_failed"]),
            _num(search["best_value"]),
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        warnings += [f"{row.variant}: {warning}" for warning in search["edge_warnings"]]
    if warnings:
        lines += ["", "**Best values at the edge of their range** (the best may lie beyond it):"]
        lines += ["", *(f"- {warning}" for warning in warnings)]
    return lines


def write_tables(report: Report) -> None:
    lines = [f"# Loss comparison: {report.sweep_dir.name}", ""]
    for comparison in report.comparisons:
        lines += [*_section(comparison), ""]
    if report.untasked:
        lines += ["## Runs that are not compared", ""]
        for run in report.untasked:
            what = "failed before training" if run.status == "failed" else "records no task"
            reason = " ".join(run.reason.split())
            lines.append(f"- {run.path.relative_to(report.sweep_dir)}: {what}: {reason}".rstrip())
    report.summary.write_text("\n".join(lines).rstrip() + "\n")
    _write_summary_csv(report)
    _write_runs_csv(report)


def _write_summary_csv(report: Report) -> None:
    metric_keys = list(
        dict.fromkeys(k for c in report.comparisons for r in c.rows for k in r.others)
    )
    head = ["task", "ranking_metric", "mode", "rank", "variant", "seeds", "n", "status", "selected"]
    head += [f"{k} {part}" for k in metric_keys for part in ("mean", "std", "ci_low", "ci_high")]
    head += ["baseline", "diff", "diff_ci_low", "diff_ci_high", "p_value", "p_holm"]
    head += ["p_improve", "mde", "verdict", "steps_to_95", "nonfinite", "failures"]
    with open(report.sweep_dir / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, head, restval="")
        writer.writeheader()
        for c in report.comparisons:
            for row in c.rows:
                cells: dict[str, Any] = {
                    "task": c.task,
                    "ranking_metric": c.metric,
                    "mode": c.mode,
                    "rank": row.rank,
                    "variant": row.variant,
                    "seeds": len(row.runs),
                    "n": row.metric.n,
                    "status": row.status,
                    "selected": _knobs(row.selected),
                    "baseline": c.baseline or "",
                    "p_holm": row.p_holm,
                    "verdict": row.verdict,
                    "steps_to_95": row.steps_to_95,
                    "nonfinite": row.nonfinite,
                    "failures": row.failures,
                }
                for key, iv in row.others.items():
                    cells |= {
                        f"{key} mean": iv.mean,
                        f"{key} std": iv.std,
                        f"{key} ci_low": iv.low,
                        f"{key} ci_high": iv.high,
                    }
                if row.vs_baseline is not None:
                    p = row.vs_baseline
                    cells |= {
                        "diff": p.diff.mean,
                        "diff_ci_low": p.diff.low,
                        "diff_ci_high": p.diff.high,
                        "p_value": p.p_value,
                        "p_improve": p.p_improve,
                        "mde": p.mde,
                    }
                writer.writerow(cells)


def _write_runs_csv(report: Report) -> None:
    override_keys = list(
        dict.fromkeys(o.split("=", 1)[0] for r in report.runs for o in r.overrides)
    )
    metric_keys = list(dict.fromkeys(k for r in report.runs for k in r.metrics))
    head = ["variant", "task", "seed", "status", *override_keys, *metric_keys, "reason", "path"]
    with open(report.sweep_dir / "runs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, head, restval="")
        writer.writeheader()
        for run in report.runs:
            writer.writerow(
                {
                    "variant": run.variant,
                    "task": run.task or "",
                    "seed": run.seed,
                    "status": run.status,
                    **dict(o.split("=", 1) for o in run.overrides if "=" in o),
                    **run.metrics,
                    "reason": " ".join(run.reason.split()),
                    "path": run.path.relative_to(report.sweep_dir),
                }
            )


def _json_number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """The machine-readable verdicts: ``p_value`` is the Holm-adjusted paired p (the one the
    verdict reads); numbers that are not defined are None."""
    variants = []
    for row in comparison.rows:
        paired = row.vs_baseline
        variants.append(
            {
                "variant": row.variant,
                "n": row.metric.n,
                "mean": _json_number(row.metric.mean),
                "std": _json_number(row.metric.std),
                "ci_low": _json_number(row.metric.low),
                "ci_high": _json_number(row.metric.high),
                "diff": _json_number(paired.diff.mean if paired else None),
                "diff_ci_low": _json_number(paired.diff.low if paired else None),
                "diff_ci_high": _json_number(paired.diff.high if paired else None),
                "p_value": _json_number(row.p_holm),
                "p_improve": _json_number(paired.p_improve if paired else None),
                "verdict": row.verdict,
                "selected": row.selected,
            }
        )
    return {
        "metric": comparison.metric,
        "mode": comparison.mode,
        "baseline": comparison.baseline,
        "variants": variants,
    }


def report_json(report: Report) -> dict[str, Any] | list[dict[str, Any]]:
    """One object for one task; a list of them, one per task, when the directory mixes tasks."""
    objects = [comparison_json(c) for c in report.comparisons]
    return objects[0] if len(objects) == 1 else objects


# ---------------------------------------------------------------------------------------------
# pictures


def _picture_name(report: Report, comparison: Comparison, stem: str) -> Path:
    suffix = f"-{comparison.task}" if len(report.comparisons) > 1 else ""
    return report.sweep_dir / f"{stem}{suffix}.png"


def write_plots(report: Report) -> list[Path]:
    """The pictures of every comparison, as PNG files in the sweep dir. Figures are built without
    pyplot (no global figure registry, no backend switch): ``savefig`` renders through Agg."""
    paths = []
    for c in report.comparisons:
        for stem, draw in (
            ("curves", _draw_curves),
            ("final", _draw_final),
            ("paired", _draw_paired),
            ("per_class_recall", _draw_recall),
            ("tuning", _draw_search_progress),
        ):
            fig = draw(c)
            if fig is None:
                continue
            paths.append(_picture_name(report, c, stem))
            fig.savefig(paths[-1], dpi=120, bbox_inches="tight")  # keeps the outside legend
    return paths


def _draw_curves(c: Comparison) -> Figure | None:
    tag = c.val_tag
    drawn = [(row, c.curves.get(row.variant, {}).get(tag)) for row in c.rows]
    drawn = [(row, curve) for row, curve in drawn if curve]
    if not drawn:
        return None
    fig = Figure(figsize=(9, 5))
    ax = fig.subplots()
    for row, curve in drawn:
        steps, mean, low, high = zip(*curve, strict=True)
        (line,) = ax.plot(
            steps, mean, marker="o", markersize=3, label=f"{row.variant} (n={len(row.runs)})"
        )
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
    ax.set(xlabel="training step", ylabel=tag, title=f"{tag}: seed mean, min-max band")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _draw_search_progress(c: Comparison) -> Figure | None:
    """Per variant, the best validation value so far against the trial number: a curve still
    improving at the last trial says the budget was too small to trust the chosen values."""
    if not c.searches:
        return None
    sign = _sign(c.mode)
    fig = Figure(figsize=(9, 5))
    ax = fig.subplots()
    for variant, search in c.searches.items():
        best, points = None, []
        for trial in search["trials"]:
            if trial["state"] == "COMPLETE":
                value = trial["value"]
                best = value if best is None else (max if sign > 0 else min)(best, value)
            if best is not None:
                points.append((trial["number"], best))
        if points:
            ax.step(
                *zip(*points, strict=True), where="post", marker="o", markersize=3, label=variant
            )
    better = "higher" if c.mode == "max" else "lower"
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(
        xlabel="trial",
        ylabel=f"best {c.val_tag} so far ({better} is better)",
        title=f"{c.task}: search progress per variant (completed trials)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _verdict_legend(ax, verdicts: set[str]) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=VERDICT_COLOURS[v], marker="o", linestyle="", label=v)
        for v in VERDICT_COLOURS
        if v in verdicts
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _draw_final(c: Comparison) -> Figure | None:
    scored = [r for r in c.rows if not math.isnan(r.metric.mean)]
    if not scored:
        return None
    fig = Figure(figsize=(9, 0.45 * len(scored) + 1.6))
    ax = fig.subplots()
    for y, row in enumerate(scored):
        colour = VERDICT_COLOURS[row.verdict]
        iv = row.metric
        if not math.isnan(iv.low):
            ax.plot([iv.low, iv.high], [y, y], color=colour, linewidth=2.5, solid_capstyle="butt")
        marker = "D" if row.verdict == "baseline" else "o"
        ax.plot([iv.mean], [y], marker=marker, color=colour, markersize=7)
        ax.plot(row.per_seed.values(), [y] * len(row.per_seed), "|", color=colour, alpha=0.6)
    base = next((r for r in scored if r.variant == c.baseline), None)
    if base is not None:
        ax.axvline(base.metric.mean, color="black", linestyle="--", linewidth=0.8)
    labels = [f"{r.variant}  (rank {r.rank}, {r.verdict})" for r in scored]
    ax.set_yticks(range(len(scored)), labels, fontsize=8)
    ax.set_ylim(len(scored) - 0.5, -0.5)
    better = "higher" if c.mode == "max" else "lower"
    ax.set(
        xlabel=f"{c.metric}: seed mean (dot), 95 % t-interval (bar), seeds (ticks); "
        f"{better} is better",
        title=f"{c.task}: final {c.metric}"
        + (f", verdicts vs {c.baseline} (dashed)" if base is not None else ""),
    )
    ax.grid(axis="x", alpha=0.3)
    _verdict_legend(ax, {r.verdict for r in scored})
    return fig


def _draw_paired(c: Comparison) -> Figure | None:
    base = next((r for r in c.rows if r.variant == c.baseline), None)
    compared = [r for r in c.rows if r.vs_baseline is not None and r.vs_baseline.n > 0]
    if base is None or not compared:
        return None
    fig = Figure(figsize=(9, 0.45 * len(compared) + 1.6))
    ax = fig.subplots()
    for y, row in enumerate(compared):
        colour = VERDICT_COLOURS[row.verdict]
        seeds = sorted(row.per_seed.keys() & base.per_seed.keys())
        diffs = [row.per_seed[s] - base.per_seed[s] for s in seeds]
        ax.plot(diffs, [y] * len(diffs), "o", color=colour, alpha=0.6, markersize=5)
        d = row.vs_baseline.diff
        if not math.isnan(d.low):
            ax.plot([d.low, d.high], [y + 0.2] * 2, color=colour, linewidth=2.5)
        ax.plot([d.mean], [y + 0.2], "D", color=colour, markersize=6)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(
        range(len(compared)), [f"{r.variant}  ({r.verdict})" for r in compared], fontsize=8
    )
    ax.set_ylim(len(compared) - 0.5, -0.5)
    better = "right" if c.mode == "max" else "left"
    ax.set(
        xlabel=f"{c.metric}: variant − {c.baseline} per seed (dots); mean and 95 % paired "
        f"t-interval (bar); better to the {better}",
        title=f"{c.task}: paired differences against {c.baseline}",
    )
    ax.grid(axis="x", alpha=0.3)
    _verdict_legend(ax, {r.verdict for r in compared})
    return fig


def _draw_recall(c: Comparison) -> Figure | None:
    runs = [r for row in c.rows for r in row.runs]
    # class-index order, as the task logs them: head to tail for the long-tailed splits
    keys = list(dict.fromkeys(k for r in runs for k in r.metrics if k.startswith("test/recall/")))
    scored = [row for row in c.rows if row.runs]
    if not keys or not scored:
        return None
    fig = Figure(figsize=(max(8, len(keys) * 0.9), 5))
    ax = fig.subplots()
    width = 0.8 / len(scored)
    centres = [j + 0.4 - width / 2 for j in range(len(keys))]  # of each class's group of bars
    long_tailed = any(
        (OmegaConf.select(r.config, "data.imbalance_ratio", default=1.0) or 1.0) > 1 for r in runs
    )
    if long_tailed:
        first_tail = len(keys) - max(1, round(len(keys) * TAIL_SHARE))
        ax.axvspan(
            centres[first_tail] - 0.5,
            centres[-1] + 0.5,
            color="tab:orange",
            alpha=0.1,
            label="tail (last third of the classes)",
        )
    for i, row in enumerate(scored):
        means = [row.others[k].mean if k in row.others else math.nan for k in keys]
        ax.bar([j + i * width for j in range(len(keys))], means, width, label=row.variant)
    ax.set_xticks(centres, [k.removeprefix("test/recall/") for k in keys], rotation=30)
    order = "head to tail (training count order)" if long_tailed else "class index"
    ax.set(
        ylabel="test recall (seed mean)",
        xlabel=f"class, {order}",
        title=f"{c.task}: per-class recall",
        ylim=(0, 1),
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


# ---------------------------------------------------------------------------------------------
# TensorBoard


def write_variant_curves(report: Report) -> list[Path]:
    """One TensorBoard run per variant under ``<sweep_dir>/_variants/<variant>/``: the seed mean
    of each compared curve at the steps every seed logged, with ``<tag>/min`` and ``<tag>/max``."""
    from torch.utils.tensorboard import SummaryWriter

    root = report.sweep_dir / VARIANTS_DIR
    shutil.rmtree(root, ignore_errors=True)  # a rerun must not append to the last one's curves
    written = []
    for c in report.comparisons:
        for variant, curves in c.curves.items():
            if not curves:
                continue
            directory = root / (variant if len(report.comparisons) == 1 else f"{c.task}-{variant}")
            with SummaryWriter(log_dir=str(directory)) as writer:
                for tag, curve in curves.items():
                    for step, mean, low, high in curve:
                        writer.add_scalar(tag, mean, step)
                        writer.add_scalar(f"{tag}/min", low, step)
                        writer.add_scalar(f"{tag}/max", high, step)
            written.append(directory)
    return written


def write_report(
    sweep_dir: Path,
    metric: str | None = None,
    mode: str | None = None,
    baseline: str | None = None,
    select: Sequence[str] | None = None,
    tensorboard_view: bool = False,
) -> Report:
    """Compare every run below ``sweep_dir``; write ``summary.md``, ``summary.csv``, ``runs.csv``
    and the pictures there (and, with ``tensorboard_view``, the ``_variants/`` seed means)."""
    report = compare_runs(sweep_dir, metric, mode, baseline, select)
    write_tables(report)
    write_plots(report)
    if tensorboard_view:
        write_variant_curves(report)
    return report


class CompareOnMultirunEnd(Callback):
    """Hydra callback: write the comparison report, and the per-variant TensorBoard seed means,
    into the sweep dir when a multirun ends (``suite.select`` and ``suite.baseline`` honoured)."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if config.hydra.sweeper.get("dry_run"):  # the suite sweeper's setting: nothing ran
            return
        if config.get("hparams_search"):  # untested trials: optimization_results.yaml says it
            return
        try:
            report = write_report(Path(config.hydra.sweep.dir), tensorboard_view=True)
            log.info("comparison report: %s", report.summary)
        except Exception as error:  # the runs' own results are already on disk: keep them
            log.error("comparison report failed: %s", error)
