"""The paired design: at one ``seed``, runs that differ only in the loss start from the same
weights and see the same training batches in the same order, on every task and data config; a
different seed changes both.

Each run records, through a callback, a digest of the model's weights when training starts and of
every training batch (inputs and targets) over two epochs. Some losses of the pairs draw random
numbers in training and validation (random triplet mining) or read the training data before the
model is built (class-weighted CE), and one draws random numbers when it is built (the last
test): ways a loss could move the streams that data order and initialisation come from.
``train.py`` builds the model before the loss so that the last one cannot.
"""

import hashlib
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from task_examples import DATA_TASKS, stream_loss_pair

from losses.regression import MSE
from train import train
from trainer.tasks import TASKS

# two losses that fit each task, with their overrides: one of them touches the random or the
# data streams where the task's examples name such a pair
LOSS_PAIRS = {task: stream_loss_pair(task) for task in sorted(TASKS)}
# with a validation between the epochs, where a random loss draws too
TWO_EPOCHS = ["trainer.max_epochs=2", "trainer.limit_train_batches=3"]


def _digest(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}{list(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


class PairingRecord(L.Callback):
    """Writes to ``path`` the digest of the model's weights at the start of training and one
    digest per training batch, in order."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.record: dict = {"weights": None, "batches": []}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record["weights"] = _digest(*pl_module.model.state_dict().values())

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.record["batches"].append(_digest(*batch))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.path.write_text(json.dumps(self.record))


def _record(make_cfg, tmp_path: Path, name: str, *overrides: str) -> dict:
    path = tmp_path / f"{name}.json"
    cfg = make_cfg(
        *TWO_EPOCHS,
        *overrides,
        f"+callbacks.pairing={{_target_:{__name__}.PairingRecord,path:'{path}'}}",
        f"paths.output_dir={tmp_path / name}",
    )
    train(cfg)
    return json.loads(path.read_text())


def test_every_task_has_a_data_config_and_a_loss_pair():
    assert set(DATA_TASKS.values()) == set(TASKS) == set(LOSS_PAIRS)


@pytest.mark.slow
@pytest.mark.parametrize("data", sorted(DATA_TASKS))
def test_two_losses_at_one_seed_share_weights_and_batches(make_cfg, tmp_path: Path, data: str):
    first, second = LOSS_PAIRS[DATA_TASKS[data]]
    a = _record(make_cfg, tmp_path, "a", f"data={data}", *first)
    b = _record(make_cfg, tmp_path, "b", f"data={data}", *second)
    # one epoch is enough to differ: its weights and every batch
    other_seed = _record(
        make_cfg, tmp_path, "seed1", f"data={data}", *first, "seed=1", "trainer.max_epochs=1"
    )
    assert len(a["batches"]) == 6 and len(other_seed["batches"]) == 3  # epochs of three batches
    assert a["weights"] == b["weights"]
    assert a["batches"] == b["batches"]
    assert other_seed["weights"] != a["weights"]
    assert not set(other_seed["batches"]) & set(a["batches"])


class RandomlyBuiltMSE(MSE):
    """MSE that draws from the global generator when it is built, as a loss with randomly
    initialised parameters (a learned projection or temperature) would."""

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.register_buffer("projection", torch.randn(8))


def test_a_loss_drawing_random_numbers_when_built_leaves_the_weights(make_cfg, tmp_path: Path):
    plain = _record(make_cfg, tmp_path, "a", "data=regression", "loss=mse")
    drawing = _record(
        make_cfg,
        tmp_path,
        "b",
        "data=regression",
        "loss=mse",
        f"loss._target_={__name__}.RandomlyBuiltMSE",
    )
    assert drawing["weights"] == plain["weights"]
    assert drawing["batches"] == plain["batches"]
