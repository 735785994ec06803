"""The binary segmentation task: one logit per pixel ``[N, 1, H, W]`` against a float {0, 1} mask
of the same shape."""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryF1Score,
    BinaryJaccardIndex,
    BinaryPrecision,
    BinaryRecall,
)

from trainer.metrics import (
    BestThresholdDice,
    DicePerImage,
    PriorCrossEntropy,
    ThresholdCounts,
    segmentation_curve_metrics,
)
from trainer.tasks.base import Task, register

# the metrics of the mask the logits predict (logit > 0, i.e. probability 0.5); the others
# take the probabilities
MASK_METRICS = ("dice", "iou", "precision", "recall", "dice_per_image")
# steps of 0.01, and at most the 127 points TensorBoard's PR curve keeps
THRESHOLDS = 101
# the example's training pixel counts [background, foreground]: 2 % foreground, as in
# data=seg_imbalanced
EXAMPLE_PIXEL_COUNTS = (980, 20)


@register
class Segmentation(Task):
    """Foreground Dice (= F1), IoU (Jaccard), precision and recall over all pixels of the split at
    the 0.5 threshold; the mean Dice per image at 0.5 (``dice_per_image``, images with an empty
    target left out); pixel AP, pixel AUROC and pixel ECE (15 bins); Dice and IoU at the
    threshold that maximises the validation Dice, which validation chooses and the test applies
    (``dice@val_threshold``); the binary cross-entropy of the training foreground share as a
    constant prediction (``prior_loss``, what a model that learned nothing gets); the PR curve of
    the pixels.

    ``class_counts``: the training masks' ``[background, foreground]`` pixel counts (the
    datamodule's ``data_stats["class_counts"]``).
    """

    name = "segmentation"
    monitor = "dice"
    unit_metrics = ("dice", "dice_per_image", "ece", "iou", "pixel_ap", "pixel_auroc")
    unit_metrics += ("precision", "recall")
    plain_loss = "bce"

    def __init__(self, class_counts: Sequence[int]) -> None:
        if len(class_counts) != 2:
            raise ValueError(
                "segmentation: expected class_counts [background, foreground] pixels, "
                f"got {list(class_counts)}"
            )
        self.class_counts = [int(n) for n in class_counts]

    @classmethod
    def from_datamodule(cls, datamodule: Any) -> "Segmentation":
        return cls(datamodule.data_stats["class_counts"])

    @classmethod
    def example(cls) -> "Segmentation":
        return cls(EXAMPLE_PIXEL_COUNTS)

    def metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "dice": BinaryF1Score(),
                "iou": BinaryJaccardIndex(),
                "precision": BinaryPrecision(),
                "recall": BinaryRecall(),
                **dict(segmentation_curve_metrics().items(keep_base=True)),
                "thresholds": BestThresholdDice(num_thresholds=THRESHOLDS),
                "dice_per_image": DicePerImage(),
                "prior_loss": PriorCrossEntropy(self.class_counts),  # BCE of p = foreground share
            }
        )

    def update(self, metrics: MetricCollection, outputs: Tensor, target: Tensor) -> None:
        # hard predictions and probabilities, never logits: torchmetrics would guess whether
        # floats are logits or probabilities
        mask = target.long()
        predicted, probs = (outputs > 0).long(), outputs.float().sigmoid()
        for name, metric in metrics.items(keep_base=True, copy_state=False):
            metric.update(predicted if name in MASK_METRICS else probs, mask)

    def validation_choices(self) -> dict[str, float]:
        return {"threshold": 0.5}

    def choose(self, computed: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"threshold": computed["threshold@best"]}

    def test_scalars(
        self, metrics: MetricCollection, computed: Mapping[str, Any], chosen: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Dice and IoU at the validation's threshold instead of the test's own best one (which
        would tune the threshold on the test)."""
        scalars = {k: v for k, v in self.scalars(computed).items() if not k.endswith("@best")}
        at_threshold = metrics["thresholds"].at_threshold(float(chosen["threshold"]))
        return scalars | {f"{k}@val_threshold": v for k, v in at_threshold.items()}

    def pr_curves(self, metrics: MetricCollection) -> dict[str, ThresholdCounts]:
        return {"pr_curve": metrics["thresholds"].counts()}

    def picture_rows(self, inputs: Tensor, target: Tensor, outputs: Tensor) -> list[Tensor]:
        """Input, target mask, predicted probability."""
        return [inputs.clamp(0, 1), target, outputs.sigmoid()]

    def reference_batch(self, seed: int) -> tuple[Tensor, Tensor]:
        """Two 16x16 masks of one random rectangle each; logits of a fresh model (std 0.5)."""
        g = torch.Generator().manual_seed(seed)
        mask = torch.zeros(2, 1, 16, 16)
        for image, (top, left) in zip(mask, torch.randint(0, 8, (2, 2), generator=g), strict=True):
            image[0, top : top + 6, left : left + 6] = 1.0
        return torch.randn(2, 1, 16, 16, generator=g) * 0.5, mask
