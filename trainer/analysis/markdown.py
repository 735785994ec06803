"""The report's ``summary.md``: per task, the ranking table with verdicts, the other test
metrics, the tuning and the runs that did not complete."""

import math
from typing import Any

from trainer.analysis import stats
from trainer.analysis.comparison import CONVERGENCE_SHARE, Comparison, Report, Row
from trainer.analysis.regime import STILL_RISING_SHARE


def num(value: float | None, digits: int = 4) -> str:
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


def knobs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _baseline_lines(c: Comparison) -> list[str]:
    """How the verdicts are made, and how small a sample of paired seeds they rest on."""
    pairs = [r.vs_baseline.n for r in c.rows if r.vs_baseline is not None]
    lines = [
        "",
        f"Baseline: `{c.baseline}` ({c.baseline_reason}). Δ: variant − baseline over "
        "seeds both ran [paired t-interval at the level of its Holm-adjusted test, "
        "1 − 0.05·p/p_Holm, so it excludes 0 exactly when the verdict is not `tie`; kept "
        "within the metric's range]; p: paired t-test (scipy.stats.ttest_rel; the exact "
        "sign-flip test where the differences have no spread), "
        f"Holm-adjusted over the {len(pairs)} variant{'s' * (len(pairs) != 1)} compared; "
        "verdict `better`/`worse` at "
        "p < 0.05, else `tie` (not evidence of equality: it names the smallest difference the "
        "test could have detected), `n/a` below 2 paired seeds; "
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
    return lines


def _ranking_cells(row: Row, with_baseline: bool) -> list[str]:
    cells = [
        "" if row.rank is None else str(row.rank),
        f"**{row.variant}**" if row.rank == 1 else row.variant,
        str(row.metric.n),
        _interval(row.metric),
    ]
    if with_baseline:
        paired = row.vs_baseline
        cells += (
            ["—", "—", "—", "—", "baseline"]
            if paired is None
            else [
                _interval(row.diff or paired.diff),
                _p(row.p_holm),
                num(paired.p_improve, 2),
                num(paired.mde),
                verdict_words(row),
            ]
        )
    steps = "" if row.steps_to_95 is None else str(row.steps_to_95)
    return [*cells, steps, str(row.nonfinite), row.status, "; ".join(row.regime)]


def verdict_words(row: Row) -> str:
    """The verdict, and beside a tie the smallest difference its test could have detected."""
    mde = row.vs_baseline.mde if row.vs_baseline is not None else math.nan
    if row.verdict == "tie" and not math.isnan(mde):
        return f"tie (could not detect < {mde:.3g})"
    return row.verdict


def _ranking_table(c: Comparison, with_baseline: bool) -> list[str]:
    head = ["rank", "variant", "n", c.metric]
    if with_baseline:
        head += [f"Δ vs {c.baseline}", "p (Holm)", "P(improve)", "MDE", "verdict"]
    head += ["steps_to_95", "nonfinite", "status", "regime"]
    lines = ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [_table_row(_ranking_cells(row, with_baseline)) for row in c.rows]
    return [
        *lines,
        "",
        "`steps_to_95`: first validation step at which the seed mean of the validation metric "
        f"reaches {CONVERGENCE_SHARE:.0%} of the best final value of any variant (empty: never). "
        "`regime`: `budget too short` when the seed-mean validation metric gained, over its "
        f"last quarter of validations, at least {STILL_RISING_SHARE:.0%} of its whole gain and "
        "ends at its best; `worse than the trivial predictor` for a plain-loss variant whose "
        "test loss is above that of the constant training prior; `not completed` counts "
        "the runs that failed or stopped. A flag qualifies the verdict: the runs may not be in "
        "the regime the comparison is about.",
    ]


def _other_metrics(c: Comparison) -> list[str]:
    other_keys = [
        k
        for k in dict.fromkeys(k for r in c.rows for k in r.others)
        # test/loss is each variant's own loss: its values do not compare across variants
        if k not in (c.metric, "test/loss") and "/recall/" not in k
    ]
    if not other_keys:
        return []
    lines = [
        "",
        "Other test metrics (mean ± std over seeds):",
        "",
        "| variant | " + " | ".join(other_keys) + " |",
        "|" + "---|" * (len(other_keys) + 1),
    ]
    for row in c.rows:
        cells = [_mean_std(row.others.get(k, stats.t_interval([]))) for k in other_keys]
        lines.append(f"| {row.variant} | " + " | ".join(cells) + " |")
    return lines


def _selection_lines(c: Comparison) -> list[str]:
    lines = [
        "",
        f"Tuned on validation ({', '.join(c.select)}): per variant, the value with the best "
        "mean validation metric of the tested checkpoint; only its runs are ranked.",
        "",
        "| variant | chosen | candidates: val mean (n) |",
        "|---|---|---|",
    ]
    for row in c.rows:
        candidates = "; ".join(
            f"{knobs(k)}: {num(m)} ({n})" for k, m, n in c.tuning.get(row.variant, [])
        )
        lines.append(f"| {row.variant} | {knobs(row.selected) or 'n/a'} | {candidates} |")
    return lines


def search_lines(c: Comparison) -> list[str]:
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
            knobs(search["best_params"]) or "n/a (no trial completed)",
            str(search["n_trials"]),
            str(search["n_pruned"]),
            str(search["n_failed"]),
            num(search["best_value"]),
        ]
        lines.append(_table_row(cells))
        warnings += [f"{row.variant}: {warning}" for warning in search["edge_warnings"]]
    if warnings:
        lines += ["", "**Best values at the edge of their range** (the best may lie beyond it):"]
        lines += ["", *(f"- {warning}" for warning in warnings)]
    return lines


def section(c: Comparison) -> list[str]:
    """One task's part of ``summary.md``."""
    better = "higher" if c.mode == "max" else "lower"
    with_baseline = any(r.variant == c.baseline for r in c.rows)
    lines = [
        f"## {c.task}: {len(c.rows)} variants ranked by {c.metric} ({better} is better)",
        "",
        f"{c.metric}: mean over seeds [95 % Student-t interval]; n/a with one seed. Rank: the best "
        "mean and every variant a paired t-test (Holm-adjusted) cannot separate from it share "
        "rank 1; the rest follow by mean.",
    ]
    lines += _baseline_lines(c) if with_baseline else ["", f"No verdicts: {c.baseline_reason}."]
    lines += _ranking_table(c, with_baseline)
    lines += _other_metrics(c)
    if c.select:
        lines += _selection_lines(c)
    if c.searches:
        lines += search_lines(c)
    failed = [(r.variant, r.failures) for r in c.rows if r.failures]
    if failed:
        lines += ["", "Runs that did not complete:", ""]
        lines += [f"- {name}: {text}" for name, text in failed]
    return lines


def write_summary(report: Report) -> None:
    """``summary.md``: a section per task, then the runs that no comparison could take."""
    lines = [f"# Loss comparison: {report.sweep_dir.name}", ""]
    for comparison in report.comparisons:
        lines += [*section(comparison), ""]
    if report.untasked:
        lines += ["## Runs that are not compared", ""]
        for run in report.untasked:
            what = "failed before training" if run.status == "failed" else "records no task"
            reason = " ".join(run.reason.split())
            lines.append(f"- {run.path.relative_to(report.sweep_dir)}: {what}: {reason}".rstrip())
    report.summary.write_text("\n".join(lines).rstrip() + "\n")
