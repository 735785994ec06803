"""The run protocol: what one training run does, from its config to its records."""

from hydra.utils import get_class
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from omegaconf import DictConfig


def callback_nodes(cfg: DictConfig) -> list[DictConfig]:
    """The run's callback configs (``callbacks.*``), less the unset ones, and less the progress bar
    when ``trainer.enable_progress_bar`` is false: that flag is how runs turn the bar off, and
    Lightning refuses a progress bar callback with it."""
    shown = cfg.trainer.get("enable_progress_bar", True)
    return [
        node
        for node in cfg.callbacks.values()
        if node is not None and (shown or not issubclass(get_class(node._target_), ProgressBar))
    ]


def weights_to_test(checkpoint: ModelCheckpoint | None, which: str) -> str | None:
    """``best`` -> the ``checkpoint`` callback's best checkpoint, if validation ever ran; ``last``
    (or no best) -> the weights in memory, which are the last ones.

    A checkpoint callback that monitors nothing (``callbacks.checkpoint`` removed, so the trainer's
    first checkpoint callback is ``last_checkpoint``) has no best: its "best" is the latest."""
    if checkpoint is None or checkpoint.monitor is None:
        return None
    best = checkpoint.best_model_path
    return best if which == "best" and best else None
