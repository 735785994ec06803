"""Hydra multiruns through the real command line: one readable directory and event file per job."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_train(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_focal_sweep_runs_six_jobs_in_readable_dirs(tmp_path: Path):
    result = run_train(
        "-m",
        "loss=focal",
        "loss.gamma=0,1,2",
        "loss.alpha=0.25,0.5",
        "debug=quick",
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert runs == sorted(
        f"focal-gamma={g}-alpha={a}-debug=quick-trainer.enable_progress_bar=False"
        for g in (0, 1, 2)
        for a in (0.25, 0.5)
    )
    for name in runs:
        run = tmp_path / name
        assert list(run.glob("events.out.tfevents.*")), name
        assert json.loads((run / "status.json").read_text())["status"] == "completed"
        assert (run / ".hydra" / "config.yaml").exists()  # the resolved config beside the events
    # no state leaks between jobs: each job's HParams carry its own gamma/alpha
    hparams = {name: (tmp_path / name / "hparams.yaml").read_text() for name in runs}
    assert all(
        f"gamma: {name.split('gamma=')[1].split('-')[0]}" in text for name, text in hparams.items()
    )


def test_unknown_choice_is_one_line_before_hydra_starts(tmp_path: Path):
    result = run_train("loss=no_such_loss", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("train.py: unknown loss 'no_such_loss'; choose one of: ")
    assert "focal" in line and "dice" in line
    result = run_train("-m", "data=seg_imbalanced,no_such_data", f"hydra.sweep.dir={tmp_path}")
    assert result.stderr.strip() == (
        "train.py: unknown data 'no_such_data'; choose one of: "
        "boxes, fashion_mnist, mnist, regression, restoration, retrieval, seg_imbalanced"
    )
