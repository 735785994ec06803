"""Classification's threshold-free and calibration metrics: macro AUROC, macro average precision
and top-label ECE, computed from the softmax probabilities."""

from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAUROC,
    MulticlassAveragePrecision,
    MulticlassCalibrationError,
)

from trainer.metrics.calibration import CALIBRATION_BINS


def classification_curve_metrics(num_classes: int) -> MetricCollection:
    """Macro AUROC (``auroc``), macro average precision (``ap``) and top-label ECE (``ece``).

    ``update(probs, target)``: ``probs`` ``[N, C]`` softmax probabilities, ``target`` ``[N]``
    int64 class indices. Feed probabilities, not logits: torchmetrics decides per batch whether
    to apply softmax (only when some value lies outside [0, 1]), so a batch of logits that all
    happen to lie in [0, 1] would be scored as if they were probabilities.

    >>> import torch
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
