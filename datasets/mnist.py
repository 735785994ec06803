"""MNIST and Fashion-MNIST from their IDX files, decoded once into in-memory tensors.

Both datasets share the IDX format (LeCun et al.): a big-endian header (magic number
``0x0000080N`` for unsigned bytes in N dimensions, then N sizes) followed by the raw bytes;
28 x 28 grayscale images, 10 classes, 60000 training and 10000 test samples.

Where the files are looked up, each one plain or gzipped:

* ``mnist``: ``data_dir``, then torchvision's layout ``data_dir/MNIST/raw``;
* ``fashion_mnist``: ``data_dir``, ``data_dir/FashionMNIST/raw``, then Debian's
  ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``, see ``SYSTEM_DIRS``).

Missing files are downloaded with torchvision when ``download=True``; without a network (or with
``download=False``) the run stops with one :class:`DataError` line that names the directory and
the files expected.

Long-tailed variant (Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples",
CVPR, section 5): with ``imbalance_ratio`` r > 1 the training split keeps::

    n_c = round(n_max · r^(-c / (C - 1)))        c = 0 .. C-1

samples of class c, so class 0 keeps the most, class C-1 the fewest, and n_0 / n_{C-1} = r.
Validation and test stay balanced, so their accuracy measures what the long tail cost.
"""

import functools
import gzip
import math
import re
import zlib
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from datasets._base import InMemoryDataModule, TensorBatches
from datasets.errors import DataError
from losses.checks import check_range

# role -> file name stem, in the order the files are decoded
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801  # 2051, 2049: unsigned bytes, 3-D / 1-D
MAGIC_NAMES = {IMAGES_MAGIC: "IDX images", LABELS_MAGIC: "IDX labels"}
NUM_CLASSES, IMAGE_SIZE = 10, 28


class Spec(NamedTuple):
    """What tells the two datasets apart."""

    title: str  # for messages
    folder: str  # torchvision's class name, which is also its folder below data_dir
    mean: float  # of the training pixels scaled to [0, 1]
    std: float
    class_names: tuple[str, ...]


DATASETS = {
    "mnist": Spec("MNIST", "MNIST", 0.1307, 0.3081, tuple(str(d) for d in range(10))),
    "fashion_mnist": Spec(
        "Fashion-MNIST",
        "FashionMNIST",
        0.2860,
        0.3530,
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}
# Directories searched after data_dir, per dataset; tests point them elsewhere.
SYSTEM_DIRS: dict[str, list[Path]] = {
    "mnist": [],
    "fashion_mnist": [Path("/usr/share/datasets/fashion-mnist")],  # Debian dataset-fashion-mnist
}


def read_idx(path: str | Path, expected_magic: int | None = None, name: str = "mnist") -> Tensor:
    """The uint8 tensor stored in an IDX file, plain or gzipped (recognised by its content).

    Checks the magic number (``expected_magic``, else either 2049 for labels or 2051 for images),
    that the header is complete and that the payload holds exactly the bytes its dimensions
    announce; anything wrong raises :class:`DataError` naming the file.

    >>> import struct, tempfile
    >>> path = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
    >>> _ = path.write_bytes(struct.pack(">II", 2049, 3) + bytes([7, 0, 9]))
    >>> read_idx(path)
    tensor([7, 0, 9], dtype=torch.uint8)
    >>> try:
    ...     read_idx(path, expected_magic=2051)
    ... except DataError as error:
    ...     print(str(error).split(" has ")[1])
    magic number 2049, expected 2051 (IDX images)
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip's magic: a plain IDX file starts with two zero bytes
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        # `from None`: the run's one-line error report shows the root cause, which is this one
        raise DataError(f"{name}: cannot read {path}: {_one_line(error)}") from None
    if len(raw) < 4:
        raise DataError(f"{name}: {path} is truncated: {len(raw)} bytes, not even a magic number")
    magic = int.from_bytes(raw[:4], "big")
    allowed = (expected_magic,) if expected_magic is not None else tuple(MAGIC_NAMES)
    if magic not in allowed:
        wanted = " or ".join(f"{m} ({MAGIC_NAMES.get(m, 'IDX')})" for m in allowed)
        raise DataError(f"{name}: {path} has magic number {magic}, expected {wanted}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{name}: {path} is truncated: expected a {header}-byte header, got {len(raw)} bytes"
        )
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected, got = math.prod(dims), len(raw) - header
    what = "pixels" if ndim == 3 else "labels" if ndim == 1 else "data"
    if got < expected:
        raise DataError(
            f"{name}: {path} is truncated: expected {expected} bytes of {what}, got {got}"
        )
    if got > expected:
        raise DataError(
            f"{name}: {path} is corrupt: its header {dims} announces {expected} bytes of "
            f"{what}, but {got} follow"
        )
    # one copy of the payload into a writable buffer, which the tensor then owns
    return torch.frombuffer(bytearray(memoryview(raw)[header:]), dtype=torch.uint8).reshape(dims)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _find(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """The files of ``directory`` by role (plain preferred: torchvision leaves both), and the
    names of those missing."""
    found, missing = {}, []
    for role, stem in FILES.items():
        path = next((p for p in (directory / stem, directory / f"{stem}.gz") if p.is_file()), None)
        if path is None:
            missing.append(f"{stem}[.gz]")
        else:
            found[role] = path
    return found, missing


def search_dirs(name: str, data_dir: Path) -> list[Path]:
    """Where the IDX files of ``name`` are looked up, in order."""
    return [data_dir, data_dir / DATASETS[name].folder / "raw", *SYSTEM_DIRS[name]]


def locate(name: str, data_dir: Path) -> dict[str, Path] | None:
    """The four IDX files of ``name`` from the first directory holding all of them."""
    for directory in search_dirs(name, data_dir):
        found, missing = _find(directory)
        if not missing:
            return found
    return None


def _download(name: str, data_dir: Path) -> str | None:
    """Fetch the files with torchvision into ``data_dir/<Folder>/raw``; why it failed, or None."""
    try:
        import torchvision

        dataset = getattr(torchvision.datasets, DATASETS[name].folder)
        # one instance downloads all four files; the test split is the cheaper one to decode
        dataset(root=str(data_dir), train=False, download=True)
    except Exception as error:  # no network, a mirror down, a full disk: all end the same way
        return _short_reason(error)
    return None


def _short_reason(error: BaseException) -> str:
    """One short line from torchvision's multi-line "Tried <mirror>, got: ..." report.

    >>> _short_reason(RuntimeError(
    ...     "Error downloading a.gz:\\nTried http://m1/, got:\\n<urlopen error x>\\n"
    ...     "Tried http://m2/, got:\\n<urlopen error x>\\n"))
    'Error downloading a.gz: <urlopen error x> (tried http://m1/, http://m2/)'
    """
    text = str(error).strip()
    mirrors = re.findall(r"^Tried (\S+?),? got:$", text, flags=re.MULTILINE)
    if mirrors:
        lines = [
            line.strip()
            for line in text.splitlines()
            if line.strip() and not line.startswith("Tried ")
        ]
        causes = "; ".join(dict.fromkeys(lines[1:]))  # each mirror often fails the same way
        text = f"{lines[0].rstrip(':')}: {causes} (tried {', '.join(mirrors)})"
    text = " ".join(text.split())
    if not isinstance(error, RuntimeError) or not text:  # torchvision's own errors say enough
        text = f"{type(error).__name__}: {text}".rstrip(": ")
    return text if len(text) <= 300 else text[:297] + "..."


def _missing_message(name: str, data_dir: Path, reason: str) -> str:
    parts = []
    for directory in search_dirs(name, data_dir):
        found, missing = _find(directory)
        if found:  # a partial set is most likely an interrupted copy: say what is lacking
            parts.append(f"{directory} lacks {', '.join(missing)}")
    partial = f"; {'; '.join(parts)}" if parts else ""
    searched = ", ".join(map(str, search_dirs(name, data_dir)))
    expected = ", ".join(f"{stem}[.gz]" for stem in FILES.values())
    return (
        f"{name}: no {DATASETS[name].title} IDX files in {data_dir} (looked in {searched})"
        f"{partial}; expected {expected}; {reason}"
    )


@functools.lru_cache(maxsize=2)
def _decode(name: str, paths: tuple[Path, ...], stamps: tuple) -> tuple[Tensor, ...]:
    """Images ``uint8 [N, 1, 28, 28]`` and labels ``int64 [N]``, train then test.

    Cached per process, keyed by the files and their (mtime, size), so the jobs of a multirun
    decode once and a replaced file is read again. The tensors are shared: never mutate them.
    """
    roles = dict(zip(FILES, paths, strict=True))
    arrays = {
        role: read_idx(path, IMAGES_MAGIC if role.endswith("images") else LABELS_MAGIC, name)
        for role, path in roles.items()
    }
    out = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        image_path, label_path = roles[f"{split}_images"], roles[f"{split}_labels"]
        if tuple(images.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(
                f"{name}: {image_path} holds {images.shape[1]}x{images.shape[2]} images, "
                f"expected {IMAGE_SIZE}x{IMAGE_SIZE}"
            )
        if len(images) != len(labels):
            raise DataError(
                f"{name}: {image_path} holds {len(images)} images but {label_path} "
                f"{len(labels)} labels"
            )
        if len(labels) and int(labels.max()) >= NUM_CLASSES:
            raise DataError(
                f"{name}: {label_path} holds label {int(labels.max())}, "
                f"expected 0..{NUM_CLASSES - 1}"
            )
        out += [images.unsqueeze(1), labels.long()]
    return tuple(out)


def load(name: str, data_dir: str | Path, download: bool = True) -> dict[str, Tensor]:
    """``train_images``, ``train_labels``, ``test_images``, ``test_labels`` of ``name``: images
    ``uint8 [N, 1, 28, 28]``, labels ``int64 [N]`` (shared, cached tensors: never mutate them)."""
    if name not in DATASETS:
        raise ValueError(f"mnist: expected name in {tuple(DATASETS)}, got {name!r}")
    data_dir = Path(data_dir).expanduser().resolve()
    found = locate(name, data_dir)
    if found is None:
        if not download:
            raise DataError(_missing_message(name, data_dir, "download=false"))
        failure = _download(name, data_dir)
        found = locate(name, data_dir)
        if found is None:
            reason = failure or "torchvision reported no error but the files are not there"
            raise DataError(_missing_message(name, data_dir, f"download failed: {reason}"))
    paths = tuple(found[role] for role in FILES)
    stamps = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    return dict(zip(FILES, _decode(name, paths, stamps), strict=True))


def long_tail_counts(available: list[int], ratio: float) -> list[int]:
    """Per-class sample counts of the exponential profile of Cui et al. 2019::

        n_c = round(n_max · ratio^(-c / (C - 1))),   n_max = min(available)

    ``n_max`` is the smallest class so that every class can supply its ``n_c``; a count never
    drops below 1, since a class absent from training would leave class-count weights undefined.

    >>> long_tail_counts([100] * 5, 100.0)
    [100, 32, 10, 3, 1]
    >>> long_tail_counts([120, 100, 110], 4.0)
    [100, 50, 25]
    """
    n_max, c = min(available), len(available)
    return [max(1, round(n_max * ratio ** (-k / (c - 1)))) for k in range(c)]


def normalise_pixels(images: Tensor, mean: float, std: float) -> Tensor:
    """uint8 pixels to ``(x / 255 - mean) / std`` in float32, once per batch."""
    return images.float().mul_(1 / (255 * std)).sub_(mean / std)


class MNISTDataModule(InMemoryDataModule):
    """``data=mnist`` / ``data=fashion_mnist``: 28x28 grayscale, 10 classes, maybe long-tailed.

    The official training set is split into train and validation by a permutation seeded with
    ``split_seed``; the official test set is the test split. Inputs are stored as uint8
    ``[N, 1, 28, 28]`` and normalised per batch with the dataset's mean and std; targets are
    int64 ``[N]``. With ``imbalance_ratio`` r > 1 the train split (only) is subsampled to the
    exponential profile of Cui et al. 2019, ``n_c = round(n_max · r^(-c / (C - 1)))`` with
    ``n_max`` the smallest class of the train part (see :func:`long_tail_counts`). With
    ``train_size`` n the train split keeps its first n samples (the split's order is the seeded
    permutation, so a random subset, the long tail's profile kept in expectation): a small set to
    train many epochs on, into overfitting.
    """

    task = "classification"
    num_classes = NUM_CLASSES
    in_channels = 1
    image_size = IMAGE_SIZE

    def __init__(
        self,
        name: str = "mnist",
        data_dir: str = "data",
        val_size: int = 5000,
        split_seed: int = 0,
        imbalance_ratio: float = 1.0,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        download: bool = True,
        num_workers: int = 0,
        train_size: int | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers)
        if name not in DATASETS:
            raise ValueError(f"mnist: expected name in {tuple(DATASETS)}, got {name!r}")
        for key, value in (
            ("val_size", val_size),
            ("split_seed", split_seed),
            ("batch_size", batch_size),
            ("eval_batch_size", eval_batch_size),
            ("num_workers", num_workers),
            ("train_size", 1 if train_size is None else train_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}: expected {key} as an integer, got {value!r}")
        if not math.isfinite(imbalance_ratio):  # nan would slip through the range check
            raise ValueError(f"{name}: expected a finite imbalance_ratio, got {imbalance_ratio}")
        check_range(name, "imbalance_ratio", imbalance_ratio, 1)
        check_range(name, "val_size", val_size, 1)
        check_range(name, "batch_size", batch_size, 1)
        check_range(name, "eval_batch_size", eval_batch_size, 1)
        check_range(name, "num_workers", num_workers, 0)
        if train_size is not None:
            check_range(name, "train_size", train_size, 1)
        self.train_size = train_size
        self.name = name
        self.data_dir = data_dir
        self.val_size = val_size
        self.split_seed = split_seed
        self.imbalance_ratio = float(imbalance_ratio)
        self.download = download
        spec = DATASETS[name]
        self.class_names = spec.class_names
        # a partial of a module-level function pickles, so worker processes can take it
        self.normalise = functools.partial(normalise_pixels, mean=spec.mean, std=spec.std)

    def build_splits(self) -> tuple[TensorBatches, TensorBatches, TensorBatches]:
        data = load(self.name, self.data_dir, self.download)
        images, labels = data["train_images"], data["train_labels"]
        if self.val_size >= len(labels):
            raise ValueError(
                f"{self.name}: expected val_size < {len(labels)} (the training set's size), "
                f"got {self.val_size}"
            )
        generator = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(len(labels), generator=generator)
        val_index, train_index = order[: self.val_size], order[self.val_size :]
        if self.imbalance_ratio > 1:
            train_index = self._long_tail(train_index, labels, generator)
        if self.train_size is not None:
            if self.train_size > len(train_index):
                raise ValueError(
                    f"{self.name}: expected train_size <= {len(train_index)} (the train split's "
                    f"size), got {self.train_size}"
                )
            train_index = train_index[: self.train_size]
        return (
            TensorBatches(images[train_index], labels[train_index], self.normalise),
            TensorBatches(images[val_index], labels[val_index], self.normalise),
            TensorBatches(data["test_images"], data["test_labels"], self.normalise),
        )

    def _long_tail(self, index: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        """The subset of ``index`` that follows the profile, in ``index``'s (random) order.

        Each class draws one permutation of its members whatever the ratio, and keeps its first
        ``n_c``: a larger ratio keeps a subset of what a smaller one kept.
        """
        members = [(labels[index] == c).nonzero().squeeze(1) for c in range(self.num_classes)]
        available = [len(m) for m in members]
        if min(available) == 0:
            raise ValueError(
                f"{self.name}: class {available.index(0)} has no training sample left after "
                f"holding out val_size={self.val_size}; cannot build the long tail"
            )
        keep = torch.zeros(len(index), dtype=torch.bool)
        for positions, n in zip(
            members, long_tail_counts(available, self.imbalance_ratio), strict=True
        ):
            keep[positions[torch.randperm(len(positions), generator=generator)[:n]]] = True
        # a mask, not a concatenation per class: the split must not come sorted by class
        return index[keep]

    @property
    def data_stats(self) -> dict:
        return {"class_counts": self.train_class_counts(self.num_classes)}


def source_splits(
    name: str, data_dir: str, download: bool, val_size: int
) -> dict[str, TensorBatches]:
    """The train/val/test splits of :class:`MNISTDataModule` (uint8 images ``[N, 1, 28, 28]``,
    int64 labels), for the datamodules that take MNIST-family images as their source."""
    mnist = MNISTDataModule(name=name, data_dir=data_dir, download=download, val_size=val_size)
    mnist.setup()
    return mnist.splits
