"""The lockstep launcher: the jobs of a sweep that differ only in the loss train as one group.

    python train.py -m data=regression loss=mse,l1,huber hydra/launcher=lockstep
    python train.py -m suite=seg_imbalance hydra/launcher=lockstep

Jobs whose overrides are equal once the ``loss`` group and the ``loss.*`` values are left out
form a group (a suite's variants at one seed, a grid's points at one learning rate), and each
group trains in one process and one pass over the data (``trainer/lockstep/``); groups run
one after another, at most ``max_variants`` jobs each. A job that has no partner, or whose
config cannot train in lockstep (several devices, fp16 loss scaling, a given ``resume`` or
``ckpt_path``, ``nan_policy=raise``, a callback that cannot serve one variant), runs as an
ordinary job, with one log line saying why.

A preempted group (every training variant checkpointed, ``trainer/lockstep/preemption.py``) ends
the sweep's process as ``train.py`` does, its signal handed over to whoever requeues the job; the
same command with the same ``hydra.sweep.dir`` continues the group from its variants'
checkpoints, or, where it cannot continue as a group, runs its jobs alone (each preempted one
continuing from its own checkpoint), with one log line saying why.

Hydra's per-job bookkeeping is Hydra's own: every job of a group goes through ``run_job``, which
makes its run dir, writes ``.hydra/`` and sets ``HydraConfig`` while the job's config is resolved
into a plain one (its ``${hydra:runtime.output_dir}`` and the rest), so K jobs in one process
never share a Hydra config. The group trains once every job is resolved; the job returns come
back in the order of the jobs, each the value ``train.py``'s main would have returned.
Hydra's ``on_job_end`` callbacks therefore see a grouped job before it trained (the project's
own callback acts on the multirun's end).

Hydra imports every plugin module at each start (``--help`` too): the training runtime
(``trainer.lockstep``, Lightning) is imported in :meth:`LockstepLauncher.launch`, where it trains.
"""

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from trainer.preemption import Preempted, hand_over
from trainer.search.trials import objective

log = logging.getLogger(__name__)


def is_loss_override(override: str) -> bool:
    """``loss=focal``, ``loss.gamma=2``, ``+loss.x=1``, ``~loss.alpha``: what a group's jobs may
    differ in."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key == "loss" or key.startswith("loss.")


def group_key(overrides: Sequence[str]) -> tuple[str, ...]:
    """What a job's group is known by: its overrides but the loss's and its run dir's name."""
    return tuple(
        sorted(o for o in overrides if not is_loss_override(o) and not o.startswith("hydra.sweep."))
    )


def lockstep_groups(job_overrides: Sequence[Sequence[str]], max_variants: int) -> list[list[int]]:
    """The jobs' indices in groups: same :func:`group_key`, in order of first appearance, split
    into chunks of at most ``max_variants``.

    >>> lockstep_groups([["loss=mse", "seed=0"], ["loss=l1", "seed=0"], ["loss=mse", "seed=1"]], 8)
    [[0, 1], [2]]
    """
    by_key: dict[tuple[str, ...], list[int]] = {}
    for index, overrides in enumerate(job_overrides):
        by_key.setdefault(group_key(overrides), []).append(index)
    return [
        members[i : i + max_variants]
        for members in by_key.values()
        for i in range(0, len(members), max_variants)
    ]


class LockstepLauncher(Launcher):
    # every job of a batch is composed before any trains: a job that cannot compose fails the
    # batch before training starts, so the suite sweeper leaves Hydra's own early check out
    composes_every_job_first = True

    def __init__(self, max_variants: int = 16) -> None:
        if max_variants < 1:
            raise ValueError(f"lockstep: expected max_variants >= 1, got {max_variants}")
        self.max_variants = max_variants
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from trainer.lockstep import lockstep_blocker

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        configs = [
            self._job_config(list(o), initial_job_idx + i) for i, o in enumerate(job_overrides)
        ]
        returns: list[JobReturn | None] = [None] * len(job_overrides)
        groups = lockstep_groups(job_overrides, self.max_variants)
        log.info("Launching %d jobs in %d lockstep groups", len(job_overrides), len(groups))
        for members in groups:
            blocker = (
                "no other job differs from it only in the loss"
                if len(members) == 1
                else lockstep_blocker(configs[members[0]])
            )
            if blocker:
                for index in members:
                    log.info(
                        "\t#%d alone (%s): %s",
                        initial_job_idx + index,
                        blocker,
                        " ".join(filter_overrides(job_overrides[index])),
                    )
                    returns[index] = self._run(configs[index], self.task_function)
            else:
                grouped = self._run_group([configs[i] for i in members])
                for index, ret in zip(members, grouped, strict=True):
                    returns[index] = ret
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return returns

    def _job_config(self, overrides: list[str], index: int) -> DictConfig:
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config):
            config.hydra.job.id = index
            config.hydra.job.num = index
        return config

    def _run(self, config: DictConfig, task_function: TaskFunction) -> JobReturn:
        return run_job(
            hydra_context=self.hydra_context,
            task_function=task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )

    def _run_group(self, configs: Sequence[DictConfig]) -> list[JobReturn]:
        """Each job through ``run_job`` (run dir, ``.hydra/``, ``HydraConfig``) with a task that
        only resolves its config (a preempted job's to continue from its checkpoint); then the
        group trains, and each return gets its objective. A group that cannot continue as a
        group runs its jobs alone, each preempted one continuing from its own checkpoint."""
        from trainer.lockstep import Variant
        from trainer.lockstep.preemption import continuation_blocker
        from trainer.run import continue_if_preempted

        variants: list[Variant] = []

        def resolve(task_cfg: DictConfig) -> None:
            continue_if_preempted(task_cfg, Path(task_cfg.paths.output_dir))
            resolved = OmegaConf.create(OmegaConf.to_container(task_cfg, resolve=True))
            hydra = HydraConfig.get()
            variants.append(
                Variant(resolved, dict(hydra.runtime.choices), list(hydra.overrides.task))
            )

        returns = [self._run(config, resolve) for config in configs]
        preempted = [v.cfg.resume is not None for v in variants]
        if blocker := continuation_blocker(preempted, [v.output_dir for v in variants]):
            for ret in returns:
                log.info("\t#%s alone (%s)", ret.hydra_cfg.hydra.job.num, blocker)
            return [self._run(config, self.task_function) for config in configs]
        for ret, variant in zip(returns, variants, strict=True):
            log.info("\t#%s in lockstep: %s", ret.hydra_cfg.hydra.job.num, variant.output_dir)
        self._train(variants, returns)
        for ret, variant in zip(returns, variants, strict=True):
            ret.return_value = objective(variant.output_dir)
        return returns

    def _train(self, variants: Sequence, returns: Sequence[JobReturn]) -> None:
        """The group's training, its log lines in each job's log file. A failed group is in each
        status.json and the sweep goes on, as train.py's main in a multirun; a preempted one ends
        the sweep's process, as train.py's main does, after handing its signal over."""
        from trainer.lockstep import train_lockstep

        log_files = self._log_to_every_job(returns)
        try:
            train_lockstep(variants)
        except Preempted as stop:
            # each variant's status.json says how the preemption left it: the signal
            # goes on to whoever requeues the job (submitit, SLURM), and the process ends (the
            # sweep's other groups would be preempted too)
            hand_over(stop)
            sys.exit(
                f"train.py: lockstep group {stop}; every variant's checkpoint is in its run dir: "
                f"the same command with hydra.sweep.dir={self.config.hydra.sweep.dir} continues it"
            )
        except Exception:
            log.exception("lockstep group failed; the sweep goes on")
        finally:
            for handler in log_files:
                logging.getLogger().removeHandler(handler)
                handler.close()

    def _log_to_every_job(self, returns: Sequence[JobReturn]) -> list[logging.Handler]:
        """The group's log lines into each job's own log file (``<run dir>/<job name>.log``)."""
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        handlers = []
        for ret in returns:
            hydra = ret.hydra_cfg.hydra
            handler = logging.FileHandler(Path(hydra.runtime.output_dir) / f"{hydra.job.name}.log")
            handler.setFormatter(
                logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
            )
            logging.getLogger().addHandler(handler)
            handlers.append(handler)
        return handlers
