"""Config helpers and the config's resolvers: data-filled instantiation, which losses fit which
task, run names, and the checkpoint a run resumes from or tests.

Light to import (no torch, no loss module at import): the command line's checks, ``--help`` and
the sweeper's dry runs use it before any training code is loaded."""

import inspect
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
CONFIG_NAME = "train"  # the primary config, conf/train.yaml, as train.py's Hydra main names it


class ConfigError(ValueError):
    """A configuration that cannot train; its message is one line that says what would fit."""


def _fill_from_data(node: Any, provided: Mapping[str, Any]) -> None:
    """Fill, in every ``_target_`` node, the constructor arguments the data provide and the config
    leaves unset or null (``class_counts`` for weighted losses, ``num_outputs`` for models)."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            signature = inspect.signature(get_class(node._target_))
            for name in signature.parameters.keys() & provided.keys():
                if node.get(name) is None:
                    node[name] = provided[name]
        for _, value in node.items_ex(resolve=False):  # interpolations left as they are
            _fill_from_data(value, provided)
    elif isinstance(node, ListConfig):
        for item in node:
            _fill_from_data(item, provided)


def instantiate_with_data(cfg: DictConfig, provided: Mapping[str, Any]) -> Any:
    """``hydra.utils.instantiate`` after filling data-dependent arguments (``_fill_from_data``)."""
    cfg = cfg.copy()
    with open_dict(cfg):
        _fill_from_data(cfg, provided)
    return instantiate(cfg, _convert_="all")


def declared_tasks(loss_cfg: DictConfig) -> set[str]:
    """Tasks a loss config fits: its class's ``tasks``, or, for a loss made of other losses
    (``combo``), the tasks all its component losses fit."""
    from losses.base import Loss  # the loss classes themselves are loaded here anyway

    own = set(get_class(loss_cfg._target_).tasks)
    if own:
        return own
    parts = [
        declared_tasks(node)
        for node in _target_nodes(loss_cfg)
        if node is not loss_cfg and issubclass(get_class(node._target_), Loss)
    ]
    return set.intersection(*parts) if parts else set()


def _target_nodes(node: Any) -> Iterator[DictConfig]:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield node
        for _, value in node.items_ex(resolve=False):
            yield from _target_nodes(value)


def losses_for_task(task: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """Names of the shipped loss configs that declare ``task``."""
    return sorted(
        path.stem
        for path in (conf_dir / "loss").glob("*.yaml")
        if task in declared_tasks(OmegaConf.load(path))
    )


def check_loss_fits(loss_name: str, loss_cfg: DictConfig, data_name: str, task: str) -> None:
    if task not in declared_tasks(loss_cfg):
        raise ConfigError(
            f"loss={loss_name} does not fit data={data_name} (task {task}); "
            f"losses that fit: {', '.join(losses_for_task(task))}"
        )


def check_model_fits(model_name: str, model_cfg: DictConfig, data_name: str, task: str) -> None:
    """A model class that declares ``tasks`` (the library models: timm's classifiers, smp's
    encoder-decoders) fits only those; the project's own models declare none and are not checked
    here (their own constructors refuse what they cannot take)."""
    fits = getattr(get_class(model_cfg._target_), "tasks", None)
    if fits is not None and task not in fits:
        raise ConfigError(
            f"model={model_name} does not fit data={data_name} (task {task}); "
            f"it fits tasks {', '.join(fits)}"
        )


# overrides that do not change what a run trains (or, for the loss, lead the name already)
RUN_NAME_SKIPS = ("loss", "suite", "resume", "ckpt_path")


def run_name(loss: str, overrides: list[str] | ListConfig) -> str:
    """``focal-gamma=2-alpha=0.25-seed=1``: the loss, then the job's overrides, ``loss.`` dropped.

    Registered as the ``run_name`` resolver and used for run and sweep directories.

    >>> run_name("focal", ["loss=focal", "loss.gamma=2", "loss.alpha=0.25", "seed=1"])
    'focal-gamma=2-alpha=0.25-seed=1'
    """
    parts = [loss]
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in RUN_NAME_SKIPS or key.startswith(("hydra.", "paths.")):
            continue
        parts.append(override.lstrip("+~").removeprefix("loss."))
    return re.sub(r"[^\w=.,+-]+", "_", "-".join(parts))[:200]


def last_checkpoint(run_dir: str | None) -> str | None:
    """``resume=RUN_DIR`` -> that run's ``checkpoints/last.ckpt`` (None without resume)."""
    if run_dir is None:
        return None
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise ConfigError(f"resume: no checkpoint to resume from at {path}")
    return str(path)


def checkpoint_step(run_dir: str | None) -> int | None:
    """The global step saved in the run's last checkpoint: TensorBoard hides (purges) what the
    interrupted run logged after it, so resumed curves carry no duplicate steps."""
    import torch  # only resumed runs read a checkpoint here

    path = last_checkpoint(run_dir)
    return (
        None
        if path is None
        else int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    )


def run_stamp() -> str:
    """The last part of a single run's dir: the time (``2026-11-23_10-00-00_123456``), or in a
    SLURM batch job ``slurm-<job id>``, so that the job, requeued after a preemption, runs the
    same command into the same dir and continues there (``trainer.run.continue_if_preempted``).
    An interactive allocation (job name ``bash`` or ``interactive``, Lightning's rule too) holds
    many runs: there, the time."""
    import os
    from datetime import datetime

    from trainer.preemption import slurm_job_id

    job = slurm_job_id()
    if job is not None and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive"):
        return f"slurm-{job}"
    return datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")


def register_resolvers() -> None:
    """The config's own resolvers (run names, resume); Hydra resolves run dirs with them."""
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
    OmegaConf.register_new_resolver(
        "or_else", lambda value, default: default if value is None else value, replace=True
    )
    OmegaConf.register_new_resolver("last_checkpoint", last_checkpoint, replace=True)
    OmegaConf.register_new_resolver("checkpoint_step", checkpoint_step, replace=True)
    # cached, as Hydra's own ${now:}: every reading of the run dir gives the same time
    OmegaConf.register_new_resolver("run_stamp", run_stamp, replace=True, use_cache=True)
