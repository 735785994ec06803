"""Per-task metric sets, all from torchmetrics, chosen by the datamodule's ``task``.

A task turns model outputs into what its metrics consume and flattens the computed values into
named scalars for the loggers (one scalar per class for per-class recall).
"""

from collections.abc import Sequence

from torch import Tensor
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score
from torchmetrics.classification import (
    BinaryF1Score,
    BinaryJaccardIndex,
    BinaryPrecision,
    BinaryRecall,
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassRecall,
)
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from trainer.metrics import BoxIoU, RetrievalMetrics


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

    def embeddings(self, metrics: MetricCollection) -> tuple[Tensor, Tensor] | None:
        """The split's embeddings and labels for TensorBoard's projector, or None."""
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


class Regression(Task):
    """MAE, RMSE and R² over all predicted values of the split."""

    name = "regression"
    monitor = "mae"
    mode = "min"

    def metrics(self) -> MetricCollection:
        return MetricCollection(
            {"mae": MeanAbsoluteError(), "rmse": MeanSquaredError(squared=False), "r2": R2Score()}
        )

    def update(self, metrics: MetricCollection, outputs: Tensor, target: Tensor) -> None:
        metrics.update(outputs.float().flatten(), target.flatten())


class Boxes(Task):
    """Mean IoU of the predicted boxes, the share with IoU >= 0.5, and the coordinates' MAE."""

    name = "boxes"
    monitor = "iou"

    def metrics(self) -> MetricCollection:
        return MetricCollection({"box": BoxIoU(threshold=0.5), "coord_mae": MeanAbsoluteError()})

    def update(self, metrics: MetricCollection, outputs: Tensor, target: Tensor) -> None:
        metrics["box"].update(outputs, target)
        metrics["coord_mae"].update(outputs.float(), target)


class Retrieval(Task):
    """Recall@1, recall@5 and mAP of the split's embeddings against the split itself."""

    name = "retrieval"
    monitor = "recall@1"

    def metrics(self) -> MetricCollection:
        return MetricCollection({"retrieval": RetrievalMetrics(ks=(1, 5))})

    def embeddings(self, metrics: MetricCollection) -> tuple[Tensor, Tensor]:
        return metrics["retrieval"].gathered()


class Restoration(Task):
    """PSNR and SSIM (torchmetrics, data range 1) of the restored images."""

    name = "restoration"
    monitor = "psnr"

    def metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "psnr": PeakSignalNoiseRatio(data_range=1.0),
                "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
            }
        )

    def update(self, metrics: MetricCollection, outputs: Tensor, target: Tensor) -> None:
        metrics.update(outputs.float().clamp(0, 1), target)

    def picture_rows(self, inputs: Tensor, target: Tensor, outputs: Tensor) -> list[Tensor]:
        """Noisy input, restored, clean."""
        return [inputs.clamp(0, 1), outputs.clamp(0, 1), target]


TASKS = {
    task.name: task
    for task in (Classification, Segmentation, Regression, Boxes, Retrieval, Restoration)
}


def build_task(datamodule) -> Task:
    """The task object for a datamodule, by the ``task`` name it declares."""
    builders = {
        "classification": lambda dm: Classification(dm.num_classes, dm.class_names),
        "segmentation": lambda dm: Segmentation(),
        "regression": lambda dm: Regression(),
        "boxes": lambda dm: Boxes(),
        "retrieval": lambda dm: Retrieval(),
        "restoration": lambda dm: Restoration(),
    }
    if datamodule.task not in builders:
        raise ValueError(f"no metric set for task {datamodule.task!r}; known: {sorted(builders)}")
    return builders[datamodule.task](datamodule)
