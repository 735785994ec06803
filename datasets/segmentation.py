"""Synthetic imbalanced binary segmentation: small bright disks to find among clutter and noise.

Each image holds 1..``max_objects`` filled disks (the foreground) whose total area is drawn around
``foreground_share`` of the pixels (default 2 %), plus as many distractors of the same brightness
(hollow squares and bars: the model has to learn shape, not just a threshold), a smooth background
gradient and gaussian noise. Everything is generated from ``seed`` with torch's generator, so the
data are identical on every machine and need no download.
"""

import functools
import math

import torch
from torch import Tensor

from datasets._base import InMemoryDataModule, TensorBatches
from losses._core import check_range

_GENERATION_CHUNK = 256  # images generated at once: bounds the [chunk, K, H, W] distance tensor


def _disks(yy: Tensor, xx: Tensor, centers: Tensor, radii: Tensor, present: Tensor) -> Tensor:
    """Union of disks ``[n, K]`` (centers ``[n, K, 2]``) rendered on the ``[H, W]`` grid."""
    dy = yy[None, None] - centers[..., 0, None, None]
    dx = xx[None, None] - centers[..., 1, None, None]
    inside = dy.square() + dx.square() <= radii[..., None, None].square()
    return (inside & present[..., None, None]).any(dim=1)


def _squares(yy: Tensor, xx: Tensor, centers: Tensor, half: Tensor, present: Tensor) -> Tensor:
    """Union of hollow squares and bars: shapes as bright as the disks but never foreground."""
    dy = (yy[None, None] - centers[..., 0, None, None]).abs()
    dx = (xx[None, None] - centers[..., 1, None, None]).abs()
    h = half[..., None, None]
    outline = (torch.maximum(dy, dx) <= h) & (torch.maximum(dy, dx) >= h - 1)
    bar = (dy <= 0.5) & (dx <= 2 * h)
    return ((outline | bar) & present[..., None, None]).any(dim=1)


@functools.lru_cache(maxsize=8)
def generate(
    n: int, image_size: int, foreground_share: float, max_objects: int, noise: float, seed: int
) -> tuple[Tensor, Tensor]:
    """Images ``float32 [n, 1, S, S]`` in about [0, 1] and masks ``float32 [n, 1, S, S]`` in {0, 1}.

    Cached per process (tensors are never mutated), so the jobs of a multirun share one copy.

    >>> images, masks = generate(64, 32, 0.02, 3, 0.1, seed=0)
    >>> images.shape, masks.shape
    (torch.Size([64, 1, 32, 32]), torch.Size([64, 1, 32, 32]))
    >>> 0.01 < masks.mean().item() < 0.04
    True
    """
    g = torch.Generator().manual_seed(seed)
    s = image_size
    yy, xx = torch.meshgrid(
        torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij"
    )
    k = max_objects
    images, masks = [], []
    for start in range(0, n, _GENERATION_CHUNK):
        m = min(_GENERATION_CHUNK, n - start)
        count = torch.randint(1, k + 1, (m, 1), generator=g)
        present = torch.arange(k)[None] < count
        # total foreground area around the target share, split evenly between the disks
        area = foreground_share * s * s * torch.empty(m, 1).uniform_(0.6, 1.4, generator=g)
        radii = (area / (count * math.pi)).sqrt().expand(m, k) * torch.empty(m, k).uniform_(
            0.8, 1.2, generator=g
        )
        margin = radii.max().item() + 1
        centers = margin + torch.rand(m, k, 2, generator=g) * (s - 2 * margin)
        mask = _disks(yy, xx, centers, radii, present)

        clutter_present = torch.arange(k)[None] < torch.randint(1, k + 1, (m, 1), generator=g)
        clutter_centers = torch.rand(m, k, 2, generator=g) * s
        clutter = _squares(
            yy,
            xx,
            clutter_centers,
            radii.mean(dim=1, keepdim=True).expand(m, k) + 1,
            clutter_present,
        )

        ramp = torch.rand(m, 2, generator=g) - 0.5  # smooth background illumination
        background = 0.2 + 0.2 * (ramp[:, 0, None, None] * yy + ramp[:, 1, None, None] * xx) / s
        image = background + 0.6 * (mask | (clutter & ~mask)).float()
        image = image + noise * torch.randn(m, s, s, generator=g)
        images.append(image.clamp(0, 1).unsqueeze(1))
        masks.append(mask.float().unsqueeze(1))
    return torch.cat(images), torch.cat(masks)


class SegImbalancedDataModule(InMemoryDataModule):
    """``data=seg_imbalanced``: the embedded default dataset (binary masks, rare foreground)."""

    task = "segmentation"
    num_classes = 2
    class_names = ("background", "foreground")
    in_channels = 1
    num_outputs = 1  # one logit per pixel

    def __init__(
        self,
        n_train: int = 2000,
        n_val: int = 400,
        n_test: int = 400,
        image_size: int = 64,
        foreground_share: float = 0.02,
        max_objects: int = 3,
        noise: float = 0.35,
        seed: int = 0,
        batch_size: int = 32,
        eval_batch_size: int = 200,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers)
        name = "seg_imbalanced"
        check_range(name, "foreground_share", foreground_share, 0.0, 0.5, low_open=True)
        check_range(name, "image_size", image_size, 16)
        check_range(name, "max_objects", max_objects, 1)
        check_range(name, "noise", noise, 0.0)
        for key, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            check_range(name, key, value, 1)
        self.sizes = (n_train, n_val, n_test)
        self.image_size = image_size
        self.generation = dict(
            image_size=image_size,
            foreground_share=foreground_share,
            max_objects=max_objects,
            noise=noise,
        )
        self.seed = seed

    def build_splits(self) -> tuple[TensorBatches, TensorBatches, TensorBatches]:
        # each split from its own stream, so changing n_train leaves val/test unchanged
        return tuple(
            TensorBatches(*generate(n, **self.generation, seed=self.seed * 3 + offset))
            for offset, n in enumerate(self.sizes)
        )

    @property
    def data_stats(self) -> dict:
        self.setup()
        foreground = int(self.splits["train"].targets.sum())
        return {"class_counts": [self.splits["train"].targets.numel() - foreground, foreground]}
