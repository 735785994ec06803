"""Metrics torchmetrics does not have in the form a task needs, written as torchmetrics ``Metric``s
so they accumulate per batch, synchronise across processes and reset like the others."""

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def retrieval_scores(
    embeddings: Tensor, labels: Tensor, ks: tuple[int, ...] = (1, 5)
) -> dict[str, Tensor]:
    """Recall@k and mAP with every sample as a query against all the others (leave-one-out).

    Recall@k is the share of queries with at least one same-label item among their k nearest
    (Euclidean) neighbours, the metric-learning convention (Oh Song et al. 2016); mAP averages,
    over queries, the precision at the rank of each same-label item. Queries whose label no other
    sample has are left out. Vectorised over the ``[N, N]`` distance matrix.

    >>> emb = torch.tensor([[0.0], [0.1], [1.0], [1.1], [5.0]])
    >>> scores = retrieval_scores(emb, torch.tensor([0, 0, 1, 1, 2]), ks=(1,))
    >>> float(scores["recall@1"]), float(scores["map"])
    (1.0, 1.0)
    """
    n = len(labels)
    distances = torch.cdist(embeddings, embeddings)
    distances.fill_diagonal_(torch.inf)
    order = distances.argsort(dim=1)[:, : n - 1]  # the query itself sorts last: drop it
    relevant = labels[order] == labels[:, None]
    n_relevant = relevant.sum(dim=1)
    has_match = n_relevant > 0
    relevant, n_relevant = relevant[has_match].float(), n_relevant[has_match]
    ranks = torch.arange(1, n, device=embeddings.device, dtype=torch.float32)
    precision_at_hits = relevant.cumsum(dim=1) / ranks * relevant
    scores = {f"recall@{k}": relevant[:, :k].amax(dim=1).mean() for k in ks}
    scores["map"] = (precision_at_hits.sum(dim=1) / n_relevant).mean()
    return scores


class RetrievalMetrics(Metric):
    """Collects a split's embeddings and labels; ``compute`` gives :func:`retrieval_scores`."""

    full_state_update = False

    def __init__(self, ks: tuple[int, ...] = (1, 5)) -> None:
        super().__init__()
        self.ks = ks
        self.add_state("embeddings", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, embeddings: Tensor, labels: Tensor) -> None:
        self.embeddings.append(embeddings.detach().float())
        self.labels.append(labels.detach())

    def gathered(self) -> tuple[Tensor, Tensor]:
        return dim_zero_cat(self.embeddings), dim_zero_cat(self.labels)

    def compute(self) -> dict[str, Tensor]:
        return retrieval_scores(*self.gathered(), ks=self.ks)


def pairwise_box_iou(pred: Tensor, target: Tensor) -> Tensor:
    """IoU of matched boxes ``[N, 4]`` (x1, y1, x2, y2) -> ``[N]``.

    >>> pairwise_box_iou(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 0.0, 3.0, 2.0]]))
    tensor([0.3333])
    """
    top_left = torch.maximum(pred[:, :2], target[:, :2])
    bottom_right = torch.minimum(pred[:, 2:], target[:, 2:])
    intersection = (bottom_right - top_left).clamp_min(0).prod(dim=1)
    area = (pred[:, 2:] - pred[:, :2]).clamp_min(0).prod(dim=1) + (
        target[:, 2:] - target[:, :2]
    ).prod(dim=1)
    return intersection / (area - intersection).clamp_min(1e-12)


class BoxIoU(Metric):
    """Mean IoU of predicted and target boxes, and the share with IoU >= ``threshold``."""

    full_state_update = False

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold
        self.add_state(
            "iou_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("hits", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state(
            "count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, pred: Tensor, target: Tensor) -> None:
        iou = pairwise_box_iou(pred.float(), target.float())
        self.iou_sum += iou.sum()
        self.hits += (iou >= self.threshold).sum()
        self.count += len(iou)

    def compute(self) -> dict[str, Tensor]:
        count = self.count.clamp_min(1)
        return {
            "iou": (self.iou_sum / count).float(),
            f"iou{int(self.threshold * 100)}": (self.hits / count).float(),
        }
