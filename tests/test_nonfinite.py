"""The non-finite guard: incidents counted at the step they happen, each policy applied."""

import json
from pathlib import Path

import lightning as L
import nan_injection
import pytest
import torch
from conftest import read_events
from hydra.utils import instantiate

from losses.segmentation import BCEWithLogitsLoss as BCE
from train import train
from trainer.callbacks import NonFiniteError, NonFiniteGuard
from trainer.module import LossExperiment
from trainer.tasks.segmentation import Segmentation

BAD_STEP = 3


class NaNAtStep(nan_injection.NaNAtStep):
    bad_step = BAD_STEP


class Snapshot(L.Callback):
    """Parameters and Adam state just before and just after the bad step's optimizer step."""

    def __init__(self) -> None:
        self.before: dict = {}
        self.after: dict = {}

    @staticmethod
    def _state(pl_module, trainer) -> dict:
        optimizer = trainer.optimizers[0]
        return {
            "params": [p.detach().clone() for p in pl_module.parameters()],
            "exp_avg": [
                optimizer.state[p]["exp_avg"].clone()
                for p in pl_module.parameters()
                if p in optimizer.state
            ],
            "steps": [
                float(optimizer.state[p]["step"])
                for p in pl_module.parameters()
                if p in optimizer.state
            ],
        }

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == BAD_STEP:
            self.before = self._state(pl_module, trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == BAD_STEP:
            self.after = self._state(pl_module, trainer)


class SpoilParameter(L.Callback):
    """Makes one parameter NaN after the optimizer step of batch ``after_batch`` (-1: before the
    fit): a stand-in for an update that overflows. ``name`` is a model weight, which the next
    forward pass turns into a NaN loss, or ``spare``, a parameter outside the forward pass, which
    only the parameter check can see."""

    def __init__(self, name: str, after_batch: int) -> None:
        self.name = name
        self.after_batch = after_batch

    def _spoil(self, pl_module) -> None:
        with torch.no_grad():
            pl_module.get_parameter(self.name).view(-1)[0] = float("nan")

    def on_fit_start(self, trainer, pl_module):
        if self.after_batch == -1:
            self._spoil(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == self.after_batch:
            self._spoil(pl_module)


def fit_guarded(
    cfg,
    loss,
    policy: str,
    tmp_path: Path,
    precision: str = "32-true",
    callbacks: tuple[L.Callback, ...] = (),
    log_every_n_steps: int = 50,
) -> tuple[NonFiniteGuard, L.Trainer]:
    """Six training steps of the segmentation U-Net with ``loss`` under a guard of ``policy``;
    the module has a ``spare`` parameter the forward pass does not use."""
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, in_channels=1, image_size=32)
    module = LossExperiment(model, loss, Segmentation.example(), instantiate(cfg.optimizer))
    module.spare = torch.nn.Parameter(torch.zeros(3))
    guard = NonFiniteGuard(policy=policy)
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        precision=precision,
        max_epochs=1,
        limit_train_batches=6,
        limit_val_batches=0,
        log_every_n_steps=log_every_n_steps,
        callbacks=[guard, *callbacks],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=datamodule)
    return guard, trainer


def fit_with_injected_nan(
    cfg, policy: str, tmp_path: Path, precision: str = "32-true"
) -> tuple[NonFiniteGuard, Snapshot, L.Trainer]:
    snapshot = Snapshot()
    guard, trainer = fit_guarded(cfg, NaNAtStep(), policy, tmp_path, precision, (snapshot,))
    return guard, snapshot, trainer


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_skip_counts_the_incident_at_its_step_and_leaves_weights_and_optimizer_alone(
    make_cfg, tmp_path, precision
):
    guard, snapshot, trainer = fit_with_injected_nan(
        make_cfg("data.n_train=128"), "skip", tmp_path, precision
    )
    assert guard.counts["loss"] == 1
    assert guard.first_step == BAD_STEP
    assert guard.incidents[0] == {"step": BAD_STEP, "kinds": ["loss", "grad"], "action": "skip"}
    assert guard.skipped == 1 and guard.stop_reason is None
    for before, after in zip(snapshot.before["params"], snapshot.after["params"], strict=True):
        assert torch.equal(before, after)
    for before, after in zip(snapshot.before["exp_avg"], snapshot.after["exp_avg"], strict=True):
        assert torch.equal(before, after)
    assert snapshot.before["steps"] == snapshot.after["steps"]
    assert trainer.global_step == 6  # training went on after the skipped step
    assert all(torch.isfinite(p).all() for p in trainer.lightning_module.parameters())


def test_stop_saves_a_checkpoint_and_ends_the_run(make_cfg, tmp_path):
    guard, _, trainer = fit_with_injected_nan(make_cfg("data.n_train=128"), "stop", tmp_path)
    assert guard.stop_reason == f"non-finite loss and grad at step {BAD_STEP} (nan_policy=stop)"
    assert (tmp_path / "nonfinite-stop.ckpt").exists()
    assert trainer.global_step == BAD_STEP + 1
    assert json.loads((tmp_path / "nonfinite.json").read_text())["first_step"] == BAD_STEP


def test_raise_names_the_step_and_kinds(make_cfg, tmp_path):
    with pytest.raises(
        NonFiniteError, match=f"non-finite loss and grad at step {BAD_STEP} \\(nan_policy=raise\\)"
    ):
        fit_with_injected_nan(make_cfg("data.n_train=128"), "raise", tmp_path)


def test_a_weight_spoilt_by_an_update_stops_a_skip_run_at_the_next_step(make_cfg, tmp_path):
    # the weight is not checked every step; its NaN reaches the loss, and that brings the check
    spoil = SpoilParameter("model.head.weight", after_batch=2)
    guard, trainer = fit_guarded(
        make_cfg("data.n_train=128"), BCE(), "skip", tmp_path, callbacks=(spoil,)
    )
    assert guard.incidents == [{"step": 3, "kinds": ["loss", "grad", "param"], "action": "stop"}]
    assert (
        guard.stop_reason == "parameters became non-finite at step 3: skipping cannot repair them"
    )
    assert trainer.global_step == 4


@pytest.mark.parametrize(("after_batch", "found_at"), [(-1, 0), (1, 4)])
def test_parameters_are_checked_before_the_first_step_and_on_the_logging_cadence(
    make_cfg, tmp_path, after_batch, found_at
):
    # a NaN the loss cannot show: found before the first step, or before the step Lightning
    # logs next (log_every_n_steps=5: the fifth, index 4), not at the steps in between
    spoil = SpoilParameter("spare", after_batch)
    guard, _ = fit_guarded(
        make_cfg("data.n_train=128"),
        BCE(),
        "stop",
        tmp_path,
        callbacks=(spoil,),
        log_every_n_steps=5,
    )
    assert guard.incidents == [{"step": found_at, "kinds": ["param"], "action": "stop"}]
    assert guard.counts == {"loss": 0, "grad": 0, "param": 1}


def test_bad_policy_is_rejected():
    with pytest.raises(ValueError, match="nan_policy: expected one of"):
        NonFiniteGuard(policy="ignore")


@pytest.mark.slow
@pytest.mark.parametrize(("loss", "expect_incidents"), [("bce_manual", True), ("bce", False)])
def test_debug_saturate_preset(make_cfg, tmp_path, loss, expect_incidents):
    metrics = train(make_cfg("debug=saturate", f"loss={loss}", "trainer.limit_train_batches=8"))
    summary = json.loads((tmp_path / "nonfinite.json").read_text())
    total = sum(summary["counts"].values())
    scalars = read_events(tmp_path)["scalars"]
    if expect_incidents:
        assert total > 0 and summary["first_step"] == 0
        assert scalars["nonfinite/loss"][-1][1] > 0
        assert metrics["nonfinite/loss"] > 0
    else:
        assert total == 0
        assert all(torch.isfinite(torch.tensor(v)) for _, v in scalars["train/loss_step"])


@pytest.mark.slow
def test_debug_saturate_with_stop_policy_ends_cleanly_with_a_checkpoint(make_cfg, tmp_path):
    train(make_cfg("debug=saturate", "loss=bce_manual", "nan_policy=stop"))
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "stopped"
    assert status["stop_reason"] == "non-finite loss and grad at step 0 (nan_policy=stop)"
    assert (tmp_path / "checkpoints" / "nonfinite-stop.ckpt").exists()


@pytest.mark.slow
def test_debug_saturate_with_raise_policy_names_step_and_kinds(make_cfg, tmp_path):
    with pytest.raises(
        NonFiniteError, match=r"non-finite loss and grad at step 0 \(nan_policy=raise\)"
    ):
        train(make_cfg("debug=saturate", "loss=bce_manual", "nan_policy=raise"))
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "failed"
