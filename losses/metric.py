"""Metric-learning (retrieval) losses on embeddings ``[N, D]`` and labels ``int64 [N]``.

Distances are Euclidean, from :func:`pairwise_distance`: squared distances by the Gram trick,
clamped at 0 (rounding makes them slightly negative) and taken as ``sqrt(d² + 1e-12)``. A bare
``sqrt`` has an infinite gradient at 0, which every point reaches against itself (the diagonal)
and against its duplicates (collapsed embeddings): the classic NaN of these losses. The model
L2-normalises its embeddings, so distances lie in [0, 2] and the margins are set for that range,
but nothing here assumes it.

Triplets and pairs are mined inside the batch, vectorised with masks over the ``[N, N]`` distance
matrix. The data give P x K batches (P classes, K samples each), so every anchor has positives;
an anchor without a positive or without a negative (a lone class, a one-class batch) forms no
triplet and is left out: ``mean`` divides by the triplets that exist, and a batch without any
gives 0 with a zero, finite gradient. ``mean`` is the plain mean over all mined triplets or pairs,
inactive (zero) ones included: averaging the active ones only hides progress, as the loss stays
level while fewer and fewer triplets are active. The modules log that share beside the loss
(``active_triplets`` / ``active_pairs``).

- ``triplet`` (seed 001; ``nn.TripletMarginLoss`` on given triplets: :func:`triplet_margin`):
  ``max(0, d(a,p) - d(a,n) + margin)``, mined by :func:`mine_triplets`.
- ``contrastive`` (Hadsell et al. 2006): over all pairs i < j, ``d²`` for same-label pairs and
  ``max(0, margin - d)²`` for the others, without Hadsell's factor 1/2 (TF-Addons' and Keras'
  form; the 1/2 only rescales the learning rate).
- ``margin_ranking`` (seed 001; ``nn.MarginRankingLoss``: :func:`margin_ranking`):
  ``max(0, -y (s1 - s2) + margin)`` with, per mined triplet, ``s1`` the anchor's similarity to
  its positive, ``s2`` to its negative and ``y = 1``. The similarity is the cosine (default) or
  ``-distance``; with ``-distance`` it is exactly ``triplet``, with the cosine of unit vectors
  (``cos = 1 - d²/2``) it is half FaceNet's triplet loss on squared distances, with margin
  ``2 * margin`` (the default 0.1 is FaceNet's 0.2).
- ``hinge_embedding`` (seed 001; ``nn.HingeEmbeddingLoss``: :func:`hinge_embedding`): over all
  pairs i < j, ``d`` for same-label pairs (y = 1) and ``max(0, margin - d)`` for the others
  (y = -1).
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from losses._core import (
    Loss,
    check_float,
    check_range,
    check_reduction,
    check_same_shape,
    describe,
    reduce,
    values_checkable,
)

MINING = ("random", "batch_hard", "semi_hard")
SIMILARITIES = ("cosine", "distance")
# inside the sqrt: a zero distance reads 1e-6 and the gradient of the sqrt stays below
# 1 / (2 sqrt(eps)) = 5e5, while distances of 1e-3 and more are exact in float32
EPS = 1e-12


def pairwise_distance(embeddings: Tensor) -> Tensor:
    """Euclidean distances ``[N, N]`` between the rows of ``[N, D]``, with a finite gradient at 0.

    ``sqrt(max(|x_i|² + |x_j|² - 2 x_i·x_j, 0) + 1e-12)``, the diagonal set to exactly
    ``sqrt(1e-12)`` and given no gradient.

    >>> pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]])).round(decimals=4)
    tensor([[0., 5.],
            [5., 0.]])
    """
    gram = embeddings @ embeddings.T
    # the norms from the Gram diagonal, so that d²(i, i) cancels exactly
    squared = gram.diagonal()
    d2 = (squared[:, None] + squared[None, :] - 2 * gram).clamp_min(0)
    eye = torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    return (d2.masked_fill(eye, 0.0) + EPS).sqrt()


def _distance(x: Tensor, y: Tensor) -> Tensor:
    """Row-wise Euclidean distance ``[N]``, stable at 0 like :func:`pairwise_distance`."""
    return ((x - y).square().sum(-1) + EPS).sqrt()


def _check_embeddings(name: str, embeddings: Tensor, labels: Tensor) -> None:
    if not embeddings.is_floating_point() or embeddings.ndim != 2:
        error = ValueError if embeddings.is_floating_point() else TypeError
        raise error(f"{name}: expected embeddings as floating [N, D], got {describe(embeddings)}")
    if labels.dtype != torch.int64 or labels.shape != embeddings.shape[:1]:
        raise TypeError(
            f"{name}: expected labels int64 of shape [{len(embeddings)}], got {describe(labels)}"
        )


def _check_choice(name: str, key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected {key} in {choices}, got {value!r}")


def _check_signs(name: str, y: Tensor) -> None:
    """``y`` holds only 1 and -1 (checked on CPU only: a host sync)."""
    if values_checkable(y) and y.numel() and not ((y == 1) | (y == -1)).all():
        found = y.unique()
        shown = ", ".join(f"{v:g}" for v in found[:6].tolist()) + (
            ", ..." if len(found) > 6 else ""
        )
        raise ValueError(f"{name}: expected y values in {{1, -1}}, got values {{{shown}}}")


def _label_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(positive, negative)`` ``[N, N]``: same label but not itself, different label."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def mine_triplets(distance: Tensor, labels: Tensor, mining: str) -> tuple[Tensor, Tensor, Tensor]:
    """``(d(a,p), d(a,n), valid)`` of the triplets mined from a distance matrix ``[N, N]``.

    - ``random``: per anchor one positive and one negative drawn uniformly from the batch (torch's
      global RNG, which Lightning seeds); ``[N]``.
    - ``batch_hard`` (Hermans et al. 2017): per anchor the farthest positive and the closest
      negative; ``[N]``.
    - ``semi_hard`` (FaceNet, Schroff et al. 2015): per anchor-positive pair ``(a, p)`` the closest
      negative farther than the positive (``d(a,n) > d(a,p)``). Where no negative is farther, the
      hardest (closest) negative instead, so the pair still learns (TF-Addons falls back to the
      farthest negative, whose loss is the smallest; pytorch-metric-learning drops the pair);
      ``[N, N]``, indexed by ``(a, p)``.

    ``valid`` marks the entries that are triplets: the anchor has a positive (and, for
    ``semi_hard``, the entry is one) and a negative. Elsewhere both distances read 0.
    """
    if len(labels) == 0:  # nothing to mine (the reductions over rows below need one)
        return distance.sum(1), distance.sum(1), labels.new_zeros(0, dtype=torch.bool)
    positive, negative = _label_masks(labels)
    has_negative = negative.any(1)
    inf = torch.finfo(distance.dtype).max
    if mining == "semi_hard":
        valid = positive & has_negative[:, None]
        # each row's negative distances in ascending order (non-negatives last, at the float
        # maximum); for every (a, p) the first one beyond d(a, p) by a per-row binary search:
        # O(N² log N), instead of the [N, N, N] tensor comparing every pair with every negative
        ranked = distance.where(negative, inf).sort(dim=1).values
        first = torch.searchsorted(ranked, distance.contiguous(), right=True)
        beyond = first < negative.sum(1, keepdim=True)
        d_an = torch.where(
            beyond, ranked.gather(1, first.clamp_max(len(labels) - 1)), ranked[:, :1]
        )
        d_ap = distance
    else:
        valid = positive.any(1) & has_negative
        if mining == "batch_hard":
            d_ap = distance.where(positive, -inf).amax(1)
            d_an = distance.where(negative, inf).amin(1)
        elif mining == "random":
            # uniform scores, the largest among the allowed columns: a uniform draw per row
            score = torch.rand_like(distance)
            p = score.where(positive, -1.0).argmax(1, keepdim=True)
            n = score.where(negative, -1.0).argmax(1, keepdim=True)
            d_ap, d_an = distance.gather(1, p).squeeze(1), distance.gather(1, n).squeeze(1)
        else:
            raise ValueError(f"expected mining in {MINING}, got {mining!r}")
    return d_ap.where(valid, 0.0), d_an.where(valid, 0.0), valid


def _reduce_mined(terms: Tensor, valid: Tensor, reduction: str) -> Tensor:
    """Reduce the loss terms of the mined entries: ``none`` gives them as a vector ``[T]``."""
    if reduction == "none":
        return terms[valid]
    # terms are 0 off the mined entries; nothing mined: 0 / 1 = 0, with a zero gradient
    return reduce(terms.where(valid, 0.0), reduction, denominator=valid.sum().clamp_min(1))


def _active_share(terms: Tensor, valid: Tensor) -> Tensor:
    return (((terms > 0) & valid).sum() / valid.sum().clamp_min(1)).float().detach()


def triplet_margin(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 0.2,
    reduction: str = "mean",
) -> Tensor:
    """``max(0, d(a,p) - d(a,n) + margin)`` on given triplets, rows of ``[N, D]`` (seed 001).

    ``nn.TripletMarginLoss(margin, p=2)`` up to its ``eps``: torch adds 1e-6 to every coordinate
    difference, we add 1e-12 to the squared distance; ``none`` gives ``[N]``.

    >>> a, p, n = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.3]]), torch.tensor([[0.4, 0.0]])
    >>> round(triplet_margin(a, p, n, margin=0.2).item(), 4)
    0.1
    """
    check_float("triplet", "anchor", anchor)
    if anchor.ndim != 2:
        raise ValueError(f"triplet: expected anchor as floating [N, D], got {describe(anchor)}")
    check_same_shape("triplet", anchor, positive, "positive")
    check_same_shape("triplet", anchor, negative, "negative")
    check_range("triplet", "margin", margin, 0.0)
    check_reduction("triplet", reduction)
    return reduce(
        F.relu(_distance(anchor, positive) - _distance(anchor, negative) + margin), reduction
    )


def _triplet_terms(
    embeddings: Tensor, labels: Tensor, margin: float, mining: str
) -> tuple[Tensor, Tensor]:
    d_ap, d_an, valid = mine_triplets(pairwise_distance(embeddings), labels, mining)
    return F.relu(d_ap - d_an + margin), valid


def triplet(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 0.2,
    mining: str = "batch_hard",
    reduction: str = "mean",
) -> Tensor:
    """Triplet margin loss over the triplets :func:`mine_triplets` finds in the batch.

    ``none`` gives one value per triplet: ``[T]`` with T the anchors that have a positive and a
    negative (``random``, ``batch_hard``), or the anchor-positive pairs of such anchors, in
    row-major order (``semi_hard``).

    Two tight pairs far apart: every triplet is inactive. Labels across the pairs instead:
    each anchor's positive lies at 1, its closest negative at 0.1: ``1 - 0.1 + 0.2``.

    >>> emb = torch.tensor([[0.0, 0.0], [0.0, 0.1], [1.0, 0.0], [1.0, 0.1]])
    >>> round(triplet(emb, torch.tensor([0, 0, 1, 1])).item(), 4)
    0.0
    >>> round(triplet(emb, torch.tensor([0, 1, 0, 1])).item(), 4)
    1.1
    """
    _check_embeddings("triplet", embeddings, labels)
    check_range("triplet", "margin", margin, 0.0)
    _check_choice("triplet", "mining", mining, MINING)
    check_reduction("triplet", reduction)
    return _reduce_mined(*_triplet_terms(embeddings, labels, margin, mining), reduction)


def _pair_mask(n: int, device: torch.device) -> Tensor:
    """The pairs i < j of an ``[N, N]`` matrix (row-major: the order of ``triu_indices``)."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)


def _contrastive_terms(embeddings: Tensor, labels: Tensor, margin: float) -> tuple[Tensor, Tensor]:
    d = pairwise_distance(embeddings)
    same = labels[:, None] == labels[None, :]
    return torch.where(same, d.square(), F.relu(margin - d).square()), _pair_mask(len(d), d.device)


def contrastive(
    embeddings: Tensor, labels: Tensor, margin: float = 0.5, reduction: str = "mean"
) -> Tensor:
    """``d²`` for same-label pairs, ``max(0, margin - d)²`` for the others, over all pairs i < j.

    Hadsell et al. 2006 without their factor 1/2; ``none`` gives ``[N (N - 1) / 2]`` in the order
    of ``torch.triu_indices(N, N, 1)``.

    Pairs (0, 1) same label at 0.3, (0, 2) at 0.4 and (1, 2) at 0.5 with other labels:
    ``(0.09 + 0.01 + 0) / 3``.

    >>> emb = torch.tensor([[0.0, 0.0], [0.0, 0.3], [0.4, 0.0]])
    >>> round(contrastive(emb, torch.tensor([0, 0, 1])).item(), 4)
    0.0333
    """
    _check_embeddings("contrastive", embeddings, labels)
    check_range("contrastive", "margin", margin, 0.0)
    check_reduction("contrastive", reduction)
    return _reduce_mined(*_contrastive_terms(embeddings, labels, margin), reduction)


def margin_ranking(
    s1: Tensor, s2: Tensor, y: Tensor, margin: float = 0.1, reduction: str = "mean"
) -> Tensor:
    """``max(0, -y (s1 - s2) + margin)`` on scores of the same shape, y in {1, -1} (seed 001).

    ``F.margin_ranking_loss``: y = 1 asks for ``s1 > s2 + margin``; ``none`` keeps the shape.

    >>> s1, s2 = torch.tensor([0.9, 0.5]), torch.tensor([0.2, 0.45])
    >>> margin_ranking(s1, s2, torch.tensor([1, 1]), margin=0.1, reduction="none")
    tensor([0.0000, 0.0500])
    """
    check_float("margin_ranking", "s1", s1)
    check_same_shape("margin_ranking", s1, s2, "s2")
    check_same_shape("margin_ranking", s1, y, "y")
    _check_signs("margin_ranking", y)
    check_range("margin_ranking", "margin", margin, 0.0)
    check_reduction("margin_ranking", reduction)
    return reduce(F.relu(-y * (s1 - s2) + margin), reduction)


def _margin_ranking_terms(
    embeddings: Tensor, labels: Tensor, margin: float, mining: str, similarity: str
) -> tuple[Tensor, Tensor]:
    if similarity == "cosine":
        unit = F.normalize(embeddings, dim=1)
        # the cosine distance 1 - cos orders the pairs for mining; similarities are 1 - it
        dissimilarity = 1 - unit @ unit.T
    else:
        dissimilarity = pairwise_distance(embeddings)
    d_ap, d_an, valid = mine_triplets(dissimilarity, labels, mining)
    ones = torch.ones_like(d_ap)
    return margin_ranking(-d_ap, -d_an, ones, margin, reduction="none"), valid


def margin_ranking_batch(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 0.1,
    mining: str = "batch_hard",
    similarity: str = "cosine",
    reduction: str = "mean",
) -> Tensor:
    """:func:`margin_ranking` with y = 1 on each mined triplet's (positive, negative) similarity.

    Mining as in :func:`mine_triplets`, by the same similarity; ``none`` gives ``[T]`` as
    :func:`triplet`. ``similarity="distance"`` (``-d``) makes it :func:`triplet` exactly.

    Each anchor has its positive at a right angle (cos 0) and a negative in its own direction
    (cos 1, whatever the norms): ``1 - 0 + 0.1`` per triplet.

    >>> emb = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    >>> round(margin_ranking_batch(emb, torch.tensor([0, 0, 1, 1])).item(), 4)
    1.1
    """
    _check_embeddings("margin_ranking", embeddings, labels)
    check_range("margin_ranking", "margin", margin, 0.0)
    _check_choice("margin_ranking", "mining", mining, MINING)
    _check_choice("margin_ranking", "similarity", similarity, SIMILARITIES)
    check_reduction("margin_ranking", reduction)
    terms = _margin_ranking_terms(embeddings, labels, margin, mining, similarity)
    return _reduce_mined(*terms, reduction)


def hinge_embedding(
    distance: Tensor, y: Tensor, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """``d`` where y = 1, ``max(0, margin - d)`` where y = -1 (seed 001).

    ``F.hinge_embedding_loss`` on distances ``d`` of any shape; ``none`` keeps it.

    >>> d = torch.tensor([0.3, 0.4, 1.5])
    >>> hinge_embedding(d, torch.tensor([1, -1, -1]), reduction="none")
    tensor([0.3000, 0.6000, 0.0000])
    """
    check_float("hinge_embedding", "distance", distance)
    check_same_shape("hinge_embedding", distance, y, "y")
    _check_signs("hinge_embedding", y)
    check_range("hinge_embedding", "margin", margin, 0.0)
    check_reduction("hinge_embedding", reduction)
    return reduce(torch.where(y == 1, distance, F.relu(margin - distance)), reduction)


def _hinge_embedding_terms(
    embeddings: Tensor, labels: Tensor, margin: float
) -> tuple[Tensor, Tensor]:
    d = pairwise_distance(embeddings)
    y = (labels[:, None] == labels[None, :]).long() * 2 - 1
    return hinge_embedding(d, y, margin, reduction="none"), _pair_mask(len(d), d.device)


def hinge_embedding_batch(
    embeddings: Tensor, labels: Tensor, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """:func:`hinge_embedding` over all pairs i < j, y = 1 for same labels and -1 otherwise.

    ``none`` gives ``[N (N - 1) / 2]`` as :func:`contrastive`.

    Pair (0, 1) of one label at 0.3, the pairs across labels at 0.4 and 0.5:
    ``(0.3 + 0.6 + 0.5) / 3``.

    >>> emb = torch.tensor([[0.0, 0.0], [0.0, 0.3], [0.4, 0.0]])
    >>> round(hinge_embedding_batch(emb, torch.tensor([0, 0, 1])).item(), 4)
    0.4667
    """
    _check_embeddings("hinge_embedding", embeddings, labels)
    check_range("hinge_embedding", "margin", margin, 0.0)
    check_reduction("hinge_embedding", reduction)
    return _reduce_mined(*_hinge_embedding_terms(embeddings, labels, margin), reduction)


class _MinedLoss(Loss):
    """Shared by the modules: loss terms over mined entries, reduced, and their active share."""

    tasks = ("retrieval",)
    key = ""
    stat = ""

    def __init__(self, margin: float, reduction: str) -> None:
        super().__init__()
        check_range(self.key, "margin", margin, 0.0)
        check_reduction(self.key, reduction)
        self.margin = margin
        self.reduction = reduction

    def terms(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def compute_with_stats(self, input: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        _check_embeddings(self.key, input, target)
        terms, valid = self.terms(input, target)
        return _reduce_mined(terms, valid, self.reduction), {self.stat: _active_share(terms, valid)}

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return self.compute_with_stats(input, target)[0]


class Triplet(_MinedLoss):
    """``loss=triplet``: :func:`triplet`; logs ``active_triplets``, the share with loss > 0."""

    key, stat = "triplet", "active_triplets"

    def __init__(
        self, margin: float = 0.2, mining: str = "batch_hard", reduction: str = "mean"
    ) -> None:
        super().__init__(margin, reduction)
        _check_choice(self.key, "mining", mining, MINING)
        self.mining = mining

    def terms(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return _triplet_terms(embeddings, labels, self.margin, self.mining)


class Contrastive(_MinedLoss):
    """``loss=contrastive``: :func:`contrastive`; logs ``active_pairs``, the share with loss > 0."""

    key, stat = "contrastive", "active_pairs"

    def __init__(self, margin: float = 0.5, reduction: str = "mean") -> None:
        super().__init__(margin, reduction)

    def terms(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return _contrastive_terms(embeddings, labels, self.margin)


class MarginRanking(_MinedLoss):
    """``loss=margin_ranking``: :func:`margin_ranking_batch`; logs ``active_triplets``."""

    key, stat = "margin_ranking", "active_triplets"

    def __init__(
        self,
        margin: float = 0.1,
        mining: str = "batch_hard",
        similarity: str = "cosine",
        reduction: str = "mean",
    ) -> None:
        super().__init__(margin, reduction)
        _check_choice(self.key, "mining", mining, MINING)
        _check_choice(self.key, "similarity", similarity, SIMILARITIES)
        self.mining = mining
        self.similarity = similarity

    def terms(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return _margin_ranking_terms(embeddings, labels, self.margin, self.mining, self.similarity)


class HingeEmbedding(_MinedLoss):
    """``loss=hinge_embedding``: :func:`hinge_embedding_batch`; logs ``active_pairs``."""

    key, stat = "hinge_embedding", "active_pairs"

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(margin, reduction)

    def terms(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return _hinge_embedding_terms(embeddings, labels, self.margin)
