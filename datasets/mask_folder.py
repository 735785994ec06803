"""``data=mask_folder``: binary segmentation from the user's images and masks, and its exporter.

Layout: ``ROOT/images/`` and ``ROOT/masks/`` whose files pair by stem (a mask may have another
suffix: ``a.jpg`` with ``a.png``), split by a seeded split; or the same in ``ROOT/train/`` and
``ROOT/test/`` (and ``ROOT/val/``, else drawn from train), see :mod:`datasets.dense_files`. A
mask covers its image pixel for pixel (same size).

Masks are read as 8-bit grayscale and must be binary, stored as 0/255 or 0/1 (each file one or
the other); anything else is an error naming the file and the values it holds, unless
``mask_threshold`` is set, which makes ``mask > threshold`` the foreground. Resized masks use
nearest-neighbour, so they stay binary and hold only values their file has.

Tensors, as ``data=seg_imbalanced`` serves them: images uint8 ``[N, C, S, S]`` in memory, served
as float32 in [0, 1] (``/ 255``) a batch at a time; masks float32 ``[N, 1, S, S]`` in {0, 1}.
``data_stats``: the training masks' ``class_counts`` in pixels ``[background, foreground]``,
which the class-weighted losses take.
"""

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from datasets._base import SPLITS, TensorBatches, to_unit
from datasets.dense_files import (
    DenseFileDataModule,
    check_pair_sizes,
    file_names,
    pair_by_stem,
    served,
    write_pngs,
)
from datasets.errors import DataError
from datasets.files import DEFAULT_CACHE_DIR, DEFAULT_MAX_MEMORY, cached_tensors, read_images
from losses.checks import check_range

ROLES = ("image", "mask")
SHOWN_VALUES = 8  # values a non-binary mask's error lists before it counts the rest


def read_pairs(folder: Path, name: str) -> list[tuple[Path, Path]]:
    """``(image, mask)`` pairs of ``folder/images`` and ``folder/masks``, by stem."""
    if not (folder / "images").is_dir():
        raise DataError(
            f"{name}: {folder / 'images'} does not exist; expected images/ and masks/ with "
            f"matching file names in {folder} (or in its train/, val/ and test/)"
        )
    return pair_by_stem(folder / "images", folder / "masks", name, ROLES)


def _listed(values: list[int]) -> str:
    shown = ", ".join(str(v) for v in values[:SHOWN_VALUES])
    return shown if len(values) <= SHOWN_VALUES else f"{shown}, ... ({len(values)} values)"


def binarise(masks: Tensor, paths: Sequence[Path], name: str, threshold: float | None) -> Tensor:
    """uint8 masks ``[N, 1, S, S]`` as uint8 {0, 1}: ``mask > threshold`` when ``threshold``
    is set, else each mask must hold only 0/255 or only 0/1 (DataError naming the first file
    that does not, and its values).

    >>> import torch
    >>> binarise(torch.tensor([[[[0, 255]]], [[[1, 0]]]], dtype=torch.uint8), "ab", "m", None)
    tensor([[[[0, 1]]],
    <BLANKLINE>
    <BLANKLINE>
            [[[1, 0]]]], dtype=torch.uint8)
    """
    if threshold is not None:
        return (masks > threshold).to(masks.dtype)
    flat = masks.flatten(1)
    other = ((flat != 0) & (flat != 1) & (flat != 255)).any(1)
    mixed = (flat == 1).any(1) & (flat == 255).any(1)
    bad = (other | mixed).nonzero().flatten().tolist()
    if bad:
        values = flat[bad[0]].unique().tolist()
        raise DataError(
            f"{name}: the mask {paths[bad[0]]} holds the values {_listed(values)}; expected a "
            "binary mask (0/255 or 0/1), or set data.mask_threshold (foreground: value > it)"
        )
    return (masks > 0).to(masks.dtype)


class MaskFolderDataModule(DenseFileDataModule):
    """``data=mask_folder``: the user's images and binary masks (see the module doc)."""

    task = "segmentation"
    name = "mask_folder"
    num_classes = 2
    class_names = ("background", "foreground")
    num_outputs = 1  # one logit per pixel

    def __init__(
        self,
        root: str,
        channels: int = 3,
        image_size: int | None = None,
        mask_threshold: float | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 32,
        eval_batch_size: int = 200,
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
        if mask_threshold is not None:
            check_range(self.name, "mask_threshold", mask_threshold, 0, 255, high_open=True)
        self.mask_threshold = mask_threshold

    def read_masks(self, pairs: Sequence[tuple[Path, Path]]) -> dict[str, Tensor]:
        """The masks of ``pairs``, checked against their images' sizes, as uint8 {0, 1}."""
        check_pair_sizes(pairs, self.name, ROLES)
        paths = [mask for _, mask in pairs]
        masks = read_images(paths, self.name, 1, self.resize, resample="nearest")
        return {"masks": binarise(masks, paths, self.name, self.mask_threshold)}

    def build_splits(self) -> tuple[TensorBatches, ...]:
        pairs, index = self.gather(lambda folder: read_pairs(folder, self.name))
        files = [image for image, _ in pairs]
        self.image_size = self.side(files)
        masks = cached_tensors(
            self.name,
            [*files, *(mask for _, mask in pairs)],
            {"masks": True, "image_size": self.resize, "mask_threshold": self.mask_threshold},
            self.cache_dir,
            lambda: self.read_masks(pairs),
        )["masks"].float()
        images = self.load_inputs(files)
        return tuple(
            self.split(images, files, masks, chosen, self.decoding, to_unit) for chosen in index
        )

    @property
    def data_stats(self) -> dict:
        return {"class_counts": self.train_class_counts(self.num_classes)}  # pixels [bg, fg]


def export_segmentation(datamodule, out_dir: Path, limit: int | None = None) -> None:
    """A segmentation datamodule's splits as ``out_dir/train|val|test/images|masks/<i>.png``
    (images 8-bit, gray or RGB; masks 0/255), the layout ``data=mask_folder`` reads."""
    for split in SPLITS:
        images, masks = served(datamodule, split, limit)
        names = file_names(len(images))
        write_pngs(images, Path(out_dir) / split / "images", names, "images")
        write_pngs(masks.float(), Path(out_dir) / split / "masks", names, "masks")
