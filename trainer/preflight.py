"""Checks before training: the loss fits the task, the settings are valid, and one batch goes
through the model and the loss."""

import lightning as L
import torch
from omegaconf import DictConfig

from trainer.config import ConfigError, check_loss_fits


def check_run(cfg: DictConfig, loss_name: str, data_name: str, task: str) -> None:
    """What can be checked before training beyond each object's own checks."""
    check_loss_fits(loss_name, cfg.loss, data_name, task)
    if cfg.test_ckpt not in ("best", "last"):
        raise ConfigError(f"test_ckpt: expected best or last, got {cfg.test_ckpt!r}")


def preflight(module: L.LightningModule, datamodule: L.LightningDataModule) -> None:
    """Two validation samples through the model and the loss, in eval mode, before training:
    a loss that cannot take the model's outputs (shape, dtype, an SSIM window larger than the
    images) fails here with its own message instead of at the first step."""
    datamodule.setup()
    inputs, target = datamodule.splits["val"].__getitems__([0, 1])
    module.eval()
    with torch.no_grad():
        module.loss(module(inputs), target)
    module.train()
