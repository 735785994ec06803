"""MNIST and Fashion-MNIST from their IDX files, decoded once into in-memory tensors.

Files are looked up, plain or gzipped, in ``data_dir``, in torchvision's layout below it
(``data_dir/MNIST/raw``, ``data_dir/FashionMNIST/raw``) and, for Fashion-MNIST, in Debian's
``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``). Missing files are
downloaded with torchvision; without a network the run stops with one line that names the
directory and the files expected.

Long-tailed variant (Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of
Samples"): with ``imbalance_ratio`` r > 1 the training split keeps
``n_c = round(n_max * r ** (-c / (C - 1)))`` samples of class c, so class 0 keeps the most,
class C-1 the fewest, and n_0 / n_{C-1} = r. Validation and test stay balanced.
"""

import functools
import gzip
from pathlib import Path

import torch
from torch import Tensor

from datasets._base import InMemoryDataModule, TensorBatches
from losses._core import check_range

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DATASETS = {
    # name: (torchvision class and folder, mean, std, class names)
    "mnist": ("MNIST", 0.1307, 0.3081, tuple(str(d) for d in range(10))),
    "fashion_mnist": (
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
SYSTEM_DIRS = {"fashion_mnist": [Path("/usr/share/datasets/fashion-mnist")], "mnist": []}
IDX_MAGIC = {1: 2049, 3: 2051}  # labels, images


class DataError(RuntimeError):
    """Missing or corrupt data; the message is one line naming the file or directory."""


def read_idx(path: Path) -> Tensor:
    """An IDX file (plain or ``.gz``) as a uint8 tensor, its magic number and size checked.

    >>> import tempfile, struct
    >>> path = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
    >>> _ = path.write_bytes(struct.pack(">II", 2049, 3) + bytes([7, 0, 9]))
    >>> read_idx(path)
    tensor([7, 0, 9], dtype=torch.uint8)
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise DataError(f"mnist: cannot read {path}: {error}") from error
    if len(raw) < 8:
        raise DataError(f"mnist: {path} is truncated: {len(raw)} bytes, not even an IDX header")
    magic, count = int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:8], "big")
    ndim = 1 if magic == IDX_MAGIC[1] else 3 if magic == IDX_MAGIC[3] else None
    if ndim is None:
        raise DataError(
            f"mnist: {path} has magic number {magic}, expected 2049 (labels) or 2051 (images)"
        )
    header = 4 + 4 * ndim
    dims = [count] + [int.from_bytes(raw[8 + 4 * i : 12 + 4 * i], "big") for i in range(ndim - 1)]
    expected = 1
    for d in dims:
        expected *= d
    if len(raw) - header != expected:
        raise DataError(
            f"mnist: {path} is truncated: expected {expected} bytes of data, "
            f"got {len(raw) - header}"
        )
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(dims)


def _find(directory: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in FILES.items():
        candidates = [directory / stem, directory / f"{stem}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        found[key] = path
    return found


def locate(name: str, data_dir: Path) -> tuple[dict[str, Path] | None, list[Path]]:
    """The four IDX files of ``name``, and the directories that were searched."""
    folder = DATASETS[name][0]
    searched = [data_dir, data_dir / folder / "raw", *SYSTEM_DIRS[name]]
    for directory in searched:
        if (found := _find(directory)) is not None:
            return found, searched
    return None, searched


@functools.lru_cache(maxsize=4)
def _decode(paths: tuple[Path, ...], stamps: tuple[float, ...]) -> tuple[Tensor, ...]:
    """Decoded once per process (keyed by the files and their mtimes): a multirun shares them."""
    return tuple(read_idx(p) for p in paths)


def load(name: str, data_dir: str | Path, download: bool) -> dict[str, Tensor]:
    """Train/test images ``uint8 [N, 1, 28, 28]`` and labels ``int64 [N]``."""
    data_dir = Path(data_dir).expanduser().resolve()
    found, searched = locate(name, data_dir)
    reason = "download=false"
    if found is None and download:
        try:
            import torchvision

            dataset = getattr(torchvision.datasets, DATASETS[name][0])
            for train in (True, False):
                dataset(root=str(data_dir), train=train, download=True)
            found, searched = locate(name, data_dir)
        except Exception as error:  # no network, a mirror down, a full disk: say so in one line
            reason = f"download failed: {' '.join(str(error).split())[:200]}"
    if found is None:
        expected = ", ".join(f"{stem}[.gz]" for stem in FILES.values())
        raise DataError(
            f"{name}: no IDX files in {data_dir} (looked in {', '.join(map(str, searched))}); "
            f"expected {expected}; {reason}"
        )
    paths = tuple(found[key] for key in FILES)
    images_train, labels_train, images_test, labels_test = _decode(
        paths, tuple(p.stat().st_mtime for p in paths)
    )
    for images, labels, split in (
        (images_train, labels_train, "train"),
        (images_test, labels_test, "t10k"),
    ):
        if len(images) != len(labels) or images.ndim != 3:
            raise DataError(
                f"{name}: {split} images {list(images.shape)} "
                f"do not match labels {list(labels.shape)}"
            )
    return {
        "train_images": images_train.unsqueeze(1),
        "train_labels": labels_train.long(),
        "test_images": images_test.unsqueeze(1),
        "test_labels": labels_test.long(),
    }


def long_tail_counts(available: list[int], ratio: float) -> list[int]:
    """Per-class sample counts of the exponential profile (Cui et al. 2019).

    >>> long_tail_counts([100] * 5, 100.0)
    [100, 32, 10, 3, 1]
    """
    n_max, c = min(available), len(available)
    return [max(1, round(n_max * ratio ** (-k / (c - 1)))) for k in range(c)]


class MNISTDataModule(InMemoryDataModule):
    """``data=mnist`` / ``data=fashion_mnist``: 28x28 grayscale, 10 classes, maybe long-tailed."""

    task = "classification"
    num_classes = 10
    in_channels = 1
    image_size = 28

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
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers)
        if name not in DATASETS:
            raise ValueError(f"mnist: expected name in {tuple(DATASETS)}, got {name!r}")
        check_range(name, "imbalance_ratio", imbalance_ratio, 1.0)
        check_range(name, "val_size", val_size, 1, 59999)
        check_range(name, "batch_size", batch_size, 1)
        check_range(name, "eval_batch_size", eval_batch_size, 1)
        self.name = name
        self.data_dir = data_dir
        self.val_size = val_size
        self.split_seed = split_seed
        self.imbalance_ratio = imbalance_ratio
        self.download = download
        self.class_names = DATASETS[name][3]
        mean, std = DATASETS[name][1:3]
        self.normalise = functools.partial(_normalise, mean=mean, std=std)

    def build_splits(self) -> tuple[TensorBatches, TensorBatches, TensorBatches]:
        data = load(self.name, self.data_dir, self.download)
        images, labels = data["train_images"], data["train_labels"]
        generator = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(len(labels), generator=generator)
        val_index, train_index = order[: self.val_size], order[self.val_size :]
        if self.imbalance_ratio > 1:
            train_index = self._long_tail(train_index, labels, generator)
        return (
            TensorBatches(images[train_index], labels[train_index], self.normalise),
            TensorBatches(images[val_index], labels[val_index], self.normalise),
            TensorBatches(data["test_images"], data["test_labels"], self.normalise),
        )

    def _long_tail(self, index: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        by_class = [index[labels[index] == c] for c in range(self.num_classes)]
        counts = long_tail_counts([len(members) for members in by_class], self.imbalance_ratio)
        kept = [
            members[torch.randperm(len(members), generator=generator)[:n]]
            for members, n in zip(by_class, counts, strict=True)
        ]
        return torch.cat(kept)

    @property
    def data_stats(self) -> dict:
        self.setup()
        return {
            "class_counts": torch.bincount(
                self.splits["train"].targets, minlength=self.num_classes
            ).tolist()
        }


def _normalise(images: Tensor, mean: float, std: float) -> Tensor:
    return (images.float() / 255 - mean) / std
