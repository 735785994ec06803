"""``data=clean_folder``: image restoration on the user's images, and its exporter.

Layout, in ``ROOT/`` (split by a seeded split) or in each of ``ROOT/train/`` and ``ROOT/test/``
(and ``ROOT/val/``, else drawn from train), see :mod:`datasets.dense_files`:

- clean images directly in the folder (or in its ``clean/``): each split is degraded once, when
  it is built, by the same seeded degradation as ``data=restoration`` (its ``noise`` and
  ``strength``, :func:`datasets.restoration.degrade`, the noise stream of the split under
  ``seed``), so the pairs are fixed for the run and the same for every run of one seed;
- ``degraded/`` and ``clean/`` whose files pair by stem: fixed pairs, taken as they are (``noise``
  and ``strength`` unused). A degraded image covers its clean one pixel for pixel.

Tensors, as ``data=restoration`` serves them: degraded inputs and clean targets float32
``[N, C, S, S]`` in [0, 1]. Both sit in memory as float32 (8 bytes a pixel and channel), which
must fit ``max_memory``: restoration's targets are images, so they cannot stream from disk.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from datasets._base import SPLITS, TensorBatches, split_stream
from datasets.dense_files import (
    DenseFileDataModule,
    check_pair_sizes,
    file_names,
    pair_by_stem,
    served,
    write_pngs,
)
from datasets.errors import DataError
from datasets.files import (
    DEFAULT_CACHE_DIR,
    DEFAULT_MAX_MEMORY,
    cached_tensors,
    list_images,
    read_images,
)
from datasets.restoration import NOISES, degrade
from losses.checks import check_range

ROLES = ("clean image", "degraded image")
FLOAT_BYTES = 8  # float32 degraded input and float32 clean target, per pixel and channel

Item = tuple[Path, Path | None]  # a clean image and its degraded partner (None: degraded here)


def read_folder(folder: Path, name: str) -> list[Item]:
    """The clean images of ``folder`` and their degraded partners (see the module doc)."""
    clean, degraded = folder / "clean", folder / "degraded"
    if degraded.is_dir() and not clean.is_dir():
        raise DataError(f"{name}: {degraded} has no clean/ beside it; fixed pairs need both")
    if degraded.is_dir():
        return list(pair_by_stem(clean, degraded, name, ROLES))
    return [(path, None) for path in list_images(clean if clean.is_dir() else folder, name)]


class CleanFolderDataModule(DenseFileDataModule):
    """``data=clean_folder``: degraded inputs, the user's clean images as targets."""

    task = "restoration"
    name = "clean_folder"

    def __init__(
        self,
        root: str,
        noise: str = "gaussian",
        strength: float = 0.2,
        seed: int = 0,
        channels: int = 3,
        image_size: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 32,
        eval_batch_size: int = 250,
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
        if noise not in NOISES:
            raise ValueError(f"{self.name}: expected noise in {NOISES}, got {noise!r}")
        check_range(self.name, "strength", strength, 0.0, 1.0)
        self.noise, self.strength, self.seed = noise, strength, seed

    @property
    def num_outputs(self) -> int:
        return self.in_channels  # the restored image has the input's channels

    def check_memory(self, files: Sequence[Path]) -> None:
        """The float32 inputs and targets of ``files`` fit ``max_memory``: restoration's targets
        are images, which cannot stream from disk as inputs can."""
        size = self.decoded_size(files, self.in_channels, self.resize) * FLOAT_BYTES / 2**20
        if size > self.max_memory:
            raise DataError(
                f"{self.name}: the {len(files)} images under {self.root} take {size:.3g} MB as "
                f"float32 inputs and targets, over data.max_memory={self.max_memory:g} MB; "
                "set data.image_size lower or data.max_memory higher"
            )

    def decode(self, items: Sequence[Item]) -> dict[str, Tensor]:
        """uint8 ``clean`` images of every item and ``degraded`` ones of the paired items."""
        pairs = [(clean, degraded) for clean, degraded in items if degraded is not None]
        check_pair_sizes(pairs, self.name, ROLES)
        decoding = self.decoding
        return {
            "clean": read_images([clean for clean, _ in items], self.name, **decoding),
            "degraded": read_images([degraded for _, degraded in pairs], self.name, **decoding),
        }

    def build_splits(self) -> tuple[TensorBatches, ...]:
        items, index = self.gather(lambda folder: read_folder(folder, self.name))
        files = [clean for clean, _ in items]
        self.image_size = self.side(files)
        self.check_memory(files)
        every_file = [*files, *(degraded for _, degraded in items if degraded is not None)]
        options = {**self.decoding, "tensors": "clean, degraded"}
        decoded = cached_tensors(
            self.name, every_file, options, self.cache_dir, lambda: self.decode(items)
        )
        # the row of each paired item's degraded image (items of one split are all paired or
        # none: a split comes from one folder)
        paired = torch.tensor([degraded is not None for _, degraded in items])
        row = paired.long().cumsum(0) - 1
        splits = []
        for split, chosen in zip(SPLITS, index, strict=True):
            clean = decoded["clean"][chosen].float().div_(255)
            if len(chosen) and paired[chosen[0]]:
                inputs = decoded["degraded"][row[chosen]].float().div_(255)
            else:
                seed = split_stream(self.seed, split)
                inputs = degrade(clean, self.noise, self.strength, seed)
            splits.append(TensorBatches(inputs, clean))
        return tuple(splits)


def export_restoration(datamodule, out_dir: Path, limit: int | None = None) -> None:
    """A restoration datamodule's splits as fixed pairs, ``out_dir/train|val|test/clean/<i>.png``
    and its inputs as ``.../degraded/<i>.png`` (8-bit PNGs, gray or RGB). Without ``degraded/``
    (delete it), ``data=clean_folder`` degrades the clean images itself."""
    for split in SPLITS:
        inputs, clean = served(datamodule, split, limit)
        names = file_names(len(clean))
        write_pngs(clean, Path(out_dir) / split / "clean", names, "clean images")
        write_pngs(inputs, Path(out_dir) / split / "degraded", names, "degraded images")
