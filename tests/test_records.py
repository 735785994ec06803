"""What a run records about itself: the HParams entry from the start, its metric tags, and the
task, ranking and tested weights in ``status.json``."""

import json
from pathlib import Path

import lightning as L
import pytest
from conftest import read_events
from hydra.core.hydra_config import HydraConfig

from train import train
from trainer.records import metric_tags, variant_hparams
from trainer.tasks import TASKS

FIT_FAILS_AT_STEP = 2


class FailDuringFit(L.Callback):
    """Raises in the middle of training, after the run has started logging."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == FIT_FAILS_AT_STEP:
            raise RuntimeError("killed mid-fit")


def read_status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def test_hparams_and_task_are_recorded_before_fit(make_cfg, tmp_path: Path):
    cfg = make_cfg(
        "loss=focal",
        "loss.gamma=1",
        "seed=3",
        "optimizer=sgd",
        f"paths.log_dir={tmp_path}/logs",
        f"+callbacks.fail={{_target_:{__name__}.FailDuringFit}}",
    )
    with pytest.raises(RuntimeError, match="killed mid-fit"):
        train(cfg)
    hparams = read_events(tmp_path)["hparams"]
    assert hparams["loss"] == "focal"
    assert hparams["data"] == "seg_imbalanced"
    assert hparams["model"] == "unet"
    assert hparams["loss.gamma"] == 1.0
    assert hparams["optimizer"] == "sgd"  # a group override gives the choice
    assert hparams["data.n_train"] == 64  # an override of a value gives the value
    assert hparams["test_ckpt"] == "best"
    assert hparams["trainer.max_epochs"] == 1
    # how the run is carried out is not part of the variant
    assert "seed" not in hparams
    assert "trainer.enable_progress_bar" not in hparams
    assert not [k for k in hparams if k.startswith("paths.")]
    status = read_status(tmp_path)
    assert status["status"] == "failed"
    assert {k: status[k] for k in ("task", "ranking_metric", "mode", "test_ckpt")} == {
        "task": "segmentation",
        "ranking_metric": "dice",
        "mode": "max",
        "test_ckpt": "best",
    }


def test_seeds_of_a_variant_share_their_hparams(make_cfg):
    def hparams(*overrides: str) -> dict:
        cfg = make_cfg(*overrides)
        hydra = HydraConfig.get()
        return variant_hparams(cfg, hydra.runtime.choices, hydra.overrides.task)

    first, second = hparams("loss=focal", "seed=1"), hparams("loss=focal", "seed=2")
    assert first == second
    assert first != hparams("loss=focal", "seed=1", "loss.gamma=3")


def test_metric_infos_name_the_run_scalars(make_cfg, tmp_path: Path):
    train(make_cfg("trainer.max_epochs=2"))
    events = read_events(tmp_path)
    # the HParams metrics, named before fit from the task's reference batch, are exactly the
    # val/ and test/ scalars the run then logs
    logged = {tag for tag in events["scalars"] if tag.startswith(("val/", "test/"))}
    assert sorted(events["metric_tags"]) == sorted(logged)
    assert {"val/loss", "test/loss", "val/dice", "test/dice_per_image", "test/prior_loss"} <= logged
    # the test applies the validation's threshold; it never picks one of its own
    assert {"val/threshold@best", "test/dice@val_threshold", "test/iou@val_threshold"} <= logged
    assert not [tag for tag in logged if tag.startswith("test/") and tag.endswith("@best")]
    assert len(events["scalars"]["val/dice"]) == 2  # the metric's curve, not a copy at step 0
    assert not [tag for tag in events["scalars"] if tag.startswith(("final/", "hp_metric"))]


# the metrics each task logs beside its own: the rare classes, the likelihood, the trivial
# constant predictor's loss
BASELINE_METRICS = {
    "classification": ["tail_recall", "tail_recall_third", "nll", "conf_gap", "prior_loss"],
    "segmentation": ["dice_per_image", "prior_loss"],
    "regression": ["prior_loss"],
}


@pytest.mark.parametrize("task", sorted(BASELINE_METRICS))
def test_metric_tags_name_the_tail_likelihood_and_prior_metrics(task: str):
    tags = metric_tags(TASKS[task].example())
    expected = [f"{split}/{name}" for split in ("val", "test") for name in BASELINE_METRICS[task]]
    assert set(expected) <= set(tags), sorted(set(expected) - set(tags))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "monitor", "mode", "checkpoint"),
    [
        ((), "dice", "max", "best"),
        (("test_ckpt=last",), "dice", "max", "last"),
        (("data=regression", "model=mlp"), "mae", "min", "best"),
    ],
)
def test_status_names_the_tested_weights(make_cfg, tmp_path, overrides, monitor, mode, checkpoint):
    metrics = train(make_cfg(*overrides, "trainer.max_epochs=3"))
    status = read_status(tmp_path)
    assert status["status"] == "completed"
    assert status["ranking_metric"] == monitor
    assert status["mode"] == mode
    assert status["test_ckpt"] == checkpoint
    assert status["metrics"] == pytest.approx(metrics)
    curve = [value for _, value in read_events(tmp_path)["scalars"][f"val/{monitor}"]]
    assert len(curve) == 3
    # independent of ModelCheckpoint: the best (or last) value of the logged validation curve
    best = max(curve) if mode == "max" else min(curve)
    expected = best if checkpoint == "best" else curve[-1]
    assert status["selection"] == {
        "metric": f"val/{monitor}",
        "value": pytest.approx(expected, rel=1e-6),  # float32 scalar vs. the checkpoint's tensor
        "checkpoint": checkpoint,
    }


def test_without_the_task_checkpoint_the_last_weights_are_tested(make_cfg, tmp_path):
    # the trainer's checkpoint callback is then last_checkpoint, which monitors nothing: it has
    # a path but no best score, and its latest checkpoint holds the weights fit ended with
    train(make_cfg("~callbacks.checkpoint", "trainer.max_epochs=2"))
    status = read_status(tmp_path)
    assert status["status"] == "completed"
    curve = [value for _, value in read_events(tmp_path)["scalars"]["val/dice"]]
    assert status["selection"] == {
        "metric": "val/dice",
        "value": pytest.approx(curve[-1], rel=1e-6),  # float32 scalar vs. the logged one
        "checkpoint": "last",
    }
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
