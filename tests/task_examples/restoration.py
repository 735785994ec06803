"""The restoration task's test examples: gray or colour images, constant clean images among
them."""

import file_data
import torch
from hypothesis import strategies as st
from strategies import generators, logits
from torch import Tensor

from trainer.tasks import Task
from trainer.tasks.restoration import MIN_SIDE

TINY_DATA = {
    "clean_folder": [
        f"data.root={file_data.root('clean_folder')}",
        "data.channels=1",
        "data.batch_size=8",
    ],
    "restoration": ["data.n_train=64", "data.n_val=16", "data.n_test=16", "data.batch_size=16"],
}
TINY_MODEL = {"denoise_unet": ["model.width=4"]}
LOSS_PAIR = (["loss=l1"], ["loss=ssim"])


def loss_inputs(task: Task) -> st.SearchStrategy[tuple[Tensor, Tensor]]:
    """1-3 gray or colour images of 22-32 pixels a side, outputs at any scale up to 1e4,
    clean images uniform in [0, 1] or constant (0, which makes SSIM's variances vanish)."""
    return _inputs()


@st.composite
def _inputs(draw: st.DrawFn) -> tuple[Tensor, Tensor]:
    n, c = draw(st.integers(1, 3)), draw(st.sampled_from([1, 3]))
    shape = (n, c, draw(st.integers(MIN_SIDE, 32)), draw(st.integers(MIN_SIDE, 32)))
    if draw(st.booleans()):  # constant image
        clean = torch.zeros(shape, dtype=torch.float64)
    else:
        clean = torch.rand(shape, generator=draw(generators()), dtype=torch.float64)
    return draw(logits(shape)), clean
