"""Preemption: a signalled run saves its whole training state at the next batch, records
``preempted``, and continues with ``resume=<its dir>`` alone, or by itself where its job is
requeued (a SLURM batch job through ``scontrol``, a submitit job through submitit's requeue),
ending where an uninterrupted run ends."""

import csv
import json
import os
import signal
import stat
from pathlib import Path

import pytest
import torch
from conftest import read_events
from train_cli import run_train

from datasets._base import EpochShuffle
from datasets.retrieval import PKBatchSampler
from trainer import preemption
from trainer.analysis.runs import load_run
from trainer.cli import resumed_overrides

TESTS = Path(__file__).resolve().parent
RUN = [
    "data=regression",
    "model=mlp",
    "loss=mse",
    "data.n_train=256",  # 8 batches of 32 an epoch: steps 17-24 are the last epoch's
    "data.n_val=64",
    "data.n_test=64",
    "data.batch_size=32",
    "trainer.max_epochs=3",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "~callbacks.figures",
]
# signalled at the end of step 19, saved at the end of the next batch: mid-way through the last
# epoch, whose train/loss_epoch then averages batches from before and after the preemption
SIGNAL_STEP = 19
SAVED_STEP = 20
COMPARED = ("val/loss", "val/mae", "val/r2", "train/loss_epoch", "test/loss", "test/mae")
ON_PATH = {"PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}


def signal_at(step: int, signum: str) -> list[str]:
    return [
        "+callbacks.signal._target_=signal_injection.SignalAtStep",
        f"+callbacks.signal.step={step}",
        f"+callbacks.signal.signum={signum}",
    ]


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("whole")
    result = run_train(*RUN, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return {"status": status(run_dir), "scalars": read_events(run_dir)["scalars"]}


def assert_same_end(run_dir: Path, uninterrupted: dict) -> None:
    got, expected = status(run_dir), uninterrupted["status"]
    assert got["status"] == "completed"
    for name in COMPARED:  # deterministic on one CPU thread: the same arithmetic, in order
        assert got["metrics"][name] == pytest.approx(expected["metrics"][name], rel=1e-6), name
    scalars = read_events(run_dir)["scalars"]
    for tag in ("train/loss_step", "val/mae"):  # every step once, none twice, none missing
        got_steps = [step for step, _ in scalars[tag]]
        assert got_steps == [step for step, _ in uninterrupted["scalars"][tag]], tag


@pytest.mark.slow
@pytest.mark.xdist_group("uninterrupted_run")  # one worker: the reference run trains once
def test_a_sigterm_saves_at_the_next_batch_and_resume_alone_ends_as_if_uninterrupted(
    tmp_path: Path, uninterrupted: dict
):
    run_dir = tmp_path / "run"
    stopped = run_train(
        *RUN, *signal_at(SIGNAL_STEP, "SIGTERM"), f"hydra.run.dir={run_dir}", env=ON_PATH
    )
    assert stopped.returncode == 1
    assert stopped.stderr.strip().splitlines()[-1] == (
        f"train.py: preempted by SIGTERM at step {SAVED_STEP}: checkpoint "
        f"{run_dir}/checkpoints/last.ckpt; continue with: python train.py resume={run_dir}"
    )
    record = status(run_dir)
    assert record["status"] == "preempted"
    [preempted] = record["preemptions"]
    assert (preempted["signal"], preempted["step"]) == ("SIGTERM", SAVED_STEP)
    assert (preempted["epoch"], preempted["batches_in_epoch"]) == (2, 4)  # mid-epoch
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == SAVED_STEP
    # what a comparison report lists for it while it has not continued
    assert load_run(run_dir / "status.json").reason == (
        f"by SIGTERM at step {SAVED_STEP}, checkpoint saved: continue with python train.py "
        f"resume={run_dir}"
    )

    # the run's own overrides come back from its .hydra/overrides.yaml: nothing else is given
    resumed = run_train(f"resume={run_dir}", env=ON_PATH)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert status(run_dir)["preemptions"] == [preempted]
    assert_same_end(run_dir, uninterrupted)


@pytest.mark.slow
@pytest.mark.xdist_group("uninterrupted_run")  # one worker: the reference run trains once
def test_a_slurm_batch_job_requeues_itself_and_its_rerun_continues_in_its_dir(
    tmp_path: Path, uninterrupted: dict
):
    """``sbatch`` running ``train.py``: SLURM's pre-limit signal (SIGUSR2) makes the run save and
    call ``scontrol requeue <job>``; the requeued job runs the same command, finds its dir by the
    job id and continues there by itself."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "scontrol.calls"
    scontrol = fake_bin / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    env = {
        **ON_PATH,
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "compare-losses",
    }
    command = [*RUN, *signal_at(SIGNAL_STEP, "SIGUSR2"), f"paths.log_dir={tmp_path / 'out'}"]

    first = run_train(*command, env=env)
    assert first.returncode == 1, first.stderr[-3000:]
    [run_dir] = (tmp_path / "out" / "runs" / "regression").glob("*/slurm-4242")
    assert status(run_dir)["status"] == "preempted"
    assert calls.read_text().split() == ["requeue", "4242"]

    requeued = run_train(*command, env=env)  # SLURM runs the batch script again
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert [p.name for p in run_dir.parent.iterdir()] == ["slurm-4242"]
    assert [p["signal"] for p in status(run_dir)["preemptions"]] == ["SIGUSR2"]
    assert_same_end(run_dir, uninterrupted)


@pytest.mark.slow
@pytest.mark.xdist_group("uninterrupted_run")  # one worker: the reference run trains once
def test_a_submitit_job_is_requeued_by_submitit_and_resumes_in_the_sweep(
    tmp_path: Path, uninterrupted: dict
):
    """``hydra/launcher=submitit_local`` runs the job as submitit runs it on SLURM: submitit's own
    handler gets the signal after the run saved (and requeues the job: locally, its controller
    starts the job again); the job, with the same overrides, continues in its run dir, and the
    sweep's report reads its result (the submitit launcher's end-to-end test too)."""
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m",
        *RUN,
        *signal_at(SIGNAL_STEP, "SIGUSR2"),
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=job",
        env=ON_PATH,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = sweep / "job"
    assert [p["signal"] for p in status(run_dir)["preemptions"]] == ["SIGUSR2"]
    assert_same_end(run_dir, uninterrupted)
    logs = "".join(p.read_text() for p in sweep.glob(".submitit/*/*_log.out"))
    assert "Requeued job" in logs  # submitit's own requeue, not a second mechanism
    with open(sweep / "summary.csv") as f:
        [row] = csv.DictReader(f)
    assert (row["variant"], row["status"]) == ("mse", "1 completed")
    assert float(row["test/mae mean"]) == status(run_dir)["metrics"]["test/mae"]


def test_a_preempted_epoch_resumes_with_the_batches_it_had_not_trained():
    shuffle = EpochShuffle(10, seed=3)
    shuffle.set_epoch(4)
    whole = list(shuffle)
    shuffle.resume_at(4, batches=3, batch_size=2)
    assert list(shuffle) == whole[6:]
    assert list(shuffle) == whole  # the skip is for one pass

    labels = torch.arange(40) % 5
    pk = PKBatchSampler(labels, p=2, k=2, seed=1)
    pk.set_epoch(2)
    batches = list(pk)
    pk.resume_at(2, batches=4, batch_size=1)
    assert list(pk) == batches[4:]


def test_hand_over_gives_the_signal_to_the_handler_from_before_the_run(monkeypatch):
    received = []
    monkeypatch.setattr(signal, "getsignal", lambda signum: lambda s, f: received.append(s))
    preemption.hand_over(preemption.Preempted(signal.SIGUSR2, {"step": 3}))
    assert received == [signal.SIGUSR2]


@pytest.mark.parametrize(
    ("signum", "requeued"),
    [(signal.SIGUSR2, True), (signal.SIGTERM, False)],  # SIGTERM: SLURM's own requeue
)
def test_a_slurm_job_requeues_itself_on_the_pre_limit_signal_only(
    tmp_path: Path, monkeypatch, signum: signal.Signals, requeued: bool
):
    calls = tmp_path / "calls"
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setattr(signal, "getsignal", lambda s: signal.SIG_DFL)
    preemption.hand_over(preemption.Preempted(signum, {"step": 3}))
    assert (calls.read_text().split() if calls.exists() else []) == (
        ["requeue", "77_3"] if requeued else []
    )


def test_a_signal_name_that_cannot_be_caught_is_one_line():
    with pytest.raises(ValueError, match=r"^preemption: expected signal names .* got 'SIGKILL'$"):
        preemption.signal_numbers(["SIGKILL"])


def test_resume_restores_the_run_overrides_and_refuses_a_changed_one(tmp_path: Path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text(
        "- loss=focal\n- data=regression\n- loss.gamma=2\n- resume=/elsewhere\n"
    )
    restored, conflict = resumed_overrides([f"resume={tmp_path}", "loss.gamma=2"])
    assert (restored, conflict) == (["loss=focal", "data=regression"], None)
    _, conflict = resumed_overrides([f"resume={tmp_path}", "loss=dice"])
    assert conflict == (
        f"resume: {tmp_path} was trained with loss=focal; loss=dice would change the run it "
        "continues: leave it out (resume= restores the run's own overrides)"
    )
    assert resumed_overrides(["loss=dice"]) == ([], None)


def test_trainer_gpu_without_a_gpu_is_one_line(tmp_path: Path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_train("trainer=gpu", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "train.py: trainer.accelerator=gpu, but torch finds no GPU on this machine: leave "
        "trainer=gpu out (accelerator auto uses a GPU when there is one)"
    )
    assert "Traceback" not in result.stderr
