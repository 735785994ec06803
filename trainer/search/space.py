"""Search spaces: a space config's parameters by override key, a trial's values for them, the values
as overrides, and the warning for a best value at the edge of its range."""

import math
from collections.abc import Mapping
from typing import Any

import optuna
from omegaconf import DictConfig

EDGE_SHARE = 0.05  # a best value within 5 % of its range (log range for log scales) of an end


def space_of(node: DictConfig | None) -> dict[str, DictConfig]:
    """``{"loss.gamma": {low: 0, high: 5}, ...}``: the parameters of a search space config, by
    override key. A parameter is a mapping with ``low``/``high`` (a float range; ``log: true``
    for a log scale; ``or_null: true`` for "this range, or null") or ``choices``; ``when:
    {key: value}`` makes it conditional on a parameter sampled before it."""
    params: dict[str, DictConfig] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, DictConfig) and ("low" in value or "choices" in value):
            params[prefix] = value
        elif isinstance(value, DictConfig):
            for key in value:
                walk(value[key], f"{prefix}.{key}" if prefix else str(key))

    if node is not None:
        walk(node, "")
    return params


def suggest(trial: optuna.Trial, space: Mapping[str, DictConfig]) -> dict[str, Any]:
    """The trial's value of every parameter of ``space`` whose ``when`` holds, by override key."""
    values: dict[str, Any] = {}
    for key, param in space.items():
        when = param.get("when") or {}
        if any(values.get(k) != v for k, v in when.items()):
            continue
        if "choices" in param:
            values[key] = trial.suggest_categorical(key, list(param.choices))
            continue
        # "a range or null" is a categorical switch and a range sampled only when it is on: a
        # conditional space, which TPE models as such (it never draws the range for null)
        if param.get("or_null") and trial.suggest_categorical(f"{key} is null", [False, True]):
            values[key] = None
            continue
        values[key] = trial.suggest_float(
            key, float(param.low), float(param.high), log=bool(param.get("log", False))
        )
    return values


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """``["loss.gamma=1.5", "loss.alpha=null"]``: values as Hydra overrides, floats in full."""

    def text(value: Any) -> str:
        if value is None:
            return "null"
        return repr(value) if isinstance(value, float) else str(value)

    return [f"{key}={text(value)}" for key, value in values.items()]


def at_edge(space: Mapping[str, DictConfig], values: Mapping[str, Any]) -> list[str]:
    """The float parameters whose value lies within :data:`EDGE_SHARE` of an end of its range:
    the best may lie outside it, so the range should grow."""
    edges = []
    for key, value in values.items():
        param = space.get(key)
        if param is None or "low" not in param or value is None:
            continue
        scale = math.log if param.get("log", False) else float
        low, high, where = scale(float(param.low)), scale(float(param.high)), scale(float(value))
        share = (where - low) / (high - low)
        if share <= EDGE_SHARE or share >= 1 - EDGE_SHARE:
            end = param.low if share <= EDGE_SHARE else param.high
            edges.append(f"{key}={value:.4g} is at the edge of [{param.low}, {param.high}] ({end})")
    return edges
