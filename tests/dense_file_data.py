"""Tiny built-in data of the dense tasks, and their copies in the file layouts that
``data=mask_folder``, ``clean_folder`` and ``box_csv`` read (the writers ``tests/file_data.py``'s
``EXPORTS`` names): the equality tests compare what the file datamodules load with the built-in
tensors these were written from.

Each copy is written by ``datasets.export.export`` (the task's writer, as
``scripts/export_data.py`` runs it), so the tests exercise the export too: 32 training, 16
validation and 16 test images of 32 px, as 8-bit PNGs.
"""

from pathlib import Path

from datasets.boxes import BoxesDataModule
from datasets.export import export
from datasets.restoration import RestorationDataModule
from datasets.segmentation import SegImbalancedDataModule

SIZES = dict(n_train=32, n_val=16, n_test=16)


def builtin(name: str):
    """The tiny built-in datamodule the layout of file data config ``name`` is written from."""
    if name == "mask_folder":
        return SegImbalancedDataModule(**SIZES, image_size=32)
    if name == "clean_folder":
        return RestorationDataModule(**SIZES)  # synthetic shapes, 32 px, gaussian 0.2
    if name == "box_csv":
        return BoxesDataModule(**SIZES, image_size=32)
    raise ValueError(f"no built-in data for {name!r}")


def write_mask_folder(out: Path) -> None:
    """``out/train|val|test/images|masks/<i>.png``."""
    export(builtin("mask_folder"), out)


def write_clean_folder(out: Path) -> None:
    """``out/train|val|test/clean|degraded/<i>.png``: fixed pairs (without ``degraded/``, the
    clean images alone, which the datamodule degrades itself)."""
    export(builtin("clean_folder"), out)


def write_box_csv(out: Path) -> None:
    """``out/train|val|test/<i>.png`` and ``.../boxes.csv``."""
    export(builtin("box_csv"), out)
