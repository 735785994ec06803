"""What the synthetic generators share: the per-process cache, the pixel grid, chunked drawing.

Every generator draws from one seeded ``torch.Generator`` in a fixed order, so the same
arguments give the same tensors on every machine; the helpers here never draw themselves, so
they leave that order to the generator that calls them.
"""

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor

GENERATION_CHUNK = 256  # images drawn at once: bounds the [chunk, K, H, W] per-shape tensors

Generate = TypeVar("Generate", bound=Callable)


def cached(generate: Generate) -> Generate:
    """A generator cached per process: its tensors are never mutated, so the jobs of a multirun
    (and the datamodules of one test session) share one copy instead of drawing it again."""
    return functools.lru_cache(maxsize=8)(generate)


def pixel_grid(size: int) -> tuple[Tensor, Tensor]:
    """Row and column coordinates ``float32 [size, size]`` of the pixels of a square image.

    >>> yy, xx = pixel_grid(3)
    >>> yy[:, 0].tolist(), xx[0].tolist()
    ([0.0, 1.0, 2.0], [0.0, 1.0, 2.0])
    """
    pixels = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(pixels, pixels, indexing="ij")
    return yy, xx


def in_chunks(
    n: int, draw: Callable[[int], Tensor | tuple[Tensor, ...]], chunk: int = GENERATION_CHUNK
) -> Tensor | tuple[Tensor, ...]:
    """``draw(m)`` for consecutive chunks of ``m`` <= ``chunk`` of ``n`` items, concatenated
    along the first dimension (each tensor apart when ``draw`` returns several). The chunks are
    drawn in order, so the random stream depends on ``n`` and ``chunk`` only.

    >>> in_chunks(600, lambda m: torch.full((m,), m)).unique_consecutive().tolist()
    [256, 88]
    """
    parts = [draw(min(chunk, n - start)) for start in range(0, n, chunk)]
    if isinstance(parts[0], Tensor):
        return torch.cat(parts)
    return tuple(torch.cat(column) for column in zip(*parts, strict=True))
