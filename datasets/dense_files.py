"""What the file datamodules of the dense tasks share (``data=mask_folder``, ``clean_folder``,
``box_csv``): their base class (:class:`DenseFileDataModule`), the train/val/test folders of a root
or one pool a seeded split divides, files paired by stem across two folders, and the 8-bit PNGs
their exporters write.

Layout, as ``data=image_folder`` reads its splits. A root holding ``train/`` and ``test/`` gives
those splits as they are (each folder laid out as the root itself would be), and ``val/`` too when
it holds one, else validation is drawn from train (``val_fraction``, ``split_seed``); ``train/``
without ``test/``, or ``val/``/``test/`` without ``train/``, is an error, never a silent
reshuffle. A root without them is one pool, divided by a seeded split, not stratified
(``val_fraction``, ``test_fraction``, ``split_seed``).

Size. Images are square ``S`` x ``S`` on the way to the model, as in the built-in data: resized
to ``data.image_size`` when it is set, else the files' own side, which must then be square and
one for all (``read_images`` names two files that differ).
"""

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor

from datasets._base import SPLITS
from datasets.errors import DataError
from datasets.files import (
    DEFAULT_CACHE_DIR,
    DEFAULT_MAX_MEMORY,
    MODES,
    FileDataModule,
    as_uint8,
    check_decoding,
    image_size_of,
    list_images,
    read_images,
    split_indices,
    write_image,
)
from losses.checks import check_range

Item = TypeVar("Item")


def split_folders(root: Path, name: str) -> dict[str, Path] | None:
    """The split folders of ``root``, as ``data=image_folder`` reads them: with ``root/train``,
    ``train`` and ``test`` (which must exist) and ``val`` when it exists (else drawn from train);
    None without ``root/train`` (one pool, where a ``val/`` or ``test/`` alone is an error)."""
    if not (root / "train").is_dir():
        stray = [f"{split}/" for split in ("val", "test") if (root / split).is_dir()]
        if stray:
            raise DataError(
                f"{name}: {root} has {' and '.join(stray)} but no train/; give train/ and test/ "
                "(val/ optional), or none of them for a seeded split"
            )
        return None
    if not (root / "test").is_dir():
        raise DataError(f"{name}: {root / 'test'} does not exist (a root with train/ needs test/)")
    return {split: root / split for split in SPLITS if (root / split).is_dir()}


def by_stem(paths: Sequence[Path], name: str) -> dict[str, Path]:
    """``paths`` by file stem; two files of one stem (``a.png`` and ``a.jpg``) are an error, as
    which of them pairs would be a guess."""
    found: dict[str, Path] = {}
    for path in paths:
        if path.stem in found:
            raise DataError(
                f"{name}: {found[path.stem]} and {path} share the name {path.stem!r}; keep one"
            )
        found[path.stem] = path
    return found


def pair_by_stem(
    first: Path, second: Path, name: str, roles: tuple[str, str]
) -> list[tuple[Path, Path]]:
    """The images of folder ``first`` paired with those of ``second`` by file stem (the suffix
    may differ: ``a.jpg`` with ``a.png``), in ``first``'s order (sorted by file name). A file
    without a partner is a DataError naming it; ``roles`` name what each folder holds."""
    ones = by_stem(list_images(first, name), name)
    others = by_stem(list_images(second, name), name)
    for own, other, (role, partner), folder in (
        (ones, others, roles, second),
        (others, ones, roles[::-1], first),
    ):
        lonely = next((path for stem, path in own.items() if stem not in other), None)
        if lonely is not None:
            raise DataError(
                f"{name}: the {role} {lonely} has no {partner} in {folder} "
                f"(no image named {lonely.stem}.*)"
            )
    return [(path, others[stem]) for stem, path in ones.items()]


def check_pair_sizes(pairs: Sequence[tuple[Path, Path]], name: str, roles: tuple[str, str]):
    """Each pair's two files are one size (their headers): a target must cover its image pixel
    for pixel, whatever ``data.image_size`` later resizes both to."""
    for one, other in pairs:
        size, other_size = image_size_of(one, name), image_size_of(other, name)
        if size != other_size:
            raise DataError(
                f"{name}: the {roles[1]} {other} is {other_size[0]}x{other_size[1]} but its "
                f"{roles[0]} {one} is {size[0]}x{size[1]}"
            )


class DenseFileDataModule(FileDataModule):
    """Base of the dense tasks' file datamodules: the options they share (``channels``,
    ``image_size``, the seeded split's), the root's splits (:meth:`gather`) and the square side
    the model is told (:meth:`side`).

    ``image_size`` is the option (None: the files' own side); ``self.image_size`` the side of
    the images the model sees, known from the option or, without it, once the splits are built,
    which :attr:`model_inputs` does first.
    """

    def __init__(
        self,
        root: str,
        channels: int,
        image_size: int | None,
        val_fraction: float,
        test_fraction: float,
        split_seed: int,
        batch_size: int,
        eval_batch_size: int,
        num_workers: int = 0,
        cache_dir: str = DEFAULT_CACHE_DIR,
        max_memory: float = DEFAULT_MAX_MEMORY,
    ) -> None:
        super().__init__(root, batch_size, eval_batch_size, num_workers, cache_dir, max_memory)
        check_decoding(self.name, channels, "bilinear")
        if image_size is not None:
            check_range(self.name, "image_size", image_size, 8)
        self.in_channels = channels
        self.resize = image_size
        self.image_size = image_size
        self.split_options = dict(
            val_fraction=val_fraction, test_fraction=test_fraction, seed=split_seed
        )

    def gather(
        self, read_folder: Callable[[Path], list[Item]]
    ) -> tuple[list[Item], tuple[Tensor, Tensor, Tensor]]:
        """Every item of the root (``read_folder`` of each split folder, in split order, or of
        the root itself) and the train, val and test indices into them: the split folders as
        they are, a missing ``val/`` drawn from train, a root without them split whole."""
        root = self.check_root()
        folders = split_folders(root, self.name)
        options = self.split_options
        if folders is None:
            items = read_folder(root)
            return items, split_indices(len(items), **options, name=self.name)
        parts = {split: read_folder(folder) for split, folder in folders.items()}
        starts = list(itertools.accumulate((len(part) for part in parts.values()), initial=0))
        ranges = {split: torch.arange(starts[i], starts[i + 1]) for i, split in enumerate(parts)}
        items = [item for part in parts.values() for item in part]
        if "val" in parts:
            return items, (ranges["train"], ranges["val"], ranges["test"])
        options = {**options, "test_fraction": 0.0}
        train, val, _ = split_indices(len(parts["train"]), **options, name=self.name)
        return items, (train, val, ranges["test"])

    def side(self, files: Sequence[Path]) -> int:
        """The side the images are served at: ``image_size``, else the first file's, which must
        be square (the others must match it: the decoder and ``check_sizes`` check that)."""
        if self.resize is not None:
            return self.resize
        width, height = image_size_of(files[0], self.name)
        if width != height:
            raise DataError(
                f"{self.name}: {files[0]} is {width}x{height}, not square; set data.image_size "
                "to resize every image to one square side"
            )
        return width

    @property
    def decoding(self) -> dict:
        """How the input images are decoded (``read_images``'s options)."""
        return dict(channels=self.in_channels, image_size=self.resize, resample="bilinear")

    def load_inputs(self, files: Sequence[Path]) -> Tensor | None:
        """The decoded images of ``files`` (cached on disk), or None when they stream from disk
        (over ``max_memory``)."""
        decoding = self.decoding
        loaded = self.load_images(
            files,
            **decoding,
            options={},
            build=lambda: {"images": read_images(files, self.name, **decoding)},
        )
        return None if loaded is None else loaded["images"]

    @property
    def model_inputs(self) -> dict:
        self.setup()  # without data.image_size the side is the files' own, known once read
        return super().model_inputs


# --- export ------------------------------------------------------------------------------


def served(datamodule, split: str, limit: int | None) -> tuple[Tensor, Tensor]:
    """The first ``limit`` (None: all) inputs and targets of ``split`` as the loader serves them
    (after the datamodule's per-batch transform)."""
    datamodule.setup()
    dataset = datamodule.splits[split]
    count = len(dataset) if limit is None else min(limit, len(dataset))
    return dataset.__getitems__(list(range(count)))


def file_names(count: int) -> list[str]:
    """``0.png`` .. as zero-padded numbers, so that sorting by name keeps the order."""
    width = len(str(max(count - 1, 0)))
    return [f"{i:0{width}d}.png" for i in range(count)]


def write_pngs(images: Tensor, folder: Path, names: Sequence[str], what: str) -> None:
    """Images ``[N, C, H, W]`` (C 1 or 3; floats in [0, 1] or uint8) as 8-bit PNGs
    ``folder/<name>``: each pixel rounds to the nearest of the 256 levels, so the files read back
    within 0.5/255."""
    folder.mkdir(parents=True, exist_ok=True)
    if images.shape[1] not in MODES:
        raise ValueError(f"export: expected {what} of 1 or 3 channels, got {images.shape[1]}")
    if len(images):
        for image, file_name in zip(as_uint8(images, f"export ({what})"), names, strict=True):
            write_image(folder / file_name, image)
