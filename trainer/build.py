"""What ``train.py`` needs beyond Hydra: data-filled instantiation, the loss/task check, run
names, final HParams and the run's recorded status."""

import inspect
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, ListConfig, OmegaConf

from datasets.mnist import DataError
from losses._core import Loss

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


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
        for key in node:
            _fill_from_data(node._get_node(key), provided)
    elif isinstance(node, ListConfig):
        for item in node:
            _fill_from_data(item, provided)


def instantiate_with_data(cfg: DictConfig, provided: Mapping[str, Any]) -> Any:
    """``hydra.utils.instantiate`` after filling data-dependent arguments (``_fill_from_data``)."""
    cfg = cfg.copy()
    with open_dict(cfg):
        _fill_from_data(cfg, provided)
    return instantiate(cfg, _convert_="all")


@contextmanager
def open_dict(cfg: DictConfig) -> Iterator[None]:
    struct = OmegaConf.is_struct(cfg)
    OmegaConf.set_struct(cfg, False)
    try:
        yield
    finally:
        OmegaConf.set_struct(cfg, struct)


def declared_tasks(loss_cfg: DictConfig) -> set[str]:
    """Tasks a loss config fits: its class's ``tasks``, or, for a loss made of other losses
    (``combo``), the tasks all its component losses fit."""
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
        for key in node:
            yield from _target_nodes(node._get_node(key))


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


# What a user's input can cause; anything else is a bug and keeps its traceback. The first ones
# name the loss, dataset or setting themselves; the others get their type as a prefix.
SELF_EXPLAINED = (ValueError, TypeError, ConfigError, DataError)
USER_ERRORS = (*SELF_EXPLAINED, LookupError, OSError)


def root_cause(error: BaseException) -> BaseException:
    """The original error behind Hydra's instantiation wrappers."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def one_line(error: BaseException) -> str | None:
    """``"dice: expected eps > 0.0, got -1"`` for a user error (one line), None for a bug.

    >>> from hydra.errors import InstantiationException
    >>> try:
    ...     try:
    ...         raise ValueError("dice: expected eps > 0.0, got -1")
    ...     except ValueError as e:
    ...         raise InstantiationException("Error in call to target 'DiceLoss'") from e
    ... except InstantiationException as e:
    ...     print(one_line(e))
    dice: expected eps > 0.0, got -1
    """
    cause = root_cause(error)
    if not isinstance(cause, USER_ERRORS):
        return None
    message = " ".join(str(cause).split()) or type(cause).__name__
    return message if isinstance(cause, SELF_EXPLAINED) else f"{type(cause).__name__}: {message}"


def unknown_choice(args: list[str], conf_dir: Path = CONF_DIR) -> str | None:
    """One line naming the first ``group=option`` argument whose option has no config, with the
    choices; None when all exist. Sweeps (``loss=ce,focal``) are checked option by option. With
    an extra ``hydra.searchpath`` the options may live elsewhere: Hydra itself reports those.

    >>> unknown_choice(["loss=dice", "loss=no_such"])
    "unknown loss 'no_such'; choose one of: balanced_bce, bce, ..."
    """
    if any(arg.startswith("hydra.searchpath") for arg in args):
        return None
    for arg in args:
        group, _, options = arg.lstrip("+").partition("=")
        if (
            not options
            or "." in group
            or group.startswith("hydra")
            or not (conf_dir / group).is_dir()
        ):
            continue
        known = sorted(path.stem for path in (conf_dir / group).glob("*.yaml"))
        for option in options.split(","):
            if option.strip("'\"") not in known and option != "null":
                return f"unknown {group} {option!r}; choose one of: {', '.join(known)}"
    return None


def unwritable_output(args: list[str]) -> str | None:
    """One line when the run's output directory cannot be created, checked before Hydra creates it
    (and fails with a traceback): ``hydra.run.dir``/``hydra.sweep.dir``/``paths.log_dir`` if given,
    else ``outputs``. Creating it early costs nothing: the run would create it anyway.

    >>> unwritable_output(["hydra.run.dir=/proc/no/such/run"])
    'cannot create the output directory /proc/no/such/run: FileNotFoundError'
    """
    keys = ("hydra.run.dir=", "hydra.sweep.dir=", "paths.log_dir=")
    directory = next((a.split("=", 1)[1] for a in args if a.startswith(keys)), "outputs")
    if "${" in directory:  # interpolated: Hydra resolves it
        return None
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        probe = Path(directory) / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as error:
        return f"cannot create the output directory {directory}: {type(error).__name__}"
    return None


def run_name(loss: str, overrides: list[str] | ListConfig) -> str:
    """``focal-gamma=2-alpha=0.25-seed=1``: the loss, then the job's overrides, ``loss.`` dropped.

    Registered as the ``run_name`` resolver and used for run and sweep directories.

    >>> run_name("focal", ["loss=focal", "loss.gamma=2", "loss.alpha=0.25", "seed=1"])
    'focal-gamma=2-alpha=0.25-seed=1'
    """
    parts = [loss]
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in ("loss", "suite", "resume", "ckpt_path") or key.startswith(("hydra.", "paths.")):
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
    path = last_checkpoint(run_dir)
    return (
        None
        if path is None
        else int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])
    )


def register_resolvers() -> None:
    """The config's own resolvers (run names, resume); Hydra resolves run dirs with them."""
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
    OmegaConf.register_new_resolver(
        "or_else", lambda value, default: default if value is None else value, replace=True
    )
    OmegaConf.register_new_resolver("last_checkpoint", last_checkpoint, replace=True)
    OmegaConf.register_new_resolver("checkpoint_step", checkpoint_step, replace=True)


class TaskCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that monitors the task's own metric (``val/acc``, ``val/dice``, ...)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        task = pl_module.task
        self.monitor = f"val/{task.monitor}"
        self.mode = task.mode
        self.kth_value = torch.tensor(-torch.inf if task.mode == "max" else torch.inf)
        super().setup(trainer, pl_module, stage)


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


def weights_to_test(trainer: L.Trainer, which: str) -> str | None:
    """``best`` -> the best checkpoint, if validation ever ran; ``last`` (or no best) -> the
    weights in memory, which are the last ones."""
    best = getattr(trainer.checkpoint_callback, "best_model_path", "")
    return best if which == "best" and best else None


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
