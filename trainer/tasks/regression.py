"""The regression task: predicted values ``[N, D]`` against targets of the same shape."""

from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from trainer.figures import regression_scatter_figure
from trainer.metrics import MeanPredictorSquaredError, PredictionSample
from trainer.tasks.base import Task, register

SCATTER_POINTS = 2000  # enough to see the spread, few enough to draw in a fraction of a second


@register
class Regression(Task):
    """MAE, RMSE and R² over all predicted values of the split; the MSE of the training target
    mean as a constant prediction (``prior_loss``: the plain loss, ``mse``, of a model that learned
    nothing); picture: predicted against target values of a uniform sample of them.

    ``target_mean``: the mean of every training target value (the datamodule's
    ``data_stats["target_mean"]``).
    """

    name = "regression"
    monitor = "mae"
    mode = "min"
    plain_loss = "mse"  # the loss prior_loss scores the constant prediction with
    picture_metrics = ("sample",)

    def __init__(self, target_mean: float) -> None:
        self.target_mean = float(target_mean)

    @classmethod
    def from_datamodule(cls, datamodule: Any) -> "Regression":
        return cls(datamodule.data_stats["target_mean"])

    @classmethod
    def example(cls) -> "Regression":
        return cls(target_mean=0.0)  # the reference batch's targets are standard normal

    def metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "mae": MeanAbsoluteError(),
                "rmse": MeanSquaredError(squared=False),
                "r2": R2Score(),
                "prior_loss": MeanPredictorSquaredError(self.target_mean),
                # a fixed seed: every run and every epoch shows the same values of the split
                "sample": PredictionSample(max_size=SCATTER_POINTS, seed=0),
            }
        )

    def update(self, metrics: MetricCollection, outputs: Tensor, target: Tensor) -> None:
        # R² takes one value per sample: all outputs as one column
        metrics.update(outputs.float().flatten(), target.flatten())

    def figures(self, metrics: MetricCollection) -> dict[str, Figure]:
        preds, target = metrics["sample"].compute()
        mae, r2 = float(metrics["mae"].compute()), float(metrics["r2"].compute())
        return {"pred_vs_target": regression_scatter_figure(preds, target, mae=mae, r2=r2)}

    def reference_batch(self, seed: int) -> tuple[Tensor, Tensor]:
        """32 standard-normal targets; predictions of a fresh model, near 0 (std 0.1)."""
        g = torch.Generator().manual_seed(seed)
        return torch.randn(32, 1, generator=g) * 0.1, torch.randn(32, 1, generator=g)
