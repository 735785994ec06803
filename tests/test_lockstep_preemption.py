"""Preemption of a lockstep group (``trainer/lockstep/preemption.py``): every variant that trains
checkpoints its own part at the signal and records ``preempted``; the same sweep, run again in
the same sweep dir, continues the group from those checkpoints and ends where the uninterrupted
group ends. The reference is an uninterrupted lockstep group of the same jobs."""

import json
from pathlib import Path

import pytest
import torch
from conftest import read_events
from test_lockstep import TWO_EPOCHS, as_variant
from test_preemption import COMPARED, ON_PATH, RUN, SAVED_STEP, SIGNAL_STEP, signal_at
from train_cli import run_train

from trainer.lockstep import train_lockstep
from trainer.lockstep.preemption import continuation_blocker
from trainer.lockstep.routing import VariantCheckpointIO, group_checkpoint, variant_checkpoint
from trainer.preemption import Preempted

LOSSES = ("mse", "l1", "huber")
GROUP = [
    *(o for o in RUN if not o.startswith("loss=")),
    f"loss={','.join(LOSSES)}",
    "hydra/launcher=lockstep",
]


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def runs(sweep: Path) -> dict[str, Path]:
    """The sweep's run dirs by loss (a sweep of losses names each job's dir after its loss)."""
    return {loss: sweep / loss for loss in LOSSES}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, dict]:
    sweep = tmp_path_factory.mktemp("whole")
    result = run_train("-m", *GROUP, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        loss: {"status": status(run_dir), "scalars": read_events(run_dir)["scalars"]}
        for loss, run_dir in runs(sweep).items()
    }


@pytest.mark.slow
def test_a_preempted_group_checkpoints_every_variant_and_continues_as_a_group(
    tmp_path: Path, uninterrupted: dict
):
    sweep = tmp_path / "sweep"
    command = ["-m", *GROUP, *signal_at(SIGNAL_STEP, "SIGTERM"), f"hydra.sweep.dir={sweep}"]
    stopped = run_train(*command, env=ON_PATH)
    assert stopped.returncode == 1
    assert stopped.stderr.strip().splitlines()[-1] == (
        f"train.py: lockstep group preempted by SIGTERM at step {SAVED_STEP}; every variant's "
        f"checkpoint is in its run dir: the same command with hydra.sweep.dir={sweep} continues it"
    )
    records = {}
    for loss, run_dir in runs(sweep).items():
        record = status(run_dir)
        assert record["status"] == "preempted", loss
        [preempted] = record["preemptions"]
        checkpoint = run_dir / "checkpoints" / "last.ckpt"
        assert (preempted["signal"], preempted["step"]) == ("SIGTERM", SAVED_STEP)
        assert (preempted["epoch"], preempted["batches_in_epoch"]) == (2, 4)  # mid-epoch
        assert preempted["checkpoint"] == str(checkpoint)  # its own
        saved = torch.load(checkpoint, weights_only=False)
        assert saved["global_step"] == SAVED_STEP
        assert not any(key.startswith("variants.") for key in saved["state_dict"])  # its part
        assert len(saved["optimizer_states"][0]["param_groups"]) == 1
        records[loss] = preempted

    # the requeued job, or the user: the same command, the same sweep dir
    resumed = run_train(*command, env=ON_PATH)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (resumed.stderr + resumed.stdout).count("in lockstep:") == len(LOSSES)
    for loss, run_dir in runs(sweep).items():
        got, expected = status(run_dir), uninterrupted[loss]["status"]
        assert got["status"] == "completed", loss
        assert got["preemptions"] == [records[loss]]
        for name in COMPARED:  # the same arithmetic, in the same order, on one CPU thread
            assert got["metrics"][name] == expected["metrics"][name], (loss, name)
        assert got["selection"] == expected["selection"]
        scalars = read_events(run_dir)["scalars"]
        for tag in ("train/loss_step", "val/mae"):  # every step once, none twice, none missing
            got_steps = [step for step, _ in scalars[tag]]
            assert got_steps == [step for step, _ in uninterrupted[loss]["scalars"][tag]], tag


def assert_same_tree(got, expected, where: str = "checkpoint") -> None:
    if isinstance(expected, dict):  # a module's state_dict is an OrderedDict, the parts' dicts
        assert isinstance(got, dict) and got.keys() == expected.keys(), where
        for key, value in expected.items():
            assert_same_tree(got[key], value, f"{where}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert type(got) is type(expected) and len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_same_tree(a, b, f"{where}[{i}]")
    elif isinstance(expected, torch.Tensor):
        assert torch.equal(got, expected), where
    else:
        assert type(got) is type(expected) and got == expected, where


def test_the_variants_parts_put_together_give_back_the_group_checkpoint(
    make_cfg, tmp_path: Path, monkeypatch
):
    """``group_checkpoint`` undoes ``variant_checkpoint`` on a real group's checkpoint: weights,
    optimizer groups and states, scheduler entries, every callback's state under its key."""
    saved = []
    save = VariantCheckpointIO.save_checkpoint

    def keep(io, checkpoint, path, storage_options=None):
        saved.append((io, checkpoint))
        save(io, checkpoint, path, storage_options)

    monkeypatch.setattr(VariantCheckpointIO, "save_checkpoint", keep)
    group = [
        as_variant(make_cfg, tmp_path / loss, "data=regression", f"loss={loss}", *TWO_EPOCHS)
        for loss in LOSSES
    ]
    train_lockstep(group)
    io, checkpoint = saved[-1]  # the last epoch's, with every callback's state
    assert len(checkpoint["optimizer_states"][0]["param_groups"]) == len(LOSSES)
    assert sum("@variant" in key for key in checkpoint["callbacks"]) >= 2 * len(LOSSES)
    parts = [variant_checkpoint(checkpoint, k) for k in range(len(LOSSES))]
    assert_same_tree(group_checkpoint(parts, io.callbacks), checkpoint)


@pytest.mark.slow
def test_a_variant_stopped_before_the_preemption_keeps_its_record_and_the_rest_goes_on(
    make_cfg, tmp_path: Path
):
    """The naive BCE's guard stops it at its first non-finite loss; the group is signalled later:
    the stable variant is preempted (its checkpoint, its record), the stopped one keeps its own
    record and files, and the group continues without it, the stable variant ending where it
    ends in the uninterrupted group."""
    # two epochs, the signal in the first
    common = [
        "debug=saturate",
        "nan_policy=stop",
        "trainer.limit_train_batches=6",
        "trainer.max_epochs=2",
    ]
    losses = ["bce", "bce_manual"]
    whole = [as_variant(make_cfg, tmp_path / loss, *common, f"loss={loss}") for loss in losses]
    train_lockstep(whole)
    stable, naive = tmp_path / "stable", tmp_path / "naive"
    signalled = [*common, *signal_at(2, "SIGTERM")]  # saved at the end of step 3 of 6
    group = [
        as_variant(make_cfg, run_dir, *signalled, f"loss={loss}")
        for run_dir, loss in zip((stable, naive), losses, strict=True)
    ]
    with pytest.raises(Preempted):
        train_lockstep(group)
    assert status(stable)["status"] == "preempted"
    assert status(stable)["preemptions"][0]["checkpoint"] == str(stable / "checkpoints/last.ckpt")
    stopped = status(naive)
    assert stopped["status"] == "stopped" and stopped["stop_reason"].startswith("non-finite loss")
    assert not (naive / "checkpoints" / "last.ckpt").exists()  # stopped in its first epoch
    assert continuation_blocker([True, False], [stable, naive]) is None

    # what the launcher hands over when the sweep runs again: the preempted job continues
    again = [
        as_variant(make_cfg, stable, *signalled, "loss=bce", f"resume={stable}"),
        as_variant(make_cfg, naive, *signalled, "loss=bce_manual"),
    ]
    train_lockstep(again)
    assert status(naive) == stopped
    got, expected = status(stable), status(tmp_path / "bce")
    assert got["status"] == "completed" and len(got["preemptions"]) == 1
    assert got["metrics"] == expected["metrics"] | {
        k: v for k, v in got["metrics"].items() if k.startswith("perf/")
    }


def write_status(run_dir: Path, state: str, step: int | None = None) -> Path:
    run_dir.mkdir()
    record = {"status": state}
    if step is not None:
        record["preemptions"] = [{"signal": "SIGTERM", "step": step}]
    (run_dir / "status.json").write_text(json.dumps(record))
    return run_dir


def test_a_group_continues_when_every_variant_still_training_was_preempted(tmp_path: Path):
    preempted = [write_status(tmp_path / f"p{i}", "preempted", step=13) for i in range(2)]
    stopped = write_status(tmp_path / "stopped", "stopped")
    completed = write_status(tmp_path / "completed", "completed")
    later = write_status(tmp_path / "later", "preempted", step=40)
    assert continuation_blocker([False, False], [completed, stopped]) is None  # nothing to resume
    assert continuation_blocker([True, True, False], [*preempted, stopped]) is None
    assert continuation_blocker([True, False], [preempted[0], completed]) == (
        f"{completed} is completed, neither preempted nor ended before the preemption"
    )
    assert continuation_blocker([True, True], [preempted[0], later]) == (
        "its variants were preempted at different steps ([13, 40])"
    )
