"""One search: a seeded TPE study stored in a journal file, asked and told in batches of trials
that run at once, resumed from its journal; and how a trial's own process opens its study."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from omegaconf import DictConfig, OmegaConf

from trainer.search.space import at_edge, suggest
from trainer.search.trials import read_trial

log = logging.getLogger(__name__)

# what decides the trials a search proposes and prunes, stored in its study: a resumed search
# must use the values it started with, and each trial builds the study's pruner from them
DECIDING_SETTINGS = ("sampler_seed", "parallel", "startup_trials", "warmup_epochs")
TrialState = optuna.trial.TrialState


def journal_storage(path: Path) -> optuna.storages.JournalStorage:
    """Optuna's storage in the journal file ``path``: an append-only log of the studies'
    operations, each write made under a lock file beside it, so that the sweeper and every trial's
    process (on other machines too, through a shared file system) write to it at once."""
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def median_pruner(startup_trials: int, warmup_epochs: int) -> optuna.pruners.MedianPruner:
    """Prunes a trial whose best validation value so far is worse than the median of the completed
    trials' values at the same epoch, once ``startup_trials`` trials completed, from epoch
    ``warmup_epochs`` on.

    The median is over COMPLETE trials only, and a batch is told once all of its trials ended:
    trials that run at once never prune each other, so whether a trial is pruned does not depend
    on which of its batch finishes first."""
    return optuna.pruners.MedianPruner(
        n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs
    )


def trial_sampler(sampler_seed: int, number: int) -> optuna.samplers.TPESampler:
    """The sampler that draws trial ``number``'s values, seeded from (``sampler_seed``,
    ``number``): a resumed search draws what an uninterrupted one would have, whatever a sampler
    had drawn in the process that was stopped."""
    seed = int(np.random.SeedSequence([sampler_seed, number]).generate_state(1)[0])
    # constant liar: a batch's later proposals count its earlier ones, still running, as bad
    # results, so the trials of one batch do not crowd one spot
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def stored_trial(
    study: optuna.Study, storage: optuna.storages.BaseStorage, number: int
) -> optuna.trial.Trial:
    """Trial ``number`` of ``study`` (in ``storage``), to report to or draw values for."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return optuna.trial.Trial(
        study, storage.get_trial_id_from_study_id_trial_number(study_id, number)
    )


def open_trial(journal: Path, name: str, number: int) -> optuna.trial.Trial:
    """Trial ``number`` of the study ``name`` in ``journal``, as the trial's own process reports
    to it and asks whether to stop. Optuna stores no pruner: the study's is built from the
    settings the search stored."""
    storage = journal_storage(journal)
    settings = optuna.load_study(study_name=name, storage=storage).user_attrs
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        pruner=median_pruner(settings["startup_trials"], settings["warmup_epochs"]),
    )
    return stored_trial(study, storage, number)


@dataclass(frozen=True)
class PlannedTrial:
    """A trial to launch: its number, its values by override key, and its run dir."""

    number: int
    values: dict[str, Any]
    run_dir: Path


@dataclass
class Search:
    """One seeded TPE search over ``space``, stored as the study ``name`` in the journal file
    ``journal``: ``run(launch)`` hands ``launch`` batches of ``parallel`` trials to run at once,
    trial N in ``trials_dir/trial=NNN``, each of which reports to the study itself; each batch is
    told from its run dirs in trial-number order once ``launch`` returns."""

    name: str
    space: dict[str, DictConfig]
    direction: str  # "maximize" | "minimize"
    journal: Path
    trials_dir: Path
    n_trials: int  # trials that ended, a stopped search's included
    parallel: int
    sampler_seed: int
    startup_trials: int  # completed trials before pruning starts (MedianPruner's n_startup)
    warmup_epochs: int  # epochs a trial always trains (MedianPruner's n_warmup_steps)
    storage: optuna.storages.JournalStorage = field(init=False)
    study: optuna.Study = field(init=False)

    def __post_init__(self) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweeper logs each trial
        self.storage = journal_storage(self.journal)
        self.study = optuna.create_study(
            storage=self.storage,
            study_name=self.name,
            direction=self.direction,
            pruner=median_pruner(self.startup_trials, self.warmup_epochs),
            load_if_exists=True,
        )
        self.keep_settings()

    def keep_settings(self) -> None:
        """Store the deciding settings in a new study; refuse to resume one with others."""
        stored = self.study.user_attrs
        changed = []
        for key in DECIDING_SETTINGS:
            value = getattr(self, key)
            if key not in stored:
                self.study.set_user_attr(key, value)
            elif stored[key] != value:
                changed.append(f"search.{key}={stored[key]}")
        if changed:
            raise ValueError(
                f"search {self.name}: {self.journal} holds it with {', '.join(changed)}: resume "
                "it with the same, or give another hydra.sweep.dir"
            )

    def trial_dir(self, number: int) -> Path:
        return self.trials_dir / f"trial={number:03d}"

    def run(self, launch: Callable[[list[PlannedTrial]], None]) -> None:
        """Finish what a stopped search left running, then ask, launch and tell batches until
        ``n_trials`` trials ended. A batch's trials are all asked before any of them runs, and
        told from their run dirs in number order once ``launch`` returns: the same
        ``sampler_seed`` and ``parallel`` propose the same trials whatever order they end in."""
        self.finish_left_running(launch)
        while (first := len(self.study.trials)) < self.n_trials:
            batch = [self.ask() for _ in range(min(self.parallel, self.n_trials - first))]
            launch(batch)
            self.tell([trial.number for trial in batch])

    def ask(self) -> PlannedTrial:
        number = len(self.study.trials)
        self.study.sampler = trial_sampler(self.sampler_seed, number)
        return self.planned(self.study.ask())

    def planned(self, trial: optuna.trial.Trial) -> PlannedTrial:
        # a trial given its values before (a relaunch) gets them back from suggest
        return PlannedTrial(trial.number, suggest(trial, self.space), self.trial_dir(trial.number))

    def finish_left_running(self, launch: Callable[[list[PlannedTrial]], None]) -> None:
        """Resume: of the trials a killed search left running in the study, those whose run did
        not end run again (same number, values and run dir), as one batch with the rest of their
        batch if the search was killed while it asked it; then all are told in number order, as
        in the uninterrupted search, where none of them was complete while the others ran."""
        left = [
            t.number for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        ]
        if not left:
            return
        again = []
        for number in left:
            if not read_trial(self.trial_dir(number)).ended:
                # killed between its ask and its last value, it draws the rest as it would have
                self.study.sampler = trial_sampler(self.sampler_seed, number)
                again.append(self.planned(stored_trial(self.study, self.storage, number)))
        while len(self.study.trials) % self.parallel and len(self.study.trials) < self.n_trials:
            again.append(self.ask())
        log.info(
            "search %s: resumed from %s: trials %s were left running; %s run now",
            self.name,
            self.journal,
            left,
            [trial.number for trial in again],
        )
        if again:
            launch(again)
        self.tell(sorted({*left, *(trial.number for trial in again)}))

    def tell(self, numbers: Sequence[int]) -> None:
        """Tell the study how each trial ended, in number order, as its run dir records it. The
        trial reported its validation values itself, epoch by epoch: a pruned trial's value is
        the last of them (Optuna's rule)."""
        for number in sorted(numbers):
            result = read_trial(self.trial_dir(number))
            if result.pruned:
                self.study.tell(number, state=TrialState.PRUNED)
            elif result.value is None:
                self.study.tell(number, state=TrialState.FAIL)
            else:
                self.study.tell(number, result.value)

    @property
    def best(self) -> optuna.trial.FrozenTrial | None:
        completed = self.study.get_trials(states=(TrialState.COMPLETE,))
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
        counts by state, each trial's state and value (a pruned trial's: the last it reported),
        the batch size and the journal, and the edge warnings."""
        trials = self.study.trials
        states = [t.state.name for t in trials]
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
            "parallel": self.parallel,
            "storage": str(self.journal),
            "sampler": {"name": "TPESampler", "seed": self.sampler_seed},
            "trials": [
                {"number": t.number, "state": t.state.name, "value": t.value} for t in trials
            ],
            "edge_warnings": at_edge(self.space, best),
            "space": {key: OmegaConf.to_container(param) for key, param in self.space.items()},
        }
