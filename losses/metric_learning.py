"""Metric-learning (retrieval) losses: in-batch mined triplets and pairs of embeddings ``[N, D]``
with labels ``int64 [N]``, and the explicit-triplet and pair forms they build on.

Distances are Euclidean, from :func:`pairwise_distance`: squared distances by the Gram trick,
clamped at 0 (rounding makes them slightly negative) and taken as ``sqrt(d² + 1e-12)``. A bare
``sqrt`` has an infinite gradient at 0, which every point reaches against itself (the diagonal)
and against its duplicates (collapsed embeddings): the classic NaN of these losses. The model
L2-normalises its embeddings, so distances lie in [0, 2] and the margins are set for that range,
but nothing here assumes it.

Triplets and pairs are mined inside the batch, vectorised with masks over the ``[N, N]`` distance
matrix (``[N, N, N]`` for ``batch_all``). The data give P x K batches (P classes, K samples
each), so every anchor has positives; an anchor without a positive or without a negative (a lone
class, a one-class batch) forms no triplet and is left out: ``mean`` divides by the triplets that
exist, and a batch without any gives 0 with a zero, finite gradient. ``mean`` is the plain mean
over all mined triplets or pairs, inactive (zero) ones included: averaging the active ones only
hides progress, as the loss stays level while fewer and fewer triplets are active. The one
exception is ``batch_all`` mining, which by Hermans et al. 2017's convention averages over the
active triplets only: among the O(N³) triplets of a batch most are inactive soon, and their
zeros would wash the few informative ones out. The modules log the active share beside the loss
(``active_triplets`` / ``active_pairs``).

- ``triplet`` (Schroff et al. 2015, "FaceNet"; ``nn.TripletMarginLoss`` on given triplets:
  :func:`triplet_margin`): ``max(0, d(a,p) - d(a,n) + margin)``, mined by :func:`mine_triplets`.
- ``contrastive`` (Hadsell et al. 2006, "Dimensionality Reduction by Learning an Invariant
  Mapping"): over all pairs i < j, ``d²`` for same-label pairs and ``max(0, margin - d)²`` for the
  others, without Hadsell's factor 1/2 (TF-Addons' and Keras' form; the 1/2 only rescales the
  learning rate).
- ``margin_ranking`` (``nn.MarginRankingLoss``: :func:`margin_ranking`):
  ``max(0, -y (s1 - s2) + margin)`` with, per mined triplet, ``s1`` the anchor's similarity to
  its positive, ``s2`` to its negative and ``y = 1``. The similarity is the cosine (default) or
  ``-distance``; with ``-distance`` it is exactly ``triplet``, with the cosine of unit vectors
  (``cos = 1 - d²/2``) it is half FaceNet's triplet loss on squared distances, with margin
  ``2 * margin`` (the default 0.1 is FaceNet's 0.2).
- ``hinge_embedding`` (``nn.HingeEmbeddingLoss``: :func:`hinge_embedding`): over all pairs i < j,
  ``d`` for same-label pairs (y = 1) and ``max(0, margin - d)`` for the others (y = -1).
"""

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.base import Loss, check_reduction, reduce
from losses.checks import check_float, check_range, check_same_shape, describe, values_checkable

__all__ = [
    "MINING",
    "SIMILARITIES",
    "Contrastive",
    "HingeEmbedding",
    "MarginRanking",
    "Triplet",
    "check_contrastive",
    "check_hinge_embedding",
    "check_margin_ranking",
    "check_triplet",
    "contrastive",
    "hinge_embedding",
    "hinge_embedding_batch",
    "margin_ranking",
    "margin_ranking_batch",
    "mine_triplets",
    "pairwise_distance",
    "triplet",
    "triplet_margin",
]

MINING = ("random", "batch_hard", "semi_hard", "batch_all")
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


def _check_margin(name: str, margin: float, reduction: str) -> None:
    check_range(name, "margin", margin, 0.0)
    check_reduction(name, reduction)


def _check_signs(name: str, y: Tensor) -> None:
    """``y`` holds only 1 and -1 (values checked on CPU and in preflight)."""
    if values_checkable(y) and y.numel() and not ((y == 1) | (y == -1)).all():
        found = y.unique()
        shown = ", ".join(f"{v:g}" for v in found[:6].tolist()) + (
            ", ..." if len(found) > 6 else ""
        )
        raise ValueError(f"{name}: expected y values in {{1, -1}}, got values {{{shown}}}")


def check_triplet(*, margin: float, mining: str, reduction: str) -> None:
    _check_margin("triplet", margin, reduction)
    _check_choice("triplet", "mining", mining, MINING)


def check_contrastive(*, margin: float, reduction: str) -> None:
    _check_margin("contrastive", margin, reduction)


def check_margin_ranking(*, margin: float, mining: str, similarity: str, reduction: str) -> None:
    _check_margin("margin_ranking", margin, reduction)
    _check_choice("margin_ranking", "mining", mining, MINING)
    _check_choice("margin_ranking", "similarity", similarity, SIMILARITIES)


def check_hinge_embedding(*, margin: float, reduction: str) -> None:
    _check_margin("hinge_embedding", margin, reduction)


def _label_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(positive, negative)`` ``[N, N]``: same label but not itself, different label."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def mine_triplets(distance: Tensor, labels: Tensor, mining: str) -> tuple[Tensor, Tensor, Tensor]:
    """``(d(a,p), d(a,n), valid)`` of the triplets mined from a distance matrix ``[N, N]``.

    - ``random``: per anchor one positive and one negative drawn uniformly from the batch (torch's
      global RNG, which Lightning seeds); ``[N]``.
    - ``batch_hard`` (Hermans et al. 2017, "In Defense of the Triplet Loss for Person
      Re-Identification"): per anchor the farthest positive and the closest negative; ``[N]``.
    - ``semi_hard`` (FaceNet, Schroff et al. 2015): per anchor-positive pair ``(a, p)`` the closest
      negative farther than the positive (``d(a,n) > d(a,p)``). Where no negative is farther, the
      hardest (closest) negative instead, so the pair still learns (TF-Addons falls back to the
      farthest negative, whose loss is the smallest; pytorch-metric-learning drops the pair);
      ``[N, N]``, indexed by ``(a, p)``.
    - ``batch_all`` (Hermans et al. 2017): every triplet of the batch; ``[N, N, N]``, indexed by
      ``(a, p, n)``.

    ``valid`` marks the entries that are triplets: the anchor has a positive (and, for
    ``semi_hard`` and ``batch_all``, the entry is one) and a negative. Elsewhere both distances
    read 0.
    """
    if len(labels) == 0:  # nothing to mine (the reductions over rows below need one)
        return distance.sum(1), distance.sum(1), labels.new_zeros(0, dtype=torch.bool)
    positive, negative = _label_masks(labels)
    has_negative = negative.any(1)
    inf = torch.finfo(distance.dtype).max
    if mining == "batch_all":
        valid = positive[:, :, None] & negative[:, None, :]
        d_ap, d_an = distance[:, :, None].expand_as(valid), distance[:, None, :].expand_as(valid)
    elif mining == "semi_hard":
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


# What a mined loss hands to its reduction: the loss terms, the entries that are mined triplets
# or pairs, and those that ``mean`` divides by (all mined ones, or the active ones for batch_all).
Mined = tuple[Tensor, Tensor, Tensor]


def _counted(terms: Tensor, valid: Tensor, mining: str) -> Tensor:
    return valid & (terms > 0) if mining == "batch_all" else valid


def _reduce_mined(terms: Tensor, valid: Tensor, counted: Tensor, reduction: str) -> Tensor:
    """Reduce the loss terms of the mined entries: ``none`` gives them as a vector ``[T]``."""
    if reduction == "none":
        return terms[valid]
    # terms are 0 off the mined entries; nothing counted: 0 / 1 = 0, with a zero gradient
    return reduce(terms.where(valid, 0.0), reduction, denominator=counted.sum().clamp_min(1))


def _active_share(terms: Tensor, valid: Tensor) -> Tensor:
    return (((terms > 0) & valid).sum() / valid.sum().clamp_min(1)).float().detach()


def triplet_margin(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    margin: float = 0.2,
    reduction: str = "mean",
) -> Tensor:
    """``max(0, d(a,p) - d(a,n) + margin)`` on given triplets, rows of ``[N, D]``.

    ``nn.TripletMarginLoss(margin, p=2)`` up to its ``eps``: torch adds 1e-6 to every coordinate
    difference, we add 1e-12 to the squared distance; ``none`` gives ``[N]``.

    >>> a, p, n = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.3]]), torch.tensor([[0.4, 0.0]])
    >>> round(triplet_margin(a, p, n, margin=0.2).item(), 4)
    0.1
    """
    _check_margin("triplet", margin, reduction)
    check_float("triplet", "anchor", anchor)
    if anchor.ndim != 2:
        raise ValueError(f"triplet: expected anchor as floating [N, D], got {describe(anchor)}")
    check_same_shape("triplet", anchor, positive, "positive")
    check_same_shape("triplet", anchor, negative, "negative")
    return reduce(
        F.relu(_distance(anchor, positive) - _distance(anchor, negative) + margin), reduction
    )


def _triplet_terms(embeddings: Tensor, labels: Tensor, *, margin: float, mining: str) -> Mined:
    _check_embeddings("triplet", embeddings, labels)
    d_ap, d_an, valid = mine_triplets(pairwise_distance(embeddings), labels, mining)
    terms = F.relu(d_ap - d_an + margin)
    return terms, valid, _counted(terms, valid, mining)


def triplet(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.2,
    mining: str = "batch_hard",
    reduction: str = "mean",
) -> Tensor:
    """Triplet margin loss over the triplets :func:`mine_triplets` finds in the batch.

    ``none`` gives one value per triplet: ``[T]`` with T the anchors that have a positive and a
    negative (``random``, ``batch_hard``), or the anchor-positive pairs of such anchors
    (``semi_hard``), or every triplet (``batch_all``), in row-major order. ``mean`` divides by
    the triplets, or for ``batch_all`` by the active ones (loss > 0).

    Two tight pairs far apart: every triplet is inactive. Labels across the pairs instead:
    each anchor's positive lies at 1, its closest negative at 0.1: ``1 - 0.1 + 0.2``.

    >>> emb = torch.tensor([[0.0, 0.0], [0.0, 0.1], [1.0, 0.0], [1.0, 0.1]])
    >>> round(triplet(emb, torch.tensor([0, 0, 1, 1])).item(), 4)
    0.0
    >>> round(triplet(emb, torch.tensor([0, 1, 0, 1])).item(), 4)
    1.1
    """
    check_triplet(margin=margin, mining=mining, reduction=reduction)
    return _reduce_mined(
        *_triplet_terms(embeddings, labels, margin=margin, mining=mining), reduction
    )


def _pair_mask(n: int, device: torch.device) -> Tensor:
    """The pairs i < j of an ``[N, N]`` matrix (row-major: the order of ``triu_indices``)."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)


def _contrastive_terms(embeddings: Tensor, labels: Tensor, *, margin: float) -> Mined:
    _check_embeddings("contrastive", embeddings, labels)
    d = pairwise_distance(embeddings)
    same = labels[:, None] == labels[None, :]
    pairs = _pair_mask(len(d), d.device)
    return torch.where(same, d.square(), F.relu(margin - d).square()), pairs, pairs


def contrastive(
    embeddings: Tensor, labels: Tensor, *, margin: float = 0.5, reduction: str = "mean"
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
    check_contrastive(margin=margin, reduction=reduction)
    return _reduce_mined(*_contrastive_terms(embeddings, labels, margin=margin), reduction)


def margin_ranking(
    s1: Tensor, s2: Tensor, y: Tensor, *, margin: float = 0.1, reduction: str = "mean"
) -> Tensor:
    """``max(0, -y (s1 - s2) + margin)`` on scores of the same shape, y in {1, -1}.

    ``F.margin_ranking_loss``: y = 1 asks for ``s1 > s2 + margin``; ``none`` keeps the shape.
    Other values of y raise ``ValueError`` (values checked on CPU and in preflight).

    >>> s1, s2 = torch.tensor([0.9, 0.5]), torch.tensor([0.2, 0.45])
    >>> margin_ranking(s1, s2, torch.tensor([1, 1]), margin=0.1, reduction="none")
    tensor([0.0000, 0.0500])
    """
    _check_margin("margin_ranking", margin, reduction)
    check_float("margin_ranking", "s1", s1)
    check_same_shape("margin_ranking", s1, s2, "s2")
    check_same_shape("margin_ranking", s1, y, "y")
    _check_signs("margin_ranking", y)
    return reduce(F.relu(-y * (s1 - s2) + margin), reduction)


def _margin_ranking_terms(
    embeddings: Tensor, labels: Tensor, *, margin: float, mining: str, similarity: str
) -> Mined:
    _check_embeddings("margin_ranking", embeddings, labels)
    if similarity == "cosine":
        unit = F.normalize(embeddings, dim=1)
        # the cosine distance 1 - cos orders the pairs for mining; similarities are 1 - it
        dissimilarity = 1 - unit @ unit.T
    else:
        dissimilarity = pairwise_distance(embeddings)
    d_ap, d_an, valid = mine_triplets(dissimilarity, labels, mining)
    ones = torch.ones_like(d_ap)
    terms = margin_ranking(-d_ap, -d_an, ones, margin=margin, reduction="none")
    return terms, valid, _counted(terms, valid, mining)


def margin_ranking_batch(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.1,
    mining: str = "batch_hard",
    similarity: str = "cosine",
    reduction: str = "mean",
) -> Tensor:
    """:func:`margin_ranking` with y = 1 on each mined triplet's (positive, negative) similarity.

    Mining as in :func:`mine_triplets`, by the same similarity; ``none`` and ``mean`` as
    :func:`triplet`. ``similarity="distance"`` (``-d``) makes it :func:`triplet` exactly.

    Each anchor has its positive at a right angle (cos 0) and a negative in its own direction
    (cos 1, whatever the norms): ``1 - 0 + 0.1`` per triplet.

    >>> emb = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    >>> round(margin_ranking_batch(emb, torch.tensor([0, 0, 1, 1])).item(), 4)
    1.1
    """
    check_margin_ranking(margin=margin, mining=mining, similarity=similarity, reduction=reduction)
    terms = _margin_ranking_terms(
        embeddings, labels, margin=margin, mining=mining, similarity=similarity
    )
    return _reduce_mined(*terms, reduction)


def hinge_embedding(
    distance: Tensor, y: Tensor, *, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """``d`` where y = 1, ``max(0, margin - d)`` where y = -1.

    ``F.hinge_embedding_loss`` on distances ``d`` of any shape; ``none`` keeps it. Other values
    of y raise ``ValueError`` (values checked on CPU and in preflight).

    >>> d = torch.tensor([0.3, 0.4, 1.5])
    >>> hinge_embedding(d, torch.tensor([1, -1, -1]), reduction="none")
    tensor([0.3000, 0.6000, 0.0000])
    """
    _check_margin("hinge_embedding", margin, reduction)
    check_float("hinge_embedding", "distance", distance)
    check_same_shape("hinge_embedding", distance, y, "y")
    _check_signs("hinge_embedding", y)
    return reduce(torch.where(y == 1, distance, F.relu(margin - distance)), reduction)


def _hinge_embedding_terms(embeddings: Tensor, labels: Tensor, *, margin: float) -> Mined:
    _check_embeddings("hinge_embedding", embeddings, labels)
    d = pairwise_distance(embeddings)
    y = (labels[:, None] == labels[None, :]).long() * 2 - 1
    pairs = _pair_mask(len(d), d.device)
    return hinge_embedding(d, y, margin=margin, reduction="none"), pairs, pairs


def hinge_embedding_batch(
    embeddings: Tensor, labels: Tensor, *, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """:func:`hinge_embedding` over all pairs i < j, y = 1 for same labels and -1 otherwise.

    ``none`` gives ``[N (N - 1) / 2]`` as :func:`contrastive`.

    Pair (0, 1) of one label at 0.3, the pairs across labels at 0.4 and 0.5:
    ``(0.3 + 0.6 + 0.5) / 3``.

    >>> emb = torch.tensor([[0.0, 0.0], [0.0, 0.3], [0.4, 0.0]])
    >>> round(hinge_embedding_batch(emb, torch.tensor([0, 0, 1])).item(), 4)
    0.4667
    """
    check_hinge_embedding(margin=margin, reduction=reduction)
    return _reduce_mined(*_hinge_embedding_terms(embeddings, labels, margin=margin), reduction)


class _MinedLoss(Loss):
    """What the modules share: loss terms over mined entries, reduced, and their active share.

    ``terms`` is the loss's ``(terms, valid, counted)`` function of the embeddings, the labels and
    the hyperparameters other than ``reduction``; ``stat`` names the logged active share.
    """

    tasks = ("retrieval",)
    terms: ClassVar[Callable[..., Mined]]
    stat: ClassVar[str]

    def compute_with_stats(self, input: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        hyperparameters = dict(self.hyperparameters)
        reduction = hyperparameters.pop("reduction")
        terms, valid, counted = type(self).terms(input, target, **hyperparameters)
        return (
            _reduce_mined(terms, valid, counted, reduction),
            {self.stat: _active_share(terms, valid)},
        )


class Triplet(_MinedLoss):
    """``loss=triplet``: :func:`triplet`; logs ``active_triplets``, the share with loss > 0."""

    function = staticmethod(triplet)
    check = staticmethod(check_triplet)
    formula = "max(0, d(a,p) - d(a,n) + margin) over the triplets mined in the batch"
    reference = (
        'Schroff et al. 2015, "FaceNet: A Unified Embedding for Face Recognition and Clustering"; '
        'batch_hard and batch_all mining: Hermans et al. 2017, "In Defense of the Triplet Loss '
        'for Person Re-Identification"'
    )
    terms = staticmethod(_triplet_terms)
    stat = "active_triplets"

    def __init__(
        self, *, margin: float = 0.2, mining: str = "batch_hard", reduction: str = "mean"
    ) -> None:
        super().__init__(margin=margin, mining=mining, reduction=reduction)


class Contrastive(_MinedLoss):
    """``loss=contrastive``: :func:`contrastive`; logs ``active_pairs``, the share with loss > 0."""

    function = staticmethod(contrastive)
    check = staticmethod(check_contrastive)
    formula = "d² for same-label pairs, max(0, margin - d)² for the others, over all pairs i < j"
    reference = (
        'Hadsell et al. 2006, "Dimensionality Reduction by Learning an Invariant Mapping" '
        "(without their factor 1/2)"
    )
    terms = staticmethod(_contrastive_terms)
    stat = "active_pairs"

    def __init__(self, *, margin: float = 0.5, reduction: str = "mean") -> None:
        super().__init__(margin=margin, reduction=reduction)


class MarginRanking(_MinedLoss):
    """``loss=margin_ranking``: :func:`margin_ranking_batch`; logs ``active_triplets``."""

    function = staticmethod(margin_ranking_batch)
    check = staticmethod(check_margin_ranking)
    formula = (
        "max(0, s(a,n) - s(a,p) + margin) over the triplets mined in the batch, "
        "s the cosine similarity or -d"
    )
    reference = "PyTorch's nn.MarginRankingLoss with y = 1 on mined triplets; mining as triplet"
    terms = staticmethod(_margin_ranking_terms)
    stat = "active_triplets"

    def __init__(
        self,
        *,
        margin: float = 0.1,
        mining: str = "batch_hard",
        similarity: str = "cosine",
        reduction: str = "mean",
    ) -> None:
        super().__init__(margin=margin, mining=mining, similarity=similarity, reduction=reduction)


class HingeEmbedding(_MinedLoss):
    """``loss=hinge_embedding``: :func:`hinge_embedding_batch`; logs ``active_pairs``."""

    function = staticmethod(hinge_embedding_batch)
    check = staticmethod(check_hinge_embedding)
    formula = "d for same-label pairs, max(0, margin - d) for the others, over all pairs i < j"
    reference = "PyTorch's nn.HingeEmbeddingLoss"
    terms = staticmethod(_hinge_embedding_terms)
    stat = "active_pairs"

    def __init__(self, *, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(margin=margin, reduction=reduction)
