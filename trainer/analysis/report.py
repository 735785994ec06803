"""The comparison report of a directory of runs: the comparison, then its tables and pictures.

``write_report(sweep_dir)`` reads every run below ``sweep_dir`` (any directory holding the
``status.json`` that ``train.py`` writes, ``_variants/`` excepted), so it works on a multirun
directory, a suite, or ``outputs/`` as a whole; runs of different tasks get one section each.
Failed, stopped and unfinished runs are listed, never dropped.
"""

from collections.abc import Sequence
from pathlib import Path

from trainer.analysis.comparison import Report, compare_runs
from trainer.analysis.markdown import write_summary
from trainer.analysis.plots import write_plots
from trainer.analysis.tables import write_runs_csv, write_summary_csv
from trainer.analysis.variant_curves import write_variant_curves


def write_tables(report: Report) -> None:
    """``summary.md``, ``summary.csv`` and ``runs.csv`` in the sweep dir."""
    write_summary(report)
    write_summary_csv(report)
    write_runs_csv(report)


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
