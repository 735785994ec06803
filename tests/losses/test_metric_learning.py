"""triplet, contrastive, margin_ranking, hinge_embedding: brute-force loops over anchors, pairs and
triplets, torch's explicit-triplet and pair losses, stability at zero distance, reductions,
errors."""

import inspect
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from losses import metric_learning
from losses.base import Loss
from losses.metric_learning import (
    Contrastive,
    HingeEmbedding,
    MarginRanking,
    Triplet,
    contrastive,
    hinge_embedding,
    hinge_embedding_batch,
    margin_ranking,
    margin_ranking_batch,
    pairwise_distance,
    triplet,
    triplet_margin,
)

MINING = ["random", "batch_hard", "semi_hard", "batch_all"]
MODULES = {
    "triplet": Triplet,
    "contrastive": Contrastive,
    "margin_ranking": MarginRanking,
    "hinge_embedding": HingeEmbedding,
}
# every module with every mining mode it has
VARIANTS = [
    pytest.param(name, kwargs, id=f"{name}-{kwargs.get('mining', 'pairs')}")
    for name, kwargs in [
        *(("triplet", {"mining": m}) for m in MINING),
        *(("margin_ranking", {"mining": m}) for m in MINING),
        ("contrastive", {}),
        ("hinge_embedding", {}),
    ]
]
STATS = {
    "triplet": "active_triplets",
    "margin_ranking": "active_triplets",
    "contrastive": "active_pairs",
    "hinge_embedding": "active_pairs",
}


def _batch(p=4, k=3, d=5, seed=0, dtype=torch.float64, normalise=False):
    """A P x K batch, as the sampler gives."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(p * k, d, generator=g, dtype=dtype)
    return (F.normalize(emb, dim=1) if normalise else emb), torch.arange(p).repeat_interleave(k)


def _loss(name, kwargs, reduction="mean"):
    return MODULES[name](**kwargs, reduction=reduction)


# ---- brute-force references: Python loops over anchors and pairs ----


def _dist(emb):
    n = len(emb)
    return [[float(torch.linalg.vector_norm(emb[i] - emb[j])) for j in range(n)] for i in range(n)]


def _brute_triplets(emb, labels, mining, dist=None):
    """[(d_ap, d_an)] per mined triplet, in the order the loss gives them (anchor, then positive)."""
    d = _dist(emb) if dist is None else dist
    labels = labels.tolist()
    out = []
    for a, la in enumerate(labels):
        pos = [p for p, lp in enumerate(labels) if lp == la and p != a]
        neg = [n for n, ln in enumerate(labels) if ln != la]
        if not pos or not neg:
            continue
        if mining == "batch_hard":
            out.append((max(d[a][p] for p in pos), min(d[a][n] for n in neg)))
            continue
        if mining == "batch_all":
            out.extend((d[a][p], d[a][n]) for p in pos for n in neg)
            continue
        for p in pos:
            farther = [d[a][n] for n in neg if d[a][n] > d[a][p]]
            out.append((d[a][p], min(farther) if farther else min(d[a][n] for n in neg)))
    return out


def _brute_triplet(emb, labels, margin, mining, dist=None):
    terms = [max(0.0, ap - an + margin) for ap, an in _brute_triplets(emb, labels, mining, dist)]
    return torch.tensor(terms, dtype=torch.float64)


def _brute_mean(terms, mining):
    """The mean the loss reports: over every mined triplet, or the active ones for batch_all."""
    counted = [t for t in terms.tolist() if t > 0] if mining == "batch_all" else terms.tolist()
    return torch.tensor(sum(counted) / max(len(counted), 1), dtype=torch.float64)


def _brute_pairs(emb, labels):
    """[(d, same label)] over the pairs i < j, row-major."""
    d, n = _dist(emb), len(labels)
    return [(d[i][j], bool(labels[i] == labels[j])) for i in range(n) for j in range(i + 1, n)]


def _close(actual, expected, atol=1e-7):
    torch.testing.assert_close(actual.double(), expected.double(), atol=atol, rtol=1e-6)


# ---- pairwise_distance ----


def test_pairwise_distance_matches_a_loop():
    off_diagonal = ~torch.eye(12, dtype=torch.bool)
    emb, _ = _batch()
    d = pairwise_distance(emb)
    # the diagonal is sqrt(1e-12) by design; off it the Gram trick loses ~1e-13 in float64
    assert torch.equal(d.diagonal(), torch.full((12,), 1e-6, dtype=torch.float64))
    expected = torch.tensor(_dist(emb), dtype=torch.float64)
    _close(d[off_diagonal], expected[off_diagonal], atol=1e-11)
    # float32 unit vectors: |x|² + |y|² - 2 x·y cancels to a few float32 ulps of 1 (~2e-7)
    emb32, _ = _batch(dtype=torch.float32, normalise=True)
    expected32 = torch.tensor(_dist(emb32.double()))
    _close(pairwise_distance(emb32)[off_diagonal], expected32[off_diagonal], atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pairwise_distance_gradient_is_finite_at_zero(dtype):
    # the diagonal, duplicates and a fully collapsed batch: a bare sqrt gives NaN for all three
    for emb in (
        torch.zeros(4, 3, dtype=dtype),
        torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.6, 0.8]], dtype=dtype),
        F.normalize(torch.ones(3, 8, dtype=dtype), dim=1),
    ):
        emb.requires_grad_(True)
        d = pairwise_distance(emb)
        (grad,) = torch.autograd.grad(d.sum(), emb)
        assert torch.isfinite(d).all() and torch.isfinite(grad).all()


def test_pairwise_distance_gradcheck():
    emb, _ = _batch(p=2, k=2, d=3)
    assert torch.autograd.gradcheck(pairwise_distance, (emb.requires_grad_(True),))


# ---- triplet ----


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("margin", [0.1, 0.2, 1.0])  # torch rejects margin 0, we take it
def test_triplet_margin_equals_torch(margin, reduction):
    g = torch.Generator().manual_seed(1)
    a, p, n = (torch.randn(6, 4, generator=g, dtype=torch.float64) for _ in range(3))
    expected = torch.nn.TripletMarginLoss(margin=margin, p=2, reduction=reduction)(a, p, n)
    # torch adds eps=1e-6 to each coordinate difference: equal within that
    _close(triplet_margin(a, p, n, margin=margin, reduction=reduction), expected, atol=1e-5)


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard", "batch_all"])
@pytest.mark.parametrize("margin", [0.0, 0.3, 2.0])
def test_triplet_mining_matches_brute_force(mining, margin):
    for seed in range(3):
        emb, labels = _batch(seed=seed)
        expected = _brute_triplet(emb, labels, margin, mining)
        _close(triplet(emb, labels, margin=margin, mining=mining, reduction="none"), expected)
        _close(Triplet(margin=margin, mining=mining)(emb, labels), _brute_mean(expected, mining))
        _close(Triplet(margin=margin, mining=mining, reduction="sum")(emb, labels), expected.sum())


def test_batch_all_averages_the_active_triplets_of_torch_triplet_loss():
    # every (a, p, n) of a 3 x 2 batch through nn.TripletMarginLoss; the mean over those with
    # loss > 0 (Hermans et al. 2017), not over all 24: some are inactive at margin 0.5
    emb, labels = _batch(p=3, k=2, d=2, seed=4)
    triplets = [
        (a, p, n)
        for a in range(6)
        for p in range(6)
        for n in range(6)
        if p != a and labels[p] == labels[a] and labels[n] != labels[a]
    ]
    index = torch.tensor(triplets)
    terms = torch.nn.TripletMarginLoss(margin=0.5, reduction="none")(
        *(emb[index[:, i]] for i in range(3))
    )
    active = terms > 0
    assert 0 < active.sum() < len(triplets)
    # torch adds eps=1e-6 to each coordinate difference: equal within that
    _close(triplet(emb, labels, margin=0.5, mining="batch_all", reduction="none"), terms, atol=1e-5)
    loss, stats = Triplet(margin=0.5, mining="batch_all").with_stats(emb, labels)
    _close(loss, terms[active].mean(), atol=1e-5)
    assert stats == {"active_triplets": pytest.approx(active.double().mean().item())}


def test_triplet_on_explicit_triplets_equals_torch():
    # a batch [a, p, n] with labels [0, 0, 1]: anchor 0's only triplet is (a, p, n)
    g = torch.Generator().manual_seed(2)
    a, p, n = (torch.randn(1, 4, generator=g, dtype=torch.float64) for _ in range(3))
    expected = torch.nn.TripletMarginLoss(margin=0.2, p=2)(a, p, n)
    for mining in MINING:
        emb = torch.cat([a, p, n])
        got = triplet(emb, torch.tensor([0, 0, 1]), margin=0.2, mining=mining, reduction="none")
        _close(got[0], expected, atol=1e-5)


def test_semi_hard_picks_the_closest_farther_negative_and_falls_back_to_the_hardest():
    # anchor 0 at 0, its positive at 1; negatives at 0.5, 1.5 and 3 on a line
    emb = torch.tensor([[0.0], [1.0], [0.5], [1.5], [3.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1])
    got = triplet(emb, labels, margin=1.0, mining="semi_hard", reduction="none")
    # (0, 1): semi-hard negative 1.5 (not the closer 0.5): 1 - 1.5 + 1
    assert got[0].item() == pytest.approx(0.5)
    # anchor 2 at 0.5 and its positive at 3 (pair (2, 4), the 4th): no negative is farther than
    # 2.5, so the hardest, at 0.5: 2.5 - 0.5 + 1
    d_an = [an for _, an in _brute_triplets(emb, labels, "semi_hard")]
    assert got[3].item() == pytest.approx(3.0) and d_an[3] == pytest.approx(0.5)
    _close(got, _brute_triplet(emb, labels, 1.0, "semi_hard"))


def test_semi_hard_equals_batch_hard_when_every_negative_is_farther():
    # K = 2 (one positive per anchor) and tight, distant clusters
    centres = torch.eye(4, dtype=torch.float64) * 10
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(8, 4, generator=g, dtype=torch.float64)
    emb = centres.repeat_interleave(2, 0) + 0.1 * noise
    labels = torch.arange(4).repeat_interleave(2)
    _close(
        triplet(emb, labels, margin=25.0, mining="semi_hard"),
        triplet(emb, labels, margin=25.0, mining="batch_hard"),
    )


def test_random_mining_draws_real_triplets_uniformly():
    emb, labels = _batch(p=3, k=3)
    d = _dist(emb)
    pos_terms = {}
    counts = {}
    for seed in range(300):
        torch.manual_seed(seed)
        got = triplet(emb, labels, margin=5.0, mining="random", reduction="none")
        assert got.shape == (9,)
        # anchor 0: positives 1, 2 and negatives 3..8; margin 5 keeps every term active, so the
        # term identifies the pair drawn
        options = {(p, n): d[0][p] - d[0][n] + 5.0 for p in (1, 2) for n in range(3, 9)}
        (pair,) = [k for k, v in options.items() if abs(v - got[0].item()) < 1e-9]
        counts[pair] = counts.get(pair, 0) + 1
        pos_terms.setdefault(pair[0], 0)
        pos_terms[pair[0]] += 1
    assert len(counts) == 12  # every (positive, negative) of anchor 0 was drawn
    assert all(100 < c < 200 for c in pos_terms.values())  # each positive about half the time
    torch.manual_seed(0)
    first = triplet(emb, labels, mining="random", reduction="none")
    torch.manual_seed(0)
    assert torch.equal(first, triplet(emb, labels, mining="random", reduction="none"))


def test_mean_counts_inactive_triplets():
    # labels across two tight pairs: anchors 0-3 active; class 2 far from the rest: 4, 5 inactive
    emb = torch.tensor([[0.0, 0.0], [0.0, 0.1], [1.0, 0.0], [1.0, 0.1], [5.0, 5.0], [5.0, 5.1]])
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    terms = triplet(emb, labels, margin=0.2, reduction="none")
    assert (terms > 0).sum() == 4 and (terms == 0).sum() == 2
    loss, stats = Triplet(margin=0.2).with_stats(emb, labels)
    _close(loss, terms.sum() / 6)  # not / 4
    assert stats == {"active_triplets": pytest.approx(4 / 6)}


def test_anchors_without_positive_or_negative_are_left_out():
    emb, _ = _batch(p=2, k=3)
    emb = emb[:5]
    labels = torch.tensor([0, 0, 1, 2, 3])  # anchors 2, 3, 4 have no positive
    for mining in ("random", "batch_hard", "semi_hard"):
        assert triplet(emb, labels, mining=mining, reduction="none").shape == (2,)
    # anchors 0 and 1, one positive each, three negatives each
    assert triplet(emb, labels, mining="batch_all", reduction="none").shape == (6,)
    _close(
        triplet(emb, labels, margin=0.3, mining="batch_hard"),
        _brute_triplet(emb, labels, 0.3, "batch_hard").mean(),
    )


@pytest.mark.parametrize("name", ["triplet", "margin_ranking"])
@pytest.mark.parametrize("mining", MINING)
@pytest.mark.parametrize(
    "labels",
    [
        torch.zeros(6, dtype=torch.long),
        torch.arange(6),
        torch.zeros(1, dtype=torch.long),
        torch.zeros(0, dtype=torch.long),
    ],
    ids=["one_class", "all_distinct", "single_sample", "empty"],
)
def test_no_triplet_gives_zero_with_a_zero_finite_gradient(name, mining, labels):
    g = torch.Generator().manual_seed(len(labels))
    emb = torch.randn(len(labels), 4, generator=g, requires_grad=True)
    for reduction in ("mean", "sum"):
        loss, stats = _loss(name, {"mining": mining}, reduction).with_stats(emb, labels)
        (grad,) = torch.autograd.grad(loss, emb)
        assert loss.item() == 0.0 and torch.equal(grad, torch.zeros_like(emb))
        assert stats[STATS[name]].item() == 0.0
    assert _loss(name, {"mining": mining}, "none")(emb, labels).shape == (0,)


# ---- contrastive, hinge_embedding ----


@pytest.mark.parametrize("margin", [0.0, 0.5, 3.0])
def test_contrastive_matches_brute_force(margin):
    emb, labels = _batch()
    expected = torch.tensor(
        [d**2 if same else max(0.0, margin - d) ** 2 for d, same in _brute_pairs(emb, labels)],
        dtype=torch.float64,
    )
    _close(contrastive(emb, labels, margin=margin, reduction="none"), expected)
    _close(Contrastive(margin=margin)(emb, labels), expected.mean())
    _close(Contrastive(margin=margin, reduction="sum")(emb, labels), expected.sum())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("margin", [0.0, 1.0, 3.0])
def test_hinge_embedding_equals_torch(margin, reduction):
    d = torch.rand(10, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2
    y = torch.tensor([1, -1] * 5)
    expected = F.hinge_embedding_loss(d, y, margin=margin, reduction=reduction)
    _close(hinge_embedding(d, y, margin=margin, reduction=reduction), expected)
    # over all pairs of a batch: torch's loss on the pairs a loop lists
    emb, labels = _batch()
    pairs = _brute_pairs(emb, labels)
    dist = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    signs = torch.tensor([1 if p[1] else -1 for p in pairs])
    expected = F.hinge_embedding_loss(dist, signs, margin=margin, reduction=reduction)
    _close(hinge_embedding_batch(emb, labels, margin=margin, reduction=reduction), expected)
    _close(HingeEmbedding(margin=margin, reduction=reduction)(emb, labels), expected)


@pytest.mark.parametrize("name", ["contrastive", "hinge_embedding"])
def test_pair_losses_on_one_class_and_single_sample_batches(name):
    # one class: only pulls (a real loss, no anchor left out); one sample or none: no pair, 0
    g = torch.Generator().manual_seed(6)
    emb = torch.randn(5, 3, generator=g, requires_grad=True)
    loss = MODULES[name]()(emb, torch.zeros(5, dtype=torch.long))
    (grad,) = torch.autograd.grad(loss, emb)
    assert loss.item() > 0 and torch.isfinite(grad).all()
    for n in (1, 0):
        few = torch.randn(n, 3, generator=g, requires_grad=True)
        loss = MODULES[name]()(few, torch.zeros(n, dtype=torch.long))
        (grad,) = torch.autograd.grad(loss, few)
        assert loss.item() == 0.0 and torch.equal(grad, torch.zeros_like(few))


# ---- margin_ranking ----


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("margin", [0.0, 0.1, 1.0])
def test_margin_ranking_equals_torch(margin, reduction):
    g = torch.Generator().manual_seed(7)
    s1, s2 = (torch.randn(10, generator=g, dtype=torch.float64) for _ in range(2))
    y = torch.tensor([1, -1, 1, 1, -1, 1, -1, -1, 1, 1])
    expected = F.margin_ranking_loss(s1, s2, y, margin=margin, reduction=reduction)
    _close(margin_ranking(s1, s2, y, margin=margin, reduction=reduction), expected)


@pytest.mark.parametrize("mining", MINING)
def test_margin_ranking_on_negative_distance_is_triplet(mining):
    emb, labels = _batch()
    for reduction in ("mean", "none"):
        torch.manual_seed(0)
        got = MarginRanking(margin=0.3, mining=mining, similarity="distance", reduction=reduction)(
            emb, labels
        )
        torch.manual_seed(0)
        _close(got, Triplet(margin=0.3, mining=mining, reduction=reduction)(emb, labels))


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard", "batch_all"])
def test_margin_ranking_on_cosine_matches_brute_force(mining):
    emb, labels = _batch()
    unit = [e / torch.linalg.vector_norm(e) for e in emb]
    cos_dist = [[1 - float(u @ v) for v in unit] for u in unit]
    # mined on 1 - cos, then F.margin_ranking_loss on the similarities with y = 1
    mined = _brute_triplets(emb, labels, mining, cos_dist)
    s_ap = torch.tensor([1 - ap for ap, _ in mined], dtype=torch.float64)
    s_an = torch.tensor([1 - an for _, an in mined], dtype=torch.float64)
    expected = F.margin_ranking_loss(
        s_ap, s_an, torch.ones_like(s_ap), margin=0.1, reduction="none"
    )
    got = margin_ranking_batch(
        emb, labels, margin=0.1, mining=mining, similarity="cosine", reduction="none"
    )
    _close(got, expected)
    # the cosine ignores the norms
    _close(MarginRanking(mining=mining)(emb * 7.0, labels), _brute_mean(expected, mining))


def test_margin_ranking_on_unit_vectors_is_facenet_squared_triplet():
    emb, labels = _batch(normalise=True)
    squared = [[v**2 for v in row] for row in _dist(emb)]
    mined = _brute_triplets(emb, labels, "batch_hard", squared)
    expected = torch.tensor([max(0.0, ap - an + 0.2) for ap, an in mined]).mean()
    # cos = 1 - d²/2: ranking by cosine with margin m is FaceNet's loss with margin 2m, halved
    _close(MarginRanking(margin=0.1)(emb, labels), expected / 2)


# ---- all modules: gradients, extremes, reductions, stats, dtypes, errors ----


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS)
def test_gradcheck_float64(name, kwargs):
    emb, labels = _batch(p=3, k=2, d=3)
    emb.requires_grad_(True)
    loss = MODULES[name](**kwargs, margin=2.0)  # large: every term active, no kink nearby

    def f(x):
        torch.manual_seed(0)  # the same random triplets on every call
        return loss(x, labels)

    assert f(emb) > 0
    assert torch.autograd.gradcheck(f, (emb,))


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS)
@pytest.mark.parametrize("scale", [1.0, 100.0, 1e4])
def test_extreme_collapsed_and_duplicate_embeddings_stay_finite(name, kwargs, scale):
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    g = torch.Generator().manual_seed(0)
    for emb in (
        torch.randn(6, 4, generator=g) * scale,
        torch.randn(6, 4, generator=g).sign() * scale,  # saturated at ±scale, many duplicates
        torch.zeros(6, 4),  # collapsed: every distance 0
        torch.randn(1, 4, generator=g).expand(6, 4) * scale,  # collapsed away from 0
    ):
        emb = emb.clone().requires_grad_(True)
        for loss_fn in (_loss(name, kwargs), MODULES[name]()):
            loss = loss_fn(emb, labels)
            (grad,) = torch.autograd.grad(loss, emb)
            assert torch.isfinite(loss) and torch.isfinite(grad).all(), (name, scale)


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS)
def test_reductions_and_none_shape(name, kwargs):
    emb, labels = _batch(p=4, k=3)  # 12 anchors with 2 positives each; 66 pairs
    torch.manual_seed(0)
    per = _loss(name, kwargs, "none")(emb, labels)
    # batch_all: 2 positives x 9 negatives per anchor
    expected = {"semi_hard": (24,), "random": (12,), "batch_hard": (12,), "batch_all": (216,)}
    assert per.shape == expected.get(kwargs.get("mining"), (66,))
    mean = per[per > 0].mean() if kwargs.get("mining") == "batch_all" else per.mean()
    for reduction, value in (("mean", mean), ("sum", per.sum())):
        torch.manual_seed(0)
        _close(_loss(name, kwargs, reduction)(emb, labels), value)


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS)
def test_active_share_is_logged(name, kwargs):
    emb, labels = _batch(normalise=True)
    torch.manual_seed(0)
    _, stats = _loss(name, kwargs).with_stats(emb.requires_grad_(True), labels)
    torch.manual_seed(0)
    per = _loss(name, kwargs, "none")(emb, labels)
    assert list(stats) == [STATS[name]]
    share = stats[STATS[name]]
    assert share.ndim == 0 and share.dtype == torch.float32 and not share.requires_grad
    assert share.item() == pytest.approx((per > 0).double().mean().item())


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS)
def test_bf16_autocast_gives_float32(name, kwargs):
    emb, labels = _batch(dtype=torch.float32, normalise=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = _loss(name, kwargs)(emb.bfloat16(), labels)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize("name", MODULES)
def test_bad_inputs(name):
    loss = MODULES[name]()
    with pytest.raises(
        TypeError, match=rf"{name}: expected labels int64 of shape \[4\], got float32 \[4\]"
    ):
        loss(torch.randn(4, 3), torch.zeros(4))
    with pytest.raises(
        TypeError, match=rf"{name}: expected labels int64 of shape \[4\], got int64 \[4, 1\]"
    ):
        loss(torch.randn(4, 3), torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(
        TypeError, match=rf"{name}: expected labels int64 of shape \[4\], got int32 \[4\]"
    ):
        loss(torch.randn(4, 3), torch.zeros(4, dtype=torch.int32))
    with pytest.raises(
        ValueError, match=rf"{name}: expected embeddings as floating \[N, D\], got float32 \[4\]"
    ):
        loss(torch.randn(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(
        TypeError, match=rf"{name}: expected embeddings as floating \[N, D\], got int64 \[4, 3\]"
    ):
        loss(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Triplet(margin=-1.0), "triplet: expected margin >= 0.0, got -1.0"),
        (lambda: Contrastive(margin=-1.0), "contrastive: expected margin >= 0.0, got -1.0"),
        (lambda: MarginRanking(margin=-1.0), "margin_ranking: expected margin >= 0.0, got -1.0"),
        (lambda: HingeEmbedding(margin=-1.0), "hinge_embedding: expected margin >= 0.0, got -1.0"),
        (
            lambda: Triplet(mining="hardest"),
            "triplet: expected mining in ('random', 'batch_hard', 'semi_hard', 'batch_all'), "
            "got 'hardest'",
        ),
        (
            lambda: MarginRanking(mining="hardest"),
            "margin_ranking: expected mining in ('random', 'batch_hard', 'semi_hard', 'batch_all'), "
            "got 'hardest'",
        ),
        (
            lambda: MarginRanking(similarity="dot"),
            "margin_ranking: expected similarity in ('cosine', 'distance'), got 'dot'",
        ),
        (lambda: Triplet(reduction="avg"), "triplet: expected reduction in"),
        (lambda: Contrastive(reduction="avg"), "contrastive: expected reduction in"),
        (lambda: HingeEmbedding(reduction="avg"), "hinge_embedding: expected reduction in"),
        (lambda: MarginRanking(reduction="avg"), "margin_ranking: expected reduction in"),
    ],
)
def test_bad_hyperparameters(build, message):
    with pytest.raises(ValueError) as error:
        build()
    assert str(error.value).startswith(message)


def test_pure_functions_reject_bad_inputs():
    g = torch.Generator().manual_seed(8)
    emb, labels = torch.randn(4, 3, generator=g), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"triplet: expected margin >= 0\.0, got -1\.0"):
        triplet(emb, labels, margin=-1.0)
    with pytest.raises(ValueError, match=r"triplet: expected mining in .*got 'hardest'"):
        triplet(emb, labels, mining="hardest")
    with pytest.raises(ValueError, match=r"contrastive: expected reduction in"):
        contrastive(emb, labels, reduction="avg")
    with pytest.raises(ValueError, match=r"margin_ranking: expected similarity in"):
        margin_ranking_batch(emb, labels, similarity="dot")
    with pytest.raises(
        ValueError,
        match=r"triplet: expected negative of the same shape as the input float32 \[4, 3\], got float32 \[3, 3\]",
    ):
        triplet_margin(emb, emb, emb[:3])
    with pytest.raises(
        ValueError, match=r"triplet: expected anchor as floating \[N, D\], got float32 \[3\]"
    ):
        triplet_margin(emb[0], emb[1], emb[2])
    with pytest.raises(
        TypeError, match=r"triplet: expected anchor as a floating tensor, got int64"
    ):
        triplet_margin(labels[:, None], labels[:, None], labels[:, None])
    s = torch.randn(4, generator=g)
    with pytest.raises(
        ValueError, match=r"margin_ranking: expected y values in \{1, -1\}, got values \{0, 1\}"
    ):
        margin_ranking(s, s, torch.tensor([0, 1, 1, 0]))
    with pytest.raises(
        ValueError,
        match=r"margin_ranking: expected y of the same shape as the input float32 \[4\], got int64 \[1\]",
    ):
        margin_ranking(s, s, torch.tensor([1]))  # no silent broadcast
    with pytest.raises(ValueError, match=r"margin_ranking: expected s2 of the same shape"):
        margin_ranking(s, s[:2], torch.ones(4))
    with pytest.raises(
        ValueError,
        match=r"hinge_embedding: expected y values in \{1, -1\}, got values \{-1, 0, 2\}",
    ):
        hinge_embedding(s.abs(), torch.tensor([-1.0, 0.0, 2.0, 2.0]))
    with pytest.raises(ValueError, match=r"hinge_embedding: expected y of the same shape"):
        hinge_embedding(s.abs(), torch.ones(4, 1))
    with pytest.raises(TypeError, match=r"hinge_embedding: expected distance as a floating tensor"):
        hinge_embedding(torch.ones(4, dtype=torch.long), torch.ones(4))


def test_configs_hold_the_constructor_defaults():
    from hydra.utils import get_class, instantiate
    from omegaconf import OmegaConf

    conf = Path(__file__).parents[2] / "conf" / "loss"
    emb, labels = _batch(dtype=torch.float32, normalise=True)
    for key in MODULES:
        cfg = OmegaConf.load(conf / f"{key}.yaml")
        assert next(iter(cfg)) == "_target_", key
        signature = inspect.signature(get_class(cfg._target_))
        defaults = {name: p.default for name, p in signature.parameters.items()}
        assert {k: v for k, v in cfg.items() if k != "_target_"} == defaults, key
        loss = instantiate(cfg, _convert_="all")
        assert type(loss) is MODULES[key] and loss.tasks == ("retrieval",), key
        assert torch.isfinite(loss(emb, labels)), key


LOSS_CLASSES = [
    c
    for _, c in inspect.getmembers(metric_learning, inspect.isclass)
    if issubclass(c, Loss)
    and c.__module__ == metric_learning.__name__
    and not c.__name__.startswith("_")
]


def test_every_module_is_covered():
    assert set(LOSS_CLASSES) == set(MODULES.values())
