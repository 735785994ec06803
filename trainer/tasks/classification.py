"""The classification task: logits ``[N, C]`` against int64 class indices ``[N]``."""

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassRecall,
)

from trainer.figures import confusion_matrix_figure, reliability_figure
from trainer.metrics import (
    CALIBRATION_BINS,
    PriorCrossEntropy,
    ReliabilityBins,
    SoftmaxNLL,
    classification_curve_metrics,
)
from trainer.tasks.base import Task, register

EXAMPLE_CLASSES = 5  # enough classes for a long tail in the example class counts
# the example's training class counts: a long tail, class c seen 100 / 2**c times
EXAMPLE_CLASS_COUNTS = tuple(100 // 2**c for c in range(EXAMPLE_CLASSES))
# the metrics fed the logits; the others take the softmax probabilities
LOGIT_METRICS = ("nll",)


@register
class Classification(Task):
    """Accuracy, balanced accuracy (macro recall), macro F1, the recall of every class, its
    minimum (``min_recall``: the hardest class), the recall of the training split's rarest class
    (``tail_recall``) and the mean recall of its rarest third (``tail_recall_third``), macro AUROC,
    macro average precision, top-label ECE (15 bins) and the signed gap mean confidence −
    accuracy (``conf_gap``), the NLL of the softmax (``nll``, whatever the training loss) and the
    cross-entropy of the training class priors as a constant prediction (``prior_loss``, what a
    model that learned nothing gets); pictures: the row-normalised confusion matrix and the
    reliability diagram.

    ``class_counts``: the training split's count of each class (the datamodule's
    ``data_stats["class_counts"]``); the rarest classes are ranked by it, ties to the lower class
    index.
    """

    name = "classification"
    monitor = "acc"
    unit_metrics = ("acc", "ap", "auroc", "balanced_acc", "ece", "macro_f1", "min_recall")
    unit_metrics += ("recall/", "tail_recall", "tail_recall_third")
    plain_loss = "ce"
    curve_metrics = ("balanced_acc", "min_recall")
    picture_metrics = ("confusion_matrix", "reliability")

    def __init__(
        self, num_classes: int, class_names: Sequence[str], class_counts: Sequence[int]
    ) -> None:
        for what, given in (("class names", class_names), ("class counts", class_counts)):
            if len(given) != num_classes:
                raise ValueError(f"classification: expected {num_classes} {what}, got {len(given)}")
        self.num_classes = num_classes
        # class names become TensorBoard tags: no path separators or spaces
        self.class_names = [str(c).replace("/", "-").replace(" ", "_") for c in class_names]
        self.class_counts = [int(n) for n in class_counts]
        # the rarest ceil(C/3) classes of the training split, rarest first
        by_count = sorted(range(num_classes), key=lambda c: (self.class_counts[c], c))
        self.tail_classes = by_count[: math.ceil(num_classes / 3)]

    @classmethod
    def from_datamodule(cls, datamodule: Any) -> "Classification":
        counts = datamodule.data_stats["class_counts"]
        return cls(datamodule.num_classes, datamodule.class_names, counts)

    @classmethod
    def example(cls) -> "Classification":
        names = [f"class{c}" for c in range(EXAMPLE_CLASSES)]
        return cls(EXAMPLE_CLASSES, names, EXAMPLE_CLASS_COUNTS)

    def metrics(self) -> MetricCollection:
        c = self.num_classes
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(c, average="micro"),
                "balanced_acc": MulticlassRecall(c, average="macro"),
                "macro_f1": MulticlassF1Score(c, average="macro"),
                "recall": MulticlassRecall(c, average="none"),
                **dict(classification_curve_metrics(c).items(keep_base=True)),
                "nll": SoftmaxNLL(),
                "prior_loss": PriorCrossEntropy(self.class_counts),
                "confusion_matrix": MulticlassConfusionMatrix(c, normalize="true"),
                "reliability": ReliabilityBins(n_bins=CALIBRATION_BINS),
            }
        )

    def update(self, metrics: MetricCollection, outputs: Tensor, target: Tensor) -> None:
        # probabilities for the others: the threshold-free and calibration ones need them (see
        # classification_curve_metrics), and the rest take the same argmax as from the logits
        probs = outputs.float().softmax(dim=1)
        for name, metric in metrics.items(keep_base=True, copy_state=False):
            metric.update(outputs if name in LOGIT_METRICS else probs, target)

    def scalars(self, computed: Mapping[str, Any]) -> dict[str, Tensor]:
        """The per-class recall vector as ``recall/<class>`` scalars, its minimum, the recall of
        the rarest training class and the mean of the rarest third's; the reliability diagram's
        ``conf_gap``.

        The hardest class (dog) is not the rarest: sea lion and dog tie, and the lower index wins.

        >>> task = Classification(3, ["cat", "sea lion", "dog"], class_counts=[50, 5, 5])
        >>> metrics = task.metrics()
        >>> predicted, target = torch.tensor([0, 1, 0, 0, 0]), torch.tensor([0, 1, 1, 2, 2])
        >>> task.update(metrics, 2.0 * torch.eye(3)[predicted], target)
        >>> scalars = task.scalars(metrics.compute())
        >>> [(name, float(value)) for name, value in scalars.items() if "recall" in name]
        [('recall/cat', 1.0), ('recall/sea_lion', 0.5), ('recall/dog', 0.0), ('min_recall', 0.0),
         ('tail_recall', 0.5), ('tail_recall_third', 0.5)]
        """
        scalars = {k: v for k, v in super().scalars(computed).items() if k != "recall"}
        recall = computed["recall"]
        scalars.update({f"recall/{n}": r for n, r in zip(self.class_names, recall, strict=True)})
        scalars["min_recall"] = recall.min()
        scalars["tail_recall"] = recall[self.tail_classes[0]]
        scalars["tail_recall_third"] = recall[self.tail_classes].mean()
        scalars["conf_gap"] = computed["reliability"].conf_gap
        return scalars

    def figures(self, metrics: MetricCollection) -> dict[str, Figure]:
        return {
            "confusion_matrix": confusion_matrix_figure(
                metrics["confusion_matrix"].compute(), self.class_names
            ),
            "reliability": reliability_figure(metrics["reliability"].compute()),
        }

    def reference_batch(self, seed: int) -> tuple[Tensor, Tensor]:
        """16 samples, every class present, logits of a fresh model (std 0.5)."""
        g = torch.Generator().manual_seed(seed)
        target = torch.arange(16) % self.num_classes
        return torch.randn(16, self.num_classes, generator=g) * 0.5, target
