"""A lockstep group through the run protocol (``trainer.run``): which jobs can group, and the
group's one fit and test around each variant's own preparation and records."""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from omegaconf import DictConfig

from trainer.callbacks import Preemption, Throughput, VariantCallback
from trainer.lockstep.group import LockstepExperiment
from trainer.lockstep.preemption import GroupPreemption, record_preemption
from trainer.lockstep.routing import VariantCheckpointIO, VariantLoggers, variant_values
from trainer.module import LossExperiment
from trainer.preemption import Preempted, handlers_restored
from trainer.records import StatusRecord, final_metrics, metric_tags, nonfinite_counts, selection
from trainer.run import (
    build_experiment,
    callback_nodes,
    end_records,
    seed_and_data,
    start_records,
    weights_to_test,
)
from trainer.tasks import Task

log = logging.getLogger(__name__)

# callbacks one instance of which serves the whole group: what they show or log is the group's
# own (the shared data pass's progress and samples/s) or named per parameter group (learning
# rates)
SHARED_CALLBACKS = (LearningRateMonitor, ProgressBar, Throughput, Preemption)
SINGLE_DEVICE_STRATEGIES = ("auto", "single_device")


@dataclass
class Variant:
    """One job of a lockstep group: its resolved config, Hydra choices and overrides."""

    cfg: DictConfig  # resolved: ``paths.output_dir`` is this job's run dir
    choices: Mapping[str, Any]
    overrides: Sequence[str]

    @property
    def output_dir(self) -> Path:
        return Path(self.cfg.paths.output_dir)


def lockstep_blocker(cfg: DictConfig) -> str | None:
    """Why jobs with this config (loss aside) cannot train in lockstep, or None when they can."""
    trainer = cfg.trainer
    if str(trainer.get("devices", 1)) != "1" or int(trainer.get("num_nodes", 1)) != 1:
        return f"trainer.devices={trainer.devices}: a lockstep group trains in one process"
    if str(trainer.get("strategy", "auto")) not in SINGLE_DEVICE_STRATEGIES:
        return f"trainer.strategy={trainer.strategy}: a lockstep group trains on one device"
    if str(trainer.get("precision", "32-true")).startswith("16"):
        return (
            f"trainer.precision={trainer.precision}: one gradient scaler would skip every "
            "variant's step when one variant overflows"
        )
    if cfg.get("resume") is not None or cfg.get("ckpt_path") is not None:
        return "resume/ckpt_path continues one run's checkpoint"
    if cfg.get("nan_policy") == "raise":
        return "nan_policy=raise would end every variant of the group at one variant's NaN"
    for name, node in cfg.callbacks.items():
        if node is None:
            continue
        cls = get_class(node._target_)
        if not issubclass(cls, (VariantCallback, *SHARED_CALLBACKS)):
            return f"callbacks.{name} ({cls.__name__}) cannot serve one variant of a group"
    return None


def train_lockstep(variants: Sequence[Variant]) -> None:
    """Train ``variants`` (jobs that differ only in the loss) as one group, through the run
    protocol's steps (``trainer.run``) for each variant; each variant's ``status.json`` records
    how it ended, as a sequential run's would. A variant whose loss cannot be built or fails its
    preflight fails alone; the others train.

    A group whose variants were preempted (their configs continue from their checkpoints:
    ``resume`` set, by ``trainer.run.continue_if_preempted``) continues as a group, those
    variants alone: the others had ended before the preemption and keep their records
    (``trainer.lockstep.preemption.continuation_blocker`` says when a group can continue)."""
    continuing = [v for v in variants if v.cfg.get("resume") is not None]
    if continuing:
        for variant in variants:
            if variant.cfg.get("resume") is None:
                log.info(
                    "lockstep: %s ended before the preemption: it keeps its record",
                    variant.output_dir,
                )
        variants = continuing
    statuses = [StatusRecord.create(v.output_dir, resumed=bool(continuing)) for v in variants]
    group: list[tuple[Variant, StatusRecord, LossExperiment]] = []
    # the process's own signal handlers back when the group ends (a preempted group's signal is
    # then handed over to them, as a sequential run's)
    with handlers_restored():
        try:
            datamodule, task = seed_and_data(variants[0].cfg)
            seeded = torch.random.get_rng_state()
            for variant, status in zip(variants, statuses, strict=True):
                torch.random.set_rng_state(seeded)  # the state the sequential run builds from
                try:
                    experiment = build_experiment(
                        variant.cfg, variant.choices, datamodule, task, status
                    )
                except Exception as error:
                    log.exception("lockstep: %s fails alone; the group goes on", variant.output_dir)
                    status.fail(error)
                    continue
                group.append((variant, status, experiment))
            if group:
                _fit_and_test(group, task, datamodule)
        except Preempted:
            raise  # each variant's record says how the preemption left it (record_preemption)
        except BaseException as error:
            for status in statuses if not group else [s for _, s, _ in group]:
                status.fail(error)
            raise


def group_callbacks(
    variants: Sequence[Variant],
) -> tuple[list[L.Callback], list[list[L.Callback]]]:
    """The group's callbacks: those one instance of which serves the whole group (the preemption
    callback made of every variant's, so that it checkpoints into each run dir), and each
    variant's own (``variant=k``), from its own config."""
    shared: list[L.Callback] = []
    own: list[list[L.Callback]] = [[] for _ in variants]
    # the variants' configs differ only in the loss: the same callbacks, in the same order
    for nodes in zip(*(callback_nodes(v.cfg) for v in variants), strict=True):
        cls = get_class(nodes[0]._target_)
        if issubclass(cls, VariantCallback):
            for k, node in enumerate(nodes):
                own[k].append(instantiate(node, variant=k))
        elif issubclass(cls, Preemption):
            shared.append(GroupPreemption([instantiate(node) for node in nodes]))
        else:
            shared.append(instantiate(nodes[0]))
    return shared, own


def _fit_and_test(
    group: Sequence[tuple[Variant, StatusRecord, LossExperiment]], task: Task, datamodule: Any
) -> None:
    cfg = group[0][0].cfg
    tags = metric_tags(task)  # one task: the same tags for every variant
    # a lockstep group is always jobs of a sweep (its launcher is a multirun's): the sweep writes
    # the TensorBoard experiment, each variant its own values
    loggers = [
        start_records(v.cfg, v.choices, v.overrides, tags, s, in_sweep=True) for v, s, _ in group
    ]
    shared, callbacks = group_callbacks([variant for variant, _, _ in group])
    checkpoints = [
        next((c for c in own if isinstance(c, ModelCheckpoint)), None) for own in callbacks
    ]
    run_dirs = [variant.output_dir for variant, _, _ in group]
    module = LockstepExperiment(
        [experiment for _, _, experiment in group],
        run_dirs,
        [Path(c.dirpath) if c else d for c, d in zip(checkpoints, run_dirs, strict=True)],
        loggers,
    )
    every_callback = [*shared, *(c for own in callbacks for c in own)]
    checkpoint_io = VariantCheckpointIO(run_dirs, every_callback)
    trainer = instantiate(
        cfg.trainer,
        callbacks=every_callback,
        logger=VariantLoggers(loggers),
        plugins=[checkpoint_io],
    )
    log.info("lockstep: %d variants in one pass: %s", len(group), [str(d) for d in run_dirs])

    def fit_metrics(k: int) -> dict[str, float]:
        return final_metrics(variant_values(trainer.callback_metrics, k)) | nonfinite_counts(
            callbacks[k]
        )

    try:
        # a preempted group continues from its variants' checkpoints: the checkpoint reader
        # puts the group's together from every variant's file (``cfg.ckpt_path`` is the first's)
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    except Preempted as stop:
        statuses = [status for _, status, _ in group]
        record_preemption(stop, statuses, callbacks, [fit_metrics(k) for k in range(len(group))])
        raise
    fitted = [fit_metrics(k) for k in range(len(group))]
    tested = [
        weights_to_test(checkpoint, variant.cfg.test_ckpt)
        for checkpoint, (variant, _, _) in zip(checkpoints, group, strict=True)
    ]
    if not cfg.skip_test:
        for path, (_, _, experiment) in zip(tested, group, strict=True):
            if path:  # the weights the variant's sequential run would test
                weights = checkpoint_io.load_part(path, weights_only=True)["state_dict"]
                experiment.load_state_dict(weights)
        trainer.test(module, datamodule=datamodule)
    for k, (_, status, _) in enumerate(group):
        metrics = fitted[k] | final_metrics(variant_values(trainer.callback_metrics, k))
        chosen = selection(checkpoints[k], task, tested[k], fitted[k])
        end_records(status, loggers[k], trainer.global_step, metrics, callbacks[k], chosen)
