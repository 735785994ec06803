"""Suites, parallel launchers, the comparison report and failure isolation, end to end."""

import csv
import json
import math
import re
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from task_examples import tiny_budget
from train_cli import ROOT, run_train

from trainer.analysis.report import write_report

TINY_SUITE = """\
# @package _global_
defaults:
  - override /data: seg_imbalanced
suite:
  seeds: [0, 1]
  variants:
    - [loss=bce]
    - [loss=dice, "loss.eps=1.0"]
"""
# the quick preset (it wins over a suite's budget) on the segmentation task's tiny data and
# model; no task figures (test_task_figures checks them): the report's own pictures stay
QUICK = [
    "debug=quick",
    "trainer.enable_progress_bar=false",
    "~callbacks.figures",
    *tiny_budget("seg_imbalanced"),
]


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    (tmp_path / "conf" / "suite").mkdir(parents=True)
    (tmp_path / "conf" / "suite" / "tiny.yaml").write_text(TINY_SUITE)
    return tmp_path


def _rows(sweep: Path) -> dict[str, dict]:
    with open(sweep / "summary.csv") as f:
        return {row["variant"]: row for row in csv.DictReader(f)}


@pytest.mark.slow
def test_suite_runs_every_variant_and_seed_in_parallel_and_reports(suite_dir: Path):
    # through joblib's worker processes, where each job's result must come back to the sweep;
    # the basic launcher runs the other sweeps of the tests (suites among them: those of
    # test_findings and test_staged_select)
    sweep = suite_dir / "sweep"
    result = run_train(
        "-m",
        "suite=tiny",
        *QUICK,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.searchpath=[file://{suite_dir / 'conf'}]",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name != "_variants")
    assert [r.split("-debug")[0] for r in runs] == [
        "bce-seed=0",
        "bce-seed=1",
        "dice-eps=1.0-seed=0",
        "dice-eps=1.0-seed=1",
    ]
    rows = _rows(sweep)
    assert set(rows) == {"bce", "dice-eps=1.0"}
    for row in rows.values():
        assert row["seeds"] == "2" and row["n"] == "2" and row["status"] == "2 completed"
        low, mean, high = (float(row[f"test/dice {k}"]) for k in ("ci_low", "mean", "ci_high"))
        assert 0.0 <= mean <= 1.0 and low <= mean <= high
    assert rows["bce"]["verdict"] == "baseline"  # the task's plain loss
    assert rows["dice-eps=1.0"]["verdict"] in {"better", "worse", "tie"}
    assert "1" in {row["rank"] for row in rows.values()}
    summary = (sweep / "summary.md").read_text()
    assert "ranked by test/dice (higher is better)" in summary and "Baseline: `bce`" in summary
    for picture in ("curves", "final", "paired"):
        assert (sweep / f"{picture}.png").stat().st_size > 0
    with open(sweep / "runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert {p.name for p in (sweep / "_variants").iterdir()} == {"bce", "dice-eps=1.0"}


@pytest.mark.slow
def test_a_failing_job_is_listed_and_the_others_keep_their_results(tmp_path: Path):
    # foreground_share=0.9 is rejected by the datamodule: that job fails, the other completes
    result = run_train(
        "-m", "data.foreground_share=0.02,0.9", *QUICK, f"hydra.sweep.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # the failed job never knew its task: listed as failed, not compared as a variant
    rows = _rows(tmp_path)
    assert set(rows) == {"bce"} and rows["bce"]["status"] == "1 completed"
    message = "expected foreground_share > 0.0 and foreground_share <= 0.5, got 0.9"
    summary = (tmp_path / "summary.md").read_text()
    assert "failed before training" in summary and message in summary
    with open(tmp_path / "runs.csv") as f:
        runs = {row["data.foreground_share"]: row for row in csv.DictReader(f)}
    assert runs["0.9"]["status"] == "failed" and message in runs["0.9"]["reason"]
    assert runs["0.02"]["status"] == "completed" and 0.0 <= float(runs["0.02"]["test/dice"]) <= 1
    (ok_run,) = tmp_path.glob("bce-data.foreground_share=0.02*")
    assert list(ok_run.glob("events.out.tfevents.*"))
    (bad_run,) = tmp_path.glob("bce-data.foreground_share=0.9*")
    assert json.loads((bad_run / "status.json").read_text())["status"] == "failed"


def test_report_refuses_an_empty_directory(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no runs"):
        write_report(tmp_path)


SUITES = sorted((ROOT / "conf" / "suite").glob("*.yaml"))


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_the_job_count_a_suite_states_is_the_count_it_runs(path: Path):
    # each variant's grid is the product of its sweeps' sizes (the suite's `grid` beneath the
    # variant's own keys), as Hydra's parser reads them; with `select`, the grid runs on the
    # first seed and each variant's chosen value (one per point of its other sweeps) on the rest
    parse = OverridesParser.create().parse_overrides
    suite = OmegaConf.load(path).suite
    select = set(suite.get("select") or [])

    def sizes(variant: list[str]) -> dict[str, int]:
        own = {o.split("=", 1)[0] for o in variant}
        shared = [o for o in suite.get("grid") or [] if o.split("=", 1)[0] not in own]
        return {
            o.get_key_element(): len(list(o.sweep_string_iterator()))
            if o.is_sweep_override()
            else 1
            for o in parse([*variant, *shared])
        }

    grids = [sizes(list(variant)) for variant in suite.variants]
    variants = sum(math.prod(n for k, n in grid.items() if k not in select) for grid in grids)
    seeds = len(suite.seeds)
    jobs = (
        sum(math.prod(grid.values()) for grid in grids) + variants * (seeds - 1)
        if select
        else variants * seeds
    )
    comments = [line for line in path.read_text().splitlines() if line.startswith("#")]
    first = next(line for line in comments if "@package" not in line)
    stated = re.search(r"# (\d+) variants x (\d+) seeds = (\d+) jobs$", first)
    assert stated, f"{path.name}: its first comment line states no 'N variants x S seeds = J jobs'"
    assert tuple(map(int, stated.groups())) == (variants, seeds, jobs), first


@pytest.mark.parametrize("preset", ["quick", "saturate"])
def test_a_preset_wins_over_a_suite_and_the_command_line_over_both(make_cfg, preset: str):
    preset_cfg = OmegaConf.load(ROOT / "conf" / "debug" / f"{preset}.yaml")
    suite = OmegaConf.load(ROOT / "conf" / "suite" / "seg_imbalance.yaml")
    assert suite.trainer.max_epochs != preset_cfg.trainer.max_epochs  # else this proves nothing
    cfg = make_cfg(f"debug={preset}", "suite=seg_imbalance", tiny=False)
    for group, values in OmegaConf.to_container(preset_cfg).items():
        for key, value in values.items() if isinstance(values, dict) else [(None, values)]:
            name = group if key is None else f"{group}.{key}"
            assert OmegaConf.select(cfg, name) == value, name
    assert cfg.suite == suite.suite  # the suite still applies
    cfg = make_cfg(f"debug={preset}", "suite=seg_imbalance", "trainer.max_epochs=3", tiny=False)
    assert cfg.trainer.max_epochs == 3
    assert cfg.trainer.limit_train_batches == preset_cfg.trainer.limit_train_batches


def test_a_suite_wins_over_the_defaults(make_cfg):
    suite = OmegaConf.load(ROOT / "conf" / "suite" / "boxes.yaml")
    cfg = make_cfg("suite=boxes", tiny=False)
    assert cfg.trainer.max_epochs == suite.trainer.max_epochs
    assert cfg.data._target_ == "datasets.boxes.BoxesDataModule"
