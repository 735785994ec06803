"""Image restoration (denoising): corrupted images in, their clean versions as targets.

``source="shapes"`` (default, synthetic): 1-channel ``image_size`` x ``image_size`` images made of
a smooth random background (a bicubic upsampling of a random 4 x 4 grid), 2-4 shapes (disks and
rectangles, filled or outlined) of random intensity, and one patch of texture (stripes at a random
angle and period, or a checkerboard). Flat regions, sharp edges, thin outlines and fine periodic
detail are exactly the structure on which pixel losses (L1, MSE) and structural ones (SSIM)
disagree. ``source="mnist"`` or ``"fashion_mnist"`` takes the clean images from
:class:`datasets.mnist.MNISTDataModule` instead (scaled to [0, 1], 28 x 28), the first
``n_train``/``n_val``/``n_test`` of its train/val/test splits.

Image size. Shapes scale with ``image_size`` (positions and sizes are shares of the side; outlines
stay 1.5 px and textures 2-5 px, so larger images hold finer detail). Multi-scale SSIM (Wang et
al. 2003, "Multiscale structural similarity for image quality assessment") halves the image
between its scales and needs the 11 px window to fit the coarsest one: ``M`` scales need a side
above ``(11 - 1) * 2**(M - 1)``, so its usual 5 scales need more than 160 px, e.g.
``image_size=192`` (32 px leaves room for 2). The MNIST sources are 28 px; they take no other
size (upsampling digits would add pixels, not detail), so any ``image_size`` but 28 is an error
there. Whether a size suits the model (the U-Net's ``2**depth`` poolings) is the model's check.

Corruption (``noise``, at ``strength``), clamped to [0, 1]:

- ``"gaussian"``: additive gaussian noise of standard deviation ``strength``;
- ``"salt_pepper"``: a share ``strength`` of the pixels set to 0 or 1 (equally likely);
- ``"mixed"``: gaussian, then salt-and-pepper, both at ``strength``.

The noisy/clean pairs of each split are generated once from ``seed`` (the noise too, so the
validation and test sets are fixed and runs compare on the same pairs). The clean shapes depend
on ``seed`` only: changing the noise kind or strength corrupts the same clean images.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from datasets._base import SyntheticDataModule
from datasets._render import GENERATION_CHUNK, cached, in_chunks, pixel_grid
from losses.checks import check_range

SOURCES = ("shapes", "mnist", "fashion_mnist")
NOISES = ("gaussian", "salt_pepper", "mixed")
MNIST_SIZE = 28
SHAPES_SIZE = 32  # the default side of the synthetic images
# per-chunk pixel budget of the shapes: GENERATION_CHUNK images up to 64 px (the streams those
# sizes always had), fewer above, so a chunk's [chunk, S, S] temporaries stay ~4 MB at any size
# (at 192 px: 28 images a chunk, drawn ~3x faster than 256 at once, and ~1 GB less peak memory)
_CHUNK_PIXELS = GENERATION_CHUNK * 64 * 64
_MAX_SHAPES = 4
_NOISE_STREAM = 2**40  # offset of the noise seeds from the clean images' seeds


def _shapes(n: int, s: int, g: torch.Generator) -> Tensor:
    """``n`` clean synthetic images ``float32 [n, 1, s, s]`` in [0, 1] (see the module doc)."""
    yy, xx = pixel_grid(s)
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


@cached
def generate_shapes(n: int, image_size: int, seed: int) -> Tensor:
    """Clean synthetic images ``float32 [n, 1, S, S]`` in [0, 1], generated in chunks.

    >>> clean = generate_shapes(8, 32, seed=0)
    >>> clean.shape, 0.0 <= clean.min().item() <= clean.max().item() <= 1.0
    (torch.Size([8, 1, 32, 32]), True)
    """
    g = torch.Generator().manual_seed(seed)
    chunk = min(GENERATION_CHUNK, max(1, _CHUNK_PIXELS // image_size**2))
    return in_chunks(n, lambda m: _shapes(m, image_size, g), chunk)


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


def degrade(clean: Tensor, noise: str, strength: float, split_seed: int) -> Tensor:
    """One split's noisy inputs: ``corrupt`` with the split's noise stream (``split_seed``, the
    seed of its clean images, offset), apart from the clean images' own stream, so another noise
    kind corrupts the same clean images. ``data=clean_folder`` degrades the user's clean images
    with it too: the same seed gives the same noise as here."""
    return corrupt(clean, noise, strength, _NOISE_STREAM + split_seed)


class RestorationDataModule(SyntheticDataModule):
    """``data=restoration``: noisy images as inputs, the clean ones as targets."""

    task = "restoration"
    name = "restoration"
    in_channels = 1

    def __init__(
        self,
        source: str = "shapes",
        noise: str = "gaussian",
        strength: float = 0.2,
        n_train: int = 4000,
        n_val: int = 500,
        n_test: int = 500,
        image_size: int | None = None,
        seed: int = 0,
        data_dir: str = "data",
        download: bool = True,
        val_size: int = 5000,
        batch_size: int = 32,
        eval_batch_size: int = 250,
        num_workers: int = 0,
    ) -> None:
        super().__init__(n_train, n_val, n_test, seed, batch_size, eval_batch_size, num_workers)
        if source not in SOURCES:
            raise ValueError(f"{self.name}: expected source in {SOURCES}, got {source!r}")
        if noise not in NOISES:
            raise ValueError(f"{self.name}: expected noise in {NOISES}, got {noise!r}")
        check_range(self.name, "strength", strength, 0.0, 1.0)
        if source == "shapes":
            image_size = SHAPES_SIZE if image_size is None else image_size
            check_range(self.name, "image_size", image_size, 8)
        elif image_size not in (None, MNIST_SIZE):
            raise ValueError(
                f"{self.name}: expected image_size null or {MNIST_SIZE} with source={source} "
                f"(its images are {MNIST_SIZE} x {MNIST_SIZE}; other sizes need source=shapes), "
                f"got {image_size}"
            )
        else:
            image_size = MNIST_SIZE
        self.source = source
        self.noise = noise
        self.strength = strength
        self.image_size = image_size
        self.mnist = dict(name=source, data_dir=data_dir, download=download, val_size=val_size)

    @property
    def num_outputs(self) -> int:
        return self.in_channels  # the restored image has the input's channels

    def generate_split(self, split: str, n: int, seed: int) -> tuple[Tensor, Tensor]:
        if self.source == "shapes":
            clean = generate_shapes(n, self.image_size, seed=seed)
        else:
            from datasets.mnist import source_splits

            clean = source_splits(**self.mnist)[split].inputs[:n].float() / 255
        return degrade(clean, self.noise, self.strength, seed), clean
