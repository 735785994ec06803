"""The retrieval (metric-learning) task: embeddings ``[N, D]`` against int64 labels ``[N]``."""

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection

from trainer.metrics import RetrievalMetrics
from trainer.tasks.base import Task, register


@register
class Retrieval(Task):
    """Recall@1, recall@5, mAP and MAP@R of the split's embeddings against the split itself."""

    name = "retrieval"
    monitor = "recall@1"
    unit_metrics = ("map", "recall")

    def metrics(self) -> MetricCollection:
        return MetricCollection({"retrieval": RetrievalMetrics(ks=(1, 5))})

    def embeddings(self, metrics: MetricCollection) -> tuple[Tensor, Tensor]:
        return metrics["retrieval"].gathered()

    def reference_batch(self, seed: int) -> tuple[Tensor, Tensor]:
        """A P x K = 4 x 4 batch of random unit embeddings in 8 dimensions, as ``data=retrieval``
        batches them and ``model=embed_cnn`` normalises them."""
        g = torch.Generator().manual_seed(seed)
        return F.normalize(torch.randn(16, 8, generator=g), dim=1), torch.arange(16) % 4
