"""Lockstep: train K loss variants in one process, one pass over the data, paired by construction.

A loss comparison is K runs that differ only in the loss. The lockstep launcher
(``hydra/launcher=lockstep``, ``hydra_plugins/losscmp/lockstep_launcher.py``) groups such jobs and
hands each group to :func:`train_lockstep`: one Trainer, one data pass, one validation and test
loop, with the K experiments (model + loss + metrics, each a :class:`LossExperiment`) side by
side in one :class:`LockstepExperiment`. Every batch goes through every variant's model in turn;
one backward pass through the sum of the K losses gives each model its own gradients (the
models share no parameter, and the sum's gradient with respect to each loss is exactly 1), and
one optimizer holds one parameter group per variant, so each variant's update is the update of
its sequential run.

How the variants are batched, by measurement on the 2-core CPU this project is developed on:
the K models run one after another inside each step rather than stacked into one batched model
(``torch.func.stack_module_state`` + ``vmap``, or grouped convolutions). Stacking 8 MLPs under
``vmap`` was no faster than the loop (about 5 ms per forward-backward step either way,
``scripts/bench_lockstep.py --stacking``), and at these model sizes the framework's per-step
and per-job work, not the arithmetic, is the cost. Running the models as they are also keeps
what stacking would have to rebuild: BatchNorm running statistics per variant (in-place
updates do not work under ``vmap``), every shipped model without a stacked twin, Lightning
moving real modules to the device. On a GPU, where one small model leaves the device idle,
stacking may pay; it is not implemented.

What stays the sequential run's, per variant:

- **Trajectory.** The same seed gives the same initial weights (each variant's model is built
  from the random state its sequential run has after seeding and building the data), the same
  batches (the samplers draw from their own seeded generators), and the same random numbers
  inside the step: every variant's forward pass and loss start from the same random state
  (``torch.random.fork_rng``), so dropout masks and random mining draws are paired across
  variants. AdamW's update is per parameter, so one optimizer with K groups steps each group
  as K optimizers would; the scheduler scales every group alike. ``tests/test_lockstep.py``
  checks weights and metrics against sequential runs on every task.
- **Files.** Each variant has its own run dir with ``.hydra/`` (written by Hydra's ``run_job``),
  ``status.json``, its own loggers (TensorBoard events with every scalar, picture and the
  HParams entry, under the names a sequential run uses), ``nonfinite.json`` and checkpoints at
  the same cadence in the sequential layout, so ``resume=`` can continue a variant on its own.
- **Non-finite values.** Each variant has its own guard: a skipped step drops only that
  variant's gradients (its parameter group is left out of the update, moments and step count
  included); a stopped variant is masked out of the rest of training while the others go on.
  Gradient clipping, when configured, is per variant.

Names: in the Trainer's logged values a variant's names carry its prefix (``variant3/val/dice``)
and its parameter group is named ``variant3`` (``lr-AdamW/variant3``); :class:`VariantLoggers`
strips them on the way to that variant's loggers, and :class:`VariantCheckpointIO` writes each
variant's part of a checkpoint under the sequential run's keys.
"""

import logging
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig
from torch import Tensor, nn

from trainer.callbacks import Throughput, VariantCallback, variant_prefix, variant_state_key
from trainer.module import LogFn, LossExperiment, Scope
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
    selection,
    task_record,
    tolerate_logger_failures,
    variant_hparams,
)
from trainer.run import callback_nodes, weights_to_test
from trainer.tasks import build_task

log = logging.getLogger(__name__)

# callbacks one instance of which serves the whole group: what they show or log is the group's
# own (the shared data pass's progress and samples/s) or named per parameter group (learning
# rates)
SHARED_CALLBACKS = (LearningRateMonitor, ProgressBar, Throughput)
SINGLE_DEVICE_STRATEGIES = ("auto", "single_device")


def variant_name(variant: int) -> str:
    return variant_prefix(variant).rstrip("/")


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


class LockstepExperiment(L.LightningModule):
    """K experiments trained side by side on the same batches, in one Lightning module.

    The experiments are submodules, so Lightning moves them (parameters, buffers, metric
    states) to the device. A variant stopped by its non-finite guard is masked out: no forward
    pass, no gradient (its parameter group skips the update), no validation, no checkpoint.
    """

    def __init__(
        self,
        experiments: Sequence[LossExperiment],
        run_dirs: Sequence[Path],
        checkpoint_dirs: Sequence[Path],
        loggers: Sequence[Sequence[Logger]],
    ) -> None:
        super().__init__()
        self.variants = nn.ModuleList(experiments)
        self.run_dirs = list(run_dirs)
        self.checkpoint_dirs = list(checkpoint_dirs)
        self.variant_loggers = [list(lgs) for lgs in loggers]
        self.active = [True] * len(experiments)

    def scope(self, variant: int | None = None) -> Scope:
        if variant is None:
            raise ValueError("lockstep: each callback of a group serves one variant (variant=k)")
        return Scope(
            self.variants[variant],
            self.variant_loggers[variant],
            self.run_dirs[variant],
            self.checkpoint_dirs[variant],
            partial(self.stop_variant, variant),
        )

    def log_variant(
        self, variant: int, name: str, value: Any, prog_bar: bool = False, **options: Any
    ) -> None:
        """``self.log`` under the variant's name; only the first variant in the progress bar."""
        self.log(
            f"{variant_prefix(variant)}{name}", value, prog_bar=prog_bar and variant == 0, **options
        )

    def stop_variant(self, variant: int) -> None:
        self.active[variant] = False
        if not any(self.active):
            self.trainer.should_stop = True

    def _active(self) -> list[tuple[int, LossExperiment, LogFn]]:
        return [
            (k, experiment, partial(self.log_variant, k))
            for k, experiment in enumerate(self.variants)
            if self.active[k]
        ]

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """The sum of the active variants' losses, for Lightning's one backward pass and step.

        The models share no parameter, so the sum's backward pass gives each model the gradients
        of its own loss. It holds the K graphs (activations) at once; a backward pass per variant
        right after its forward would hold one, and measured on this 2-core CPU it made the
        sweep slower (8 U-Nets: peak memory 2761 MiB down to 1924 MiB, but a 4-U-Net lockstep sweep
        took 62-64 s instead of 54-59 s, two runs each, interleaved).
        """
        active = self._active()
        losses = []
        for k, experiment, _ in active:
            # each variant draws from the random state the step starts with; the last one
            # leaves the state where one sequential step would
            forked = k != active[-1][0]
            with self._forked_rng() if forked else nullcontext():
                losses.append(experiment.train_loss(batch))
        return sum(losses)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # every variant that trained this step, one stopped in it included
        for k, experiment in enumerate(self.variants):
            experiment.log_train_step(partial(self.log_variant, k), self.trainer)

    def on_train_epoch_end(self) -> None:
        for k, experiment in enumerate(self.variants):  # a variant stopped this epoch too
            experiment.end_train_epoch(partial(self.log_variant, k))

    def is_active(self, variant: int | None = None) -> bool:
        return self.active[variant]

    def _forked_rng(self):
        cuda = self.device.type == "cuda"
        return torch.random.fork_rng(devices=[self.device] if cuda else [], device_type="cuda")

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Per variant, as each sequential run clips its own gradients."""
        if not gradient_clip_val:
            return
        for experiment in self.variants:
            grads = [p for p in experiment.parameters() if p.grad is not None]
            if gradient_clip_algorithm == "value":
                nn.utils.clip_grad_value_(grads, gradient_clip_val)
            else:
                nn.utils.clip_grad_norm_(grads, gradient_clip_val)

    def on_validation_epoch_start(self) -> None:
        for experiment in self.variants:
            experiment.val_metrics.reset()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        for _, experiment, log_fn in self._active():
            experiment.evaluate(batch, "val", log_fn)

    def on_validation_epoch_end(self) -> None:
        for _, experiment, log_fn in self._active():
            experiment.end_validation(log_fn, self.trainer.sanity_checking)

    def on_test_epoch_start(self) -> None:
        for experiment in self.variants:
            experiment.test_metrics.reset()

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        for k, experiment in enumerate(self.variants):  # stopped variants are tested too
            experiment.evaluate(batch, "test", partial(self.log_variant, k))

    def on_test_epoch_end(self) -> None:
        for k, experiment in enumerate(self.variants):
            experiment.end_test(partial(self.log_variant, k))

    def configure_optimizers(self):
        """One optimizer, one parameter group per variant (named after it), each with the
        hyperparameters its own optimizer config gives it; the first variant's scheduler."""
        # a throwaway optimizer per variant: its group holds the variant's settings
        own = [e.optimizer_factory(e.parameters()) for e in self.variants]
        groups = [{**opt.param_groups[0], "name": variant_name(k)} for k, opt in enumerate(own)]
        return self.variants[0].with_scheduler(type(own[0])(groups))


def _variant_of_name(name: str, variants: int) -> tuple[int | None, str]:
    """``variant3/val/dice`` -> (3, ``val/dice``); ``lr-AdamW/variant3`` -> (3, ``lr-AdamW``)."""
    parts = name.split("/")
    for i, part in enumerate(parts):
        if part.startswith("variant") and part[7:].isdigit() and int(part[7:]) < variants:
            return int(part[7:]), "/".join(parts[:i] + parts[i + 1 :])
    return None, name


class VariantLoggers(Logger):
    """The Trainer's one logger in a lockstep run: routes each logged value to its variant's own
    loggers under its sequential name, and the group's values (``epoch``, ``perf/``) to all."""

    def __init__(self, loggers: Sequence[Sequence[Logger]]) -> None:
        super().__init__()
        self.loggers = [list(lgs) for lgs in loggers]

    @property
    def name(self) -> str:
        return "lockstep"

    @property
    def version(self) -> int:
        return 0

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        routed: list[dict[str, float]] = [{} for _ in self.loggers]
        shared: dict[str, float] = {}
        for name, value in metrics.items():
            variant, plain = _variant_of_name(name, len(self.loggers))
            (shared if variant is None else routed[variant])[plain] = value
        # Lightning adds ``epoch`` to every call: it goes where the call's values go
        group_wide = {k: v for k, v in shared.items() if k != "epoch"}
        for own, loggers in zip(routed, self.loggers, strict=True):
            values = own | group_wide
            if values or not any(routed):
                for logger in loggers:
                    logger.log_metrics(values | shared, step=step)

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Nothing: each variant's loggers got its own hyperparameters before fit."""

    @rank_zero_only
    def save(self) -> None:
        for loggers in self.loggers:
            for logger in loggers:
                logger.save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        for loggers in self.loggers:
            for logger in loggers:
                logger.finalize(status)


def variant_checkpoint(checkpoint: Mapping[str, Any], variant: int) -> dict[str, Any]:
    """A lockstep checkpoint's part for one variant, as its sequential run would have saved it:
    the experiment's weights under the sequential keys, its parameter group's optimizer state
    and learning rates, its callbacks' states under their sequential keys."""
    own = f"variants.{variant}."
    state_dict = {
        key.removeprefix(own): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(own)
    }
    suffix = variant_state_key("", variant)
    callbacks = {}
    for key, state in checkpoint.get("callbacks", {}).items():
        if key.endswith(suffix):
            prefix = variant_prefix(variant)
            if isinstance(state, dict) and isinstance(state.get("monitor"), str):
                state = {**state, "monitor": state["monitor"].removeprefix(prefix)}
            callbacks[key.removesuffix(suffix).replace(prefix, "")] = state
        elif "@variant" not in key:
            callbacks[key] = state  # a group-wide callback's state
    sliced = dict(checkpoint)
    sliced.update(state_dict=state_dict, callbacks=callbacks)
    if "optimizer_states" in checkpoint:
        sliced["optimizer_states"] = [
            _group_state(s, variant) for s in checkpoint["optimizer_states"]
        ]
    if "lr_schedulers" in checkpoint:
        groups = len(checkpoint["optimizer_states"][0]["param_groups"])
        sliced["lr_schedulers"] = [
            _group_entries(s, variant, groups) for s in checkpoint["lr_schedulers"]
        ]
    return sliced


def _group_state(optimizer_state: Mapping[str, Any], variant: int) -> dict[str, Any]:
    """One parameter group's optimizer state, renumbered as a one-group optimizer's."""
    group = dict(optimizer_state["param_groups"][variant])
    ids = group["params"]
    group.pop("name", None)
    group["params"] = list(range(len(ids)))
    state = optimizer_state["state"]
    return {
        "state": {i: state[pid] for i, pid in enumerate(ids) if pid in state},
        "param_groups": [group],
    }


def _group_entries(scheduler_state: Mapping[str, Any], variant: int, groups: int) -> dict:
    """A scheduler's state for one parameter group: its per-group lists (``base_lrs``,
    ``_last_lr``), one entry per group, cut to the variant's."""
    return {
        key: value[variant : variant + 1]
        if isinstance(value, list) and len(value) == groups
        else value
        for key, value in scheduler_state.items()
    }


class VariantCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer for a lockstep Trainer: a checkpoint saved into a variant's
    run dir (by that variant's checkpoint callback or guard) keeps only that variant's part."""

    def __init__(self, run_dirs: Sequence[Path]) -> None:
        super().__init__()
        self.run_dirs = [Path(d).resolve() for d in run_dirs]

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        target = Path(path).resolve()
        owners = [k for k, d in enumerate(self.run_dirs) if target.is_relative_to(d)]
        if not owners:
            raise ValueError(f"lockstep: checkpoint {path} is in no variant's run dir")
        super().save_checkpoint(variant_checkpoint(checkpoint, owners[-1]), path, storage_options)


def train_lockstep(variants: Sequence[Variant]) -> None:
    """Train ``variants`` (jobs that differ only in the loss) as one group; each variant's
    ``status.json`` records how it ended, as a sequential run's would. A variant whose loss
    cannot be built or fails its preflight fails alone; the others train."""
    cfg = variants[0].cfg
    statuses = [StatusRecord.create(v.output_dir) for v in variants]
    group: list[tuple[Variant, StatusRecord, LossExperiment]] = []
    try:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = instantiate(cfg.data)
        task = build_task(datamodule)
        seeded = torch.random.get_rng_state()
        for variant, status in zip(variants, statuses, strict=True):
            status.update(task_record(task, variant.cfg.test_ckpt))
            torch.random.set_rng_state(seeded)  # the state the sequential run builds from
            try:
                check_run(variant.cfg, variant.choices["loss"], variant.choices["data"], task.name)
                experiment = LossExperiment.from_config(variant.cfg, datamodule, task)
                preflight(experiment, datamodule)
            except Exception as error:
                log.exception("lockstep: %s fails alone; the group goes on", variant.output_dir)
                status.fail(error)
                continue
            group.append((variant, status, experiment))
        if group:
            _fit_and_test(group, task, datamodule)
    except BaseException as error:
        for status in statuses if not group else [s for _, s, _ in group]:
            status.fail(error)
        raise


def _fit_and_test(
    group: Sequence[tuple[Variant, StatusRecord, LossExperiment]], task: Any, datamodule: Any
) -> None:
    cfg = group[0][0].cfg
    loggers, callbacks = [], []
    tags = metric_tags(task)  # one task: the same tags for every variant
    for k, (variant, status, _) in enumerate(group):
        variant_loggers = build_loggers(variant.cfg.logger)
        tolerate_logger_failures(variant_loggers, status.warn)
        hparams = variant_hparams(variant.cfg, variant.choices, variant.overrides)
        log_start(variant_loggers, hparams, tags, status.warn)
        loggers.append(variant_loggers)
        callbacks.append(
            [
                instantiate(node, variant=k)
                for node in callback_nodes(variant.cfg)
                if issubclass(get_class(node._target_), VariantCallback)
            ]
        )
    shared = [
        instantiate(node)
        for node in callback_nodes(cfg)
        if not issubclass(get_class(node._target_), VariantCallback)
    ]
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
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*shared, *(c for own in callbacks for c in own)],
        logger=VariantLoggers(loggers),
        plugins=[VariantCheckpointIO(run_dirs)],
    )
    log.info("lockstep: %d variants in one pass: %s", len(group), [str(d) for d in run_dirs])

    trainer.fit(module, datamodule=datamodule)
    fit_metrics = [
        final_metrics(trainer, variant_prefix(k)) | nonfinite_counts(callbacks[k])
        for k in range(len(group))
    ]
    tested = [
        weights_to_test(checkpoint, variant.cfg.test_ckpt)
        for checkpoint, (variant, _, _) in zip(checkpoints, group, strict=True)
    ]
    if not cfg.skip_test:
        for path, (_, _, experiment) in zip(tested, group, strict=True):
            if path:  # the weights the variant's sequential run would test
                experiment.load_state_dict(trainer.strategy.load_checkpoint(path)["state_dict"])
        trainer.test(module, datamodule=datamodule)
    for k, (_, status, _) in enumerate(group):
        metrics = fit_metrics[k] | final_metrics(trainer, variant_prefix(k))
        log_end(loggers[k], trainer.global_step, metrics, status.warn)
        stop_reason = first_stop_reason(callbacks[k])
        status.update(
            status="stopped" if stop_reason else "completed",
            stop_reason=stop_reason,
            metrics=metrics,
            selection=selection(checkpoints[k], task, tested[k], fit_metrics[k]),
        )
