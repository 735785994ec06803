"""Searches on validation: spaces (conditional ones included), failed trials end to end, a tuned
suite (with a suite's ``select:``), and the report's search table. Batches, the journal, resuming
and pruning: ``test_search_parallel``."""

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from omegaconf import OmegaConf
from test_staged_select import TINY_REGRESSION
from train_cli import ROOT, run_train

from trainer.search import space as search_space
from trainer.search import trials as search_trials

TINY_SEGMENTATION = [
    "debug=quick",
    "trainer.enable_progress_bar=false",
    "data.n_train=64",
    "data.n_val=32",
    "data.n_test=32",
    "data.image_size=32",
    "model.width=8",
]


def focal_space() -> dict:
    cfg = OmegaConf.load(ROOT / "conf" / "hparams_search" / "focal.yaml")
    return search_space.space_of(cfg.hparams_search.space)


def test_focal_alpha_is_a_range_or_null_drawn_only_when_on():
    space = focal_space()
    assert set(space) == {"loss.gamma", "loss.alpha"}  # the LR comes through the defaults
    off = optuna.trial.FixedTrial({"loss.gamma": 2.0, "loss.alpha is null": True})
    assert search_space.suggest(off, space) == {"loss.gamma": 2.0, "loss.alpha": None}
    on = optuna.trial.FixedTrial(
        {"loss.gamma": 1.0, "loss.alpha is null": False, "loss.alpha": 0.3}
    )
    assert search_space.suggest(on, space) == {"loss.gamma": 1.0, "loss.alpha": 0.3}
    assert search_space.as_overrides({"loss.gamma": 1.0, "loss.alpha": None}) == [
        "loss.gamma=1.0",
        "loss.alpha=null",
    ]


def test_a_parameter_with_when_is_drawn_only_under_its_condition():
    cfg = OmegaConf.load(ROOT / "conf" / "hparams_search" / "class_weighted_ce.yaml")
    space = search_space.space_of(cfg.hparams_search.space)
    log_scheme = optuna.trial.FixedTrial({"loss.scheme": "log"})
    assert search_space.suggest(log_scheme, space) == {"loss.scheme": "log"}
    effective = optuna.trial.FixedTrial({"loss.scheme": "effective", "loss.beta": 0.99})
    assert search_space.suggest(effective, space) == {"loss.scheme": "effective", "loss.beta": 0.99}


def test_every_named_loss_has_a_space_that_composes_with_the_learning_rate(make_cfg):
    for loss in ("focal", "tversky", "huber", "smooth_l1", "class_weighted_ce", "dice", "triplet"):
        cfg = make_cfg(f"hparams_search={loss}", tiny=False)
        space = search_space.space_of(cfg.hparams_search.space)
        assert space["optimizer.lr"].log and "loss" in {k.split(".")[0] for k in space}, loss
        assert cfg.hydra.runtime.choices.loss == loss
        for key in space:  # every searched key exists in the loss's or optimizer's config
            assert OmegaConf.select(cfg, key, default="absent") != "absent", (loss, key)


def test_edge_warnings_on_linear_and_log_ranges():
    space = search_space.space_of(
        OmegaConf.create(
            {"a": {"low": 0.0, "high": 10.0}, "lr": {"low": 1e-4, "high": 1e-2, "log": True}}
        )
    )
    # 0.4 is within 5 % of [0, 10]; on the log range, 1.2e-4 is 4 % of the way up, 5e-4 is 35 %
    assert [w.split("=")[0] for w in search_space.at_edge(space, {"a": 0.4, "lr": 1.2e-4})] == [
        "a",
        "lr",
    ]
    assert search_space.at_edge(space, {"a": 5.0, "lr": 5e-4}) == []
    assert search_space.at_edge(space, {"a": 9.6, "lr": 9.5e-3})[0].startswith(
        "a=9.6 is at the edge"
    )


FAILING_SPACE = """\
# @package _global_
defaults:
  - override /loss: bce
hparams_search:
  space:
    data:
      foreground_share: {low: 0.6, high: 0.9}   # the datamodule takes at most 0.5: every trial fails
"""


@pytest.mark.slow
def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path: Path):
    (tmp_path / "conf" / "hparams_search").mkdir(parents=True)
    (tmp_path / "conf" / "hparams_search" / "broken.yaml").write_text(FAILING_SPACE)
    result = run_train(
        "-m",
        "hparams_search=broken",
        "search.n_trials=2",
        *TINY_SEGMENTATION,
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = search_trials.read_results(tmp_path / "sweep" / search_trials.RESULTS_FILE)
    assert (results["n_trials"], results["n_failed"]) == (2, 2)
    assert results["best_value"] is None and results["best_params"] == {}
    for trial in ("trial=000", "trial=001"):
        status = json.loads((tmp_path / "sweep" / trial / "status.json").read_text())
        assert status["status"] == "failed" and "foreground_share" in status["error"]


TINY_TUNE_SUITE = """\
# @package _global_
defaults:
  - override /data: regression
  - override /model: mlp
suite:
  seeds: [0, 1]
  select: [optimizer.lr]                 # searched with the rest of each variant's space
  grid: ["optimizer.lr=1e-3,3e-3"]       # the selection's grid, which gives way to the search
  variants:
    - [loss=mse]                         # no hyperparameters: the learning rate alone
    - [loss=huber, "loss.delta=0.5,1"]   # the grid gives way to huber's space
"""


@pytest.mark.slow
def test_a_tuned_suite_retrains_each_winner_on_fresh_seeds_and_reports_the_choice(tmp_path: Path):
    (tmp_path / "conf" / "suite").mkdir(parents=True)
    (tmp_path / "conf" / "suite" / "tiny_tune.yaml").write_text(TINY_TUNE_SUITE)
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m",
        "suite=tiny_tune",
        "tune=true",
        "search.n_trials=3",
        "search.startup_trials=1",
        *TINY_REGRESSION,
        "trainer.max_epochs=4",  # trials get half: 2 epochs, one past the warm-up
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(sweep / "summary.csv") as f:
        rows = {row["variant"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"mse", "huber"}  # the trials are not among the compared runs
    # one search per variant: the suite's LR grid gave way to the searches
    assert sorted(p.name for p in (sweep / "_search").iterdir()) == ["huber", "mse"]
    summary = (sweep / "summary.md").read_text()
    for variant, keys in (("mse", {"optimizer.lr"}), ("huber", {"optimizer.lr", "loss.delta"})):
        results = search_trials.read_results(
            sweep / "_search" / variant / search_trials.RESULTS_FILE
        )
        assert set(results["best_params"]) == keys and results["n_trials"] == 3
        trials = sorted((sweep / "_search" / variant).glob("trial=*"))
        statuses = [json.loads((t / "status.json").read_text()) for t in trials]
        configs = [OmegaConf.load(t / ".hydra" / "config.yaml") for t in trials]
        assert {c.seed for c in configs} == {100} and {c.trainer.max_epochs for c in configs} == {2}
        completed = [
            s["selection"]["value"] for s in statuses if s["status"] == "completed"
        ]  # the best of the completed trials (MAE: lowest), as read from their own records
        assert results["best_value"] == pytest.approx(min(completed))
        pruned = [s for s in statuses if str(s.get("stop_reason")).startswith("pruned")]
        assert results["n_pruned"] == len(pruned)
        retrained = sorted(sweep.glob(f"{variant}-seed=*"))
        assert [r.name for r in retrained] == [f"{variant}-seed=0", f"{variant}-seed=1"]
        for run in retrained:  # the winner, at the full budget, on the suite's seeds
            config = OmegaConf.load(run / ".hydra" / "config.yaml")
            assert config.trainer.max_epochs == 4
            for key, value in results["best_params"].items():
                assert math.isclose(OmegaConf.select(config, key), value), (run, key)
            assert "test/mae" in json.loads((run / "status.json").read_text())["metrics"]
        chosen = ", ".join(f"{k}={v}" for k, v in results["best_params"].items())
        line = f"| {variant} | {chosen} | 3 | {results['n_pruned']} | 0 |"
        assert line in summary, summary
        assert rows[variant]["seeds"] == "2"
    assert "Tuned before comparing" in summary
    # the searches chose the suite's select: [optimizer.lr]: no staged selection is reported
    assert "Tuned on validation" not in summary and {r["selected"] for r in rows.values()} == {""}
    assert (sweep / "tuning.png").stat().st_size > 0


def test_the_report_lists_each_search_and_warns_of_a_best_value_at_an_edge():
    from trainer.analysis.markdown import search_lines

    def search(best: dict, warnings: list[str]) -> dict:
        return {
            "n_trials": 8,
            "n_pruned": 3,
            "n_failed": 1,
            "best_params": best,
            "best_value": 0.5,
            "edge_warnings": warnings,
            "sampler": {"seed": 0},
        }

    warning = "optimizer.lr=0.0001 is at the edge of [0.0001, 0.01] (0.0001)"
    comparison = SimpleNamespace(
        val_tag="val/dice",
        rows=[SimpleNamespace(variant="focal"), SimpleNamespace(variant="bce")],
        searches={
            "focal": search({"loss.gamma": 2.0, "optimizer.lr": 1e-4}, [warning]),
            "bce": search({"optimizer.lr": 1e-3}, []),
        },
    )
    lines = search_lines(comparison)
    assert "| focal | loss.gamma=2.0, optimizer.lr=0.0001 | 8 | 3 | 1 | 0.5000 |" in lines
    assert "| bce | optimizer.lr=0.001 | 8 | 3 | 1 | 0.5000 |" in lines
    assert f"- focal: {warning}" in lines and not any(line.startswith("- bce") for line in lines)
