"""The TensorBoard view of a comparison: one run per variant under ``<sweep_dir>/_variants/``,
holding the seed means of its curves."""

import shutil
from pathlib import Path

from trainer.analysis.comparison import Report
from trainer.analysis.runs import VARIANTS_DIR


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
