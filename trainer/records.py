"""What a run records about itself: ``status.json``, the HParams entry and the final metrics."""

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf


def _plain(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | str) else str(value)


def flat_hparams(cfg: DictConfig, choices: Mapping[str, str]) -> dict[str, Any]:
    """The run's hyperparameters for TensorBoard's HParams tab: group choices, then every value of
    the loss, data, model and optimizer configs, then the training budget and seed."""
    params: dict[str, Any] = {
        group: str(choices.get(group)) for group in ("data", "model", "loss", "optimizer")
    }
    for group in ("loss", "data", "model", "optimizer", "scheduler"):
        node = OmegaConf.to_container(cfg[group], resolve=True) if cfg.get(group) else {}
        for key, value in _flatten(node):
            if not key.split(".")[-1].startswith("_") and key != "data_dir":
                params[f"{group}.{key}"] = _plain(value)
    params.update(
        seed=cfg.seed,
        max_epochs=cfg.trainer.get("max_epochs"),
        precision=str(cfg.trainer.get("precision")),
        nan_policy=cfg.nan_policy,
    )
    return params


def _flatten(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), node


def final_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The last logged validation/test values and training loss, as plain floats."""
    return {
        name: float(value)
        for name, value in trainer.callback_metrics.items()
        if name.startswith(("val/", "test/", "train/loss_epoch", "nonfinite/", "perf/"))
        and value.numel() == 1
    }


def log_final_hparams(
    trainer: L.Trainer, hparams: dict[str, Any], metrics: dict[str, float]
) -> None:
    """HParams with the final metrics (``final/...`` tags), not Lightning's ``hp_metric = -1``;
    ``hparams.yaml`` is rewritten with them (Lightning wrote it empty at the start of fit)."""
    final = {f"final/{k}": v for k, v in metrics.items()}
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams, metrics=final, step=trainer.global_step)
        if isinstance(logger, TensorBoardLogger):
            Path(logger.log_dir, TensorBoardLogger.NAME_HPARAMS_FILE).unlink(missing_ok=True)
        logger.save()


@contextmanager
def recorded_status(output_dir: Path) -> Iterator[dict]:
    """Write ``status.json`` in the run dir: ``running``, then what the run ends as.

    The body may set ``status`` (``completed`` or ``stopped``) and add fields; an exception is
    recorded as ``failed`` with its message, then propagates.
    """
    path = Path(output_dir) / "status.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"status": "running"}
    path.write_text(json.dumps(record))
    try:
        yield record
    except BaseException as error:
        record.update(status="failed", error=f"{type(error).__name__}: {error}")
        raise
    finally:
        path.write_text(json.dumps(record, indent=2))
