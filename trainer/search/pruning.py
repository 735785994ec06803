"""In a trial: the per-epoch validation curve it records and the median stop that prunes it."""

import json
from collections.abc import Sequence
from pathlib import Path

import lightning as L

from trainer.search.trials import CURVE_FILE


class MedianStop(L.Callback):
    """Record the task's validation metric after every validation epoch (``validation_curve.json``
    in ``dirpath``) and, given the per-epoch ``median`` of the completed trials, end the fit at
    the first epoch past ``warmup_epochs`` whose value is worse than that epoch's median.
    ``stop_reason`` (``pruned at epoch ...``) makes the run's status ``stopped``."""

    def __init__(self, dirpath: str, median: Sequence[float] | None, warmup_epochs: int) -> None:
        self.path = Path(dirpath) / CURVE_FILE
        self.median = list(median or [])
        self.warmup_epochs = warmup_epochs
        self.values: list[float] = []
        self.stop_reason: str | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the module's on_validation_epoch_end, which logs the epoch's metrics
        if trainer.sanity_checking:
            return
        task = pl_module.task
        metric = f"val/{task.monitor}"
        value = float(trainer.callback_metrics[metric])
        self.values.append(value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"metric": metric, "values": self.values}))
        epoch = len(self.values) - 1
        if epoch < self.warmup_epochs or epoch >= len(self.median):
            return
        median = self.median[epoch]
        worse = value < median if task.mode == "max" else value > median
        if worse:
            self.stop_reason = (
                f"pruned at epoch {epoch}: {metric} {value:.4g} worse than the completed "
                f"trials' median {median:.4g}"
            )
            trainer.should_stop = True
