"""Retrieval metrics: Recall@K and mAP of a split's embeddings against each other by label."""

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def retrieval_scores(
    embeddings: Tensor, labels: Tensor, ks: tuple[int, ...] = (1, 5)
) -> dict[str, Tensor]:
    """Recall@k, mAP and MAP@R with every sample as a query against all the others (leave-one-out).

    Recall@k is the share of queries with at least one same-label item among their k nearest
    (Euclidean) neighbours, the metric-learning convention (Oh Song et al. 2016); mAP averages,
    over queries, the precision at the rank of each same-label item. MAP@R (Musgrave et al.
    2020, "A Metric Learning Reality Check") looks only at the first R neighbours, R being the
    number of other items with the query's label: ``(1/R) Σ_{i<=R} P(i)·rel(i)``, so it rewards
    ranking all the same-label items first, not just one. Queries whose label no other sample has
    are left out. Vectorised over the ``[N, N]`` distance matrix.

    >>> emb = torch.tensor([[0.0], [0.1], [1.0], [1.1], [5.0]])
    >>> scores = retrieval_scores(emb, torch.tensor([0, 0, 1, 1, 2]), ks=(1,))
    >>> float(scores["recall@1"]), float(scores["map"]), float(scores["map@r"])
    (1.0, 1.0, 1.0)
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
    within_r = torch.arange(n - 1, device=embeddings.device) < n_relevant[:, None]
    scores["map@r"] = ((precision_at_hits * within_r).sum(dim=1) / n_relevant).mean()
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
