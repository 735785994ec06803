"""Tiny IDX datasets written on the fly, so no test needs the network or a real MNIST.

``write_fake_idx`` writes the four MNIST files of a fake dataset a small model learns in a few
steps: class c is a bright horizontal bar at its own height (rows 4 + 2c and 5 + 2c, so no two
classes share a row) with a random length and brightness, over uniform noise. The helpers below
damage a written file the way real downloads get damaged.
"""

import gzip
import struct
from pathlib import Path

import torch

STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


def idx_bytes(data: torch.Tensor) -> bytes:
    """The IDX encoding of a uint8 tensor: magic ``0x0000080N`` (N dims), the sizes, the bytes."""
    header = struct.pack(">I", 0x0800 + data.ndim) + struct.pack(f">{data.ndim}I", *data.shape)
    return header + data.contiguous().numpy().tobytes()


def write_idx(path: Path, data: torch.Tensor, gz: bool = False) -> Path:
    """``data`` as an IDX file at ``path`` (``.gz`` appended when ``gz``); the path written."""
    payload = idx_bytes(data)
    if gz:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload, mtime=0)  # same bytes on every run
    path.write_bytes(payload)
    return path


def fake_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` learnable 28x28 uint8 images and their uint8 labels (balanced: label i % 10)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.randint(0, 60, (n, 28, 28), generator=g)
    start = torch.randint(2, 7, (n,), generator=g)
    length = torch.randint(14, 20, (n,), generator=g)
    brightness = torch.randint(180, 256, (n,), generator=g)
    grid = torch.arange(28)
    top = (4 + 2 * labels)[:, None]
    rows = (grid >= top) & (grid < top + 2)
    cols = (grid >= start[:, None]) & (grid < (start + length)[:, None])
    bar = rows[:, :, None] & cols[:, None, :]
    images = torch.where(bar, brightness[:, None, None], images)
    return images.to(torch.uint8), labels.to(torch.uint8)


def write_fake_idx(
    root: Path,
    n_train: int = 600,
    n_test: int = 200,
    gz: bool = False,
    seed: int = 0,
    layout: str = "flat",
    dataset: str = "mnist",
) -> Path:
    """Write the four IDX files of a fake ``dataset`` and return the directory holding them.

    ``layout="flat"``: in ``root`` itself; ``layout="torchvision"``: in ``root/MNIST/raw``
    (``root/FashionMNIST/raw`` for ``dataset="fashion_mnist"``), as torchvision's download
    leaves them. Either way ``root`` is what to pass as ``data_dir``.
    """
    if layout not in ("flat", "torchvision"):
        raise ValueError(f"layout: expected 'flat' or 'torchvision', got {layout!r}")
    directory = root if layout == "flat" else root / TORCHVISION_FOLDERS[dataset] / "raw"
    directory.mkdir(parents=True, exist_ok=True)
    train, test = fake_digits(n_train, seed), fake_digits(n_test, seed + 1)
    for stem, data in zip(STEMS, (*train, *test), strict=True):
        write_idx(directory / stem, data, gz)
    return directory


def _rewrite(path: Path, change) -> Path:
    """Apply ``change`` to the IDX bytes of ``path``, keeping its compression."""
    raw = path.read_bytes()
    gz = raw[:2] == b"\x1f\x8b"
    payload = change(gzip.decompress(raw) if gz else raw)
    path.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)
    return path


def corrupt_magic(path: Path, magic: int = 1234) -> Path:
    """Replace the magic number of the IDX file at ``path`` (plain or gzipped)."""
    return _rewrite(path, lambda raw: struct.pack(">I", magic) + raw[4:])


def truncate_idx(path: Path, keep: int = 1000) -> Path:
    """Keep the first ``keep`` bytes of the IDX content of ``path``; a ``.gz`` stays a valid
    gzip stream, so the reader must notice from the header that data are missing."""
    return _rewrite(path, lambda raw: raw[:keep])


def truncate_gzip(path: Path, keep: int = 100) -> Path:
    """Cut the compressed bytes of a ``.gz`` file: an interrupted download."""
    path.write_bytes(path.read_bytes()[:keep])
    return path
