"""Hydra multiruns through the real command line: one readable directory and event file per job."""

import json
import re
from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf
from task_examples import DATA_TASKS, tiny_budget
from train_cli import ROOT, run_train


@pytest.mark.slow
def test_focal_sweep_runs_six_jobs_in_readable_dirs(tmp_path: Path):
    result = run_train(
        "-m",
        "loss=focal",
        "loss.gamma=0,1,2",
        "loss.alpha=0.25,0.5",
        "debug=quick",
        *tiny_budget("seg_imbalanced"),
        "~callbacks.figures",  # the task's figures are test_task_figures' to check
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir() and p.name != "_variants")
    # only what varies between the jobs names them: no debug=quick, no tiny budget, no
    # progress-bar setting
    assert runs == sorted(f"focal-gamma={g}-alpha={a}" for g in (0, 1, 2) for a in (0.25, 0.5))
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
        f"train.py: unknown data 'no_such_data'; choose one of: {', '.join(sorted(DATA_TASKS))}"
    )
    result = run_train("-m", "loss=choice(bce,dcie)", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 1
    assert result.stderr.startswith("train.py: unknown loss 'dcie'; choose one of: balanced_bce,")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_suite_without_multirun_is_one_line_before_hydra_starts(tmp_path: Path):
    result = run_train("suite=seg_imbalance", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "train.py: a suite is a sweep of jobs: add -m (python train.py -m suite=seg_imbalance)"
    )
    assert not any(tmp_path.iterdir()), "Hydra started"


def test_dry_run_lists_every_job_of_a_suite_and_trains_nothing(tmp_path: Path):
    result = run_train("-m", "suite=boxes", "dry_run=true", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    # Hydra's log lines ("[2026-...][HYDRA] ...") share stdout with the listing
    lines = [line for line in result.stdout.splitlines() if not line.startswith("[")]
    # conf/suite/boxes.yaml: 4 variants, seeds 0, 1, 2, in that order
    variants = ["loss=giou", "loss=l1", "loss=smooth_l1 loss.beta=0.05", "loss=giou_l1"]
    assert lines == [
        *(f"{v} seed={s} suite=boxes" for v in variants for s in range(3)),
        "12 jobs (dry run: nothing trained)",
    ]
    assert not list(tmp_path.rglob("status.json")) and not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.slow
def test_a_choice_sweep_of_losses_runs_each(tmp_path: Path):
    result = run_train(
        "-m",
        "loss=choice(bce,dice)",
        "debug=quick",
        *tiny_budget("seg_imbalanced"),
        "~callbacks.figures",  # the task's figures are test_task_figures' to check
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for loss in ("bce", "dice"):
        run = tmp_path / loss
        assert json.loads((run / "status.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_a_loss_glob_on_a_task_runs_the_losses_that_fit_and_logs_each_skip(tmp_path: Path):
    names = sorted(p.stem for p in (ROOT / "conf" / "loss").glob("*.yaml"))
    # the reference: each loss class's own `tasks`
    fits = {
        name
        for name in names
        if "regression"
        in get_class(OmegaConf.load(ROOT / "conf" / "loss" / f"{name}.yaml")._target_).tasks
    }
    assert {"mse", "l1", "huber", "smooth_l1"} <= fits and "bce" not in fits
    result = run_train(
        "-m",
        "loss=glob(*)",
        "data=regression",
        "debug=quick",
        *tiny_budget("regression"),
        "~callbacks.figures",
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {p.name.split("-")[0]: p for p in tmp_path.iterdir() if (p / "status.json").exists()}
    assert set(runs) == fits
    for run in runs.values():
        assert json.loads((run / "status.json").read_text())["status"] == "completed"
    log = (result.stdout + result.stderr).splitlines()
    # each misfit skipped once, in the glob's order, with its line; the rest launched in order
    assert [line.split("] ", 1)[1] for line in log if "] skipped " in line] == [
        f"skipped loss={name}: it does not fit data=regression (task regression)"
        for name in names
        if name not in fits
    ]
    launched = [line.split(" : ", 1)[1].split()[:2] for line in log if re.search(r"#\d+ : ", line)]
    assert launched == [[f"loss={name}", "data=regression"] for name in sorted(fits)]
