"""Synthetic imbalanced binary segmentation: small bright disks to find among clutter and noise.

Each image holds 1..``max_objects`` filled disks (the foreground) whose total area is drawn around
``foreground_share`` of the pixels (default 2 %), plus as many distractors of the same brightness
(hollow squares and bars: the model has to learn shape, not just a threshold), a smooth background
gradient and gaussian noise. Everything is generated from ``seed`` with torch's generator, so the
data are identical on every machine and need no download.
"""

import math

import torch
from torch import Tensor

from datasets._base import SyntheticDataModule
from datasets._render import cached, in_chunks, pixel_grid
from losses.checks import check_range


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


@cached
def generate(
    n: int, image_size: int, foreground_share: float, max_objects: int, noise: float, seed: int
) -> tuple[Tensor, Tensor]:
    """Images ``float32 [n, 1, S, S]`` in about [0, 1] and masks ``float32 [n, 1, S, S]`` in {0, 1}.

    >>> images, masks = generate(64, 32, 0.02, 3, 0.1, seed=0)
    >>> images.shape, masks.shape
    (torch.Size([64, 1, 32, 32]), torch.Size([64, 1, 32, 32]))
    >>> 0.01 < masks.mean().item() < 0.04
    True
    """
    g = torch.Generator().manual_seed(seed)
    s, k = image_size, max_objects
    yy, xx = pixel_grid(s)

    def draw(m: int) -> tuple[Tensor, Tensor]:
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
        return image.clamp(0, 1).unsqueeze(1), mask.float().unsqueeze(1)

    return in_chunks(n, draw)


class SegImbalancedDataModule(SyntheticDataModule):
    """``data=seg_imbalanced``: the embedded default dataset (binary masks, rare foreground)."""

    task = "segmentation"
    name = "seg_imbalanced"
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
        super().__init__(n_train, n_val, n_test, seed, batch_size, eval_batch_size, num_workers)
        check_range(self.name, "foreground_share", foreground_share, 0.0, 0.5, low_open=True)
        check_range(self.name, "image_size", image_size, 16)
        check_range(self.name, "max_objects", max_objects, 1)
        check_range(self.name, "noise", noise, 0.0)
        self.image_size = image_size
        self.generation = dict(
            image_size=image_size,
            foreground_share=foreground_share,
            max_objects=max_objects,
            noise=noise,
        )

    def generate_split(self, split: str, n: int, seed: int) -> tuple[Tensor, Tensor]:
        return generate(n, **self.generation, seed=seed)

    @property
    def data_stats(self) -> dict:
        return {"class_counts": self.train_class_counts(self.num_classes)}  # pixels [bg, fg]
