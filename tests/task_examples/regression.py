"""The regression task's test examples: rows of predictions and targets at any scale."""

import file_data
from hypothesis import strategies as st
from strategies import logits
from torch import Tensor

from trainer.tasks import Task

TINY_DATA = {
    "regression": ["data.n_train=256", "data.n_val=64", "data.n_test=64", "data.batch_size=32"],
    # the tiny regression data above, exported by tests/file_data.py with its split column
    "table": [
        f"data.path={file_data.root('table') / 'regression.csv'}",
        "data.target=y",
        "data.split_column=split",
        "data.batch_size=32",
    ],
}
TINY_MODEL = {"mlp": ["model.hidden=[32]"]}
LOSS_PAIR = (["loss=mse"], ["loss=huber"])


def loss_inputs(task: Task) -> st.SearchStrategy[tuple[Tensor, Tensor]]:
    """1-16 rows of 1-4 values, predictions and targets each at any scale up to 1e4."""
    shapes = st.tuples(st.integers(1, 16), st.integers(1, 4))
    return shapes.flatmap(lambda shape: st.tuples(logits(shape), logits(shape)))
