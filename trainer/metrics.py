"""Metrics torchmetrics does not have in the form a task needs, written as torchmetrics ``Metric``s
so they accumulate per batch, synchronise across processes and reset like the others, and the
configured torchmetrics sets (threshold-free scores, calibration) the tasks log beside them."""

from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryCalibrationError,
    MulticlassAUROC,
    MulticlassAveragePrecision,
    MulticlassCalibrationError,
)
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


# Classification: threshold-free scores and calibration.

CALIBRATION_BINS = (
    15  # the bin count of Guo et al. 2017, "On Calibration of Modern Neural Networks"
)


def classification_curve_metrics(num_classes: int) -> MetricCollection:
    """Macro AUROC (``auroc``), macro average precision (``ap``) and top-label ECE (``ece``).

    ``update(probs, target)``: ``probs`` ``[N, C]`` softmax probabilities, ``target`` ``[N]``
    int64 class indices. Feed probabilities, not logits: torchmetrics decides per batch whether
    to apply softmax (only when some value lies outside [0, 1]), so a batch of logits that all
    happen to lie in [0, 1] would be scored as if they were probabilities.

    >>> metrics = classification_curve_metrics(3)
    >>> metrics.update(torch.eye(3), torch.tensor([0, 1, 2]))
    >>> {k: round(float(v), 4) for k, v in sorted(metrics.compute().items())}
    {'ap': 1.0, 'auroc': 1.0, 'ece': 0.0}
    """
    return MetricCollection(
        {
            "auroc": MulticlassAUROC(num_classes, average="macro"),
            "ap": MulticlassAveragePrecision(num_classes, average="macro"),
            "ece": MulticlassCalibrationError(num_classes, n_bins=CALIBRATION_BINS, norm="l1"),
        }
    )


class Reliability(NamedTuple):
    """A reliability diagram's bars (mean confidence, accuracy, count per bin) and its ECE."""

    confidence: Tensor  # [n_bins], 0 where a bin is empty
    accuracy: Tensor  # [n_bins], 0 where a bin is empty
    count: Tensor  # [n_bins]
    ece: Tensor  # scalar


class ReliabilityBins(Metric):
    """Top-label confidence, accuracy and count per equal-width confidence bin.

    ``update(probs, target)``: ``probs`` ``[N, C]`` probabilities, ``target`` ``[N]`` class
    indices. ``compute()`` gives a :class:`Reliability` whose ``ece`` is
    ``Σ_b (n_b / N)·|acc_b − conf_b|`` (Guo et al. 2017, "On Calibration of Modern Neural
    Networks"). Bins are ``[k/B, (k+1)/B)`` and confidences of exactly 1.0 (a saturated float32
    softmax) are a bin of their own, both as in torchmetrics' ``MulticlassCalibrationError``, so
    the ECE equals the logged one; for drawing, that extra slot is folded into the last bar.

    >>> bins = ReliabilityBins(n_bins=2)
    >>> bins.update(torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]), torch.tensor([0, 1, 1]))
    >>> r = bins.compute()
    >>> r.count.tolist(), round(float(r.ece), 4)
    ([0.0, 3.0], 0.1333)
    """

    full_state_update = False

    def __init__(self, n_bins: int = CALIBRATION_BINS) -> None:
        super().__init__()
        if not isinstance(n_bins, int) or n_bins < 1:
            raise ValueError(f"ReliabilityBins: expected n_bins a positive int, got {n_bins!r}")
        self.n_bins = n_bins
        self.register_buffer("boundaries", torch.linspace(0, 1, n_bins + 1), persistent=False)
        for name in ("confidence_sum", "correct_sum", "count"):  # slot n_bins: confidence == 1
            self.add_state(
                name, default=torch.zeros(n_bins + 1, dtype=torch.float64), dist_reduce_fx="sum"
            )

    def update(self, probs: Tensor, target: Tensor) -> None:
        if probs.ndim != 2 or target.shape != probs.shape[:1]:
            raise ValueError(
                "ReliabilityBins: expected probs [N, C] and target [N], "
                f"got {list(probs.shape)} and {list(target.shape)}"
            )
        confidence, prediction = probs.detach().float().max(dim=1)
        slot = torch.bucketize(confidence, self.boundaries, right=True) - 1
        self.count += torch.bincount(slot, minlength=self.n_bins + 1).double()
        self.confidence_sum.index_add_(0, slot, confidence.double())
        self.correct_sum.index_add_(0, slot, (prediction == target).double())

    def compute(self) -> Reliability:
        count = self.count.clamp_min(1)
        gap = (self.correct_sum / count - self.confidence_sum / count).abs()
        ece = (gap * self.count).sum() / self.count.sum().clamp_min(1)

        def bars(per_slot: Tensor) -> Tensor:
            return torch.cat([per_slot[:-2], per_slot[-2:].sum(dim=0, keepdim=True)])

        bar_count = bars(self.count)
        return Reliability(
            confidence=(bars(self.confidence_sum) / bar_count.clamp_min(1)).float(),
            accuracy=(bars(self.correct_sum) / bar_count.clamp_min(1)).float(),
            count=bar_count.float(),
            ece=ece.float(),
        )


# Segmentation: pixel-level threshold-free scores, calibration and the best threshold.

PIXEL_CURVE_BINS = 200


def pixel_curve_thresholds() -> Tensor:
    """The fixed thresholds of the pixel AP/AUROC: 200 evenly spaced in [0, 1], then one above 1.

    A fixed grid keeps the state at ``[T, 2, 2]`` counts instead of every pixel of the split.
    Its cost: pixels whose probabilities share a bin (width 1/199) become ties. AUROC then
    scores a positive-negative pair in one bin as 1/2 instead of 0 or 1, so
    ``|binned − exact| <= ½·Σ_b (pairs in bin b with different values) / (P·N)``; AP takes the
    precision at the end of each bin for every positive in it, so
    ``|binned − exact| <= Σ_b (P_b/P)·(n_b − 1)/c_b`` (``P_b`` positives and ``n_b`` pixels in
    bin b, ``c_b`` pixels scored at or above its lower edge; pixels of exactly equal probability
    are ties in the exact scores too and cost nothing). Both stay small unless one bin holds a
    large share of the pixels ranked above it, e.g. a model saturating near 1. The extra
    threshold above 1 closes the ROC at (0, 0): without it, probabilities of exactly 1.0 (float32
    sigmoid of logits above ~17) would drop the curve's first segment from the AUROC.
    """
    grid = torch.linspace(0, 1, PIXEL_CURVE_BINS)
    return torch.cat([grid, grid[-1:] + grid[1]])


def segmentation_curve_metrics() -> MetricCollection:
    """Pixel AP (``pixel_ap``), pixel AUROC (``pixel_auroc``) and pixel ECE, 15 bins (``ece``).

    ``update(probs, target)``: ``probs`` ``[N, 1, H, W]`` foreground probabilities (sigmoid of the
    logits; not the logits, for the reason given in :func:`classification_curve_metrics`),
    ``target`` the mask as int64 {0, 1} of the same shape (torchmetrics rejects float targets).
    AP and AUROC are binned, see :func:`pixel_curve_thresholds`.

    >>> metrics = segmentation_curve_metrics()
    >>> metrics.update(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1]))
    >>> {k: round(float(v), 4) for k, v in sorted(metrics.compute().items())}
    {'ece': 0.15, 'pixel_ap': 1.0, 'pixel_auroc': 1.0}
    """
    thresholds = pixel_curve_thresholds()
    return MetricCollection(
        {
            "pixel_ap": BinaryAveragePrecision(thresholds=thresholds),
            "pixel_auroc": BinaryAUROC(thresholds=thresholds),
            "ece": BinaryCalibrationError(n_bins=CALIBRATION_BINS, norm="l1"),
        }
    )


class ThresholdCounts(NamedTuple):
    """Confusion counts per threshold; a pixel is foreground when its probability >= threshold."""

    thresholds: Tensor  # [T], increasing
    tp: Tensor  # [T] int64
    fp: Tensor
    fn: Tensor
    tn: Tensor


def threshold_counts(probs: Tensor, target: Tensor, thresholds: Tensor) -> ThresholdCounts:
    """Counts of ``probs >= t`` against the {0, 1} ``target``, for each ``t`` in ``thresholds``.

    One histogram pass, ``O(pixels + T)`` memory, never a ``[pixels, T]`` comparison.

    >>> c = threshold_counts(torch.tensor([0.2, 0.6, 0.9]), torch.tensor([0, 1, 0]),
    ...                      torch.tensor([0.0, 0.5, 1.0]))
    >>> c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()
    ([1, 1, 0], [2, 1, 0], [0, 0, 1], [0, 1, 2])
    """
    if probs.shape != target.shape:
        raise ValueError(
            "threshold_counts: expected probs and target of one shape, "
            f"got {list(probs.shape)} and {list(target.shape)}"
        )
    # number of thresholds <= p: a pixel is predicted foreground for thresholds[: passed]
    passed = torch.bucketize(probs.detach().float().flatten(), thresholds, right=True)
    foreground = target.flatten() > 0.5
    bins = len(thresholds) + 1

    def at_or_above(selected: Tensor) -> Tensor:
        histogram = torch.bincount(passed[selected], minlength=bins)
        return histogram.flip(0).cumsum(0).flip(0)[1:]  # entry j: passed > j, i.e. p >= t_j

    tp, fp = at_or_above(foreground), at_or_above(~foreground)
    return ThresholdCounts(thresholds, tp, fp, foreground.sum() - tp, (~foreground).sum() - fp)


def dice_iou(tp: Tensor, fp: Tensor, fn: Tensor) -> tuple[Tensor, Tensor]:
    """Dice ``2TP/(2TP+FP+FN)`` and IoU ``TP/(TP+FP+FN)``; 0 where both masks are empty, as
    torchmetrics' ``BinaryF1Score`` (``zero_division=0``)."""
    tp, errors = tp.double(), (fp + fn).double()
    dice = torch.where(tp + errors > 0, 2 * tp / (2 * tp + errors).clamp_min(1), 0.0)
    iou = torch.where(tp + errors > 0, tp / (tp + errors).clamp_min(1), 0.0)
    return dice.float(), iou.float()


class BestThresholdDice(Metric):
    """Foreground Dice and IoU at each threshold of a fixed grid, and the Dice-maximising one.

    The split-level counterpart of the 0.5 threshold: a loss can rank pixels well but be
    calibrated off 0.5 (e.g. class-weighted losses), so validation picks the threshold on this
    grid and the test reports Dice at that threshold (:meth:`at_threshold`), never a threshold
    tuned on the test itself.

    ``update(probs, target)``: foreground probabilities and the {0, 1} mask, same shape (e.g.
    ``[N, 1, H, W]``). ``compute()`` -> ``{"dice@best", "iou@best", "threshold@best"}``; ties go
    to the lowest threshold. The grid is ``linspace(0, 1, num_thresholds)`` (default 101: steps of
    0.01), and :meth:`counts` feeds
    :func:`trainer.figures.add_pr_curve`.

    >>> metric = BestThresholdDice(num_thresholds=5)
    >>> metric.update(torch.tensor([0.1, 0.4, 0.6, 0.9]), torch.tensor([0.0, 1.0, 1.0, 1.0]))
    >>> {k: round(float(v), 4) for k, v in metric.compute().items()}
    {'dice@best': 1.0, 'iou@best': 1.0, 'threshold@best': 0.25}
    >>> {k: round(float(v), 4) for k, v in metric.at_threshold(0.5).items()}
    {'dice': 0.8, 'iou': 0.6667}
    """

    full_state_update = False

    def __init__(self, num_thresholds: int = 101) -> None:
        super().__init__()
        if not isinstance(num_thresholds, int) or num_thresholds < 2:
            raise ValueError(
                f"BestThresholdDice: expected num_thresholds an int >= 2, got {num_thresholds!r}"
            )
        self.register_buffer("thresholds", torch.linspace(0, 1, num_thresholds), persistent=False)
        for name in ("tp", "fp", "fn", "tn"):
            self.add_state(
                name, default=torch.zeros(num_thresholds, dtype=torch.int64), dist_reduce_fx="sum"
            )

    def update(self, probs: Tensor, target: Tensor) -> None:
        counts = threshold_counts(probs, target, self.thresholds)
        self.tp += counts.tp
        self.fp += counts.fp
        self.fn += counts.fn
        self.tn += counts.tn

    def counts(self) -> ThresholdCounts:
        """The split's counts per threshold, summed over processes like ``compute``'s."""
        with self.sync_context(dist_sync_fn=self.dist_sync_fn):
            return ThresholdCounts(self.thresholds, self.tp, self.fp, self.fn, self.tn)

    def compute(self) -> dict[str, Tensor]:
        dice, iou = dice_iou(self.tp, self.fp, self.fn)
        best = dice.argmax()  # first maximum: the lowest threshold among ties
        return {
            "dice@best": dice[best],
            "iou@best": iou[best],
            "threshold@best": self.thresholds[best],
        }

    def at_threshold(self, threshold: float) -> dict[str, Tensor]:
        """Dice and IoU at ``threshold``, a point of the grid (as ``threshold@best`` is)."""
        index = int((self.thresholds - float(threshold)).abs().argmin())
        if abs(float(self.thresholds[index]) - float(threshold)) > 1e-6:
            raise ValueError(
                f"BestThresholdDice: threshold {float(threshold)} is not on the grid of "
                f"{len(self.thresholds)} thresholds linspace(0, 1)"
            )
        counts = self.counts()
        dice, iou = dice_iou(counts.tp[index], counts.fp[index], counts.fn[index])
        return {"dice": dice, "iou": iou}


# Regression: a bounded, replayable sample of (prediction, target) pairs for a scatter plot.


class PredictionSample(Metric):
    """A uniform sample of at most ``max_size`` (prediction, target) pairs of the split.

    Bottom-k sampling (Cohen and Kaplan 2007, "Summarizing Data using Bottom-k Sketches"): every
    pair gets a uniform random key and the ``max_size`` smallest keys are kept, so the sample is
    uniform over everything seen, and merging processes is a concatenation then the same cut.
    Keys come from a generator seeded by ``(seed, process rank, pairs seen so far)``: the same
    split in the same order gives the same sample every epoch and every run.

    ``update(preds, target)``: any shapes with one element count (flattened). ``compute()`` ->
    ``(preds, target)``, each ``[min(max_size, seen)]`` float32.

    >>> sample = PredictionSample(max_size=3, seed=0)
    >>> sample.update(torch.arange(10.0), torch.arange(10.0) * 2)
    >>> preds, target = sample.compute()
    >>> len(preds), bool((target == 2 * preds).all())
    (3, True)
    """

    # forward() must draw keys from the running count, not from a count reset for the batch
    full_state_update = True

    def __init__(self, max_size: int = 2000, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(max_size, int) or max_size < 1:
            raise ValueError(
                f"PredictionSample: expected max_size a positive int, got {max_size!r}"
            )
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"PredictionSample: expected seed a non-negative int, got {seed!r}")
        self.max_size, self.seed = max_size, seed
        self.add_state("keys", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="cat")
        self.add_state("preds", default=torch.zeros(0), dist_reduce_fx="cat")
        self.add_state("target", default=torch.zeros(0), dist_reduce_fx="cat")
        self.add_state("seen", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        if preds.numel() != target.numel():
            raise ValueError(
                "PredictionSample: expected preds and target with one element count, "
                f"got {list(preds.shape)} and {list(target.shape)}"
            )
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        # int(self.seen) waits for the device once per batch: fine at regression's sizes
        entropy = np.random.SeedSequence([self.seed, rank, int(self.seen)])
        generator = torch.Generator().manual_seed(int(entropy.generate_state(1, np.uint64)[0]))
        keys = torch.rand(preds.numel(), generator=generator, dtype=torch.float64)
        self.keys = torch.cat([self.keys, keys.to(self.keys.device)])
        self.preds = torch.cat([self.preds, preds.detach().float().flatten()])
        self.target = torch.cat([self.target, target.detach().float().flatten()])
        self.seen += preds.numel()
        self._keep_smallest_keys()

    def _keep_smallest_keys(self) -> None:
        if len(self.keys) > self.max_size:
            kept = self.keys.topk(self.max_size, largest=False).indices
            self.keys, self.preds, self.target = (
                self.keys[kept],
                self.preds[kept],
                self.target[kept],
            )

    def compute(self) -> tuple[Tensor, Tensor]:
        self._keep_smallest_keys()  # after a cross-process concatenation
        order = self.keys.argsort()
        return self.preds[order], self.target[order]
