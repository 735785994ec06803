"""Suites, parallel launchers, the comparison report and failure isolation, end to end."""

import csv
import json
import math
from pathlib import Path

import pytest
from test_sweep import run_train

from trainer.report import write_report

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
QUICK = [
    "debug=quick",
    "trainer.enable_progress_bar=false",
    "data.n_train=64",
    "data.n_val=32",
    "data.n_test=32",
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
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_suite_runs_every_variant_and_seed_and_reports(suite_dir: Path, launcher: str):
    sweep = suite_dir / "sweep"
    parallel = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    result = run_train(
        "-m",
        "suite=tiny",
        *QUICK,
        *parallel,
        f"hydra.searchpath=[file://{suite_dir / 'conf'}]",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert [r.split("-debug")[0] for r in runs] == [
        "bce-seed=0",
        "bce-seed=1",
        "dice-eps=1.0-seed=0",
        "dice-eps=1.0-seed=1",
    ]
    rows = _rows(sweep)
    assert set(rows) == {"bce", "dice-eps=1.0"}
    for row in rows.values():
        assert row["seeds"] == "2" and row["status"] == "2 completed"
        assert 0.0 <= float(row["test/dice mean"]) <= 1.0 and float(row["test/dice std"]) >= 0.0
    assert sum(row["best"] == "yes" for row in rows.values()) == 1
    summary = (sweep / "summary.md").read_text()
    assert "ranked by test/dice" in summary and " ± " in summary and "(best)" in summary
    assert (sweep / "curves.png").stat().st_size > 0 and (sweep / "final.png").stat().st_size > 0


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path: Path):
    result = run_train(
        "-m",
        "loss=bce,dice",
        *QUICK,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for loss in ("bce", "dice"):
        (run,) = tmp_path.glob(f"{loss}-*")
        assert json.loads((run / "status.json").read_text())["status"] == "completed"
        assert list(run.glob("events.out.tfevents.*"))
    assert set(_rows(tmp_path)) == {"bce", "dice"}


@pytest.mark.slow
def test_a_failing_job_is_listed_and_the_others_keep_their_results(tmp_path: Path):
    # foreground_share=0.9 is rejected by the datamodule: that job fails, the other completes
    result = run_train(
        "-m", "data.foreground_share=0.02,0.9", *QUICK, f"hydra.sweep.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _rows(tmp_path)
    assert rows["bce-data.foreground_share=0.02"]["status"] == "1 completed"
    failed = rows["bce-data.foreground_share=0.9"]
    assert failed["status"] == "1 failed"
    assert (
        "expected foreground_share > 0.0 and foreground_share <= 0.5, got 0.9" in failed["failures"]
    )
    assert math.isnan(float(failed["test/dice mean"]))
    (ok_run,) = tmp_path.glob("bce-data.foreground_share=0.02*")
    assert list(ok_run.glob("events.out.tfevents.*"))
    (bad_run,) = tmp_path.glob("bce-data.foreground_share=0.9*")
    assert json.loads((bad_run / "status.json").read_text())["status"] == "failed"


def test_report_refuses_an_empty_directory(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no runs"):
        write_report(tmp_path)
