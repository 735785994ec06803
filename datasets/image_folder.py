"""The ImageFolder layout (torchvision's): listing it, the base of the datamodules that read it,
``data=image_folder`` (classification) on it, and the writer that exports a built-in dataset to
it (``data=retrieval_folder``, in ``datasets/retrieval_folder.py``, reads the same layout).

Layouts read (``root`` is ``data.root``):

* ``root/<class>/*.png|jpg|...``: one folder per class; ``data=image_folder`` splits val and test
  off with ``split_seed``, stratified per class (``val_fraction``, ``test_fraction``);
* ``root/train/<class>/``, ``root/val/<class>/``, ``root/test/<class>/`` (``root/train``
  present): the user's own splits, none drawn; without ``root/val`` the validation split is split
  off train (``val_fraction``, stratified). The classes are those of ``root/train``; a val or test
  folder may lack some of them, but holds no other.

Classes are the sorted folder names, or ``classes`` in that order (every folder must be named
there); a class's index is its position. A split's files are ordered by file name, then class
(the order of the split the exporter wrote; training shuffles anyway). Hidden files and folders
(``.name``) are skipped.
"""

import functools
import math
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from datasets._base import SPLITS, TensorBatches
from datasets.errors import DataError
from datasets.files import (
    DEFAULT_CACHE_DIR,
    DEFAULT_MAX_MEMORY,
    FileDataModule,
    StreamedImages,
    as_uint8,
    cached_tensors,
    channels_of,
    image_size_of,
    list_images,
    pixel_stats,
    read_images,
    split_indices,
    write_image,
)
from datasets.mnist import long_tail_counts, normalise_pixels
from losses.checks import check_range


class Listing(NamedTuple):
    """Image files and their class indices (int64), by file name then class."""

    files: list[Path]
    labels: Tensor


def class_folders(
    directories: Sequence[Path], name: str, classes: Sequence[str] | None
) -> list[str]:
    """The class names of ``directories`` (one, or a layout's split folders): the sorted names
    of their sub-folders, or ``classes`` in their order, each of which must be a sub-folder of
    one of them and which must name every sub-folder."""
    folders = {
        p.name: p
        for d in reversed(directories)
        for p in d.iterdir()
        if p.is_dir() and p.name[0] != "."
    }
    if classes is None:
        if not folders:
            where = directories[0]
            raise DataError(
                f"{name}: {where} holds no class folders (expected {where}/<class>/*.png)"
            )
        return sorted(folders)
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise DataError(f"{name}: data.classes names a class twice: {classes}")
    for cls in classes:
        if cls not in folders:
            where = directories[0] / cls
            raise DataError(f"{name}: data.classes names {cls!r}, but {where} does not exist")
    for folder, path in folders.items():
        if folder not in classes:
            raise DataError(f"{name}: {path} is not in data.classes; add it or move it out")
    return classes


def list_classes(directory: Path, name: str, classes: Sequence[str], every: bool) -> Listing:
    """The images of each class folder of ``directory``; ``every``: each class must have its
    folder (else a folder may be missing, but no folder may lie outside ``classes``)."""
    if not every:
        for folder in sorted(p for p in directory.iterdir() if p.is_dir() and p.name[0] != "."):
            if folder.name not in classes:
                raise DataError(f"{name}: {folder} is not a class of the training split")
    found = [
        (path, label)
        for label, cls in enumerate(classes)
        if every or (directory / cls).is_dir()
        for path in list_images(directory / cls, name)
    ]
    if not found:
        raise DataError(
            f"{name}: {directory} holds no class folders (expected {directory}/<class>/)"
        )
    # by file name across the classes: an exported split (files named by position) reads back
    # in its own order
    found.sort(key=lambda item: (item[0].name, item[1]))
    return Listing([path for path, _ in found], torch.tensor([label for _, label in found]))


def list_layout(
    root: Path, name: str, classes: Sequence[str] | None, every_split: bool = False
) -> tuple[list[str], dict[str, Listing]]:
    """The class names and, per split the layout brings (``train`` alone for the class-folder
    layout, which then holds every image), the listing. The classes of the split layout are
    those of ``root/train``, or with ``every_split`` those of all its split folders (retrieval:
    the test classes are not the training classes)."""
    if not (root / "train").is_dir():
        names = class_folders([root], name, classes)
        return names, {"train": list_classes(root, name, names, every=True)}
    if not (root / "test").is_dir():
        raise DataError(f"{name}: {root / 'test'} does not exist (a root with train/ needs test/)")
    splits = [split for split in SPLITS if (root / split).is_dir()]
    names = class_folders([root / s for s in (splits if every_split else ["train"])], name, classes)
    listings = {
        split: list_classes(root / split, name, names, every=split == "train" and not every_split)
        for split in splits
    }
    return names, listings


def long_tail(
    index: Tensor, labels: Tensor, num_classes: int, ratio: float, seed: int, name: str
) -> Tensor:
    """The subset of ``index`` (sorted) that keeps ``long_tail_counts`` of each class: class 0
    the most, the last class ``1 / ratio`` of that; each class keeps the first ``n_c`` of a
    seeded permutation of its members."""
    generator = torch.Generator().manual_seed(seed)
    members = [index[labels[index] == c] for c in range(num_classes)]
    available = [len(m) for m in members]
    if min(available) == 0:
        raise DataError(
            f"{name}: class {available.index(0)} has no training image for the long tail"
        )
    kept = [
        m[torch.randperm(len(m), generator=generator)[:n]]
        for m, n in zip(members, long_tail_counts(available, ratio), strict=True)
    ]
    return torch.cat(kept).sort().values


class FolderDataModule(FileDataModule):
    """What the ImageFolder datamodules share: the decoding options (``channels``,
    ``image_size``, ``resample``, nulls resolved from the first file), the class list, the
    listed files decoded at once (:meth:`read_listed`), and what the model and the task read
    once the folders are read (``num_classes``, ``class_names``, ``in_channels``,
    ``image_size``)."""

    def __init__(
        self,
        root: str,
        channels: int | None,
        image_size: int | None,
        classes: Sequence[str] | None,
        resample: str,
        batch_size: int,
        eval_batch_size: int,
        num_workers: int,
        cache_dir: str,
        max_memory: float,
    ) -> None:
        super().__init__(root, batch_size, eval_batch_size, num_workers, cache_dir, max_memory)
        if channels not in (None, 1, 3):
            raise DataError(
                f"{self.name}: expected data.channels 1 (grayscale) or 3 (RGB), got {channels}"
            )
        if image_size is not None:
            check_range(self.name, "image_size", image_size, 1)
        self.requested = dict(channels=channels, image_size=image_size, resample=resample)
        self.classes = None if classes is None else list(classes)
        self.info: dict[str, Any] = {}

    @property
    def num_classes(self) -> int:
        self.setup()
        return len(self.info["class_names"])

    @property
    def class_names(self) -> list[str]:
        self.setup()
        return self.info["class_names"]

    @property
    def in_channels(self) -> int:
        self.setup()
        return self.info["channels"]

    @property
    def image_size(self) -> int:
        self.setup()
        return self.info["image_size"]

    def decoding(self, first: Path) -> dict[str, Any]:
        """channels, image_size and resample, the nulls resolved from the first file."""
        channels = self.requested["channels"] or channels_of(first, self.name)
        image_size = self.requested["image_size"]
        if image_size is None:
            width, height = image_size_of(first, self.name)
            if width != height:
                raise DataError(
                    f"{self.name}: {first} is {width}x{height}, not square; set data.image_size"
                )
        return dict(channels=channels, image_size=image_size, resample=self.requested["resample"])

    def read_listed(
        self, names: list[str], listings: dict[str, Listing]
    ) -> tuple[list[Path], Tensor, Tensor | None, dict[str, Any]]:
        """The listings' files and labels concatenated (train, val, test), their images decoded
        (cached; None when they stream) and the decoding; records what the model reads."""
        files = [path for listing in listings.values() for path in listing.files]
        labels = torch.cat([listing.labels for listing in listings.values()])
        decoding = self.decoding(files[0])
        loaded = self.load_images(
            files,
            **decoding,
            options={},
            build=lambda: {"images": read_images(files, self.name, **decoding)},
        )
        size = decoding["image_size"] or image_size_of(files[0], self.name)[0]
        self.info = dict(class_names=names, channels=decoding["channels"], image_size=size)
        return files, labels, None if loaded is None else loaded["images"], decoding


class ImageFolderDataModule(FolderDataModule):
    """``data=image_folder``: classification on the user's images (see the module's docstring).

    Inputs are uint8 ``[N, C, S, S]``, normalised per batch to ``(x / 255 - mean) / std`` as on
    MNIST; ``mean`` and ``std`` left null are the training split's, per channel. With
    ``imbalance_ratio`` r > 1 the train split (only) keeps the long-tailed profile of
    :func:`datasets.mnist.long_tail_counts` (class 0 the most, classes in their index order).
    """

    task = "classification"
    name = "image_folder"

    def __init__(
        self,
        root: str,
        channels: int | None = None,
        image_size: int | None = None,
        classes: Sequence[str] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        imbalance_ratio: float = 1.0,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        resample: str = "bilinear",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        num_workers: int = 0,
        cache_dir: str = DEFAULT_CACHE_DIR,
        max_memory: float = DEFAULT_MAX_MEMORY,
    ) -> None:
        super().__init__(
            root,
            channels,
            image_size,
            classes,
            resample,
            batch_size,
            eval_batch_size,
            num_workers,
            cache_dir,
            max_memory,
        )
        if not math.isfinite(imbalance_ratio):
            raise ValueError(
                f"{self.name}: expected a finite imbalance_ratio, got {imbalance_ratio}"
            )
        check_range(self.name, "imbalance_ratio", imbalance_ratio, 1)
        self.mean, self.std = (
            None if value is None else [float(v) for v in _as_list(value)] for value in (mean, std)
        )
        for value in self.std or []:
            check_range(self.name, "std", value, 0.0, low_open=True)
        self.fractions = (val_fraction, test_fraction)
        self.split_seed = split_seed
        self.imbalance_ratio = float(imbalance_ratio)

    def split_index(self, names: list[str], listings: dict[str, Listing]) -> dict[str, Tensor]:
        """Each split's indices into the listings concatenated in order (train, val, test); the
        splits the layout lacks are drawn from train, stratified."""
        sizes = {split: len(listing.files) for split, listing in listings.items()}
        offsets = dict(zip(sizes, accumulate([0, *sizes.values()]), strict=False))
        val_fraction, test_fraction = self.fractions
        parent = self.root if len(listings) == 1 else self.root / "train"
        if len(listings) > 1:  # the user's splits: test given, val maybe
            test_fraction, val_fraction = 0.0, 0.0 if "val" in listings else val_fraction
        train, val, test = split_indices(
            sizes["train"], val_fraction, test_fraction, self.split_seed, self.name,
            listings["train"].labels, [str(parent / n) for n in names],
        )  # fmt: skip
        drawn = {"train": train, "val": val, "test": test}
        for split in ("val", "test"):
            if split in listings:
                drawn[split] = torch.arange(sizes[split]) + offsets[split]
        return drawn

    def train_pixel_stats(
        self, images: Tensor | None, files: list[Path], train: Tensor, decoding: dict[str, Any]
    ) -> tuple[list[float], list[float]]:
        """Mean and std per channel of the training split's pixels in [0, 1]; those of streamed
        images (a pass over every training file) are cached with the training files."""
        if images is not None:
            return pixel_stats(images[train], per_channel=True)
        chosen = [files[i] for i in train.tolist()]

        def build() -> dict[str, Tensor]:
            streamed = StreamedImages(chosen, torch.zeros(len(chosen)), self.name, **decoding)
            mean, std = pixel_stats(streamed, per_channel=True)
            return {"mean": torch.tensor(mean), "std": torch.tensor(std)}

        options = {**decoding, "of": "pixel stats"}
        cached = cached_tensors(self.name, chosen, options, self.cache_dir, build)
        return cached["mean"].tolist(), cached["std"].tolist()

    def normalisation(
        self, images: Tensor | None, files: list[Path], train: Tensor, decoding: dict[str, Any]
    ) -> functools.partial:
        """``(x / 255 - mean) / std`` with the configured mean and std, or (null) the training
        split's per channel."""
        mean, std = self.mean, self.std
        if mean is None or std is None:
            stats = self.train_pixel_stats(images, files, train, decoding)
            mean, std = mean or stats[0], std or stats[1]
        for key, value in (("mean", mean), ("std", std)):
            if len(value) not in (1, decoding["channels"]):
                raise ValueError(
                    f"{self.name}: expected data.{key} as one value or {decoding['channels']} "
                    f"(one per channel), got {value}"
                )
        if len(mean) == len(std) == 1:  # plain floats: the very arithmetic of data=mnist
            return functools.partial(normalise_pixels, mean=mean[0], std=std[0])
        shape = (-1, 1, 1)
        return functools.partial(
            normalise_pixels, mean=torch.tensor(mean).view(shape), std=torch.tensor(std).view(shape)
        )

    def build_splits(self) -> tuple[TensorBatches | StreamedImages, ...]:
        names, listings = list_layout(self.check_root(), self.name, self.classes)
        files, labels, images, decoding = self.read_listed(names, listings)
        index = self.split_index(names, listings)
        if self.imbalance_ratio > 1:
            index["train"] = long_tail(
                index["train"], labels, len(names), self.imbalance_ratio, self.split_seed, self.name
            )
        if len(index["train"]) < self.batch_size:
            raise DataError(
                f"{self.name}: the training split of {self.root} holds {len(index['train'])} "
                f"images, fewer than one batch (data.batch_size={self.batch_size})"
            )
        normalise = self.normalisation(images, files, index["train"], decoding)
        return tuple(
            self.split(images, files, labels, index[s], decoding, normalise) for s in SPLITS
        )

    @property
    def data_stats(self) -> dict:
        return {"class_counts": self.train_class_counts(self.num_classes)}


def _as_list(value: float | Sequence[float]) -> list:
    return [value] if isinstance(value, int | float) else list(value)


def folder_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    """Class folders that sort in the classes' order: the index, zero-padded, then the name with
    path separators and spaces replaced (``0_T-shirt-top``, ..., ``9_Ankle_boot``); the index
    alone for classes without names (``00`` ... ``99``)."""
    width = len(str(num_classes - 1))
    if class_names is None:
        return [f"{i:0{width}d}" for i in range(num_classes)]
    return [
        f"{i:0{width}d}_{str(n).replace('/', '-').replace(' ', '_')}"
        for i, n in enumerate(class_names)
    ]


def export_class_folders(datamodule: Any, out_dir: Path, limit: int | None) -> None:
    """Write a datamodule's splits (classification or retrieval), the first ``limit`` of each
    (all when None), as ``out_dir/<split>/<class folder>/<i>.png``: lossless 8-bit PNG (float
    images in [0, 1] rounded to 8 bits), ``i`` the image's position in its split, zero-padded,
    so the split reads back in the same order; class folders from :func:`folder_names`, so the
    classes read back with the built-in indices."""
    datamodule.setup()
    folders = folder_names(getattr(datamodule, "class_names", None), datamodule.num_classes)
    for split in SPLITS:
        batches = datamodule.splits[split]
        images = as_uint8(batches.inputs[:limit], datamodule.name)
        targets = batches.targets[:limit].tolist()
        digits = len(str(max(len(images) - 1, 0)))
        for folder in {folders[t] for t in targets}:
            (out_dir / split / folder).mkdir(parents=True, exist_ok=True)
        for i, (image, target) in enumerate(zip(images, targets, strict=True)):
            write_image(out_dir / split / folders[target] / f"{i:0{digits}d}.png", image)
