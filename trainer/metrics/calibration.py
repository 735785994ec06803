"""Calibration: the number of confidence bins every task's ECE uses, and the reliability
diagram's bins as a metric."""

from typing import NamedTuple

import torch
from torch import Tensor
from torchmetrics import Metric

CALIBRATION_BINS = (
    15  # the bin count of Guo et al. 2017, "On Calibration of Modern Neural Networks"
)


class Reliability(NamedTuple):
    """A reliability diagram's bars (mean confidence, accuracy, count per bin), its ECE and the
    signed gap between mean confidence and accuracy over all samples."""

    confidence: Tensor  # [n_bins], 0 where a bin is empty
    accuracy: Tensor  # [n_bins], 0 where a bin is empty
    count: Tensor  # [n_bins]
    ece: Tensor  # scalar
    conf_gap: Tensor  # scalar: mean top-label confidence − accuracy, > 0 when overconfident


class ReliabilityBins(Metric):
    """Top-label confidence, accuracy and count per equal-width confidence bin.

    ``update(probs, target)``: ``probs`` ``[N, C]`` probabilities, ``target`` ``[N]`` class
    indices. ``compute()`` gives a :class:`Reliability` whose ``ece`` is
    ``Σ_b (n_b / N)·|acc_b − conf_b|`` (Guo et al. 2017, "On Calibration of Modern Neural
    Networks") and ``conf_gap`` is ``(1/N) Σ_i conf_i − accuracy`` (every bin's sums pooled):
    signed, it says which way the model errs (> 0: overconfident), where the ECE counts errors
    of either sign (and opposite errors in different bins cancel in ``conf_gap``, not in the
    ECE). Bins are ``[k/B, (k+1)/B)`` and confidences of exactly 1.0 (a saturated float32
    softmax) are a bin of their own, both as in torchmetrics' ``MulticlassCalibrationError``, so
    the ECE equals the logged one; for drawing, that extra slot is folded into the last bar.

    >>> bins = ReliabilityBins(n_bins=2)
    >>> bins.update(torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]), torch.tensor([0, 1, 1]))
    >>> r = bins.compute()
    >>> r.count.tolist(), round(float(r.ece), 4), round(float(r.conf_gap), 4)
    ([0.0, 3.0], 0.1333, 0.1333)
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
        total = self.count.sum().clamp_min(1)
        ece = (gap * self.count).sum() / total
        conf_gap = (self.confidence_sum.sum() - self.correct_sum.sum()) / total

        def bars(per_slot: Tensor) -> Tensor:
            return torch.cat([per_slot[:-2], per_slot[-2:].sum(dim=0, keepdim=True)])

        bar_count = bars(self.count)
        return Reliability(
            confidence=(bars(self.confidence_sum) / bar_count.clamp_min(1)).float(),
            accuracy=(bars(self.correct_sum) / bar_count.clamp_min(1)).float(),
            count=bar_count.float(),
            ece=ece.float(),
            conf_gap=conf_gap.float(),
        )
