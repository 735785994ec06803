"""What routes each variant's records out of the one Trainer of a lockstep group, and back in:
logged values to the variant's own loggers under sequential names, its part of every checkpoint
to its run dir, and the group's checkpoint put together again from its variants' parts."""

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from trainer.callbacks.variant import VariantCallback, variant_prefix, variant_state_key
from trainer.lockstep.group import variant_name
from trainer.module import EPOCH_MEANS_KEY


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
            callbacks[sequential_state_key(key, variant)] = state
        elif "@variant" not in key:
            callbacks[key] = state  # a group-wide callback's state
    sliced = dict(checkpoint)
    sliced.update(state_dict=state_dict, callbacks=callbacks)
    if EPOCH_MEANS_KEY in checkpoint:  # a mid-epoch checkpoint's running means
        sliced[EPOCH_MEANS_KEY] = checkpoint[EPOCH_MEANS_KEY][variant]
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


def sequential_state_key(key: str, variant: int) -> str:
    """A variant's callback state key in the group (its monitor prefixed, ``@variant<k>`` after
    it) as the variant's sequential run keys it."""
    return key.removesuffix(variant_state_key("", variant)).replace(variant_prefix(variant), "")


def group_checkpoint(
    parts: Sequence[Mapping[str, Any]], callbacks: Sequence[L.Callback]
) -> dict[str, Any]:
    """The inverse of :func:`variant_checkpoint`: the lockstep checkpoint of the group whose
    ``callbacks`` are given, from its variants' ``parts`` (variant ``k``'s at ``parts[k]``, each
    in its sequential run's layout). The loops, epoch and step are the group's, alike in every
    part; the callbacks' states of each variant go back under its keys."""
    merged = dict(parts[0])
    merged["state_dict"] = {
        f"variants.{k}.{key}": value
        for k, part in enumerate(parts)
        for key, value in part["state_dict"].items()
    }
    merged["callbacks"] = _group_callbacks(parts, callbacks)
    if EPOCH_MEANS_KEY in merged:
        merged[EPOCH_MEANS_KEY] = [part[EPOCH_MEANS_KEY] for part in parts]
    if "optimizer_states" in merged:
        merged["optimizer_states"] = [
            _merged_groups([part["optimizer_states"][i] for part in parts])
            for i in range(len(merged["optimizer_states"]))
        ]
    if "lr_schedulers" in merged:
        merged["lr_schedulers"] = [
            _merged_entries([part["lr_schedulers"][i] for part in parts])
            for i in range(len(merged["lr_schedulers"]))
        ]
    return merged


def _group_callbacks(
    parts: Sequence[Mapping[str, Any]], callbacks: Sequence[L.Callback]
) -> dict[str, Any]:
    """Each variant callback's state from its variant's part, under its group key (its monitor as
    the group names it); the rest of the first part's states are the group-wide callbacks'."""
    merged: dict[str, Any] = {}
    first_variants = set()  # the first part's keys that are its variant's callbacks'
    for callback in callbacks:
        variant = getattr(callback, "variant", None)
        if not isinstance(callback, VariantCallback) or variant is None or variant >= len(parts):
            continue
        key = sequential_state_key(callback.state_key, variant)
        if variant == 0:
            first_variants.add(key)
        if key not in parts[variant].get("callbacks", {}):
            continue
        state = parts[variant]["callbacks"][key]
        if isinstance(state, dict) and isinstance(state.get("monitor"), str):
            state = {**state, "monitor": callback.monitor}
        merged[callback.state_key] = state
    for key, state in parts[0].get("callbacks", {}).items():
        if key not in first_variants:
            merged[key] = state
    return merged


def _merged_groups(optimizer_states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The inverse of :func:`_group_state`: each variant's one parameter group, its parameters
    numbered after the groups before it, named after its variant."""
    groups, state, offset = [], {}, 0
    for k, own in enumerate(optimizer_states):
        (group,) = own["param_groups"]
        count = len(group["params"])
        params = list(range(offset, offset + count))
        groups.append({**group, "params": params, "name": variant_name(k)})
        state.update({offset + index: value for index, value in own["state"].items()})
        offset += count
    return {"state": state, "param_groups": groups}


def _merged_entries(scheduler_states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The inverse of :func:`_group_entries`: a list of one entry in a variant's part is its entry
    of a per-group list (``base_lrs``, ``_last_lr``); the other values are the group's."""
    return {
        key: [own[key][0] for own in scheduler_states]
        if isinstance(value, list) and len(value) == 1
        else value
        for key, value in scheduler_states[0].items()
    }


class VariantCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer and reader for a lockstep Trainer: a checkpoint saved into a
    variant's run dir (by that variant's checkpoint callback or guard, or the group's preemption
    callback) keeps only that variant's part; one read from a variant's run dir (``fit``'s
    ``ckpt_path``: a preempted group continuing) is the group's, each variant's part read from
    the same file in its own run dir. ``callbacks``: the group's, whose states it files."""

    def __init__(self, run_dirs: Sequence[Path], callbacks: Sequence[L.Callback]) -> None:
        super().__init__()
        self.run_dirs = [Path(d).resolve() for d in run_dirs]
        self.callbacks = list(callbacks)

    def _owner(self, path: Any) -> tuple[int, Path]:
        """The variant whose run dir holds ``path``, and ``path`` inside it."""
        target = Path(path).resolve()
        owners = [k for k, d in enumerate(self.run_dirs) if target.is_relative_to(d)]
        if not owners:
            raise ValueError(f"lockstep: checkpoint {path} is in no variant's run dir")
        return owners[-1], target.relative_to(self.run_dirs[owners[-1]])

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        variant, _ = self._owner(path)
        super().save_checkpoint(variant_checkpoint(checkpoint, variant), path, storage_options)

    def load_checkpoint(
        self,
        path: Any,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        _, inside = self._owner(path)
        parts = [self.load_part(d / inside, map_location, weights_only) for d in self.run_dirs]
        return group_checkpoint(parts, self.callbacks)

    def load_part(
        self,
        path: Any,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """One variant's file as it was saved (its part, in the sequential layout)."""
        return super().load_checkpoint(path, map_location, weights_only)


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
