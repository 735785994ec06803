"""A trial's record as the sweeper reads it back (any launcher: the run dir is the interface), and
a search's results file; neither Lightning nor Optuna is needed to read them."""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

CURVE_FILE = "validation_curve.json"  # written by MedianStop: the per-epoch validation values
RESULTS_FILE = "optimization_results.yaml"
SEARCH_DIR = "_search"  # a tuned suite's trials, a folder per variant: not among the compared runs


@dataclass
class TrialResult:
    status: str  # completed | stopped | failed | running (killed before it could say)
    value: float | None  # selection.value: validation metric of the checkpoint to be tested
    curve: list[float]
    pruned: bool


def read_trial(run_dir: Path) -> TrialResult:
    status_path, curve_path = run_dir / "status.json", run_dir / CURVE_FILE
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    curve = json.loads(curve_path.read_text())["values"] if curve_path.exists() else []
    value = (status.get("selection") or {}).get("value")
    usable = status.get("status") in ("completed", "stopped") and value is not None
    return TrialResult(
        status=status.get("status", "failed"),
        value=float(value) if usable and not math.isnan(float(value)) else None,
        curve=curve,
        pruned=str(status.get("stop_reason") or "").startswith("pruned"),
    )


def read_mode(run_dir: Path) -> str | None:
    """The direction (``max``/``min``) the run's task records in its ``status.json``."""
    path = run_dir / "status.json"
    return json.loads(path.read_text()).get("mode") if path.exists() else None


def objective(run_dir: Path) -> float | None:
    """What ``main()`` returns: the run's ``selection.value`` (None: no usable value)."""
    return read_trial(Path(run_dir)).value


def write_results(path: Path, results: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(dict(results)), path)


def read_results(path: Path) -> dict[str, Any]:
    loaded = OmegaConf.to_container(OmegaConf.load(path))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a search's results, got {type(loaded).__name__}")
    return loaded
