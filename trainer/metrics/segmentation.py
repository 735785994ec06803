"""Segmentation's pixel metrics: threshold-free curves, binned precision-recall counts, Dice and
IoU at a threshold and at the Dice-maximising one, and Dice per image."""

from typing import NamedTuple

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryCalibrationError,
)

from trainer.metrics.calibration import CALIBRATION_BINS
from trainer.metrics.mean import Float64Mean

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
    AP and AUROC are binned, see :func:`pixel_curve_thresholds`, and count their bins in one
    histogram pass (:class:`PixelAveragePrecision`, :class:`PixelAUROC`).

    >>> metrics = segmentation_curve_metrics()
    >>> metrics.update(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1]))
    >>> {k: round(float(v), 4) for k, v in sorted(metrics.compute().items())}
    {'ece': 0.15, 'pixel_ap': 1.0, 'pixel_auroc': 1.0}
    """
    thresholds = pixel_curve_thresholds()
    return MetricCollection(
        {
            "pixel_ap": PixelAveragePrecision(thresholds=thresholds),
            "pixel_auroc": PixelAUROC(thresholds=thresholds),
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


def binned_confusion(probs: Tensor, target: Tensor, thresholds: Tensor) -> Tensor:
    """``[T, 2, 2]`` counts ``[t, target, predicted]`` (``[[tn, fp], [fn, tp]]`` per threshold),
    the state torchmetrics' binned curve metrics keep, from one histogram pass.

    ``probs`` are probabilities in [0, 1] (never logits: torchmetrics would apply a sigmoid to
    them, this raises), ``target`` the {0, 1} labels of the same shape.

    >>> binned_confusion(torch.tensor([0.2, 0.6, 0.9]), torch.tensor([0, 1, 0]),
    ...                  torch.tensor([0.5]))[0].tolist()
    [[1, 1], [0, 1]]
    """
    if probs.numel() and not bool(((probs >= 0) & (probs <= 1)).all()):
        raise ValueError("binned_confusion: expected probabilities in [0, 1], got values outside")
    if not bool(((target == 0) | (target == 1)).all()):
        raise ValueError(f"binned_confusion: expected a {{0, 1}} target, got {target.unique()}")
    c = threshold_counts(probs, target, thresholds)
    return torch.stack([torch.stack([c.tn, c.fp], -1), torch.stack([c.fn, c.tp], -1)], 1)


class HistogramBinned:
    """Mixin for torchmetrics' binned binary curve metrics (``thresholds`` given): keeps their
    state (``confmat``) and ``compute``, counts the bins with :func:`binned_confusion`. Their own
    update compares every pixel with every threshold (``[pixels, T]``): 14x slower for a
    201-point grid on a batch of 64x64 masks."""

    def update(self, probs: Tensor, target: Tensor) -> None:
        self.confmat += binned_confusion(probs, target, self.thresholds)


class PixelAveragePrecision(HistogramBinned, BinaryAveragePrecision):
    """torchmetrics' binned ``BinaryAveragePrecision``, counted in one histogram pass.

    >>> metric = PixelAveragePrecision(thresholds=torch.linspace(0, 1, 5))
    >>> metric.update(torch.tensor([0.1, 0.4, 0.6, 0.9]), torch.tensor([0, 1, 0, 1]))
    >>> round(float(metric.compute()), 4)
    0.8333
    """


class PixelAUROC(HistogramBinned, BinaryAUROC):
    """torchmetrics' binned ``BinaryAUROC``, counted in one histogram pass.

    >>> metric = PixelAUROC(thresholds=torch.linspace(0, 1, 5))
    >>> metric.update(torch.tensor([0.1, 0.4, 0.6, 0.9]), torch.tensor([0, 1, 0, 1]))
    >>> round(float(metric.compute()), 4)
    0.75
    """


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


class DicePerImage(Float64Mean):
    """Foreground Dice of each image, ``2TP/(2TP+FP+FN)`` over its own pixels, averaged over the
    images whose target mask has foreground.

    Beside the pooled Dice (every pixel of the split in one count), which large objects dominate,
    this weighs every image alike, so an image whose small object is missed costs as much as one
    whose large object is. An image with an empty target is left out (its Dice is 0 with one
    false positive pixel and 0/0 without, nothing between): the ``ignore_empty=True``
    convention of MONAI's ``DiceMetric``. ``compute()`` is NaN while no image with foreground
    was seen.

    ``update(predicted, target)``: the predicted and the target {0, 1} masks, one shape
    ``[N, ...]``, one image per entry of the first dimension. The sum of the Dice values is
    float64.

    >>> dice = DicePerImage()
    >>> dice.update(torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]),
    ...             torch.tensor([[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]))
    >>> round(float(dice.compute()), 4)  # (2/3 + 1) / 2: the empty third image is left out
    0.8333
    """

    def update(self, predicted: Tensor, target: Tensor) -> None:
        if predicted.shape != target.shape or predicted.ndim < 2:
            raise ValueError(
                "DicePerImage: expected predicted and target masks of one shape [N, ...], "
                f"got {list(predicted.shape)} and {list(target.shape)}"
            )
        predicted, truth = predicted.detach().flatten(1) > 0.5, target.detach().flatten(1) > 0.5
        tp = (predicted & truth).sum(1).double()
        errors = (predicted ^ truth).sum(1).double()  # FP + FN
        counted = truth.any(dim=1)  # 2TP + FP + FN > 0 there
        self.total += (2 * tp / (2 * tp + errors).clamp_min(1))[counted].sum()
        self.count += counted.sum()
