"""One search: a seeded TPE study driven by ask-and-tell, one trial launched at a time."""

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from trainer.search.space import as_overrides, at_edge, suggest
from trainer.search.trials import read_trial


@dataclass
class Search:
    """One seeded TPE search over ``space``, driven by ask-and-tell: ``run(trial_number,
    overrides, median)`` launches a trial and returns its run dir."""

    name: str
    space: dict[str, DictConfig]
    direction: str  # "maximize" | "minimize"
    n_trials: int
    sampler_seed: int
    startup_trials: int  # completed trials before pruning starts (MedianPruner's n_startup)
    study: optuna.Study = field(init=False)
    curves: list[list[float]] = field(default_factory=list)  # of the completed trials
    history: list[tuple[int, str, float | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweeper logs each trial
        self.study = optuna.create_study(
            study_name=self.name,
            direction=self.direction,
            sampler=optuna.samplers.TPESampler(seed=self.sampler_seed),
        )

    def run(self, launch: Callable[[int, list[str], list[float] | None], Path]) -> None:
        for _ in range(self.n_trials):
            trial = self.study.ask()
            values = suggest(trial, self.space)
            enough = len(self.curves) >= self.startup_trials
            run_dir = launch(
                trial.number, as_overrides(values), epoch_medians(self.curves) if enough else None
            )
            result = read_trial(run_dir)
            for epoch, value in enumerate(result.curve):
                trial.report(value, epoch)
            if result.pruned:
                state = optuna.trial.TrialState.PRUNED
                self.study.tell(trial, state=state)
            elif result.value is None:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(trial, result.value)
                self.curves.append(result.curve)
            self.history.append((trial.number, self.study.trials[-1].state.name, result.value))

    @property
    def best(self) -> optuna.trial.FrozenTrial | None:
        completed = self.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        return self.study.best_trial if completed else None

    def best_values(self) -> dict[str, Any]:
        """The best trial's values by override key (a null switch read back as its null)."""
        best = self.best
        if best is None:
            return {}
        values = {}
        for key in self.space:
            if best.params.get(f"{key} is null"):
                values[key] = None
            elif key in best.params:
                values[key] = best.params[key]
        return values

    def results(self, fixed: Sequence[str] = ()) -> dict[str, Any]:
        """What ``optimization_results.yaml`` holds: the best values and validation value, the
        counts by state, each trial's state and value, and the edge warnings."""
        states = [t.state.name for t in self.study.trials]
        best = self.best_values()
        return {
            "name": self.name,
            "direction": self.direction,
            "best_params": best,
            "best_value": None if self.best is None else float(self.best.value),
            "best_trial": None if self.best is None else self.best.number,
            "fixed": list(fixed),
            "n_trials": len(states),
            "n_pruned": states.count("PRUNED"),
            "n_failed": states.count("FAIL"),
            "sampler": {"name": "TPESampler", "seed": self.sampler_seed},
            "trials": [
                {"number": n, "state": state, "value": value} for n, state, value in self.history
            ],
            "edge_warnings": at_edge(self.space, best),
            "space": {key: OmegaConf.to_container(param) for key, param in self.space.items()},
        }


def epoch_medians(curves: Sequence[Sequence[float]]) -> list[float]:
    """The median over ``curves`` at each epoch every curve reached."""
    length = min((len(c) for c in curves), default=0)
    return [statistics.median(c[epoch] for c in curves) for epoch in range(length)]
