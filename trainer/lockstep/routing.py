"""What routes each variant's records out of the one Trainer of a lockstep group: logged values to
the variant's own loggers under sequential names, its part of every checkpoint to its run dir."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from trainer.callbacks.variant import variant_prefix, variant_state_key


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


def variant_values(logged: Mapping[str, Any], variant: int) -> dict[str, Any]:
    """One variant's part of the group's logged values (``callback_metrics``), under its
    sequential names, with the values the whole group shares (``perf/``).

    >>> variant_values({"variant1/val/dice": 1, "variant0/val/dice": 0, "perf/x": 2}, 1)
    {'val/dice': 1, 'perf/x': 2}
    """
    prefix = variant_prefix(variant)
    return {
        name.removeprefix(prefix): value
        for name, value in logged.items()
        if name.startswith((prefix, "perf/"))
    }
