"""The run protocol: what one training run does, from its config to its records.

``train`` is one run: seed and data, the experiment (model, loss, optimizer) checked and
preflighted, callbacks, loggers with the run's hyperparameters, fit, test, final records.
``train.py`` runs it once per job; a lockstep group (``trainer.lockstep``) runs the same steps for
each of its variants around one shared fit and test.
"""

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import get_class, instantiate
from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from trainer.config import ConfigError
from trainer.module import LossExperiment
from trainer.preemption import handlers_restored
from trainer.preflight import check_run, preflight
from trainer.records import (
    StatusRecord,
    build_loggers,
    final_metrics,
    first_stop_reason,
    log_end,
    log_start,
    metric_tags,
    nonfinite_counts,
    read_status,
    recorded_status,
    selection,
    task_record,
    variant_hparams,
)
from trainer.tasks import Task, build_task

log = logging.getLogger(__name__)


def train(
    cfg: DictConfig, choices: Mapping[str, Any], overrides: Sequence[str], in_sweep: bool
) -> dict[str, float]:
    """One run of ``cfg`` (resolved; ``choices`` and ``overrides`` are Hydra's for the job,
    ``in_sweep`` whether it is one of a multirun's): fit, test, and the records in its run dir;
    returns its final metrics."""
    output_dir = Path(cfg.paths.output_dir)
    continue_if_preempted(cfg, output_dir)
    resumed = cfg.resume is not None
    with handlers_restored(), recorded_status(output_dir, resumed) as status:
        check_accelerator(cfg.trainer)
        datamodule, task = seed_and_data(cfg)
        experiment = build_experiment(cfg, choices, datamodule, task, status)
        callbacks = [instantiate(node) for node in callback_nodes(cfg)]
        loggers = start_records(cfg, choices, overrides, metric_tags(task), status, in_sweep)
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)

        # a checkpoint holds tensors and plain values only: loaded without unpickling code
        trainer.fit(experiment, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
        # the test loop resets what fit logged: take it first
        fit_metrics = final_metrics(trainer.callback_metrics) | nonfinite_counts(callbacks)
        tested = weights_to_test(trainer.checkpoint_callback, cfg.test_ckpt)
        if not cfg.skip_test:  # search trials: the test split never guides a search
            trainer.test(experiment, datamodule=datamodule, ckpt_path=tested, weights_only=True)
        metrics = fit_metrics | final_metrics(trainer.callback_metrics)
        chosen = selection(trainer.checkpoint_callback, task, tested, fit_metrics)
        end_records(status, loggers, trainer.global_step, metrics, callbacks, chosen)
    log.info("run dir: %s", output_dir)
    return metrics


def continue_if_preempted(cfg: DictConfig, output_dir: Path) -> None:
    """A run whose dir says it was preempted (a requeued cluster job, a sweep started again with
    the same ``hydra.sweep.dir``) continues from its checkpoint, as ``resume=<its dir>`` would:
    no option needed. A run given ``resume`` or ``ckpt_path`` is left as it was given."""
    if cfg.resume is not None or cfg.ckpt_path is not None:
        return
    if read_status(output_dir).get("status") == "preempted":
        log.info("%s was preempted: it continues from its checkpoint", output_dir)
        cfg.resume = str(output_dir)


def check_accelerator(trainer_cfg: DictConfig) -> None:
    """``trainer.accelerator=gpu`` (``trainer=gpu``) on a machine without one is one line, before
    anything is built (Lightning would fail in its accelerator connector)."""
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if accelerator not in ("gpu", "cuda", "mps"):
        return
    found = CUDAAccelerator.is_available() or (
        accelerator != "cuda" and MPSAccelerator.is_available()
    )
    if not found:
        raise ConfigError(
            f"trainer.accelerator={accelerator}, but torch finds no GPU on this machine: "
            "leave trainer=gpu out (accelerator auto uses a GPU when there is one)"
        )


def seed_and_data(cfg: DictConfig) -> tuple[L.LightningDataModule, Task]:
    """The seeded start of a run: its datamodule and the task the data declares."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    return datamodule, build_task(datamodule)


def build_experiment(
    cfg: DictConfig,
    choices: Mapping[str, Any],
    datamodule: L.LightningDataModule,
    task: Task,
    status: StatusRecord,
) -> LossExperiment:
    """The run's model, loss and optimizer, after ``status.json`` says what task it is and the
    loss and the model were checked against the data; preflighted on the first batches."""
    status.update(task_record(task, cfg.test_ckpt))
    check_run(cfg, choices, task.name)
    experiment = LossExperiment.from_config(cfg, datamodule, task)
    preflight(experiment, datamodule)
    return experiment


def start_records(
    cfg: DictConfig,
    choices: Mapping[str, Any],
    overrides: Sequence[str],
    tags: Sequence[str],
    status: StatusRecord,
    in_sweep: bool,
) -> list[Logger]:
    """The run's loggers, given its hyperparameters before fit (``tags``: its metric tags, which
    ``status.json`` keeps too: a sweep's TensorBoard experiment names them), so a killed or still
    running job shows them too; a logger's failures become warnings. ``in_sweep``: the job is one
    of a multirun's, whose TensorBoard experiment the sweep writes when it ends."""
    status.update(metric_tags=list(tags))
    loggers = build_loggers(cfg.logger, status.warn)
    log_start(loggers, variant_hparams(cfg, choices, overrides), tags, status.warn, in_sweep)
    return loggers


def end_records(
    status: StatusRecord,
    loggers: Sequence[Logger],
    step: int,
    metrics: Mapping[str, float],
    callbacks: Sequence[L.Callback],
    chosen: Mapping[str, Any],
) -> None:
    """The final metrics to the loggers, and to ``status.json`` how the run ended (completed, or
    stopped by a callback and why), its metrics and which weights were tested (``chosen``)."""
    log_end(loggers, step, metrics, status.warn)
    stop_reason = first_stop_reason(callbacks)
    status.update(
        status="stopped" if stop_reason else "completed",
        stop_reason=stop_reason,
        metrics=metrics,
        selection=dict(chosen),
    )


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
