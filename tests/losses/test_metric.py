"""Metric-learning losses against brute-force loops and torch's pair losses; stability; errors."""

import pytest
import torch
import torch.nn.functional as F

from losses.metric import (
    Contrastive,
    HingeEmbedding,
    MarginRanking,
    Triplet,
    hinge_embedding_pairs,
    margin_ranking_pairs,
    pairwise_distance,
)

MODULES = {
    "triplet": lambda **k: Triplet(**k),
    "contrastive": lambda **k: Contrastive(**k),
    "margin_ranking": lambda **k: MarginRanking(**k),
    "hinge_embedding": lambda **k: HingeEmbedding(**k),
}


def _batch(n_classes=4, k=3, d=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(k)
    return torch.randn(n_classes * k, d, generator=g, dtype=dtype), labels


def _brute_triplets(emb, labels, margin, mode):
    d = torch.cdist(emb, emb)
    out = []
    for a in range(len(labels)):
        pos = [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        neg = [n for n in range(len(labels)) if labels[n] != labels[a]]
        if not pos or not neg:
            continue
        if mode == "batch_hard":
            out.append(max(d[a, p] for p in pos) - min(d[a, n] for n in neg) + margin)
            continue
        for p in pos:
            farther = [d[a, n] for n in neg if d[a, n] > d[a, p]]
            out.append(d[a, p] - (min(farther) if farther else min(d[a, n] for n in neg)) + margin)
    return torch.stack(out).clamp_min(0)


def test_pairwise_distance_is_cdist_with_finite_gradient_at_zero():
    emb, _ = _batch()
    torch.testing.assert_close(pairwise_distance(emb), torch.cdist(emb, emb), atol=1e-5, rtol=0)
    x = torch.zeros(3, 4, requires_grad=True)
    pairwise_distance(x).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("mode", ["batch_hard", "semi_hard"])
def test_triplet_mining_matches_brute_force(mode):
    emb, labels = _batch()
    expected = _brute_triplets(emb, labels, 0.3, mode)
    torch.testing.assert_close(
        Triplet(margin=0.3, mining=mode, reduction="none")(emb, labels), expected, atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        Triplet(margin=0.3, mining=mode)(emb, labels), expected.mean(), atol=1e-5, rtol=0
    )


def test_random_mining_picks_real_positives_and_negatives():
    emb, labels = _batch()
    torch.manual_seed(0)
    losses = Triplet(margin=0.3, mining="random", reduction="none")(emb, labels)
    hard = Triplet(margin=0.3, mining="batch_hard", reduction="none")(emb, labels)
    assert losses.shape == (12,) and torch.all(
        losses <= hard + 1e-9
    )  # never harder than the hardest


def test_explicit_triplet_equals_torch():
    a, p, n = (torch.randn(1, 4, dtype=torch.float64) for _ in range(3))
    expected = F.triplet_margin_loss(
        a, p, n, margin=0.2
    )  # anchor 0: its only positive and negative
    got = Triplet(margin=0.2, reduction="none")(torch.cat([a, p, n]), torch.tensor([0, 0, 1]))
    torch.testing.assert_close(got[0], expected, atol=1e-5, rtol=0)


def test_contrastive_and_hinge_match_brute_force():
    emb, labels = _batch()
    d = torch.cdist(emb, emb)
    pairs = [(i, j) for i in range(12) for j in range(i + 1, 12)]
    contrastive = torch.stack(
        [
            d[i, j] ** 2 if labels[i] == labels[j] else (0.5 - d[i, j]).clamp_min(0) ** 2
            for i, j in pairs
        ]
    )
    hinge = torch.stack(
        [d[i, j] if labels[i] == labels[j] else (1.0 - d[i, j]).clamp_min(0) for i, j in pairs]
    )
    torch.testing.assert_close(Contrastive()(emb, labels), contrastive.mean(), atol=1e-5, rtol=0)
    torch.testing.assert_close(HingeEmbedding()(emb, labels), hinge.mean(), atol=1e-5, rtol=0)


def test_pair_forms_equal_torch():
    s1, s2 = torch.randn(10), torch.randn(10)
    y = torch.randint(0, 2, (10,)) * 2 - 1
    torch.testing.assert_close(
        margin_ranking_pairs(s1, s2, y, 0.3), F.margin_ranking_loss(s1, s2, y, margin=0.3)
    )
    d = torch.rand(10) * 2
    torch.testing.assert_close(
        hinge_embedding_pairs(d, y, 1.0), F.hinge_embedding_loss(d, y, margin=1.0)
    )


def test_margin_ranking_is_triplet_on_similarities():
    emb, labels = _batch()
    torch.testing.assert_close(
        MarginRanking(margin=0.3)(emb, labels), Triplet(margin=0.3)(emb, labels)
    )


@pytest.mark.parametrize("name", MODULES)
def test_active_share_is_logged(name):
    emb, labels = _batch()
    _, stats = MODULES[name]().with_stats(emb, labels)
    (key,) = stats
    assert key.startswith("active_") and 0.0 <= float(stats[key]) <= 1.0


@pytest.mark.parametrize("name", MODULES)
def test_gradcheck_float64(name):
    emb, labels = _batch(n_classes=2, k=2, d=3)
    emb.requires_grad_(True)
    kwargs = {"mining": "semi_hard"} if name in ("triplet", "margin_ranking") else {}
    assert torch.autograd.gradcheck(lambda x: MODULES[name](**kwargs)(x, labels), (emb,))


@pytest.mark.parametrize("name", MODULES)
def test_collapsed_duplicate_and_single_class_batches_stay_finite(name):
    for emb, labels in (
        (torch.zeros(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])),  # every embedding collapsed together
        (torch.randn(6, 4) * 1e4, torch.tensor([0, 0, 1, 1, 2, 2])),
        (torch.randn(4, 4), torch.zeros(4, dtype=torch.long)),  # one class: no negatives
    ):
        emb.requires_grad_(True)
        loss = MODULES[name]()(emb, labels)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(emb.grad).all(), name


@pytest.mark.parametrize("name", MODULES)
def test_bad_inputs(name):
    with pytest.raises(
        TypeError, match=rf"{name}: expected labels int64 of shape \[4\], got float32 \[4\]"
    ):
        MODULES[name]()(torch.randn(4, 3), torch.zeros(4))
    with pytest.raises(
        ValueError, match=rf"{name}: expected embeddings of shape \[N, D\], got float32 \[4\]"
    ):
        MODULES[name]()(torch.randn(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=rf"{name}: expected margin >= 0.0, got -1.0"):
        MODULES[name](margin=-1.0)


def test_bad_mining():
    with pytest.raises(
        ValueError,
        match=r"triplet: expected mining in \('random', 'batch_hard', 'semi_hard'\), got 'hardest'",
    ):
        Triplet(mining="hardest")
