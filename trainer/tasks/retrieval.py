"""The retrieval (metric-learning) task: embeddings ``[N, D]`` against int64 labels ``[N]``."""

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import Tensor
from torchmetrics import MetricCollection

from losses.base import Loss
from trainer.metrics import RetrievalMetrics
from trainer.tasks.base import Task, generators, logits, register


@register
class Retrieval(Task):
    """Recall@1, recall@5, mAP and MAP@R of the split's embeddings against the split itself."""

    name = "retrieval"
    monitor = "recall@1"

    def metrics(self) -> MetricCollection:
        return MetricCollection({"retrieval": RetrievalMetrics(ks=(1, 5))})

    def embeddings(self, metrics: MetricCollection) -> tuple[Tensor, Tensor]:
        return metrics["retrieval"].gathered()

    def loss_inputs(self) -> st.SearchStrategy[tuple[Tensor, Tensor]]:
        """2-16 embeddings of 1-8 dimensions at any scale; 1-4 labels, so one-class batches and
        lone classes (anchors without a positive) occur."""
        return _inputs()

    def reference_batch(self, seed: int) -> tuple[Tensor, Tensor]:
        """A P x K = 4 x 4 batch of random unit embeddings in 8 dimensions, as ``data=retrieval``
        batches them and ``model=embed_cnn`` normalises them."""
        g = torch.Generator().manual_seed(seed)
        return F.normalize(torch.randn(16, 8, generator=g), dim=1), torch.arange(16) % 4

    def per_item_shapes(self, loss: Loss, outputs: Tensor, target: Tensor) -> set[tuple[int, ...]]:
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
