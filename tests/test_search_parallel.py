"""Searches stored in a journal and run in batches: ``search.parallel`` trials launched at once and
told in trial-number order, a killed search resumed from its journal, trials pruned from their
own process by Optuna's MedianPruner; unit-level with stand-in trials, then end to end."""

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
from omegaconf import OmegaConf
from test_staged_select import TINY_REGRESSION
from train_cli import run_train

from trainer.search import space as search_space
from trainer.search import study as search_study
from trainer.search import trials as search_trials
from trainer.search.pruning import OptunaPruning

COMPLETE, PRUNED, FAIL = (optuna.trial.TrialState[s] for s in ("COMPLETE", "PRUNED", "FAIL"))
SPACE = search_space.space_of(
    OmegaConf.create({"x": {"low": 0.0, "high": 1.0}, "y": {"choices": ["a", "b"]}})
)
Curve = list[float] | None  # a stand-in trial's validation MAE per epoch; None: the run fails


def curve_of(number: int, values: dict) -> Curve:
    """A deterministic function of the trial's values: its validation MAE falls by 0.5 an epoch."""
    base = (values["x"] - 0.3) ** 2 + (0.2 if values["y"] == "b" else 0.0)
    return [base + 1.0, base + 0.5, base]


class StandIn:
    """Stands in for the launcher and the runs: each trial of a batch reports its curve to the
    stored study through the pruning callback, as the run's own process does, and writes the
    ``status.json`` a run writes. ``reverse``: a batch's trials run last first."""

    def __init__(
        self,
        search: search_study.Search,
        curves: Callable[[int, dict], Curve] = curve_of,
        reverse: bool = False,
    ) -> None:
        self.search, self.curves, self.reverse = search, curves, reverse
        self.batches: list[list[int]] = []
        self.planned: dict[int, search_study.PlannedTrial] = {}

    def __call__(self, batch: list[search_study.PlannedTrial]) -> None:
        self.batches.append([trial.number for trial in batch])
        for trial in reversed(batch) if self.reverse else batch:
            self.run(trial)

    def run(self, trial: search_study.PlannedTrial, epochs: int | None = None) -> None:
        """Trial ``trial``, its first ``epochs`` epochs only (then it is preempted) if given."""
        self.planned[trial.number] = trial
        trial.run_dir.mkdir(parents=True, exist_ok=True)
        curve = self.curves(trial.number, trial.values)
        if curve is None:
            write_status(trial.run_dir, {"status": "failed", "error": "ValueError: stand-in"})
            return
        callback = OptunaPruning(str(self.search.journal), self.search.name, trial.number)
        module = SimpleNamespace(task=SimpleNamespace(monitor="mae", mode="min"))
        callback.on_fit_start(SimpleNamespace(), module)
        seen = []
        for epoch, value in enumerate(curve[:epochs]):
            trainer = SimpleNamespace(
                sanity_checking=False,
                callback_metrics={"val/mae": torch.tensor(value)},
                should_stop=False,
                current_epoch=epoch,
            )
            callback.on_validation_end(trainer, module)
            seen.append(value)
            if trainer.should_stop:
                break
        if epochs is not None:
            write_status(trial.run_dir, {"status": "preempted"})
            return
        status = "stopped" if callback.stop_reason else "completed"
        write_status(
            trial.run_dir,
            {
                "status": status,
                "stop_reason": callback.stop_reason,
                "mode": "min",
                "selection": {"value": min(seen)},
            },
        )


def write_status(run_dir: Path, status: dict) -> None:
    (run_dir / "status.json").write_text(json.dumps(status))


def make_search(folder: Path, **settings: int) -> search_study.Search:
    folder.mkdir(parents=True, exist_ok=True)
    chosen = {"n_trials": 6, "parallel": 2, "sampler_seed": 0, "startup_trials": 2}
    return search_study.Search(
        name="x",
        space=SPACE,
        direction="minimize",
        journal=folder / search_trials.JOURNAL_FILE,
        trials_dir=folder,
        warmup_epochs=1,
        **(chosen | settings),
    )


def told(search: search_study.Search) -> list[tuple]:
    return [(t.number, t.params, t.state, t.value) for t in search.study.trials]


def test_a_batch_is_launched_at_once_and_told_in_number_order_whatever_order_it_ends_in(
    tmp_path: Path,
):
    # 14 trials: past TPE's 10 random start-up trials, so the last proposals follow the told values
    runs = {}
    for order in ("in order", "reversed"):
        search = make_search(tmp_path / order, n_trials=14, parallel=4)
        stand_in = StandIn(search, reverse=order == "reversed")
        search.run(stand_in)
        runs[order] = (search, stand_in)
        assert stand_in.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13]]
    (in_order, _), (backwards, _) = runs.values()
    assert told(backwards) == told(in_order)
    states = [t.state for t in in_order.study.trials]
    assert COMPLETE in states and PRUNED in states  # the pruner's decisions are part of it too
    for trial in in_order.study.trials:  # what each trial reported, and its own value
        values = {"x": trial.params["x"], "y": trial.params["y"]}
        curve = curve_of(trial.number, values)
        reported = list(trial.intermediate_values.values())
        assert reported == pytest.approx(curve[: len(reported)])
        if trial.state == COMPLETE:
            assert trial.value == pytest.approx(min(curve))
    # the seed is what proposes: another one proposes another first trial
    other = make_search(tmp_path / "seed 1", n_trials=1, sampler_seed=1)
    other.run(StandIn(other))
    assert other.study.trials[0].params != in_order.study.trials[0].params


class Killed(Exception):
    """The sweeper's process ends here: nothing after it runs, nothing is told."""


# the first two batches of a search in batches of three: trial 4 would be pruned at epoch 2 if
# trial 3, of its batch, counted among the completed trials (median 1.1 with it, 1.2 without)
RESUMED_CURVES = {
    0: [2.0, 1.5, 1.0],
    1: [2.0, 1.5, 1.2],
    2: [2.0, 1.5, 1.4],
    3: [0.1, 0.1, 0.1],
    4: [2.0, 1.5, 1.15],
}


def resumed_curve(number: int, values: dict) -> Curve:
    return RESUMED_CURVES.get(number) or curve_of(number, values)


def test_a_killed_search_runs_again_what_did_not_end_and_asks_nothing_twice(tmp_path: Path):
    first = [RESUMED_CURVES[n] for n in range(3)]
    assert expected_pruned_epoch(RESUMED_CURVES[4], first, 2, 1) is None
    assert expected_pruned_epoch(RESUMED_CURVES[4], [*first, RESUMED_CURVES[3]], 2, 1) == 2
    # nine trials in batches of three: killed in the second, the third asked by the resumed search
    whole = make_search(tmp_path / "whole", n_trials=9, parallel=3)
    whole.run(StandIn(whole, curves=resumed_curve))
    assert whole.study.trials[4].state == COMPLETE

    search = make_search(tmp_path / "killed", n_trials=9, parallel=3)
    stand_in = StandIn(search, curves=resumed_curve)
    asked = {}

    def killed_in_the_second_batch(batch: list[search_study.PlannedTrial]) -> None:
        asked.update((trial.number, trial) for trial in batch)
        if batch[0].number == 0:
            return stand_in(batch)
        stand_in.run(batch[0])  # trial 3 ended
        stand_in.run(batch[1], epochs=1)  # trial 4 reported its first epoch, then was preempted
        raise Killed  # before trial 5 started

    with pytest.raises(Killed):
        search.run(killed_in_the_second_batch)
    states = [t.state.name for t in search.study.trials]
    assert states == ["COMPLETE"] * 3 + ["RUNNING"] * 3

    # a resumed search must keep the settings that decide its trials
    with pytest.raises(ValueError, match=r"holds it with search\.parallel=3"):
        make_search(tmp_path / "killed", n_trials=9, parallel=2)
    resumed = make_search(tmp_path / "killed", n_trials=9, parallel=3)
    again = StandIn(resumed, curves=resumed_curve)
    resumed.run(again)
    assert again.batches == [[4, 5], [6, 7, 8]]  # trial 3 ended: told from its run dir
    for number in (4, 5):  # the same trial: number, values and run dir
        assert again.planned[number] == asked[number]
        assert asked[number].run_dir == tmp_path / "killed" / f"trial={number:03d}"
    assert told(resumed) == told(whole)  # as if it had never stopped: nine trials, not twelve
    stored = optuna.load_study(
        study_name="x", storage=search_study.journal_storage(resumed.journal)
    )
    assert len(stored.trials) == 9


def test_a_search_killed_while_it_asked_a_batch_asks_the_rest_as_it_would_have(tmp_path: Path):
    # batches of 4: the third is past TPE's 10 random start-up trials, so its proposals follow
    # the told values and, through the constant liar, the batch's trials asked before
    whole = make_search(tmp_path / "whole", n_trials=12, parallel=4)
    whole.run(StandIn(whole))
    first_two = make_search(tmp_path / "killed", n_trials=8, parallel=4)
    first_two.run(StandIn(first_two))
    killed = make_search(tmp_path / "killed", n_trials=12, parallel=4)
    killed.ask()  # trial 8, its values drawn
    killed.study.ask()  # trial 9: killed before its values were drawn; 10 and 11 never asked
    resumed = make_search(tmp_path / "killed", n_trials=12, parallel=4)
    stand_in = StandIn(resumed)
    resumed.run(stand_in)
    assert stand_in.batches == [[8, 9, 10, 11]]
    assert told(resumed) == told(whole)


def expected_pruned_epoch(
    curve: list[float], completed: list[list[float]], startup: int, warmup: int
) -> int | None:
    """Optuna's median rule, written out: from epoch ``warmup`` on and once ``startup`` trials
    completed, the first epoch whose best MAE so far is above the completed trials' median."""
    if len(completed) < startup:
        return None
    for epoch in range(warmup, len(curve)):
        median = statistics.median(c[epoch] for c in completed)
        if min(curve[: epoch + 1]) > median:
            return epoch
    return None


def test_a_trial_worse_than_the_completed_trials_median_after_the_warmup_is_pruned(
    tmp_path: Path,
):
    curves = {
        0: [3.0, 2.0, 1.0],
        1: [5.0, 4.0, 3.0],  # worse than trial 0, but one completed trial is too few to prune
        2: None,  # fails
        3: [9.0, 3.5, 3.4],  # far worse in the warm-up epoch; worse than the median at epoch 1
        4: [9.0, 1.0, 0.5],  # far worse in the warm-up epoch only
    }
    search = make_search(tmp_path, n_trials=5, parallel=1)
    search.run(StandIn(search, curves=lambda number, _: curves[number]))

    completed: list[list[float]] = []
    expected = []
    for curve in curves.values():
        epoch = None if curve is None else expected_pruned_epoch(curve, completed, 2, 1)
        expected.append(FAIL if curve is None else PRUNED if epoch is not None else COMPLETE)
        if curve is not None and epoch is None:
            completed.append(curve)
    assert expected == [COMPLETE, COMPLETE, FAIL, PRUNED, COMPLETE]  # the example is as meant
    assert [t.state for t in search.study.trials] == expected
    status = json.loads((tmp_path / "trial=003" / "status.json").read_text())
    assert status["status"] == "stopped" and status["stop_reason"].startswith("pruned at epoch 1")
    pruned = search.study.trials[3]
    assert pruned.intermediate_values == {0: 9.0, 1: 3.5} and pruned.value == 3.5
    results = search.results()
    assert (results["n_trials"], results["n_pruned"], results["n_failed"]) == (5, 1, 1)
    assert results["best_value"] == 0.5 and results["best_trial"] == 4
    assert results["best_params"] == search.study.trials[4].params
    assert (results["parallel"], results["storage"]) == (1, str(search.journal))


# --- end to end --------------------------------------------------------------------------

SEARCH = [
    "-m",
    "hparams_search=huber",
    "data=regression",
    "model=mlp",
    "search.n_trials=4",  # two batches of two: the kill below falls in the second
    "search.parallel=2",
    *TINY_REGRESSION,
    "trainer.deterministic=true",
]
# the sweep's process dies as trial 3 starts, the third trial (trial 2) having ended
KILL = [
    "+hydra.callbacks.kill._target_=sweep_kill.KillAtJobStart",
    "+hydra.callbacks.kill.subdir='trial=003'",
]


def stored_trials(sweep: Path) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(sweep / search_trials.JOURNAL_FILE))
    )
    return optuna.load_study(study_name="huber", storage=storage).trials


@pytest.fixture(scope="module")
def parallel_search(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The search, two trials at a time in two processes (joblib), never stopped."""
    sweep = tmp_path_factory.mktemp("parallel") / "sweep"
    result = run_train(
        *SEARCH,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


@pytest.mark.slow
@pytest.mark.xdist_group("parallel_search")  # one worker: the search runs once
def test_a_parallel_search_stores_its_trials_in_the_journal_and_finds_the_best(
    parallel_search: Path,
):
    results = search_trials.read_results(parallel_search / search_trials.RESULTS_FILE)
    journal = parallel_search / search_trials.JOURNAL_FILE
    assert (results["n_trials"], results["parallel"], results["storage"]) == (4, 2, str(journal))
    trials = stored_trials(parallel_search)
    assert [t.state for t in trials] == [COMPLETE] * 4  # one epoch: within the warm-up
    statuses = [
        json.loads((parallel_search / f"trial={n:03d}" / "status.json").read_text())
        for n in range(4)
    ]
    # the objective: the validation value of the checkpoint that would be tested; never test
    values = [s["selection"]["value"] for s in statuses]
    assert not any(k.startswith("test/") for s in statuses for k in s["metrics"])
    for trial, value in zip(trials, values, strict=True):  # each trial reported its own epoch
        assert trial.value == pytest.approx(value)
        assert trial.intermediate_values == {0: pytest.approx(value)}
    assert len(set(values)) == 4  # distinct: which is best is a real choice
    assert results["best_value"] == pytest.approx(min(values))
    best = parallel_search / f"trial={results['best_trial']:03d}"
    config = OmegaConf.load(best / ".hydra" / "config.yaml")
    overrides = OmegaConf.load(best / ".hydra" / "overrides.yaml")
    assert set(results["best_params"]) == {"optimizer.lr", "loss.delta"}
    assert config.loss.delta == results["best_params"]["loss.delta"]
    assert config.optimizer.lr == results["best_params"]["optimizer.lr"]
    assert f"loss.delta={results['best_params']['loss.delta']!r}" in overrides


@pytest.mark.slow
@pytest.mark.xdist_group("parallel_search")  # one worker: the search runs once
def test_a_killed_search_resumes_with_the_same_sweep_dir_to_the_same_trials(
    parallel_search: Path, tmp_path: Path
):
    sweep = tmp_path / "sweep"
    killed = run_train(*SEARCH, *KILL, f"hydra.sweep.dir={sweep}")
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL
    assert [t.state.name for t in stored_trials(sweep)] == [
        "COMPLETE",
        "COMPLETE",
        "RUNNING",  # ended (its status.json says so), never told
        "RUNNING",  # started: its run dir holds its config, no status
    ]
    assert json.loads((sweep / "trial=002" / "status.json").read_text())["status"] == "completed"
    assert not (sweep / "trial=003" / "status.json").exists()
    ended = (sweep / "trial=002" / "status.json").read_text()

    resumed = run_train(*SEARCH, f"hydra.sweep.dir={sweep}")  # the same command, the same dir
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (sweep / "trial=002" / "status.json").read_text() == ended  # not run again
    trials = stored_trials(sweep)
    whole = stored_trials(parallel_search)
    # four trials, not six, the same as a search never stopped (that one in parallel processes)
    assert [(t.params, t.state) for t in trials] == [(t.params, t.state) for t in whole]
    results = search_trials.read_results(sweep / search_trials.RESULTS_FILE)
    expected = search_trials.read_results(parallel_search / search_trials.RESULTS_FILE)
    assert results["n_trials"] == 4
    assert results["best_params"] == expected["best_params"]
