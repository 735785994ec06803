"""The user's own image files: listing, decoding, the on-disk tensor cache, seeded splits, and the
base class of every datamodule that reads files (``FileDataModule``).

Images are decoded once with PIL into uint8 tensors ``[N, C, H, W]`` and cached on disk under
``cache_dir`` (:func:`cached_tensors`), keyed by the files' paths, sizes and modification times
and by every option that changes the decoded tensors; a second run loads the cache instead of
decoding again. When the decoded tensors would not fit ``max_memory`` the splits stream from disk
instead (:class:`StreamedImages`): each batch is decoded when the loader asks for it, with the
same decoder, so it holds the same tensors as the in-memory path.
"""

import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from datasets._base import BatchTransform, InMemoryDataModule, TensorBatches
from datasets.errors import DataError
from losses.checks import check_range

IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
)
MODES = {1: "L", 3: "RGB"}  # channels -> the PIL mode images are converted to
RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}
# what PIL raises on a file it cannot decode: OSError (truncated, unknown format), SyntaxError
# (a broken PNG chunk), ValueError (bad header fields), DecompressionBombError (absurd sizes)
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
STATS_CHUNK = 4096  # images summed at once by pixel_stats
# where decoded tensors are cached, relative to where train.py runs (hydra.job.chdir is false)
DEFAULT_CACHE_DIR = ".cache/files"
# MB of decoded uint8 images held in memory: Fashion-MNIST takes 55, CIFAR-10 184, 10,000 RGB
# images at 256 px 1,966; a multirun's jobs each hold a copy, and the cache file on disk is as big
DEFAULT_MAX_MEMORY = 2048
CACHE_FORMAT = 1  # bump when what a cache file holds changes: old files are then never matched


def list_images(directory: Path, name: str) -> list[Path]:
    """The image files directly in ``directory`` (suffix, case-insensitive), sorted by file name.

    Hidden files (``.name``, such as macOS's ``._photo.jpg`` resource forks) are skipped.
    DataError "<name>: <directory> does not exist" / "<name>: <directory> holds no images
    (expected .png, .jpg, ...)".
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{name}: {directory} does not exist")
    # scandir's entries know their type without a stat per file: 70,000 files list in 0.1 s
    with os.scandir(directory) as entries:
        names = sorted(
            entry.name
            for entry in entries
            if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
            and not entry.name.startswith(".")
            and entry.is_file()
        )
    images = [directory / file_name for file_name in names]
    if not images:
        raise DataError(
            f"{name}: {directory} holds no images (expected {', '.join(IMAGE_SUFFIXES)})"
        )
    return images


def check_decoding(name: str, channels: int, resample: str) -> None:
    if channels not in MODES:
        raise DataError(f"{name}: expected data.channels 1 (grayscale) or 3 (RGB), got {channels}")
    if resample not in RESAMPLING:
        raise ValueError(f"{name}: expected resample in {tuple(RESAMPLING)}, got {resample!r}")


def _unreadable(path: Path, name: str, error: BaseException) -> DataError:
    """The one line for a file PIL cannot read (``from None`` where raised: the run's one-line
    report shows the root cause, which is this one)."""
    reason = " ".join(str(error).split()) or type(error).__name__
    return DataError(f"{name}: cannot read {path}: {reason}")


def _decode(path: Path, name: str, mode: str) -> Image.Image:
    """The image at ``path`` fully decoded and converted to ``mode``, or a DataError naming it."""
    try:
        with Image.open(path) as image:
            image.load()  # PIL decodes lazily: a truncated file fails here, not at open
            return image.convert(mode)
    except DECODE_ERRORS as error:
        raise _unreadable(path, name, error) from None


def channels_of(path: Path, name: str) -> int:
    """1 when the image at ``path`` is stored grayscale (PIL modes 1, L, LA, I, I;16, F), else 3
    (RGB, RGBA, CMYK, palette, ...), from its header alone."""
    try:
        with Image.open(path) as image:
            mode = image.mode
    except DECODE_ERRORS as error:
        raise _unreadable(path, name, error) from None
    return 1 if mode in ("1", "L", "LA", "F") or mode.startswith("I") else 3


def image_size_of(path: Path, name: str) -> tuple[int, int]:
    """``(width, height)`` of the image at ``path`` from its header alone (no pixel decoding)."""
    try:
        with Image.open(path) as image:
            return image.size
    except DECODE_ERRORS as error:
        raise _unreadable(path, name, error) from None


def _size_mismatch(name: str, first: Path, first_size, path: Path, size) -> DataError:
    return DataError(
        f"{name}: {first} is {first_size[0]}x{first_size[1]} but {path} is "
        f"{size[0]}x{size[1]}; set data.image_size to resize every image to one size"
    )


def read_images(
    paths: Sequence[Path],
    name: str,
    channels: int,
    image_size: int | None,
    resample: str = "bilinear",
) -> Tensor:
    """uint8 ``[N, channels, H, W]`` (channels 1: PIL mode "L", 3: "RGB"), resized to
    ``image_size`` x ``image_size`` when given (PIL resample "bilinear" or "nearest"), else all
    images must share one size (DataError naming two files and their sizes, and saying to set
    data.image_size). An unreadable or truncated file: DataError naming it.

    Images are converted to the mode first, then resized (PIL's resize, which filters over the
    whole source footprint when shrinking).
    """
    check_decoding(name, channels, resample)
    mode, out, first = MODES[channels], None, None
    for i, path in enumerate(paths):
        image = _decode(Path(path), name, mode)
        if image_size is not None:
            image = image.resize((image_size, image_size), RESAMPLING[resample])
        if out is None:
            first = (path, image.size)
            out = torch.empty((len(paths), channels, image.height, image.width), dtype=torch.uint8)
        elif image.size != first[1]:
            raise _size_mismatch(name, first[0], first[1], path, image.size)
        pixels = torch.from_numpy(np.array(image))  # a writable copy: torch warns on a view
        out[i] = pixels[None] if channels == 1 else pixels.permute(2, 0, 1)
    if out is None:
        return torch.empty((0, channels, 0, 0), dtype=torch.uint8)
    return out


def as_uint8(images: Tensor, name: str) -> Tensor:
    """Images as uint8 for an 8-bit file: uint8 as they are, floats in [0, 1] scaled by 255 and
    rounded (the one loss of an export: at most half a grey level, 1/510)."""
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point() or images.min() < 0 or images.max() > 1:
        raise ValueError(f"{name}: expected uint8 images or floats in [0, 1] to export")
    return images.mul(255).round_().to(torch.uint8)


def write_image(path: Path, image: Tensor) -> None:
    """One uint8 ``[C, H, W]`` image (C 1 or 3) as a lossless 8-bit PNG at ``path``."""
    pixels = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)
    Image.fromarray(pixels.contiguous().numpy()).save(path, format="PNG")


def _cache_key(files: Sequence[Path], options: Mapping[str, Any]) -> str:
    """A hash of the files' absolute paths, sizes and modification times and of ``options``."""
    digest = hashlib.sha256(f"format {CACHE_FORMAT}\n".encode())
    digest.update(json.dumps(dict(options), sort_keys=True, default=str).encode())
    for path in files:
        stat = os.stat(path)
        # abspath, not resolve: no syscall per path component (resolve costs 0.3 ms a file)
        digest.update(f"\n{os.path.abspath(path)}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def cache_path(
    name: str, files: Sequence[Path], options: Mapping[str, Any], cache_dir: str | Path
) -> Path:
    """The file :func:`cached_tensors` keeps the tensors of these files and options in."""
    return Path(cache_dir).expanduser() / f"{name}-{_cache_key(files, options)}.pt"


def cached_tensors(
    name: str,
    files: Sequence[Path],
    options: Mapping[str, Any],
    cache_dir: str | Path,
    build: Callable[[], dict[str, Tensor]],
) -> dict[str, Tensor]:
    """The tensors ``build()`` returns, cached in a file under ``cache_dir`` whose name is a hash
    of the files' paths, sizes and modification times and of ``options`` (every option that
    changes the decoded tensors); a second call with the same files and options loads it
    (``torch.load(weights_only=True)``), a changed file or option rebuilds; written atomically
    (a temporary file renamed into place), so an interrupted run never leaves half a cache.

    A cache file that cannot be loaded (damaged on disk) is rebuilt and replaced.
    """
    path = cache_path(name, files, options, cache_dir)
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError):
            pass  # damaged: rebuilt below, and the rename replaces it
    tensors = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(tensors, file)
            os.chmod(temporary, 0o644)  # mkstemp's 0600 would keep the cache from other users
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(
            f"{name}: cannot write the tensor cache in {path.parent}: {reason}"
        ) from None
    return tensors


def split_indices(
    n: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    name: str,
    labels: Tensor | None = None,
    class_names: Sequence[str] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """train / val / test index tensors of a seeded split of ``n`` samples; stratified per class
    when ``labels`` (int64 [n]) are given (DataError "<name>: class <c> has K images, too few to
    split into train, val and test" when a class cannot give each split one; ``class_names``,
    when given, name the class instead of its index).

    Each split takes ``round(fraction * size)`` samples, at least one, of the whole set or (with
    labels) of each class; a fraction of 0 leaves its split empty (a layout that brings its own
    test split draws only val). Each index tensor comes sorted ascending (the files' order).

    >>> train, val, test = split_indices(10, 0.2, 0.2, seed=0, name="demo")
    >>> len(train), len(val), len(test)
    (6, 2, 2)
    >>> sorted(torch.cat([train, val, test]).tolist()) == list(range(10))
    True
    """
    check_range(name, "val_fraction", val_fraction, 0.0, 1.0, high_open=True)
    check_range(name, "test_fraction", test_fraction, 0.0, 1.0, high_open=True)
    total = val_fraction + test_fraction
    check_range(name, "val_fraction + test_fraction", total, high=1.0, high_open=True)
    generator = torch.Generator().manual_seed(seed)
    if labels is None:
        groups, group_names = [torch.arange(n)], ["the data"]
    else:
        labels = torch.as_tensor(labels)
        classes = labels.unique().tolist()
        groups = [(labels == c).nonzero().squeeze(1) for c in classes]
        group_names = [f"class {class_names[c] if class_names else c}" for c in classes]
    drawn = [f for f in ("val", "test") if (val_fraction, test_fraction)[f == "test"] > 0]
    splits = " and ".join([", ".join(["train", *drawn[:-1]]), *drawn[-1:]])
    parts: list[list[int]] = [[], [], []]
    for members, group in zip(groups, group_names, strict=True):
        size = len(members)
        n_val = max(1, round(val_fraction * size)) if val_fraction > 0 else 0
        n_test = max(1, round(test_fraction * size)) if test_fraction > 0 else 0
        if size - n_val - n_test < 1:
            images = "image" if size == 1 else "images"
            raise DataError(f"{name}: {group} has {size} {images}, too few to split into {splits}")
        shuffled = members[torch.randperm(size, generator=generator)].tolist()
        parts[0] += shuffled[n_val + n_test :]
        parts[1] += shuffled[:n_val]
        parts[2] += shuffled[n_val : n_val + n_test]
    return tuple(torch.tensor(sorted(part), dtype=torch.long) for part in parts)


def pixel_stats(
    images: "Tensor | StreamedImages", per_channel: bool
) -> tuple[list[float], list[float]]:
    """Mean and (population) std of the pixels of ``images`` scaled to [0, 1], per channel or one
    value over all channels, summed in float64 a chunk at a time (streamed images are decoded
    once for it)."""
    dims = (0, 2, 3) if per_channel else (0, 1, 2, 3)
    total = squares = 0.0
    count = 0
    for start in range(0, len(images), STATS_CHUNK):
        stop = min(start + STATS_CHUNK, len(images))
        chunk = (
            images[start:stop]
            if isinstance(images, Tensor)
            else images.raw(list(range(start, stop)))
        ).double()
        total = total + chunk.sum(dims)
        squares = squares + chunk.square().sum(dims)
        count += chunk.numel() // (chunk.shape[1] if per_channel else 1)
    mean = torch.as_tensor(total) / count
    std = (torch.as_tensor(squares) / count - mean.square()).clamp_min(0).sqrt()
    return (mean / 255).flatten().tolist(), (std / 255).flatten().tolist()


class StreamedImages(Dataset):
    """Images decoded from their files when a batch asks for them (data larger than
    ``max_memory``): the same decoder as the in-memory path (:func:`read_images`), so the same
    tensors, and the same ``inputs_transform``, once per batch. ``targets`` sit in memory, as in
    :class:`~datasets._base.TensorBatches`, for the class counts and the samplers. Decoding runs
    in the loader's workers (``data.num_workers``)."""

    def __init__(
        self,
        paths: Sequence[Path],
        targets: Tensor,
        name: str,
        channels: int,
        image_size: int | None,
        resample: str = "bilinear",
        inputs_transform: BatchTransform | None = None,
    ) -> None:
        if len(paths) != len(targets):
            raise ValueError(f"{name}: {len(paths)} files but {len(targets)} targets")
        self.paths = [Path(p) for p in paths]
        self.targets = targets
        self.decoding = dict(name=name, channels=channels, image_size=image_size, resample=resample)
        self.inputs_transform = inputs_transform

    def __len__(self) -> int:
        return len(self.paths)

    def raw(self, indices: list[int]) -> Tensor:
        """The uint8 images at ``indices``, before the transform."""
        return read_images([self.paths[i] for i in indices], **self.decoding)

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        inputs = self.raw(indices)
        if self.inputs_transform is not None:
            inputs = self.inputs_transform(inputs)
        return inputs, self.targets[torch.as_tensor(indices)]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        inputs, targets = self.__getitems__([i])
        return inputs[0], targets[0]


class FileDataModule(InMemoryDataModule):
    """Base of the datamodules that read the user's files under ``root``.

    It owns what they share: the root's check, the decision between decoding into memory (cached
    on disk) and streaming from disk (``max_memory``, in MB), and a split as a dataset of either
    kind. Subclasses set ``name`` and implement ``build_splits``.
    """

    from_files = True
    name: str

    def __init__(
        self,
        root: str,
        batch_size: int,
        eval_batch_size: int,
        num_workers: int = 0,
        cache_dir: str = DEFAULT_CACHE_DIR,
        max_memory: float = DEFAULT_MAX_MEMORY,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers)
        if root is None or not str(root).strip():
            raise DataError(f"{self.name}: set data.root to the folder holding your images")
        check_range(self.name, "batch_size", batch_size, 1)
        check_range(self.name, "eval_batch_size", eval_batch_size, 1)
        check_range(self.name, "num_workers", num_workers, 0)
        check_range(self.name, "max_memory", max_memory, 0.0, low_open=True)
        self.root = Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser()
        self.max_memory = max_memory

    def check_root(self) -> Path:
        """``root``, or a DataError when it is missing or not a folder."""
        if not self.root.exists():
            raise DataError(f"{self.name}: {self.root} does not exist")
        if not self.root.is_dir():
            raise DataError(f"{self.name}: {self.root} is not a folder")
        return self.root

    def decoded_size(self, files: Sequence[Path], channels: int, image_size: int | None) -> int:
        """Bytes the decoded uint8 tensors of ``files`` take (the first file's size stands for
        all when ``image_size`` is None: a mismatch is an error anyway)."""
        if image_size is not None:
            width = height = image_size
        else:
            width, height = image_size_of(files[0], self.name)
        return len(files) * channels * width * height

    def fits_in_memory(self, files: Sequence[Path], channels: int, image_size: int | None) -> bool:
        return self.decoded_size(files, channels, image_size) <= self.max_memory * 2**20

    def check_sizes(self, files: Sequence[Path]) -> None:
        """Every file's header gives one size (streamed images, which are never all decoded at
        once, are checked before training this way)."""
        first = image_size_of(files[0], self.name)
        for path in files[1:]:
            size = image_size_of(path, self.name)
            if size != first:
                raise _size_mismatch(self.name, files[0], first, path, size)

    def load_images(
        self,
        files: Sequence[Path],
        channels: int,
        image_size: int | None,
        resample: str,
        options: Mapping[str, Any],
        build: Callable[[], dict[str, Tensor]],
    ) -> dict[str, Tensor] | None:
        """``build()``'s tensors (``images`` among them), decoded once and cached, when the
        images fit ``max_memory``; None when they must stream from disk (their sizes checked).
        ``options`` are what else, beside the decoding, shapes ``build()``'s tensors."""
        check_decoding(self.name, channels, resample)
        if not self.fits_in_memory(files, channels, image_size):
            if image_size is None:
                self.check_sizes(files)
            return None
        decoding = dict(channels=channels, image_size=image_size, resample=resample)
        return cached_tensors(self.name, files, {**decoding, **options}, self.cache_dir, build)

    def split(
        self,
        images: Tensor | None,
        files: Sequence[Path],
        targets: Tensor,
        index: Tensor,
        decoding: Mapping[str, Any],
        transform: BatchTransform | None,
    ) -> "TensorBatches | StreamedImages":
        """The samples at ``index``: from the decoded ``images``, or streamed from ``files``
        (``images`` None) with ``decoding`` (channels, image_size, resample)."""
        if images is not None:
            return TensorBatches(images[index], targets[index], transform)
        chosen = [files[i] for i in index.tolist()]
        return StreamedImages(
            chosen, targets[index], self.name, **decoding, inputs_transform=transform
        )
