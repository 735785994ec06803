"""A trial's record as the sweeper reads it back (any launcher: the run dir is the interface), and
the names of a search's files; neither Lightning nor Optuna is needed to read them."""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

RESULTS_FILE = "optimization_results.yaml"
# the sweep's Optuna studies, one per search (its name), in the sweep dir: optuna-dashboard opens it
JOURNAL_FILE = "optuna_journal.log"
SEARCH_DIR = "_search"  # a tuned suite's trials, a folder per variant: not among the compared runs
# a run that says so ended: a trial left running by a killed search is told, not launched again;
# any other status (running, preempted, none) is a run that did not finish
ENDED = ("completed", "stopped", "failed")


@dataclass
class TrialResult:
    status: str  # completed | stopped | failed | running | preempted | missing (never started)
    value: float | None  # selection.value: validation metric of the checkpoint to be tested
    pruned: bool

    @property
    def ended(self) -> bool:
        return self.status in ENDED


def read_trial(run_dir: Path) -> TrialResult:
    status_path = run_dir / "status.json"
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    value = (status.get("selection") or {}).get("value")
    usable = status.get("status") in ("completed", "stopped") and value is not None
    return TrialResult(
        status=status.get("status", "missing"),
        value=float(value) if usable and not math.isnan(float(value)) else None,
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
