"""Lockstep training (``trainer/lockstep/``, ``hydra/launcher=lockstep``): each variant of a
group follows its sequential run, writes the files a sequential run writes, and keeps its
non-finite incidents to itself.

The reference is always the sequential run of the same config (``train.train``), never the
lockstep code path. On CPU the two runs perform the same floating-point operations in the same
order (same initial weights, batches, random draws, per-parameter AdamW updates), so weights,
optimizer states, logged scalars and metrics are compared for exact equality: any tolerance
would hide a broken pairing.
"""

import json
from pathlib import Path

import pytest
import torch
from conftest import read_events
from omegaconf import OmegaConf
from task_examples import TASK_DATA, examples
from train_cli import run_train

from train import train
from trainer.lockstep import Variant, train_lockstep
from trainer.lockstep.routing import _variant_of_name
from trainer.tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent
# one data config per task (TASK_DATA: the first by name), so every task's default model is
# covered; two losses per task whose steps draw no random numbers (each task's LOSS_PAIR); see
# test_a_random_loss_keeps_the_variants_paired for one that draws
LOSS_PAIRS = {task: examples(task).LOSS_PAIR for task in sorted(TASKS)}
# a validation between the epochs: checkpoint selection, the scheduler step, a second epoch
TWO_EPOCHS = ["trainer.max_epochs=2", "trainer.limit_train_batches=3"]


def as_variant(make_cfg, run_dir: Path, *overrides: str) -> Variant:
    """The job the lockstep launcher would hand over: the config resolved for its run dir."""
    cfg = make_cfg(*overrides, f"paths.output_dir={run_dir}", figures=True)
    plain = OmegaConf.to_container(cfg, resolve=True)
    del plain["hydra"]
    return Variant(
        OmegaConf.create(plain), dict(cfg.hydra.runtime.choices), list(cfg.hydra.overrides.task)
    )


def run_both(make_cfg, tmp_path: Path, common: list[str], variants: list[list[str]]):
    """Each variant sequentially (``seq<i>``) and all of them in one lockstep group (``ls<i>``);
    the sequential runs as a multirun's jobs, which a lockstep group's always are."""
    for i, own in enumerate(variants):
        seq_dir = tmp_path / f"seq{i}"
        multirun_job = [*common, *own, "hydra.mode=MULTIRUN", f"paths.output_dir={seq_dir}"]
        train(make_cfg(*multirun_job, figures=True))
    group = [
        as_variant(make_cfg, tmp_path / f"ls{i}", *common, *own) for i, own in enumerate(variants)
    ]
    train_lockstep(group)
    return [(tmp_path / f"seq{i}", tmp_path / f"ls{i}") for i in range(len(variants))]


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def without_perf(metrics: dict) -> dict:
    # samples/s of the whole group's data pass: a timing, not a result
    return {k: v for k, v in metrics.items() if not k.startswith("perf/")}


def assert_same_checkpoint(seq: Path, ls: Path, name: str) -> None:
    a = torch.load(seq / "checkpoints" / name, map_location="cpu", weights_only=False)
    b = torch.load(ls / "checkpoints" / name, map_location="cpu", weights_only=False)
    assert a.keys() == b.keys()
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():  # BatchNorm running statistics included
        assert torch.equal(value, b["state_dict"][key]), key
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"])
    (opt_a,), (opt_b,) = a["optimizer_states"], b["optimizer_states"]
    assert opt_a["param_groups"] == opt_b["param_groups"]
    assert opt_a["state"].keys() == opt_b["state"].keys()
    for index, state in opt_a["state"].items():
        for field, value in state.items():
            assert torch.equal(value, opt_b["state"][index][field]), (index, field)
    assert a["lr_schedulers"] == b["lr_schedulers"]
    # the callbacks' states under the sequential keys, paths aside (the run dirs differ)
    assert a["callbacks"].keys() == b["callbacks"].keys()
    text_a = json.dumps(a["callbacks"], default=str).replace(str(seq), "RUN")
    text_b = json.dumps(b["callbacks"], default=str).replace(str(ls), "RUN")
    assert text_a == text_b


def test_every_task_has_a_loss_pair():
    assert set(TASK_DATA) == set(TASKS) == set(LOSS_PAIRS)


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(LOSS_PAIRS))
def test_lockstep_variants_follow_their_sequential_runs(make_cfg, tmp_path: Path, task: str):
    common = [f"data={TASK_DATA[task]}", *TWO_EPOCHS]
    for seq, ls in run_both(make_cfg, tmp_path, common, list(LOSS_PAIRS[task])):
        a, b = status(seq), status(ls)
        assert b["status"] == a["status"] == "completed"
        assert without_perf(b["metrics"]) == without_perf(a["metrics"])
        assert b["selection"] == a["selection"]
        assert b["metric_tags"] == a["metric_tags"]  # the sweep's TensorBoard experiment's
        assert_same_checkpoint(seq, ls, "last.ckpt")
        assert_same_checkpoint(seq, ls, "best.ckpt")
        events_a, events_b = read_events(seq), read_events(ls)
        assert without_perf(events_b["scalars"]) == without_perf(events_a["scalars"])
        assert events_b["images"] == events_a["images"]
        assert events_b["hparams"] == events_a["hparams"]
        assert events_b["metric_tags"] == events_a["metric_tags"] == []  # the sweep's to write
        assert json.loads((ls / "nonfinite.json").read_text()) == json.loads(
            (seq / "nonfinite.json").read_text()
        )


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_accumulated_gradients_follow_their_sequential_runs(make_cfg, tmp_path, precision):
    # Lightning divides the group's summed loss by accumulate_grad_batches and clears every
    # variant's gradients once a window (3 batches an epoch: each epoch's second window holds
    # one batch); in float32 and under bf16 autocast (which a CPU runs too)
    common = [
        "data=regression",
        "+trainer.accumulate_grad_batches=2",
        f"trainer.precision={precision}",
        *TWO_EPOCHS,
    ]
    variants = [["loss=mse"], ["loss=l1"], ["loss=huber"]]
    for seq, ls in run_both(make_cfg, tmp_path, common, variants):
        assert without_perf(status(ls)["metrics"]) == without_perf(status(seq)["metrics"])
        assert_same_checkpoint(seq, ls, "last.ckpt")


@pytest.mark.slow
def test_a_nonfinite_variant_keeps_its_incidents_to_itself(make_cfg, tmp_path: Path):
    # saturated logits: the naive log(sigmoid) BCE goes non-finite, the stable form does not
    common = ["debug=saturate", "trainer.limit_train_batches=6", "trainer.log_every_n_steps=1"]
    (stable_seq, stable_ls), (naive_seq, naive_ls) = run_both(
        make_cfg, tmp_path, common, [["loss=bce"], ["loss=bce_manual"]]
    )
    naive = json.loads((naive_ls / "nonfinite.json").read_text())
    assert naive["counts"]["loss"] > 0 and naive["skipped_steps"] > 0
    assert naive == json.loads((naive_seq / "nonfinite.json").read_text())
    assert json.loads((stable_ls / "nonfinite.json").read_text())["counts"] == {
        "loss": 0,
        "grad": 0,
        "param": 0,
    }
    assert without_perf(status(stable_ls)["metrics"]) == without_perf(status(stable_seq)["metrics"])
    assert_same_checkpoint(stable_seq, stable_ls, "last.ckpt")
    assert_same_checkpoint(naive_seq, naive_ls, "last.ckpt")


@pytest.mark.slow
def test_a_stopped_variant_is_masked_out_while_the_other_trains(make_cfg, tmp_path: Path):
    common = ["debug=saturate", "nan_policy=stop", "trainer.limit_train_batches=6"]
    variants = [["loss=bce"], ["loss=bce_manual"]]
    group = [as_variant(make_cfg, tmp_path / f"ls{i}", *common, *v) for i, v in enumerate(variants)]
    train_lockstep(group)
    stable, naive = status(tmp_path / "ls0"), status(tmp_path / "ls1")
    assert naive["status"] == "stopped"
    assert naive["stop_reason"].startswith("non-finite loss")
    assert (tmp_path / "ls1" / "checkpoints" / "nonfinite-stop.ckpt").is_file()
    assert "test/dice" in naive["metrics"]  # a stopped variant is still tested
    assert stable["status"] == "completed"
    train(make_cfg(*common, "loss=bce", f"paths.output_dir={tmp_path / 'seq'}"))
    assert without_perf(stable["metrics"]) == without_perf(status(tmp_path / "seq")["metrics"])


@pytest.mark.slow
def test_a_random_loss_keeps_the_variants_paired(make_cfg, tmp_path: Path):
    """Random triplet mining draws in every step: each variant's step starts from the same random
    state, so two identical random-mining variants stay identical (paired draws)."""
    common = ["data=retrieval", "loss=triplet", "loss.mining=random", *TWO_EPOCHS]
    group = [as_variant(make_cfg, tmp_path / f"ls{i}", *common) for i in range(2)]
    train_lockstep(group)
    a = torch.load(tmp_path / "ls0" / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(tmp_path / "ls1" / "checkpoints" / "last.ckpt", weights_only=False)
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_a_variant_that_cannot_train_fails_alone(make_cfg, tmp_path: Path):
    common = ["data=regression"]
    group = [
        as_variant(make_cfg, tmp_path / "ok", *common, "loss=mse"),
        # a segmentation loss on the regression task: check_run refuses it
        as_variant(make_cfg, tmp_path / "misfit", *common, "loss=dice"),
    ]
    train_lockstep(group)
    assert status(tmp_path / "ok")["status"] == "completed"
    misfit = status(tmp_path / "misfit")
    assert misfit["status"] == "failed" and "does not fit" in misfit["error"]


def test_logged_names_route_to_their_variant():
    assert _variant_of_name("variant3/val/dice", 4) == (3, "val/dice")
    assert _variant_of_name("lr-AdamW/variant1", 4) == (1, "lr-AdamW")
    assert _variant_of_name("perf/train_samples_per_sec", 4) == (None, "perf/train_samples_per_sec")
    assert _variant_of_name("variant7/val/dice", 4) == (None, "variant7/val/dice")


@pytest.mark.slow
def test_the_launcher_groups_jobs_that_differ_only_in_the_loss(tmp_path: Path):
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m",
        "data=regression",
        "loss=mse,l1",
        "nan_policy=skip,raise",
        "hydra/launcher=lockstep",
        f"hydra.sweep.dir={sweep}",
        "data.n_train=256",
        "data.n_val=64",
        "data.n_test=64",
        "model.hidden=[32]",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr + result.stdout
    assert log.count("in lockstep:") == 2  # the nan_policy=skip pair
    assert log.count("alone (nan_policy=raise would end every variant") == 2
    runs = sorted(p.parent.name for p in sweep.glob("*/status.json"))
    assert len(runs) == 4
    for run in sweep.glob("*/status.json"):
        assert json.loads(run.read_text())["status"] == "completed"
        assert (run.parent / ".hydra" / "config.yaml").is_file()
        assert (run.parent / "checkpoints" / "last.ckpt").is_file()
        overrides = OmegaConf.load(run.parent / ".hydra" / "overrides.yaml")
        assert any(o in ("loss=mse", "loss=l1") for o in overrides)
    # TensorBoard's HParams: the runs, grouped or alone, leave the experiment to the sweep's end,
    # whose columns are what varies between them
    for run in sweep.glob("*/status.json"):
        assert read_events(run.parent)["metric_tags"] == []
    experiment = read_events(sweep)
    assert experiment["columns"] == ["loss", "nan_policy"]
    assert "test/mae" in experiment["metric_tags"]
    # the multirun's report reads the four runs like a sequential sweep's
    assert (sweep / "summary.md").is_file()
    assert len((sweep / "runs.csv").read_text().strip().splitlines()) == 1 + 4
