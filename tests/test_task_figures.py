"""The tasks' threshold-free scores, calibration, validation-chosen threshold and pictures, end to
end: what tiny runs through ``train.train`` log to TensorBoard, checked against the tested
weights' own predictions scored here (brute-force Dice, scikit-learn AUROC/AP, a binned ECE)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import read_events
from hydra.utils import instantiate
from sklearn.metrics import average_precision_score, roc_auc_score
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray
from torch import Tensor

from train import train
from trainer.config import instantiate_with_data
from trainer.metrics import pixel_curve_thresholds
from trainer.module import LossExperiment
from trainer.records import metric_tags
from trainer.tasks import TASKS
from trainer.tasks.segmentation import Segmentation


def _events(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    return events


def _tested_outputs(cfg, checkpoint_path: Path) -> tuple[dict, Tensor, Tensor]:
    """A checkpoint and its model's outputs and targets on the whole test split, which the runs
    here test in one batch."""
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    test = datamodule.splits["test"]
    assert len(test) <= cfg.data.eval_batch_size  # one test batch: the whole split
    inputs, target = test.__getitems__(list(range(len(test))))
    model = instantiate_with_data(cfg.model, datamodule.model_inputs)
    weights = {
        name.removeprefix("model."): value
        for name, value in checkpoint["state_dict"].items()
        if name.startswith("model.")
    }
    model.load_state_dict(weights)
    with torch.no_grad():
        outputs = model.eval()(inputs)
    return checkpoint, outputs, target


def _dice_iou(predicted: Tensor, truth: Tensor) -> tuple[float, float]:
    tp = float((predicted & truth).sum())
    errors = float((predicted & ~truth).sum() + (~predicted & truth).sum())
    return 2 * tp / (2 * tp + errors), tp / (tp + errors)


@pytest.mark.slow
def test_segmentation_run_logs_curve_scores_the_validation_threshold_and_pr_curves(
    make_cfg, tmp_path: Path
):
    cfg = make_cfg("trainer.max_epochs=2", "callbacks.figures.every_n_epochs=1", figures=True)
    metrics = train(cfg)
    scalars = read_events(tmp_path)["scalars"]
    for tag in (
        "val/pixel_ap",
        "val/pixel_auroc",
        "val/ece",
        "val/dice@best",
        "val/iou@best",
        "val/threshold@best",
        "test/pixel_ap",
        "test/pixel_auroc",
        "test/ece",
        "test/dice@val_threshold",
        "test/iou@val_threshold",
        "test/dice",
    ):
        assert tag in scalars, tag
    assert len(scalars["val/dice@best"]) == 2  # once per epoch
    # the test never tunes a threshold on itself
    assert not any(tag.startswith("test/") and tag.endswith("@best") for tag in scalars)

    # the tested checkpoint carries the threshold its own validation epoch chose
    checkpoint, outputs, target = _tested_outputs(cfg, tmp_path / "checkpoints" / "best.ckpt")
    threshold = checkpoint["state_dict"]["validation_choices.threshold"]
    chosen = [value for _, value in scalars["val/threshold@best"]]  # one per epoch, in order
    assert float(threshold) == pytest.approx(chosen[checkpoint["epoch"]], abs=1e-7)
    probs, truth = outputs.sigmoid(), target.bool()
    dice, iou = _dice_iou(probs >= threshold, truth)
    assert metrics["test/dice@val_threshold"] == pytest.approx(dice, abs=1e-6)
    assert metrics["test/iou@val_threshold"] == pytest.approx(iou, abs=1e-6)
    # AP and AUROC are binned on the grid of pixel_curve_thresholds: exact on the bin indices
    binned = torch.bucketize(probs.flatten(), pixel_curve_thresholds(), right=True).numpy()
    y = truth.flatten().numpy()
    assert metrics["test/pixel_auroc"] == pytest.approx(roc_auc_score(y, binned), abs=1e-5)
    assert metrics["test/pixel_ap"] == pytest.approx(average_precision_score(y, binned), abs=1e-5)

    events = _events(tmp_path)
    assert {"val/pr_curve", "test/pr_curve"} <= set(events.PluginTagToContent("pr_curves"))
    assert len(events.Tensors("val/pr_curve")) == 2
    (test_curve,) = events.Tensors("test/pr_curve")
    tp, fp, tn, fn, _, _ = make_ndarray(test_curve.tensor_proto)
    for i in (0, 25, 50, 75, 100):  # TensorBoard's point i is the threshold i / 100
        predicted = probs >= torch.linspace(0, 1, 101)[i]
        assert (tp[i], fp[i]) == ((predicted & truth).sum(), (predicted & ~truth).sum())
        assert (tn[i], fn[i]) == ((~predicted & ~truth).sum(), (~predicted & truth).sum())


def _binned_ece(probs: np.ndarray, target: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE over bins [k/B, (k+1)/B), a confidence of exactly 1 in the last bin."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == target
    slot = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    return sum(
        (slot == b).mean() * abs(correct[slot == b].mean() - confidence[slot == b].mean())
        for b in range(n_bins)
        if (slot == b).any()
    )


def test_validation_figures_are_drawn_at_the_cadence_and_the_last_epoch(make_cfg, tmp_path: Path):
    train(
        make_cfg(
            "data=regression",
            "trainer.max_epochs=3",
            "callbacks.figures.every_n_epochs=2",
            figures=True,
        )
    )
    images = _events(tmp_path)
    # 4 training steps per epoch: the second epoch (cadence) and the third (the last)
    assert [image.step for image in images.Images("val/pred_vs_target")] == [8, 12]
    assert len(images.Images("test/pred_vs_target")) == 1


def test_fashion_mnist_run_logs_curve_scores_and_pictures(make_cfg, tmp_path: Path):
    cfg = make_cfg(
        "data=fashion_mnist",
        "trainer.max_epochs=2",
        "callbacks.figures.every_n_epochs=2",
        figures=True,
    )
    metrics = train(cfg)
    events = read_events(tmp_path)
    for split in ("val", "test"):
        for name in ("auroc", "ap", "ece"):
            assert f"{split}/{name}" in events["scalars"], f"{split}/{name}"
            assert f"{split}/{name}" in events["metric_tags"]
        for name in ("confusion_matrix", "reliability"):
            assert f"{split}/{name}" in events["images"], f"{split}/{name}"
    images = _events(tmp_path)
    # every second validation epoch: the second one only, after its 2 x 4 training steps
    assert [image.step for image in images.Images("val/reliability")] == [8]
    assert len(images.Images("test/confusion_matrix")) == 1

    _, outputs, target = _tested_outputs(cfg, tmp_path / "checkpoints" / "best.ckpt")
    # float32 as the run computed them: a barely trained model's near-uniform probabilities tie
    # in float32 where float64 would order them
    probs, y = outputs.softmax(dim=1).double().numpy(), target.numpy()
    onehot = np.eye(10)[y]
    assert metrics["test/auroc"] == pytest.approx(
        roc_auc_score(onehot, probs, average="macro"), abs=1e-4
    )
    assert metrics["test/ap"] == pytest.approx(
        average_precision_score(onehot, probs, average="macro"), abs=1e-4
    )
    assert metrics["test/ece"] == pytest.approx(_binned_ece(probs, y), abs=1e-4)


def test_regression_run_logs_the_prediction_scatter(make_cfg, tmp_path: Path):
    train(make_cfg("data=regression", figures=True))
    events = read_events(tmp_path)
    assert {"val/pred_vs_target", "test/pred_vs_target"} <= set(events["images"])
    assert not any("sample" in tag for tag in [*events["scalars"], *events["metric_tags"]])


def test_retrieval_run_logs_map_at_r(make_cfg, tmp_path: Path):
    metrics = train(make_cfg("data=retrieval", figures=True))
    scalars = read_events(tmp_path)["scalars"]
    assert {"val/map@r", "test/map@r", "val/recall@1", "test/recall@1"} <= set(scalars)
    assert 0 <= metrics["test/map@r"] <= metrics["test/map"] + 1e-6  # R first ranks only


@pytest.mark.parametrize("name", sorted(TASKS))
def test_metric_tags_hold_scalars_only(name: str):
    task = TASKS[name].example()
    tags = metric_tags(task)
    assert not any(tag.split("/", 1)[1] in task.picture_metrics for tag in tags)
    expected = {
        "classification": {"auroc", "ap", "ece"},
        "segmentation": {"pixel_ap", "pixel_auroc", "ece", "dice@best", "threshold@best"},
        "retrieval": {"map@r"},
    }.get(name, set())
    assert {f"val/{metric}" for metric in expected} <= set(tags)


def test_the_validation_threshold_survives_a_checkpoint_reload():
    def module() -> LossExperiment:
        return LossExperiment(
            torch.nn.Conv2d(1, 1, 1), torch.nn.Identity(), Segmentation.example(), None
        )

    trained = module()
    assert float(trained.validation_choices.threshold) == 0.5  # before any validation
    trained.validation_choices.threshold.fill_(0.37)
    reloaded = module()
    reloaded.load_state_dict(trained.state_dict())  # strict, as Lightning's reload
    assert float(reloaded.validation_choices.threshold) == pytest.approx(0.37)
