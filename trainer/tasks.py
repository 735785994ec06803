"""Per-task metric sets, all from torchmetrics, chosen by the datamodule's ``task``.

A task turns model outputs into what its metrics consume and flattens the computed values into
named scalars for the loggers (one scalar per class for per-class recall).
"""

from collections.abc import Sequence

from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryF1Score,
    BinaryJaccardIndex,
    BinaryPrecision,
    BinaryRecall,
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassRecall,
)


class Task:
    """What the module needs to know about a task: its metrics and the metric that ranks runs."""

    name: str = ""
    monitor: str = ""  # metric name (without the split prefix) that ranks runs and checkpoints
    mode: str = "max"

    def metrics(self) -> MetricCollection:
        raise NotImplementedError

    def update(self, metrics: MetricCollection, outputs: Tensor, target: Tensor) -> None:
        metrics.update(outputs, target)

    def scalars(self, computed: dict[str, Tensor]) -> dict[str, Tensor]:
        return computed

    def picture_rows(self, inputs: Tensor, target: Tensor, outputs: Tensor) -> list[Tensor] | None:
        """Image rows ``[n, C, H, W]`` in [0, 1] shown each validation epoch, or None."""
        return None


class Classification(Task):
    """Accuracy, balanced accuracy (macro recall), macro F1 and the recall of every class."""

    name = "classification"
    monitor = "acc"

    def __init__(self, num_classes: int, class_names: Sequence[str]) -> None:
        self.num_classes = num_classes
        self.class_names = [str(c).replace("/", "-").replace(" ", "_") for c in class_names]

    def metrics(self) -> MetricCollection:
        c = self.num_classes
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(c, average="micro"),
                "balanced_acc": MulticlassRecall(c, average="macro"),
                "macro_f1": MulticlassF1Score(c, average="macro"),
                "recall": MulticlassRecall(c, average="none"),
            }
        )

    def scalars(self, computed: dict[str, Tensor]) -> dict[str, Tensor]:
        scalars = {k: v for k, v in computed.items() if not k.endswith("recall")}
        for key in (k for k in computed if k.endswith("recall")):
            prefix = key.removesuffix("recall")
            scalars.update(
                {
                    f"{prefix}recall/{n}": r
                    for n, r in zip(self.class_names, computed[key], strict=True)
                }
            )
            scalars[f"{prefix}min_recall"] = computed[key].min()
        return scalars


class Segmentation(Task):
    """Foreground Dice (= F1), IoU (Jaccard), precision and recall over all pixels of the split."""

    name = "segmentation"
    monitor = "dice"

    def metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "dice": BinaryF1Score(),
                "iou": BinaryJaccardIndex(),
                "precision": BinaryPrecision(),
                "recall": BinaryRecall(),
            }
        )

    def update(self, metrics: MetricCollection, outputs: Tensor, target: Tensor) -> None:
        # hard predictions: torchmetrics would guess whether floats are logits or probabilities
        metrics.update((outputs > 0).long(), target.long())

    def picture_rows(self, inputs: Tensor, target: Tensor, outputs: Tensor) -> list[Tensor]:
        """Input, target mask, predicted probability."""
        return [inputs.clamp(0, 1), target, outputs.sigmoid()]


def build_task(datamodule) -> Task:
    """The task object for a datamodule, by the ``task`` name it declares."""
    builders = {
        "classification": lambda dm: Classification(dm.num_classes, dm.class_names),
        "segmentation": lambda dm: Segmentation(),
    }
    if datamodule.task not in builders:
        raise ValueError(f"no metric set for task {datamodule.task!r}; known: {sorted(builders)}")
    return builders[datamodule.task](datamodule)
