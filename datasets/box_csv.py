"""``data=box_csv``: single-object localisation from the user's images and a CSV of their boxes,
and its exporter.

Layout: ``ROOT/boxes.csv`` (or ``ROOT/train/boxes.csv``, ``ROOT/test/boxes.csv`` and maybe
``ROOT/val/boxes.csv``, else validation drawn from train; without them a seeded split, see
:mod:`datasets.dense_files`) with the header ``file,x1,y1,x2,y2`` and one row per image: the
image's path relative to the CSV's folder and its one box in pixel coordinates of the original
image, with the pixel-edge convention of ``data=boxes`` (a box over columns 3..7 and rows 0..4 is
``x1=3, y1=0, x2=8, y2=5``; x is the column). ``data.root`` names the folder rather than the CSV
file: every file datamodule takes a root, and a root may hold the three split folders.

Every box must be valid (``x2 > x1``, ``y2 > y1``) and lie inside its image (``0 <= x1``,
``x2 <= width``, same for y); an image has one row. Anything else is a one-line DataError naming
the CSV and its line (the header is line 1).

Tensors, as ``data=boxes`` serves them: images uint8 ``[N, C, S, S]`` in memory (resized to
``image_size``), served as float32 in [0, 1] (``/ 255``) a batch at a time; boxes float32
``[N, 4]`` ``(x1, y1, x2, y2)`` in image units [0, 1] (divided by the original width and height,
so resizing, even to another aspect ratio, leaves them right).
"""

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from datasets._base import SPLITS, TensorBatches, to_unit
from datasets.dense_files import DenseFileDataModule, file_names, served, write_pngs
from datasets.errors import DataError
from datasets.files import DEFAULT_CACHE_DIR, DEFAULT_MAX_MEMORY, cached_tensors, image_size_of

CSV_NAME = "boxes.csv"
COLUMNS = ("file", "x1", "y1", "x2", "y2")


class Row(NamedTuple):
    """One image's box as its CSV line gives it."""

    image: Path
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    csv: Path
    line: int  # the header is line 1

    @property
    def where(self) -> str:
        return f"{self.csv} line {self.line}"


def _coordinates(record: dict, where: str, name: str) -> tuple[float, float, float, float]:
    try:
        box = tuple(float(record[column]) for column in COLUMNS[1:])
    except (TypeError, ValueError):
        given = ", ".join(str(record[column]) for column in COLUMNS[1:])
        raise DataError(f"{name}: {where}: expected numbers x1, y1, x2, y2, got {given}") from None
    if not all(math.isfinite(v) for v in box):
        raise DataError(f"{name}: {where}: expected finite coordinates, got {box}")
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise DataError(
            f"{name}: {where}: the box (x1 {x1:g}, y1 {y1:g}, x2 {x2:g}, y2 {y2:g}) is empty or "
            "inverted; expected x2 > x1 and y2 > y1"
        )
    return box


def read_rows(folder: Path, name: str) -> list[Row]:
    """The rows of ``folder/boxes.csv``, each box valid and each image existing and listed once
    (whether a box lies inside its image is checked when the images' sizes are read)."""
    path = folder / CSV_NAME
    if not path.is_file():
        raise DataError(
            f"{name}: {path} does not exist; expected a CSV with the header "
            f"{','.join(COLUMNS)} (one box per image, in pixels) in {folder}"
        )
    # utf-8-sig: a spreadsheet's byte order mark would otherwise stick to the first column name
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file, skipinitialspace=True)
        missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"{name}: {path} lacks the column(s) {', '.join(missing)}; expected the header "
                f"{','.join(COLUMNS)}"
            )
        rows, lines = [], {}
        for record in reader:
            where = f"{path} line {reader.line_num}"
            box = _coordinates(record, where, name)
            image = folder / (record["file"] or "")
            if not record["file"] or not image.is_file():
                raise DataError(f"{name}: {where}: the image {image} does not exist")
            if image in lines:
                raise DataError(
                    f"{name}: {where}: {record['file']} has a box already ({lines[image]}); "
                    "one box per image"
                )
            lines[image] = f"line {reader.line_num}"
            rows.append(Row(image, box, path, reader.line_num))
    if not rows:
        raise DataError(f"{name}: {path} lists no boxes")
    return rows


def unit_boxes(rows: Sequence[Row], name: str) -> dict[str, Tensor]:
    """The boxes in image units (divided by each image's width and height, in float64, then
    float32), each checked to lie inside its image."""
    boxes = []
    for row in rows:
        width, height = image_size_of(row.image, name)
        x1, y1, x2, y2 = row.box
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise DataError(
                f"{name}: {row.where}: the box (x1 {x1:g}, y1 {y1:g}, x2 {x2:g}, y2 {y2:g}) "
                f"lies outside its {width}x{height} image {row.image}"
            )
        boxes.append([x1 / width, y1 / height, x2 / width, y2 / height])
    return {"boxes": torch.tensor(boxes, dtype=torch.float64).float()}


class BoxCsvDataModule(DenseFileDataModule):
    """``data=box_csv``: the user's images and one box each (see the module doc)."""

    task = "boxes"
    name = "box_csv"
    num_outputs = 4  # x1, y1, x2, y2

    def __init__(
        self,
        root: str,
        channels: int = 3,
        image_size: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 500,
        num_workers: int = 0,
        cache_dir: str = DEFAULT_CACHE_DIR,
        max_memory: float = DEFAULT_MAX_MEMORY,
    ) -> None:
        super().__init__(
            root,
            channels,
            image_size,
            val_fraction,
            test_fraction,
            split_seed,
            batch_size,
            eval_batch_size,
            num_workers,
            cache_dir,
            max_memory,
        )

    def build_splits(self) -> tuple[TensorBatches, ...]:
        rows, index = self.gather(lambda folder: read_rows(folder, self.name))
        files = [row.image for row in rows]
        self.image_size = self.side(files)
        boxes = cached_tensors(
            self.name,
            [*dict.fromkeys(row.csv for row in rows), *files],
            {"boxes": "image units"},
            self.cache_dir,
            lambda: unit_boxes(rows, self.name),
        )["boxes"]
        images = self.load_inputs(files)
        return tuple(
            self.split(images, files, boxes, chosen, self.decoding, to_unit) for chosen in index
        )


def export_boxes(datamodule, out_dir: Path, limit: int | None = None) -> None:
    """A box datamodule's splits as ``out_dir/train|val|test/<i>.png`` (8-bit, gray or RGB) and
    ``.../boxes.csv`` (``file,x1,y1,x2,y2``, the image-unit boxes times the image's side, in
    pixels to 6 decimals), the layout ``data=box_csv`` reads."""
    for split in SPLITS:
        images, boxes = served(datamodule, split, limit)
        folder = Path(out_dir) / split
        names = file_names(len(images))
        write_pngs(images, folder, names, "images")
        height, width = images.shape[-2:]
        pixels = boxes.double() * torch.tensor([width, height, width, height], dtype=torch.float64)
        with open(folder / CSV_NAME, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(COLUMNS)
            for file_name, box in zip(names, pixels.tolist(), strict=True):
                writer.writerow([file_name, *(f"{v:.6f}".rstrip("0").rstrip(".") for v in box)])
