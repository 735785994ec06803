"""Classification's threshold-free and calibration metrics: macro AUROC, macro average precision
and top-label ECE, computed from the softmax probabilities; and the negative log-likelihood of
the softmax, computed from the logits."""

import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAUROC,
    MulticlassAveragePrecision,
    MulticlassCalibrationError,
)

from trainer.metrics.calibration import CALIBRATION_BINS
from trainer.metrics.mean import Float64Mean


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


class SoftmaxNLL(Float64Mean):
    """Mean negative log-likelihood of the softmax of the logits,
    ``(1/N) Σ_i −log softmax(z_i)[y_i]``: the cross-entropy of the model's outputs whatever loss
    trained it (a focal or margin loss's own value is no likelihood).

    ``update(logits, target)``: ``logits`` ``[N, C]``, ``target`` ``[N]`` class indices. Takes
    the logits, not probabilities: a float32 softmax rounds a confident wrong prediction's
    probability to 0 (an infinite NLL) where the log-softmax stays finite. The log-softmax and
    the sum are float64.

    >>> import torch
    >>> nll = SoftmaxNLL()
    >>> nll.update(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 1]))
    >>> round(float(nll.compute()), 4)  # (log 2 + log(1 + e²) − 0) / 2
    1.41
    """

    def update(self, logits: Tensor, target: Tensor) -> None:
        if logits.ndim != 2 or target.shape != logits.shape[:1]:
            raise ValueError(
                "SoftmaxNLL: expected logits [N, C] and target [N], "
                f"got {list(logits.shape)} and {list(target.shape)}"
            )
        self.total += F.cross_entropy(logits.detach().double(), target.long(), reduction="sum")
        self.count += len(target)
