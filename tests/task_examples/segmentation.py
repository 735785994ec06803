"""The segmentation task's test examples: empty, full, one-pixel and random masks under logits at
any scale, and the imbalanced pixel counts of ``data=seg_imbalanced``."""

from typing import Any

import file_data
import torch
from hypothesis import strategies as st
from strategies import generators, logits
from torch import Tensor

from trainer.tasks import Task

MASKS = ("empty", "full", "one_pixel", "random")

TINY_DATA = {
    "mask_folder": [
        f"data.root={file_data.root('mask_folder')}",
        "data.channels=1",
        "data.batch_size=8",
    ],
    "seg_imbalanced": [
        "data.n_train=64",
        "data.n_val=32",
        "data.n_test=32",
        "data.image_size=32",
        "data.batch_size=16",
    ],
}
# model=smp: three downsamplings instead of five (decoder widths 64, 32, 16; ~4x faster a step)
TINY_MODEL = {"unet": ["model.width=8"], "smp": ["model.encoder_depth=3"]}
LOSS_PAIR = (["loss=bce"], ["loss=dice"])


def loss_stats(task: Task) -> dict[str, Any]:
    """The example task's background and foreground pixel counts, 2 % foreground as in
    ``data=seg_imbalanced``."""
    return {"class_counts": list(task.class_counts)}


def loss_inputs(task: Task) -> st.SearchStrategy[tuple[Tensor, Tensor]]:
    """Images of 1x1 to 12x12 pixels; empty, full, one-pixel and random (10 %) masks."""
    return _inputs()


@st.composite
def _inputs(draw: st.DrawFn) -> tuple[Tensor, Tensor]:
    shape = (draw(st.integers(1, 4)), 1, draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    x = draw(logits(shape))
    kind = draw(st.sampled_from(MASKS))
    mask = torch.zeros(shape, dtype=torch.float64)
    if kind == "full":
        mask.fill_(1.0)
    elif kind == "one_pixel":
        mask[0, 0, 0, 0] = 1.0
    elif kind == "random":
        mask = (torch.rand(shape, generator=draw(generators()), dtype=torch.float64) < 0.1).double()
    return x, mask
