"""Synthetic single-object localisation: find the one bright rectangle in a noisy image.

Each 1-channel ``image_size`` x ``image_size`` image holds ONE filled, axis-aligned rectangle whose
width and height are drawn independently (so size and aspect ratio vary) between ``min_side`` and
``max_side`` pixels, at a random position entirely inside the image. The background has a random
level in [0, 0.4]; the rectangle is brighter by a random contrast in [0.35, 0.6]; gaussian pixel
noise of standard deviation ``noise`` is added and the result clamped to [0, 1].

The target is the box ``(x1, y1, x2, y2)`` (x: column, y: row) in image units [0, 1], with the
pixel-edge convention: a rectangle covering columns ``a .. b-1`` and rows ``c .. d-1`` has
``x1 = a/S, x2 = b/S, y1 = c/S, y2 = d/S``. So every box is valid (x1 < x2, y1 < y2) and IoU-based
losses see exact, pixel-aligned boxes. Everything is generated from ``seed`` with torch's
generator: the same data on every machine, no download.
"""

import torch
from torch import Tensor

from datasets._base import SyntheticDataModule
from datasets._render import cached
from losses.checks import check_range


@cached
def generate(
    n: int, image_size: int, min_side: int, max_side: int, noise: float, seed: int
) -> tuple[Tensor, Tensor]:
    """Images ``float32 [n, 1, S, S]`` in [0, 1] and boxes ``float32 [n, 4]`` (x1, y1, x2, y2).

    >>> images, boxes = generate(16, 32, 3, 24, 0.0, seed=0)
    >>> images.shape, boxes.shape
    (torch.Size([16, 1, 32, 32]), torch.Size([16, 4]))
    >>> x1, y1, x2, y2 = (boxes[0] * 32).round().long().tolist()
    >>> inside = images[0, 0, y1:y2, x1:x2]
    >>> bool((inside == inside.max()).all()) and bool(inside.min() > images[0].min())
    True
    """
    g = torch.Generator().manual_seed(seed)
    s = image_size
    # integer pixel extents: [a, b) columns, [c, d) rows, all inside the image
    size = torch.randint(min_side, max_side + 1, (n, 2), generator=g)  # (width, height)
    start = (torch.rand(n, 2, generator=g) * (s - size + 1)).floor().long()
    end = start + size
    pixels = torch.arange(s)
    cols = (pixels >= start[:, 0, None]) & (pixels < end[:, 0, None])  # [n, S]
    rows = (pixels >= start[:, 1, None]) & (pixels < end[:, 1, None])
    mask = rows[:, :, None] & cols[:, None, :]  # [n, S(rows), S(cols)]

    background = 0.4 * torch.rand(n, 1, 1, generator=g)
    contrast = 0.35 + 0.25 * torch.rand(n, 1, 1, generator=g)
    image = background + contrast * mask.float()
    image = image + noise * torch.randn(n, s, s, generator=g)
    boxes = torch.cat([start, end], dim=1).float() / s  # (x1, y1, x2, y2)
    return image.clamp(0, 1).unsqueeze(1), boxes


class BoxesDataModule(SyntheticDataModule):
    """``data=boxes``: one rectangle per image; the target is its normalised (x1, y1, x2, y2)."""

    task = "boxes"
    name = "boxes"
    in_channels = 1
    num_outputs = 4  # x1, y1, x2, y2

    def __init__(
        self,
        n_train: int = 4000,
        n_val: int = 500,
        n_test: int = 500,
        image_size: int = 32,
        min_side: int = 3,
        max_side: int | None = None,
        noise: float = 0.1,
        seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 500,
        num_workers: int = 0,
    ) -> None:
        super().__init__(n_train, n_val, n_test, seed, batch_size, eval_batch_size, num_workers)
        check_range(self.name, "image_size", image_size, 8)
        check_range(self.name, "min_side", min_side, 1, image_size)
        max_side = (3 * image_size) // 4 if max_side is None else max_side
        check_range(self.name, "max_side", max_side, min_side, image_size)
        check_range(self.name, "noise", noise, 0.0)
        self.image_size = image_size
        self.generation = dict(
            image_size=image_size, min_side=min_side, max_side=max_side, noise=noise
        )

    def generate_split(self, split: str, n: int, seed: int) -> tuple[Tensor, Tensor]:
        return generate(n, **self.generation, seed=seed)
