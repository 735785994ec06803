"""The classification task's test examples: logits at any scale, single-class batches, a long tail
of class counts."""

from typing import Any

import file_data
import torch
from hypothesis import strategies as st
from strategies import generators, logits
from torch import Tensor

from trainer.tasks import Task

TINY_DATA = {
    "fashion_mnist": ["data.val_size=100", "data.batch_size=32"],
    "image_folder": [f"data.root={file_data.root('image_folder')}", "data.batch_size=32"],
    "mnist": ["data.val_size=100", "data.batch_size=32"],
}
TINY_MODEL = {"cnn": ["model.width=8"]}
# dropout in the cnn draws random numbers, alike in every variant; focal's steps draw none
LOSS_PAIR = (["loss=ce"], ["loss=focal", "loss.gamma=2"])
# class-weighted CE reads the training data's class counts before the model is built
LOSS_PAIR_TOUCHING_STREAMS = (["loss=ce"], ["loss=class_weighted_ce"])


def loss_stats(task: Task) -> dict[str, Any]:
    """The example task's long tail of class counts (class c seen ``100 / 2**c`` times)."""
    return {"class_counts": list(task.class_counts)}


def loss_inputs(task: Task) -> st.SearchStrategy[tuple[Tensor, Tensor]]:
    """Batches of 1-16 at any logit scale, saturated or not; single-class batches too."""
    return _inputs(task.num_classes)


@st.composite
def _inputs(draw: st.DrawFn, num_classes: int) -> tuple[Tensor, Tensor]:
    n = draw(st.integers(1, 16))
    x = draw(logits((n, num_classes)))
    if draw(st.booleans()):  # single-class batch
        target = torch.full((n,), draw(st.integers(0, num_classes - 1)))
    else:
        target = torch.randint(0, num_classes, (n,), generator=draw(generators()))
    return x, target
