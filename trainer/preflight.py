"""Checks before training: the loss and the model fit the task, the settings are valid, and the
first training batch and two validation samples go through the model and the loss."""

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from losses.checks import value_checks
from trainer.config import ConfigError, check_loss_fits, check_model_fits


def check_run(cfg: DictConfig, choices: Mapping[str, Any], task: str) -> None:
    """What can be checked before training beyond each object's own checks; ``choices``: the
    config group choices (``loss``, ``model``, ``data``) the messages name."""
    check_loss_fits(choices["loss"], cfg.loss, choices["data"], task)
    check_model_fits(choices["model"], cfg.model, choices["data"], task)
    if cfg.test_ckpt not in ("best", "last"):
        raise ConfigError(f"test_ckpt: expected best or last, got {cfg.test_ckpt!r}")


def preflight(module: L.LightningModule, datamodule: L.LightningDataModule) -> None:
    """The first training batch and two validation samples through the model and the loss, in
    eval mode (BatchNorm statistics stay untouched), before training: a loss that cannot take the
    model's outputs (shape, dtype, an SSIM window larger than the images) or the data's targets
    (a class index out of range, a mask outside [0, 1], an inverted box) fails here with its own
    one-line message instead of at the first step. Inside ``value_checks()`` the losses check
    target values on whatever device the tensors are on, not only on CPU."""
    datamodule.setup()
    first_train_batch = next(iter(datamodule.train_dataloader()))
    val_samples = datamodule.splits["val"].__getitems__([0, 1])
    module.eval()
    # a loss with random parts (random triplet mining) must not move the run's random stream
    with torch.no_grad(), torch.random.fork_rng(devices=[]), value_checks():
        for inputs, target in (first_train_batch, val_samples):
            module.loss(module(inputs), target)
    module.train()
