"""Which writer exports a built-in dataset of each task to the file layout its file datamodule
reads: ``EXPORTERS`` maps a task to ``writer(datamodule, out_dir, limit)``. Each writer lives
beside its reader (the module of the file datamodule); this module only maps tasks to them.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets.box_csv import export_boxes
from datasets.clean_folder import export_restoration
from datasets.image_folder import export_class_folders
from datasets.mask_folder import export_segmentation
from datasets.table import export_regression

Exporter = Callable[[Any, Path, int | None], None]

EXPORTERS: dict[str, Exporter] = {
    "boxes": export_boxes,  # -> data=box_csv
    "classification": export_class_folders,  # -> data=image_folder
    "regression": export_regression,  # -> data=table
    "retrieval": export_class_folders,  # -> data=retrieval_folder
    "restoration": export_restoration,  # -> data=clean_folder (clean/ and degraded/ pairs)
    "segmentation": export_segmentation,  # -> data=mask_folder
}


def export(datamodule: Any, out_dir: Path, limit: int | None = None) -> None:
    """Write ``datamodule``'s train, val and test splits (the first ``limit`` of each) under
    ``out_dir`` with the writer of its task."""
    if datamodule.task not in EXPORTERS:
        raise ValueError(
            f"export: no writer for task {datamodule.task!r} (data {datamodule.name}); "
            f"tasks with one: {', '.join(sorted(EXPORTERS))}"
        )
    if limit is not None and limit < 1:
        raise ValueError(f"export: expected --limit >= 1, got {limit}")
    EXPORTERS[datamodule.task](datamodule, Path(out_dir), limit)
