"""The suite sweeper's run-directory names (only what varies between the jobs) and staged selection
(``select``: a variant's grid on the first seed, the chosen value on the other seeds)."""

import csv
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext
from omegaconf import OmegaConf
from train_cli import ROOT, run_train

# a regression MLP on tiny data: a run takes about a second
TINY_REGRESSION = [
    "debug=quick",
    "trainer.enable_progress_bar=false",
    "data.n_train=256",
    "data.n_val=64",
    "data.n_test=64",
    "data.batch_size=32",
    "model.hidden=[32]",
    "~callbacks.figures",  # the task's figures are test_task_figures' to check
]


@pytest.mark.slow
def test_run_dirs_carry_only_the_overrides_that_vary_and_each_job_gets_its_own(tmp_path: Path):
    # a 2x2 sweep plus overrides every job shares (debug=quick and the tiny data among them)
    result = run_train(
        "-m",
        "data=regression",
        "model=mlp",
        "loss=huber",
        "loss.delta=0.5,2",
        "seed=0,1",
        *TINY_REGRESSION,
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir() and p.name != "_variants")
    assert runs == sorted(f"huber-delta={d}-seed={s}" for d in (0.5, 2) for s in (0, 1))
    for name in runs:  # Hydra applied each job's own subdir: the dir holds that job's config
        config = OmegaConf.load(tmp_path / name / ".hydra" / "config.yaml")
        assert name == f"huber-delta={config.loss.delta}-seed={config.seed}"
        assert json.loads((tmp_path / name / "status.json").read_text())["status"] == "completed"


class ReturningLauncher:
    """Stands in for the launcher: records each job and returns it as completed in a dir named
    by its ``hydra.sweep.subdir``, without training."""

    def __init__(self) -> None:
        self.jobs: list[list[str]] = []

    def launch(self, batch, initial_job_idx: int) -> list[JobReturn]:
        returns = []
        for job in batch:
            self.jobs.append(list(job))
            subdir = next(o for o in job if o.startswith("hydra.sweep.subdir="))
            config = OmegaConf.create({"hydra": {"runtime": {"output_dir": subdir}}})
            returns.append(JobReturn(hydra_cfg=config, status=JobStatus.COMPLETED))
        return returns


def test_names_two_jobs_would_share_get_the_job_number(tmp_path: Path):
    GlobalHydra.instance().clear()
    initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf"))
    try:
        cfg = compose("train", overrides=[f"hydra.sweep.dir={tmp_path}"], return_hydra_config=True)
        context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=None)
        sweeper = Plugins.instance().instantiate_sweeper(
            hydra_context=context, task_function=lambda _: None, config=cfg
        )
        sweeper.launcher = ReturningLauncher()
        # names are cut at 200 characters: two values that differ past that would share one
        long = "x" * 250
        sweeper.sweep([f"+note={long}a,{long}b"])
    finally:
        GlobalHydra.instance().clear()
    subdirs = [job[-1].split("=", 1)[1] for job in sweeper.launcher.jobs]
    assert len(set(subdirs)) == 2, subdirs
    assert subdirs[1].endswith("-job=1'") and subdirs[0] == subdirs[1].removesuffix("-job=1'") + "'"


TINY_LR_SUITE = """\
# @package _global_
defaults:
  - override /data: regression
  - override /model: mlp
suite:
  seeds: [0, 1]
  select: [optimizer.lr]
  grid: ["optimizer.lr=1e-5,3e-2"]   # far apart: their validation values differ
  variants:
    - [loss=mse]
    - [loss=huber, loss.delta=1.0]
"""


@pytest.mark.slow
def test_a_staged_suite_runs_the_grid_on_the_first_seed_and_the_best_value_on_the_rest(
    tmp_path: Path,
):
    (tmp_path / "conf" / "suite").mkdir(parents=True)
    (tmp_path / "conf" / "suite" / "tiny_lr.yaml").write_text(TINY_LR_SUITE)
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m",
        "suite=tiny_lr",
        *TINY_REGRESSION,
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {}
    for status_path in sweep.glob("*/status.json"):
        config = OmegaConf.load(status_path.parent / ".hydra" / "config.yaml")
        status = json.loads(status_path.read_text())
        runs[(str(config.loss._target_), config.optimizer.lr, config.seed)] = status
    for loss in ("losses.regression.MSE", "losses.regression.Huber"):
        stage_one = {lr: runs[(loss, lr, 0)] for lr in (1e-5, 3e-2)}
        assert {s["mode"] for s in stage_one.values()} == {"min"}  # MAE: lower is better
        values = {lr: s["selection"]["value"] for lr, s in stage_one.items()}
        assert values[1e-5] != values[3e-2]  # else the choice proves nothing
        chosen = min(values, key=values.get)
        later = {lr for (target, lr, seed) in runs if target == loss and seed == 1}
        assert later == {chosen}, (loss, values, later)
    assert len(runs) == 2 * 2 + 2  # both rates on seed 0, the chosen one on seed 1
    with open(sweep / "summary.csv") as f:
        rows = {row["variant"]: row for row in csv.DictReader(f)}
    summary = (sweep / "summary.md").read_text()
    for variant, loss in (("mse", "losses.regression.MSE"), ("huber-delta=1.0", "Huber")):
        stage_one = {
            lr: status["selection"]["value"]
            for (target, lr, seed), status in runs.items()
            if target.endswith(loss) and seed == 0
        }
        chosen = min(stage_one, key=stage_one.get)
        assert rows[variant]["selected"] == f"optimizer.lr={chosen}"
        assert rows[variant]["seeds"] == "2"  # the ranked runs: the chosen rate's two seeds
        assert f"| {variant} | optimizer.lr={chosen} |" in summary
