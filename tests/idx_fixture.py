"""Tiny IDX datasets written on the fly, so no test needs the network or a real MNIST."""

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


def idx_bytes(data: torch.Tensor) -> bytes:
    magic = 2049 if data.ndim == 1 else 2051
    return (
        struct.pack(">I", magic)
        + b"".join(struct.pack(">I", d) for d in data.shape)
        + data.numpy().tobytes()
    )


def fake_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable 28x28 uint8 images: class c lights a distinct band of rows, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.randint(0, 60, (n, 28, 28), generator=g)
    for c in range(10):
        images[labels == c, 2 + 2 * c : 5 + 2 * c, 4:24] = 230
    return images.to(torch.uint8), labels.to(torch.uint8)


def write_fake_idx(
    root: Path,
    n_train: int = 600,
    n_test: int = 200,
    gz: bool = False,
    seed: int = 0,
    layout: str = "flat",
) -> Path:
    """The four MNIST IDX files in ``root`` (``layout="torchvision"``: in ``root/MNIST/raw``)."""
    directory = root if layout == "flat" else root / "MNIST" / "raw"
    directory.mkdir(parents=True, exist_ok=True)
    train, test = fake_digits(n_train, seed), fake_digits(n_test, seed + 1)
    for stem, data in zip(STEMS, (*train, *test), strict=True):
        payload = idx_bytes(data)
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (directory / stem).write_bytes(payload)
    return root
