"""The report's pictures: seed-mean curves, final values with intervals and verdicts, paired
differences, per-class recall and a tuned suite's search progress, as PNG files.

Figures are built without pyplot (no global figure registry, no backend switch): ``savefig``
renders through Agg.
"""

import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from omegaconf import OmegaConf

from trainer.analysis.comparison import Comparison, Report, sign

TAIL_SHARE = 1 / 3  # per-class recall marks the last third of the classes as the tail
VERDICT_COLOURS = {
    "better": "tab:green",
    "worse": "tab:red",
    "tie": "tab:gray",
    "n/a": "lightgray",
    "baseline": "black",
}


def _picture_name(report: Report, comparison: Comparison, stem: str) -> Path:
    suffix = f"-{comparison.task}" if len(report.comparisons) > 1 else ""
    return report.sweep_dir / f"{stem}{suffix}.png"


def write_plots(report: Report) -> list[Path]:
    """The pictures of every comparison, as PNG files in the sweep dir."""
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
    direction = sign(c.mode)
    fig = Figure(figsize=(9, 5))
    ax = fig.subplots()
    for variant, search in c.searches.items():
        best, points = None, []
        for trial in search["trials"]:
            if trial["state"] == "COMPLETE":
                value = trial["value"]
                best = value if best is None else (max if direction > 0 else min)(best, value)
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
