"""Metric-learning losses on embeddings ``[N, D]`` and labels ``int64 [N]`` (seed 001).

Pairs and triplets are mined inside the batch (the data build P x K batches, so every anchor has
positives); everything is vectorised over the ``[N, N]`` Euclidean distance matrix. Distances are
``sqrt(max(d², 0) + eps)``: the gradient of a bare ``sqrt`` is infinite at 0, which every anchor
reaches against itself and against duplicates, the classic NaN of these losses.

- ``triplet``: ``max(0, d(a,p) - d(a,n) + margin)`` with ``mining`` random | batch_hard (per anchor
  the farthest positive and the closest negative, Hermans et al. 2017) | semi_hard (per
  anchor-positive pair the closest negative farther than the positive, FaceNet; the hardest
  negative when there is none). ``mean`` is over all triplets, zeros included (averaging only the
  active ones hides progress); the share of active triplets is logged beside it.
- ``contrastive`` (Hadsell et al. 2006): ``d²`` for same-label pairs, ``max(0, margin - d)²`` for
  the others, over all pairs i < j.
- ``margin_ranking``: ``max(0, -(s_ap - s_an) + margin)`` with similarity ``s = -d``: each anchor's
  positive must outrank its negative (``nn.MarginRankingLoss`` with y = 1), mined like triplet.
- ``hinge_embedding``: over all pairs, ``d`` for same-label pairs and ``max(0, margin - d)`` for
  the others (``nn.HingeEmbeddingLoss`` with y = ±1).
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from losses._core import Loss, check_float, check_range, check_reduction, describe, reduce

MINING = ("random", "batch_hard", "semi_hard")
EPS = 1e-12


def pairwise_distance(embeddings: Tensor) -> Tensor:
    """Euclidean distances ``[N, N]`` with a finite gradient everywhere (also at 0).

    >>> pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]])).round(decimals=4)
    tensor([[0., 5.],
            [5., 0.]])
    """
    squared = embeddings.square().sum(1)
    d2 = squared[:, None] + squared[None, :] - 2 * embeddings @ embeddings.T
    return (d2.clamp_min(0) + EPS).sqrt()


def _check(name: str, embeddings: Tensor, labels: Tensor) -> None:
    check_float(name, "embeddings", embeddings)
    if embeddings.ndim != 2:
        raise ValueError(f"{name}: expected embeddings of shape [N, D], got {describe(embeddings)}")
    if labels.dtype != torch.int64 or labels.shape != embeddings.shape[:1]:
        raise TypeError(
            f"{name}: expected labels int64 of shape [{len(embeddings)}], got {describe(labels)}"
        )


def _masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def mine_triplets(distance: Tensor, labels: Tensor, mining: str) -> tuple[Tensor, Tensor]:
    """``(d(a, p), d(a, n))`` of the mined triplets, each ``[T]``.

    batch_hard and random give one triplet per anchor that has a positive and a negative;
    semi_hard one per anchor-positive pair.
    """
    positive, negative = _masks(labels)
    valid = positive.any(1) & negative.any(1)
    inf = torch.finfo(distance.dtype).max
    if mining == "batch_hard":
        d_ap = distance.where(positive, -inf).amax(1)
        d_an = distance.where(negative, inf).amin(1)
        return d_ap[valid], d_an[valid]
    if mining == "random":
        # one uniformly random positive and negative per anchor (scores on the masks)
        score = torch.rand_like(distance)
        p = score.where(positive, -1.0).argmax(1)
        n = score.where(negative, -1.0).argmax(1)
        rows = torch.arange(len(labels), device=labels.device)
        return distance[rows, p][valid], distance[rows, n][valid]
    # semi_hard: for each (a, p), the closest negative with d(a, n) > d(a, p), else the hardest
    a, p = positive.nonzero(as_tuple=True)
    keep = negative[a].any(1)
    a, p = a[keep], p[keep]
    d_ap = distance[a, p]
    candidates = distance[a].where(negative[a], inf)
    semi = candidates.where(candidates > d_ap[:, None], inf).amin(1)
    hardest = candidates.amin(1)
    return d_ap, torch.where(semi < inf, semi, hardest)


def triplet(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 0.2,
    mining: str = "batch_hard",
    reduction: str = "mean",
) -> Tensor:
    """Triplet margin loss over mined triplets (``none`` gives one value per triplet).

    >>> emb = torch.tensor([[0.0, 0.0], [0.0, 0.1], [1.0, 0.0], [1.0, 0.1]])
    >>> round(triplet(emb, torch.tensor([0, 0, 1, 1]), margin=0.2).item(), 4)
    0.0
    >>> round(triplet(emb, torch.tensor([0, 1, 0, 1]), margin=0.2).item(), 4)
    1.1
    """
    _check("triplet", embeddings, labels)
    check_reduction("triplet", reduction)
    if mining not in MINING:
        raise ValueError(f"triplet: expected mining in {MINING}, got {mining!r}")
    d_ap, d_an = mine_triplets(pairwise_distance(embeddings), labels, mining)
    losses = F.relu(d_ap - d_an + margin)
    return reduce(losses, reduction) if len(losses) else embeddings.sum() * 0.0


def _pairs(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Distances and same-label flags of all pairs i < j."""
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=labels.device)
    return pairwise_distance(embeddings)[i, j], labels[i] == labels[j]


def contrastive(
    embeddings: Tensor, labels: Tensor, margin: float = 0.5, reduction: str = "mean"
) -> Tensor:
    """``d²`` for positive pairs, ``max(0, margin - d)²`` for negative ones, over pairs i < j.

    >>> emb = torch.tensor([[0.0, 0.0], [0.0, 0.3], [0.4, 0.0]])
    >>> round(contrastive(emb, torch.tensor([0, 0, 1])).item(), 4)
    0.0333
    """
    _check("contrastive", embeddings, labels)
    check_reduction("contrastive", reduction)
    d, same = _pairs(embeddings, labels)
    losses = torch.where(same, d.square(), F.relu(margin - d).square())
    return reduce(losses, reduction) if len(losses) else embeddings.sum() * 0.0


def margin_ranking_pairs(
    s1: Tensor, s2: Tensor, y: Tensor, margin: float = 0.0, reduction: str = "mean"
) -> Tensor:
    """``max(0, -y (s1 - s2) + margin)`` on given scores, as ``F.margin_ranking_loss``."""
    check_reduction("margin_ranking", reduction)
    return reduce(F.relu(-y * (s1 - s2) + margin), reduction)


def margin_ranking(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 0.2,
    mining: str = "batch_hard",
    reduction: str = "mean",
) -> Tensor:
    """Each anchor's positive must outrank its negative by ``margin`` in similarity ``-d``."""
    _check("margin_ranking", embeddings, labels)
    if mining not in MINING:
        raise ValueError(f"margin_ranking: expected mining in {MINING}, got {mining!r}")
    d_ap, d_an = mine_triplets(pairwise_distance(embeddings), labels, mining)
    if not len(d_ap):
        return embeddings.sum() * 0.0
    return margin_ranking_pairs(-d_ap, -d_an, torch.ones_like(d_ap), margin, reduction)


def hinge_embedding_pairs(
    distance: Tensor, y: Tensor, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """``d`` where y = 1, ``max(0, margin - d)`` where y = -1, as ``F.hinge_embedding_loss``."""
    check_reduction("hinge_embedding", reduction)
    return reduce(torch.where(y == 1, distance, F.relu(margin - distance)), reduction)


def hinge_embedding(
    embeddings: Tensor, labels: Tensor, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """:func:`hinge_embedding_pairs` over all pairs i < j (y = 1 for same labels, -1 otherwise)."""
    _check("hinge_embedding", embeddings, labels)
    d, same = _pairs(embeddings, labels)
    if not len(d):
        return embeddings.sum() * 0.0
    return hinge_embedding_pairs(d, same.long() * 2 - 1, margin, reduction)


class _PairLoss(Loss):
    """Shared constructor: ``margin >= 0``, ``mining`` where the loss mines, the reduction."""

    key = ""
    tasks = ("retrieval",)

    def __init__(self, margin: float, reduction: str = "mean", mining: str | None = None) -> None:
        super().__init__()
        check_range(self.key, "margin", margin, 0.0)
        check_reduction(self.key, reduction)
        if mining is not None and mining not in MINING:
            raise ValueError(f"{self.key}: expected mining in {MINING}, got {mining!r}")
        self.margin = margin
        self.reduction = reduction
        self.mining = mining

    def compute_with_stats(self, input: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        per_item = self.per_item(input, target)
        loss = (
            reduce(per_item, self.reduction)
            if per_item.ndim and len(per_item)
            else input.sum() * 0.0
        )
        active = (
            (per_item > 0).float().mean()
            if per_item.ndim and len(per_item)
            else input.new_zeros(())
        )
        return loss, {f"active_{self.unit}": active.detach()}

    unit = "triplets"


class Triplet(_PairLoss):
    """``loss=triplet``: :func:`triplet`; logs ``active_triplets``."""

    key = "triplet"

    def __init__(
        self, margin: float = 0.2, mining: str = "batch_hard", reduction: str = "mean"
    ) -> None:
        super().__init__(margin, reduction, mining)

    def per_item(self, input: Tensor, target: Tensor) -> Tensor:
        return triplet(input, target, self.margin, self.mining, "none")


class Contrastive(_PairLoss):
    """``loss=contrastive``: :func:`contrastive`; logs ``active_pairs``."""

    key, unit = "contrastive", "pairs"

    def __init__(self, margin: float = 0.5, reduction: str = "mean") -> None:
        super().__init__(margin, reduction)

    def per_item(self, input: Tensor, target: Tensor) -> Tensor:
        return contrastive(input, target, self.margin, "none")


class MarginRanking(_PairLoss):
    """``loss=margin_ranking``: :func:`margin_ranking`; logs ``active_triplets``."""

    key = "margin_ranking"

    def __init__(
        self, margin: float = 0.2, mining: str = "batch_hard", reduction: str = "mean"
    ) -> None:
        super().__init__(margin, reduction, mining)

    def per_item(self, input: Tensor, target: Tensor) -> Tensor:
        return margin_ranking(input, target, self.margin, self.mining, "none")


class HingeEmbedding(_PairLoss):
    """``loss=hinge_embedding``: :func:`hinge_embedding`; logs ``active_pairs``."""

    key, unit = "hinge_embedding", "pairs"

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(margin, reduction)

    def per_item(self, input: Tensor, target: Tensor) -> Tensor:
        return hinge_embedding(input, target, self.margin, "none")
