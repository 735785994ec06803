"""The retrieval task's test examples: embeddings at any scale with one-class batches and lone
classes, and the per-item length of each mined loss."""

import file_data
import torch
from hypothesis import strategies as st
from strategies import generators, logits
from torch import Tensor

from losses.base import Loss
from trainer.tasks import Task

TINY_DATA = {
    "retrieval": [
        "data.n_classes=12",
        "data.n_train_classes=8",
        "data.samples_per_class=8",
        "data.p=4",
        "data.k=2",
    ],
    "retrieval_folder": [f"data.root={file_data.root('retrieval_folder')}", "data.p=4", "data.k=2"],
}
TINY_MODEL = {"embed_cnn": ["model.width=8"]}
LOSS_PAIR = (["loss=triplet"], ["loss=contrastive"])
# random triplet mining draws random numbers in training and validation
LOSS_PAIR_TOUCHING_STREAMS = (["loss=triplet", "loss.mining=random"], ["loss=contrastive"])


def loss_inputs(task: Task) -> st.SearchStrategy[tuple[Tensor, Tensor]]:
    """2-16 embeddings of 1-8 dimensions at any scale; 1-4 labels, so one-class batches and
    lone classes (anchors without a positive) occur."""
    return _inputs()


def per_item_shapes(loss: Loss, outputs: Tensor, target: Tensor) -> set[tuple[int, ...]]:
    """One value per mined entry (``losses/metric_learning.py``): per pair i < j, N (N - 1) / 2,
    for the pair losses; for the triplet losses (those with a ``mining`` hyperparameter) per
    anchor with a positive and a negative (``batch_hard``, ``random``), per positive pair of
    such an anchor (``semi_hard``), or per (anchor, positive, negative) (``batch_all``)."""
    n = len(target)
    same = target[:, None] == target[None, :]
    positives, negatives = same.sum(1) - 1, (~same).sum(1)
    mining = loss.hyperparameters.get("mining")
    if mining is None:
        length = n * (n - 1) // 2
    elif mining == "batch_all":
        length = int((positives * negatives).sum())
    elif mining == "semi_hard":
        length = int(positives[negatives > 0].sum())
    else:
        length = int(((positives > 0) & (negatives > 0)).sum())
    return {(length,)}


@st.composite
def _inputs(draw: st.DrawFn) -> tuple[Tensor, Tensor]:
    n, dim, classes = draw(st.integers(2, 16)), draw(st.integers(1, 8)), draw(st.integers(1, 4))
    labels = torch.randint(0, classes, (n,), generator=draw(generators()))
    return draw(logits((n, dim))), labels
