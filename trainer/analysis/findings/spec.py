"""A finding's spec (``conf/findings/<name>.yaml``), checked, with what its suite composes to.

A finding extends a suite: the suite holds the runs (data, model, budget, seeds, variants), the
spec what the finding adds (claim, source, setting, its names of the suite's variants, extra
overrides, baseline, checks, note). The task, and so the metrics a check may name, comes from
the composed config's data class, as the suite sweeper takes it.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from trainer.analysis.evidence import Expectation
from trainer.config import CONF_DIR

ROOT = CONF_DIR.parent
SPEC_DIR = CONF_DIR / "findings"
KEYS = {"claim", "source", "suite", "variants", "overrides", "checks", "baseline"}
KEYS |= {"setting", "note", "regime"}
REQUIRED = ("claim", "source", "suite", "variants", "checks", "baseline")


class SpecError(ValueError):
    pass


@dataclass
class Check:
    metric: str  # a key of status.json's metrics: "test/mae", "nonfinite/skipped"
    mode: str  # max | min: the direction that is better
    expect: dict[str, Expectation]  # variant key -> what it should show, with its effect
    baseline: str | None = None  # a variant key; None: the finding's


@dataclass
class Precondition:
    """The regime the claim is about, on one variant's runs (seed means): its ``metric`` below
    or above (``side``) ``factor`` times a ``bound``, another metric or a number (e.g.
    calibration: CE's train loss below half its test loss, and its confidence above its
    accuracy). Failing, the finding's labels read ``out of regime``."""

    variant: str
    metric: str
    side: str  # below | above
    bound: str | float
    factor: float
    why: str

    def __str__(self) -> str:
        scale = "" if self.factor == 1 else f"{self.factor:g} × "
        sign = "<" if self.side == "below" else ">"
        return f"{self.variant}: {self.metric} {sign} {scale}{self.bound} ({self.why})"


@dataclass
class Finding:
    name: str
    claim: str
    source: str
    suite: str  # conf/suite/<suite>.yaml
    overrides: list[str]  # beside the suite's, on the command line of every job
    variants: dict[str, list[str]]  # key (the spec's name) -> the suite variant's overrides
    baseline: str  # a variant key
    seeds: list[int]  # the suite's
    checks: list[Check]
    regime: list[Precondition]
    data: str  # the data and model the suite picks
    model: str
    task: str  # the data class's task
    setting: str = ""  # hand-written: why this budget / data size
    note: str = ""  # hand-written remark on the outcome, shown as such


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: expected a list of strings, got {value!r}")
    return list(value)


def _text(raw: dict[str, Any], key: str) -> str:
    return " ".join(str(raw.get(key) or "").split())


def suite_config(suite: str, overrides: list[str]) -> DictConfig:
    """The config a job of ``suite=<suite>`` with ``overrides`` composes to (Hydra's own
    choices under ``hydra.runtime.choices``)."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", [f"suite={suite}", *overrides], return_hydra_config=True)


def _suite_variants(where: str, cfg: DictConfig, names: list[str]) -> dict[str, list[str]]:
    """The spec's names of the suite's variants, each one job per seed (a grid or a selection
    would make one name several variants)."""
    suite = cfg.suite
    if suite.get("grid") or suite.get("select"):
        raise SpecError(f"{where}: suite {cfg.hydra.runtime.choices.suite}: no grid or select")
    variants = [list(v) for v in suite.variants]
    if len(names) != len(variants) or len(set(names)) != len(names):
        raise SpecError(
            f"{where}: variants: {len(set(names))} distinct names for the suite's "
            f"{len(variants)} variants {variants}"
        )
    parser = OverridesParser.create()
    for name, overrides in zip(names, variants, strict=True):
        if any(o.is_sweep_override() for o in parser.parse_overrides(overrides)):
            raise SpecError(f"{where}: variant {name} {overrides}: one job per seed, not a sweep")
        if not any(o.startswith("loss=") for o in overrides):
            raise SpecError(f"{where}: variant {name}: name its loss (loss=...)")
    return dict(zip(names, variants, strict=True))


def _check(where: str, raw: dict[str, Any], baseline: str, variants: dict) -> Check:
    if raw.get("mode") not in ("max", "min"):
        raise SpecError(f"{where}: mode must be max or min, got {raw.get('mode')!r}")
    if unknown := set(raw) - {"metric", "mode", "expect", "baseline"}:
        raise SpecError(f"{where}: unknown keys {sorted(unknown)}")
    base = str(raw.get("baseline") or baseline)
    if base not in variants:
        raise SpecError(f"{where}: baseline {base!r} is not a variant: {list(variants)}")
    expect = {}
    for key, value in (raw.get("expect") or {}).items():
        if key not in variants or key == base:
            raise SpecError(f"{where}: expect names {key!r}, not a non-baseline variant")
        try:
            expect[str(key)] = Expectation.parse(value, f"{where}: {key}")
        except ValueError as error:
            raise SpecError(str(error)) from None
    if not expect:
        raise SpecError(f"{where}: expect names no variant")
    return Check(str(raw["metric"]), raw["mode"], expect, raw.get("baseline"))


def _precondition(where: str, raw: Any, variants: dict) -> Precondition:
    known = {"variant", "metric", "below", "above", "factor", "why"}
    if not isinstance(raw, dict) or set(raw) - known or len({"below", "above"} & set(raw)) != 1:
        raise SpecError(
            f"{where}: expected {{variant, metric, below or above (a metric or a number), "
            f"factor, why}}, got {raw!r}"
        )
    if raw.get("variant") not in variants:
        raise SpecError(f"{where}: variant {raw.get('variant')!r} is not one of {list(variants)}")
    for key in ("metric", "why"):
        if not isinstance(raw.get(key), str):
            raise SpecError(f"{where}: {key}: expected a string, got {raw!r}")
    side = "below" if "below" in raw else "above"
    bound = raw[side]
    if isinstance(bound, bool) or not isinstance(bound, str | int | float):
        raise SpecError(f"{where}: {side}: expected a metric or a number, got {bound!r}")
    factor = raw.get("factor", 1.0)
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 0:
        raise SpecError(f"{where}: factor: expected a number > 0, got {factor!r}")
    bound = bound if isinstance(bound, str) else float(bound)
    return Precondition(raw["variant"], raw["metric"], side, bound, float(factor), raw["why"])


def load_spec(path: Path) -> Finding:
    """A finding spec, checked: every key known, its names one per variant of its suite, the
    baseline and the expectations naming variants, each expectation one of better / worse /
    similar / at_least_as_good with its effect, each regime precondition on a variant."""
    path = Path(path)
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if unknown := set(raw) - KEYS:
        raise SpecError(f"{path.name}: unknown keys {sorted(unknown)}; known: {sorted(KEYS)}")
    for key in REQUIRED:
        if key not in raw:
            raise SpecError(f"{path.name}: missing key {key!r}")
    overrides = _strings(raw.get("overrides", []), f"{path.name}: overrides")
    cfg = suite_config(str(raw["suite"]), overrides)
    names = [str(n) for n in _strings(raw["variants"], f"{path.name}: variants")]
    variants = _suite_variants(path.name, cfg, names)
    baseline = str(raw["baseline"])
    if baseline not in variants:
        raise SpecError(f"{path.name}: baseline {baseline!r} is not a variant: {list(variants)}")
    checks = [
        _check(f"{path.name}: checks[{i}]", check, baseline, variants)
        for i, check in enumerate(raw["checks"])
    ]
    regime = [
        _precondition(f"{path.name}: regime[{i}]", item, variants)
        for i, item in enumerate(raw.get("regime") or [])
    ]
    choices = cfg.hydra.runtime.choices
    return Finding(
        name=path.stem,
        claim=_text(raw, "claim"),
        source=_text(raw, "source"),
        suite=str(raw["suite"]),
        overrides=overrides,
        variants=variants,
        baseline=baseline,
        seeds=[int(s) for s in cfg.suite.seeds],
        checks=checks,
        regime=regime,
        data=choices.data,
        model=choices.model,
        task=get_class(cfg.data._target_).task,
        setting=_text(raw, "setting"),
        note=_text(raw, "note"),
    )


def load_specs(spec_dir: Path = SPEC_DIR) -> dict[str, Finding]:
    return {p.stem: load_spec(p) for p in sorted(Path(spec_dir).glob("*.yaml"))}


def available_metrics(task: str) -> set[str]:
    """The test/ tags the task logs (from the task itself)."""
    from trainer.records import metric_tags
    from trainer.tasks import TASKS

    return set(metric_tags(TASKS[task].example()))


def blocked_metrics(finding: Finding) -> list[str]:
    """The test metrics of the checks that the finding's task does not log (yet)."""
    tags = available_metrics(finding.task)
    return [
        c.metric for c in finding.checks if c.metric.startswith("test/") and c.metric not in tags
    ]
