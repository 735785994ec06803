"""Compare the runs of a sweep: one row per loss variant (seeds pooled), curves and bar charts.

``write_report(sweep_dir)`` reads every run below ``sweep_dir`` (any directory holding the
``status.json`` that ``train.py`` writes), so it works on a multirun directory, a suite, or
``outputs/`` as a whole. Failed, stopped and unfinished runs are listed, never dropped.
"""

import csv
import json
import logging
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from hydra.experimental.callback import Callback
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from trainer.config import run_name
from trainer.tasks import TASKS

log = logging.getLogger(__name__)
CONVERGENCE_SHARE = 0.95  # a variant has converged once it reaches 95 % of the best final metric


@dataclass
class Run:
    path: Path
    loss: str
    overrides: list[str]  # the job's command-line overrides, seed excluded
    seed: int
    task: str
    status: str  # completed | stopped | failed | running (killed before it could say)
    reason: str
    metrics: dict[str, float]
    nonfinite: int
    curve: list[tuple[int, float]] = field(default_factory=list)
    variant: str = ""  # the loss and the overrides that differ between the compared runs


def _read_curve(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # it narrates every file it opens
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 1, "tensors": 1})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


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
    task = get_class(config.data._target_).task
    nonfinite_path = run_dir / "nonfinite.json"
    nonfinite = (
        json.loads(nonfinite_path.read_text()) if nonfinite_path.exists() else {"counts": {}}
    )
    return Run(
        path=run_dir,
        loss=choices.loss,
        overrides=overrides,
        seed=int(config.seed),
        task=task,
        status=status["status"],
        reason=status.get("error") or status.get("stop_reason") or "",
        metrics=status.get("metrics", {}),
        nonfinite=sum(nonfinite["counts"].values()),
        curve=_read_curve(run_dir, f"val/{TASKS[task].monitor}"),
    )


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _mean_curve(runs: list[Run]) -> list[tuple[int, float, float, float]]:
    """(step, mean, min, max) over the seeds at each validation step they share."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        for step, value in run.curve:
            by_step[step].append(value)
    return [
        (s, statistics.fmean(v), min(v), max(v))
        for s, v in sorted(by_step.items())
        if len(v) == len(runs)
    ]


def summarise(runs: list[Run]) -> tuple[list[dict], str, str]:
    """Rows (one per variant, best first), the ranking metric and its mode."""
    tasks = {run.task for run in runs}
    if len(tasks) != 1:
        raise ValueError(f"compare: the runs mix tasks {sorted(tasks)}; compare one task at a time")
    task = TASKS[tasks.pop()]
    metric, sign = f"test/{task.monitor}", 1 if task.mode == "max" else -1
    variants: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        variants[run.variant].append(run)
    test_keys = sorted(
        {k for r in runs for k in r.metrics if k.startswith("test/") and "/recall/" not in k}
    )
    curves = {name: _mean_curve(group) for name, group in variants.items()}
    finals = [curve[-1][1] for curve in curves.values() if curve]
    best_final = max(finals, key=lambda v: sign * v) if finals else math.nan
    target = best_final * CONVERGENCE_SHARE if sign > 0 else best_final / CONVERGENCE_SHARE
    rows = []
    for name, group in variants.items():
        statuses = defaultdict(int)
        for run in group:
            statuses[run.status] += 1
        row = {
            "variant": name,
            "seeds": len(group),
            "status": ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())),
            "nonfinite": sum(r.nonfinite for r in group),
            "steps_to_95": next((s for s, m, *_ in curves[name] if sign * (m - target) >= 0), None),
            "failures": "; ".join(
                f"seed {r.seed}: {' '.join(r.reason.split())}"
                for r in group
                if r.status != "completed"
            ),
        }
        for key in test_keys:
            row[key] = _mean_std([r.metrics.get(key, math.nan) for r in group])
        rows.append(row)
    rows.sort(
        key=lambda r: (
            -sign * r[metric][0] if metric in r and not math.isnan(r[metric][0]) else math.inf
        )
    )
    if rows and metric in rows[0] and not math.isnan(rows[0][metric][0]):
        rows[0]["best"] = True
    return rows, metric, task.mode


def _fmt(value) -> str:
    if isinstance(value, tuple):
        mean, std = value
        return "n/a" if math.isnan(mean) else f"{mean:.4f} ± {std:.4f}"
    return "" if value is None else str(value)


def write_tables(rows: list[dict], metric: str, mode: str, out_dir: Path) -> None:
    metric_keys = [k for k in rows[0] if k.startswith("test/")] if rows else []
    metric_keys.sort(key=lambda k: k != metric)
    columns = ["variant", "seeds", "status", *metric_keys, "steps_to_95", "nonfinite", "failures"]
    with open(out_dir / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        header = []
        for c in columns:
            header += [f"{c} mean", f"{c} std"] if c in metric_keys else [c]
        writer.writerow([*header, "best"])
        for row in rows:
            cells = []
            for c in columns:
                cells += (
                    list(row.get(c, (math.nan, math.nan))) if c in metric_keys else [row.get(c, "")]
                )
            writer.writerow([*cells, "yes" if row.get("best") else ""])
    lines = [
        f"# Loss comparison: {len(rows)} variants ranked by {metric} ({mode}imised)",
        "",
        "Metrics are mean ± std over seeds. `steps_to_95`: first validation step at which the",
        f"seed-mean of val/{metric.split('/', 1)[1]} reaches {CONVERGENCE_SHARE:.0%} of the best "
        "final value of any variant (empty: never).",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = [_fmt(row.get(c)).replace("|", "\\|") for c in columns]
        cells[0] = f"**{cells[0]}** (best)" if row.get("best") else cells[0]
        lines.append("| " + " | ".join(cells) + " |")
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")


def write_plots(runs: list[Run], rows: list[dict], metric: str, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        variants[run.variant].append(run)
    name = metric.split("/", 1)[1]
    paths = []

    fig, ax = plt.subplots(figsize=(8, 5))
    for variant, group in sorted(variants.items()):
        curve = _mean_curve(group)
        if curve:
            steps, mean, low, high = zip(*curve, strict=True)
            (line,) = ax.plot(
                steps, mean, marker="o", markersize=3, label=f"{variant} (n={len(group)})"
            )
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
    ax.set(
        xlabel="training step", ylabel=f"val/{name}", title=f"val/{name}: seed mean, min-max band"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    paths.append(out_dir / "curves.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    scored = [r for r in rows if metric in r and not math.isnan(r[metric][0])]
    if scored:
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(scored) + 1.5))
        ax.barh(
            [r["variant"] for r in scored],
            [r[metric][0] for r in scored],
            xerr=[r[metric][1] for r in scored],
            color=["tab:orange" if r.get("best") else "tab:blue" for r in scored],
            capsize=3,
        )
        ax.invert_yaxis()
        ax.set(xlabel=f"{metric} (mean ± std over seeds)", title=f"final {metric}")
        ax.grid(axis="x", alpha=0.3)
        paths.append(out_dir / "final.png")
        fig.tight_layout()
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)

    recall_keys = sorted({k for r in runs for k in r.metrics if k.startswith("test/recall/")})
    if recall_keys:
        fig, ax = plt.subplots(figsize=(max(8, len(recall_keys) * 0.9), 5))
        width = 0.8 / len(variants)
        for i, (variant, group) in enumerate(sorted(variants.items())):
            means = [
                statistics.fmean(r.metrics.get(k, math.nan) for r in group) for k in recall_keys
            ]
            ax.bar([j + i * width for j in range(len(recall_keys))], means, width, label=variant)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(recall_keys))])
        ax.set_xticklabels([k.removeprefix("test/recall/") for k in recall_keys], rotation=30)
        ax.set(ylabel="test recall (seed mean)", title="per-class recall", ylim=(0, 1))
        ax.legend(fontsize=7)
        paths.append(out_dir / "per_class_recall.png")
        fig.tight_layout()
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


def write_report(sweep_dir: Path) -> Path:
    """Summarise every run below ``sweep_dir`` into ``summary.md``, ``summary.csv`` and PNGs."""
    sweep_dir = Path(sweep_dir)
    runs = [load_run(p) for p in sorted(sweep_dir.rglob("status.json"))]
    if not runs:
        raise FileNotFoundError(f"compare: no runs (status.json) below {sweep_dir}")
    shared = set.intersection(*(set(run.overrides) for run in runs))
    for run in runs:
        run.variant = run_name(run.loss, [o for o in run.overrides if o not in shared])
    rows, metric, mode = summarise(runs)
    write_tables(rows, metric, mode, sweep_dir)
    write_plots(runs, rows, metric, sweep_dir)
    return sweep_dir / "summary.md"


class CompareOnMultirunEnd(Callback):
    """Hydra callback: write the comparison report into the sweep dir when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        try:
            log.info("comparison report: %s", write_report(Path(config.hydra.sweep.dir)))
        except Exception as error:  # the runs' own results are already on disk: keep them
            log.error("comparison report failed: %s", error)
