"""End-to-end runs through ``train.train``: what a run writes and logs."""

import json
from pathlib import Path

import pytest
import torch
from conftest import read_events
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import TQDMProgressBar
from nan_injection import NaNAtStep
from omegaconf import OmegaConf

from train import train
from trainer.config import ConfigError
from trainer.run import callback_nodes


@pytest.mark.slow
def test_default_run_logs_everything(make_cfg, tmp_path: Path):
    metrics = train(make_cfg("loss=focal", "trainer.max_epochs=2"))
    events = read_events(tmp_path)
    scalars = events["scalars"]
    for tag in (
        "train/loss_step",
        "train/loss_epoch",
        "val/loss",
        "test/loss",
        "train/grad_norm",
        "val/dice",
        "val/iou",
        "val/precision",
        "val/recall",
        "test/dice",
        "nonfinite/loss",
        "nonfinite/grad",
        "nonfinite/param",
        "nonfinite/first_step",
    ):
        assert tag in scalars, tag
    assert any(tag.startswith("lr-") for tag in scalars)
    assert len(scalars["val/dice"]) == 2  # once per epoch
    assert len(scalars["train/loss_step"]) == 8  # every step with log_every_n_steps=1
    assert "val/pictures" in events["images"]
    # HParams hold the loss's hyperparameters; their metrics are the run's own scalar tags
    assert events["hparams"]["loss"] == "focal"
    assert events["hparams"]["loss.gamma"] == 2.0
    assert "test/dice" in events["metric_tags"]
    assert scalars["test/dice"] == [(8, pytest.approx(metrics["test/dice"], rel=1e-6))]
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "completed"
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert json.loads((tmp_path / "nonfinite.json").read_text())["counts"] == {
        "loss": 0,
        "grad": 0,
        "param": 0,
    }


CALLBACKS = list(OmegaConf.load(Path(__file__).parents[1] / "conf/callbacks/default.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("name", CALLBACKS)
def test_a_run_completes_without_any_one_callback(make_cfg, tmp_path: Path, name: str):
    # a user's ~callbacks.<name>: the run still trains, tests and says what it tested
    train(make_cfg(f"~callbacks.{name}", "trainer.max_epochs=2", figures=True))
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "completed", status.get("error")
    assert "test/dice" in status["metrics"]
    assert status["selection"]["value"] is not None
    # without the task checkpoint nothing picks a best epoch: the last weights are tested
    assert status["selection"]["checkpoint"] == ("last" if name == "checkpoint" else "best")


@pytest.mark.parametrize("shown", [True, False])
def test_progress_bar_follows_the_trainer_flag(make_cfg, shown: bool):
    cfg = make_cfg(f"trainer.enable_progress_bar={str(shown).lower()}")
    callbacks = [instantiate(node) for node in callback_nodes(cfg)]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    if shown:  # the configured bar, not Lightning's default one (a redraw every step)
        assert isinstance(trainer.progress_bar_callback, TQDMProgressBar)
        assert trainer.progress_bar_callback.refresh_rate == cfg.callbacks.progress_bar.refresh_rate
        assert cfg.callbacks.progress_bar.refresh_rate > 1
    else:
        assert trainer.progress_bar_callback is None
        every = [instantiate(node) for node in cfg.callbacks.values() if node is not None]
        with pytest.raises(InstantiationException, match="enable_progress_bar=False"):
            instantiate(cfg.trainer, callbacks=every, logger=False)  # why the bar is left out


def test_mnist_per_class_metrics(make_cfg, tmp_path: Path):
    metrics = train(make_cfg("data=mnist", "model=mlp"))
    for name in ("test/acc", "test/balanced_acc", "test/macro_f1", "test/min_recall"):
        assert -1e-6 <= metrics[name] <= 1 + 1e-6
    assert sorted(k for k in metrics if k.startswith("test/recall/")) == [
        f"test/recall/{d}" for d in range(10)
    ]
    # the HParams metrics are the per-class tags the run logs, not the collection's "recall"
    events = read_events(tmp_path)
    assert "test/recall/3" in events["metric_tags"]
    assert "test/recall" not in events["metric_tags"]
    assert set(events["metric_tags"]) <= set(events["scalars"])


def test_loss_that_does_not_fit_stops_before_training(make_cfg, tmp_path: Path):
    with pytest.raises(ConfigError) as error:
        train(make_cfg("loss=ce"))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        "loss=ce does not fit data=seg_imbalanced (task segmentation); losses that fit:"
    )
    assert "dice" in message and "focal" in message
    assert not list(tmp_path.glob("events.out.tfevents.*"))
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "failed"


def test_model_output_follows_the_data(make_cfg):
    from hydra.utils import instantiate

    from trainer.config import instantiate_with_data

    cfg = make_cfg("data=mnist", "model=mlp")
    datamodule = instantiate(cfg.data)
    model = instantiate_with_data(cfg.model, datamodule.model_inputs)
    assert model.net[-1].out_features == datamodule.num_classes


class NaNOffCadence(NaNAtStep):
    """NaN at step 4: (4 + 1) % 3 != 0, so Lightning writes no step metrics for it."""

    bad_step = 4


NAN_STEP = NaNOffCadence.bad_step


def test_grad_norm_follows_lightning_cadence_and_every_incident(make_cfg, tmp_path: Path):
    train(
        make_cfg(
            f"loss._target_={__name__}.NaNOffCadence",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=4",
            "trainer.log_every_n_steps=3",
        )
    )
    scalars = read_events(tmp_path)["scalars"]
    # Lightning's own cadence: (step + 1) % 3 == 0 over the 8 steps
    lightning_steps = [step for step, _ in scalars["train/loss_step"]]
    assert lightning_steps == [2, 5]
    assert [step for step, _ in scalars["train/grad_norm"]] == sorted([*lightning_steps, NAN_STEP])
    assert [step for step, _ in scalars["nonfinite/loss"]] == [2, NAN_STEP, 5]
    assert dict(scalars["nonfinite/loss"]) == {2: 0.0, NAN_STEP: 1.0, 5: 1.0}
    assert dict(scalars["nonfinite/first_step"])[NAN_STEP] == NAN_STEP


@pytest.mark.slow
def test_last_checkpoint_is_the_last_epoch_even_when_it_did_not_improve(make_cfg, tmp_path: Path):
    # lr 0: no epoch improves on the first, so the best checkpoint stays at epoch 0; resume must
    # still continue from the last epoch (Lightning's save_last skips epochs that did not improve)
    train(make_cfg("trainer.max_epochs=3", "optimizer.lr=0.0"))
    checkpoints = tmp_path / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    best = torch.load(checkpoints / "best.ckpt", map_location="cpu", weights_only=True)
    steps_per_epoch = 4  # FAST_TRAINER's limit_train_batches
    assert (last["epoch"], last["global_step"]) == (2, 3 * steps_per_epoch)
    assert (best["epoch"], best["global_step"]) == (0, steps_per_epoch)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
