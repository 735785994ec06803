"""Image restoration (denoising): corrupted images in, their clean versions as targets.

``source="shapes"`` (default, synthetic): 1-channel ``image_size`` x ``image_size`` images made of
a smooth random background (a bicubic upsampling of a random 4 x 4 grid), 2-4 shapes (disks and
rectangles, filled or outlined) of random intensity, and one patch of texture (stripes at a random
angle and period, or a checkerboard). Flat regions, sharp edges, thin outlines and fine periodic
detail are exactly the structure on which pixel losses (L1, MSE) and structural ones (SSIM)
disagree. ``source="mnist"`` or ``"fashion_mnist"`` takes the clean images from
:class:`datasets.mnist.MNISTDataModule` instead (scaled to [0, 1], 28 x 28: the U-Net's two
poolings need sides divisible by 4, which 28 is), the first ``n_train``/``n_val``/``n_test`` of
its train/val/test splits.

Corruption (``noise``, at ``strength``), clamped to [0, 1]:

- ``"gaussian"``: additive gaussian noise of standard deviation ``strength``;
- ``"salt_pepper"``: a share ``strength`` of the pixels set to 0 or 1 (equally likely);
- ``"mixed"``: gaussian, then salt-and-pepper, both at ``strength``.

The noisy/clean pairs of each split are generated once from ``seed`` (the noise too, so the
validation and test sets are fixed and runs compare on the same pairs). The clean shapes depend
on ``seed`` only: changing the noise kind or strength corrupts the same clean images.
"""

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from datasets._base import InMemoryDataModule, TensorBatches
from losses._core import check_range

SOURCES = ("shapes", "mnist", "fashion_mnist")
NOISES = ("gaussian", "salt_pepper", "mixed")
MNIST_SIZE = 28
_GENERATION_CHUNK = 256  # images generated at once: bounds the [chunk, K, S, S] shape tensors
_MAX_SHAPES = 4
_NOISE_STREAM = 2**40  # offset of the noise seeds from the clean images' seeds


def _shapes(n: int, s: int, g: torch.Generator) -> Tensor:
    """``n`` clean synthetic images ``float32 [n, 1, s, s]`` in [0, 1] (see the module doc)."""
    yy, xx = torch.meshgrid(
        torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij"
    )
    # smooth background: a coarse random grid, upsampled bicubically, in about [0.1, 0.5]
    coarse = 0.1 + 0.4 * torch.rand(n, 1, 4, 4, generator=g)
    image = F.interpolate(coarse, size=(s, s), mode="bicubic", align_corners=False)[:, 0]

    # shapes, painted one after the other (later ones over earlier ones)
    k = _MAX_SHAPES
    present = torch.arange(k)[None] < torch.randint(2, k + 1, (n, 1), generator=g)
    centre = s * (0.15 + 0.7 * torch.rand(n, k, 2, generator=g))
    half = s * (0.08 + 0.14 * torch.rand(n, k, 2, generator=g))  # half-sizes (or radius, x only)
    kind = torch.randint(0, 4, (n, k), generator=g)  # disk, ring, rectangle, rectangle outline
    level = torch.rand(n, k, generator=g)
    for i in range(k):
        dy = yy - centre[:, i, 0, None, None]
        dx = xx - centre[:, i, 1, None, None]
        r = half[:, i, 0, None, None]
        radial = (dy.square() + dx.square()).sqrt()
        hy, hx = half[:, i, 0, None, None], half[:, i, 1, None, None]
        disk = radial <= r
        ring = disk & (radial > r - 1.5)  # 1.5 px thick outlines
        rect = (dy.abs() <= hy) & (dx.abs() <= hx)
        outline = rect & ~((dy.abs() <= hy - 1.5) & (dx.abs() <= hx - 1.5))
        masks = torch.stack([disk, ring, rect, outline], dim=1)  # [n, 4, S, S]
        mask = masks.gather(1, kind[:, i, None, None, None].expand(n, 1, s, s))[:, 0]
        mask &= present[:, i, None, None]
        image = torch.where(mask, level[:, i, None, None], image)

    # one texture patch: stripes (random angle and period) or a checkerboard, two random levels
    side = (s * (0.25 + 0.15 * torch.rand(n, 2, generator=g))).round()
    corner = (torch.rand(n, 2, generator=g) * (s - side)).floor()
    inside = (
        (yy >= corner[:, 0, None, None])
        & (yy < (corner + side)[:, 0, None, None])
        & (xx >= corner[:, 1, None, None])
        & (xx < (corner + side)[:, 1, None, None])
    )
    angle = math.pi * torch.rand(n, 1, 1, generator=g)
    period = 2.0 + 3.0 * torch.rand(n, 1, 1, generator=g)
    stripes = torch.sin(2 * math.pi * (xx * angle.cos() + yy * angle.sin()) / period) > 0
    cell = torch.randint(2, 5, (n, 1, 1), generator=g)
    checker = ((yy.long() // cell + xx.long() // cell) % 2).bool()
    pattern = torch.where(torch.rand(n, 1, 1, generator=g) < 0.5, stripes, checker)
    low, high = torch.rand(n, 2, 1, 1, generator=g).sort(dim=1).values.unbind(dim=1)
    high = torch.maximum(high, low + 0.3).clamp_max(1.0)  # keep the texture visible
    image = torch.where(inside, torch.where(pattern, high, low), image)
    return image.clamp(0, 1).unsqueeze(1)


@functools.lru_cache(maxsize=8)
def generate_shapes(n: int, image_size: int, seed: int) -> Tensor:
    """Clean synthetic images ``float32 [n, 1, S, S]`` in [0, 1], generated in chunks.

    Cached per process (tensors are never mutated), so the jobs of a multirun share one copy.

    >>> clean = generate_shapes(8, 32, seed=0)
    >>> clean.shape, 0.0 <= clean.min().item() <= clean.max().item() <= 1.0
    (torch.Size([8, 1, 32, 32]), True)
    """
    g = torch.Generator().manual_seed(seed)
    return torch.cat(
        [
            _shapes(min(_GENERATION_CHUNK, n - start), image_size, g)
            for start in range(0, n, _GENERATION_CHUNK)
        ]
    )


def corrupt(clean: Tensor, noise: str, strength: float, seed: int) -> Tensor:
    """The noisy version of ``clean`` (see the module doc), clamped to [0, 1].

    >>> clean = torch.full((2, 1, 4, 4), 0.5)
    >>> torch.equal(corrupt(clean, "mixed", 0.0, seed=0), clean)
    True
    >>> noisy = corrupt(clean, "salt_pepper", 0.5, seed=0)
    >>> sorted(noisy.unique().tolist())
    [0.0, 0.5, 1.0]
    """
    if noise not in NOISES:
        raise ValueError(f"restoration: expected noise in {NOISES}, got {noise!r}")
    g = torch.Generator().manual_seed(seed)
    noisy = clean
    if noise in ("gaussian", "mixed"):
        noisy = noisy + strength * torch.randn(clean.shape, generator=g)
    if noise in ("salt_pepper", "mixed"):
        flip = torch.rand(clean.shape, generator=g) < strength
        salt = (torch.rand(clean.shape, generator=g) < 0.5).to(clean.dtype)
        noisy = torch.where(flip, salt, noisy)
    return noisy.clamp(0, 1)


class RestorationDataModule(InMemoryDataModule):
    """``data=restoration``: noisy images as inputs, the clean ones as targets."""

    task = "restoration"
    in_channels = 1

    def __init__(
        self,
        source: str = "shapes",
        noise: str = "gaussian",
        strength: float = 0.2,
        n_train: int = 4000,
        n_val: int = 500,
        n_test: int = 500,
        image_size: int = 32,
        seed: int = 0,
        data_dir: str = "data",
        download: bool = True,
        val_size: int = 5000,
        batch_size: int = 32,
        eval_batch_size: int = 250,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers)
        name = "restoration"
        if source not in SOURCES:
            raise ValueError(f"{name}: expected source in {SOURCES}, got {source!r}")
        if noise not in NOISES:
            raise ValueError(f"{name}: expected noise in {NOISES}, got {noise!r}")
        check_range(name, "strength", strength, 0.0, 1.0)
        check_range(name, "image_size", image_size, 8)
        for key, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            check_range(name, key, value, 1)
        self.source = source
        self.noise = noise
        self.strength = strength
        self.sizes = (n_train, n_val, n_test)
        self.image_size = image_size if source == "shapes" else MNIST_SIZE
        self.seed = seed
        self.data_dir = data_dir
        self.download = download
        self.val_size = val_size

    @property
    def num_outputs(self) -> int:
        return self.in_channels  # the restored image has the input's channels

    def _clean(self) -> tuple[Tensor, Tensor, Tensor]:
        if self.source == "shapes":
            # each split from its own stream, so changing n_train leaves val/test unchanged
            return tuple(
                generate_shapes(n, self.image_size, seed=self.seed * 3 + offset)
                for offset, n in enumerate(self.sizes)
            )
        from datasets.mnist import MNISTDataModule

        mnist = MNISTDataModule(
            name=self.source, data_dir=self.data_dir, download=self.download, val_size=self.val_size
        )
        mnist.setup()
        return tuple(
            mnist.splits[split].inputs[:n].float() / 255
            for split, n in zip(("train", "val", "test"), self.sizes, strict=True)
        )

    def build_splits(self) -> tuple[TensorBatches, TensorBatches, TensorBatches]:
        return tuple(
            TensorBatches(
                corrupt(clean, self.noise, self.strength, _NOISE_STREAM + self.seed * 3 + i), clean
            )
            for i, clean in enumerate(self._clean())
        )
