"""The classification task: logits ``[N, C]`` against int64 class indices ``[N]``."""

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
from trainer.metrics import CALIBRATION_BINS, ReliabilityBins, classification_curve_metrics
from trainer.tasks.base import Task, register

EXAMPLE_CLASSES = 5  # enough classes for a long tail in the example class counts


@register
class Classification(Task):
    """Accuracy, balanced accuracy (macro recall), macro F1, the recall of every class, macro AUROC,
    macro average precision and top-label ECE (15 bins); pictures: the row-normalised confusion
    matrix and the reliability diagram."""

    name = "classification"
    monitor = "acc"
    unit_metrics = ("acc", "ap", "auroc", "balanced_acc", "ece", "macro_f1", "min_recall")
    unit_metrics += ("recall/",)
    plain_loss = "ce"
    curve_metrics = ("balanced_acc", "min_recall")
    picture_metrics = ("confusion_matrix", "reliability")

    def __init__(self, num_classes: int, class_names: Sequence[str]) -> None:
        if len(class_names) != num_classes:
            raise ValueError(
                f"classification: expected {num_classes} class names, got {len(class_names)}"
            )
        self.num_classes = num_classes
        # class names become TensorBoard tags: no path separators or spaces
        self.class_names = [str(c).replace("/", "-").replace(" ", "_") for c in class_names]

    @classmethod
    def from_datamodule(cls, datamodule: Any) -> "Classification":
        return cls(datamodule.num_classes, datamodule.class_names)

    @classmethod
    def example(cls) -> "Classification":
        return cls(EXAMPLE_CLASSES, [f"class{c}" for c in range(EXAMPLE_CLASSES)])

    def metrics(self) -> MetricCollection:
        c = self.num_classes
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(c, average="micro"),
                "balanced_acc": MulticlassRecall(c, average="macro"),
                "macro_f1": MulticlassF1Score(c, average="macro"),
                "recall": MulticlassRecall(c, average="none"),
                **dict(classification_curve_metrics(c).items(keep_base=True)),
                "confusion_matrix": MulticlassConfusionMatrix(c, normalize="true"),
                "reliability": ReliabilityBins(n_bins=CALIBRATION_BINS),
            }
        )

    def update(self, metrics: MetricCollection, outputs: Tensor, target: Tensor) -> None:
        # probabilities for every metric: the threshold-free and calibration ones need them (see
        # classification_curve_metrics), and the others take the same argmax as from the logits
        metrics.update(outputs.float().softmax(dim=1), target)

    def scalars(self, computed: Mapping[str, Any]) -> dict[str, Tensor]:
        """The per-class recall vector as ``recall/<class>`` scalars, plus its minimum.

        >>> task = Classification(2, ["cat", "sea lion"])
        >>> scalars = task.scalars({"acc": torch.tensor(0.5), "recall": torch.tensor([1.0, 0.0])})
        >>> {name: float(value) for name, value in scalars.items()}
        {'acc': 0.5, 'recall/cat': 1.0, 'recall/sea_lion': 0.0, 'min_recall': 0.0}
        """
        scalars = {k: v for k, v in super().scalars(computed).items() if k != "recall"}
        recall = computed["recall"]
        scalars.update({f"recall/{n}": r for n, r in zip(self.class_names, recall, strict=True)})
        scalars["min_recall"] = recall.min()
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
