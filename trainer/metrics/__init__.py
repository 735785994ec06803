"""Metrics torchmetrics does not have in the form a task needs, written as torchmetrics ``Metric``s
so they accumulate per batch, synchronise across processes and reset like the others, and the
configured torchmetrics sets (threshold-free scores, calibration) the tasks log beside them.

One module per task family, plus ``prior`` (the trivial constant predictor's loss, which several
tasks log); the names below are what the tasks and figures import.
"""

from trainer.metrics.boxes import BoxIoU, pairwise_box_iou
from trainer.metrics.calibration import CALIBRATION_BINS, Reliability, ReliabilityBins
from trainer.metrics.classification import SoftmaxNLL, classification_curve_metrics
from trainer.metrics.prior import MeanPredictorSquaredError, PriorCrossEntropy
from trainer.metrics.regression import PredictionSample
from trainer.metrics.retrieval import RetrievalMetrics, retrieval_scores
from trainer.metrics.segmentation import (
    PIXEL_CURVE_BINS,
    BestThresholdDice,
    DicePerImage,
    PixelAUROC,
    PixelAveragePrecision,
    ThresholdCounts,
    binned_confusion,
    dice_iou,
    pixel_curve_thresholds,
    segmentation_curve_metrics,
    threshold_counts,
)

__all__ = [
    "CALIBRATION_BINS",
    "PIXEL_CURVE_BINS",
    "BestThresholdDice",
    "BoxIoU",
    "DicePerImage",
    "MeanPredictorSquaredError",
    "PixelAUROC",
    "PixelAveragePrecision",
    "PredictionSample",
    "PriorCrossEntropy",
    "Reliability",
    "ReliabilityBins",
    "RetrievalMetrics",
    "SoftmaxNLL",
    "ThresholdCounts",
    "binned_confusion",
    "classification_curve_metrics",
    "dice_iou",
    "pairwise_box_iou",
    "pixel_curve_thresholds",
    "retrieval_scores",
    "segmentation_curve_metrics",
    "threshold_counts",
]
