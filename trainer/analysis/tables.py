"""The report's machine-readable tables: ``summary.csv`` (a row per variant), ``runs.csv`` (a row
per run) and the verdicts as JSON."""

import csv
import math
from typing import Any

from trainer.analysis.comparison import Comparison, Report, Row
from trainer.analysis.markdown import knobs


def _summary_cells(c: Comparison, row: Row) -> dict[str, Any]:
    cells: dict[str, Any] = {
        "task": c.task,
        "ranking_metric": c.metric,
        "mode": c.mode,
        "rank": row.rank,
        "variant": row.variant,
        "seeds": len(row.runs),
        "n": row.metric.n,
        "status": row.status,
        "selected": knobs(row.selected),
        "baseline": c.baseline or "",
        "p_holm": row.p_holm,
        "verdict": row.verdict,
        "regime": "; ".join(row.regime),
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
        p, diff = row.vs_baseline, row.diff or row.vs_baseline.diff
        cells |= {
            "diff": p.diff.mean,
            "diff_ci_low": diff.low,
            "diff_ci_high": diff.high,
            "p_value": p.p_value,
            "p_improve": p.p_improve,
            "mde": p.mde,
        }
    return cells


def write_summary_csv(report: Report) -> None:
    metric_keys = list(
        dict.fromkeys(k for c in report.comparisons for r in c.rows for k in r.others)
    )
    head = ["task", "ranking_metric", "mode", "rank", "variant", "seeds", "n", "status", "selected"]
    head += [f"{k} {part}" for k in metric_keys for part in ("mean", "std", "ci_low", "ci_high")]
    head += ["baseline", "diff", "diff_ci_low", "diff_ci_high", "p_value", "p_holm"]
    head += ["p_improve", "mde", "verdict", "regime", "steps_to_95", "nonfinite", "failures"]
    with open(report.sweep_dir / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, head, restval="")
        writer.writeheader()
        for c in report.comparisons:
            for row in c.rows:
                writer.writerow(_summary_cells(c, row))


def write_runs_csv(report: Report) -> None:
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


def json_number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """The machine-readable verdicts: ``p_value`` is the Holm-adjusted paired p (the one the
    verdict reads), ``diff_ci_*`` the interval at its level; ``mde`` the smallest difference the
    test detects with 80 % power; ``label`` the verdict (a suite declares no expected effects:
    better / worse / tie / n/a / baseline); ``regime`` the flags, empty when none; numbers that
    are not defined are None."""
    variants = []
    for row in comparison.rows:
        paired = row.vs_baseline
        diff = row.diff or (paired.diff if paired else None)
        variants.append(
            {
                "variant": row.variant,
                "n": row.metric.n,
                "mean": json_number(row.metric.mean),
                "std": json_number(row.metric.std),
                "ci_low": json_number(row.metric.low),
                "ci_high": json_number(row.metric.high),
                "diff": json_number(paired.diff.mean if paired else None),
                "diff_ci_low": json_number(diff.low if diff else None),
                "diff_ci_high": json_number(diff.high if diff else None),
                "p_value": json_number(row.p_holm),
                "p_improve": json_number(paired.p_improve if paired else None),
                "mde": json_number(paired.mde if paired else None),
                "verdict": row.verdict,
                "label": row.verdict,
                "regime": row.regime,
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
