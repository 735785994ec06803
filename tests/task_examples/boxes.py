"""The box task's test examples: valid boxes at any scale, zero-area ones on a draw."""

import file_data
import torch
from hypothesis import strategies as st
from strategies import generators
from torch import Tensor

from trainer.tasks import Task

TINY_DATA = {
    "box_csv": [f"data.root={file_data.root('box_csv')}", "data.channels=1", "data.batch_size=8"],
    "boxes": ["data.n_train=128", "data.n_val=32", "data.n_test=32", "data.batch_size=16"],
}
TINY_MODEL = {"box_cnn": ["model.width=8"]}
LOSS_PAIR = (["loss=giou"], ["loss=l1"])


def loss_inputs(task: Task) -> st.SearchStrategy[tuple[Tensor, Tensor]]:
    """1-16 valid boxes (x1 <= x2, y1 <= y2) at scales up to 1e4; all zero-area on a draw."""
    return _inputs()


@st.composite
def _inputs(draw: st.DrawFn) -> tuple[Tensor, Tensor]:
    n = draw(st.integers(1, 16))
    scale = draw(st.sampled_from([1.0, 100.0, 1e4]))
    side = draw(st.sampled_from([0.0, 1.0]))  # 0: zero-area boxes

    def boxes(g: torch.Generator) -> Tensor:
        corner = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale
        size = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale * side
        return torch.cat([corner, corner + size], dim=1)

    return boxes(draw(generators())), boxes(draw(generators()))
