"""``trainer.module.lightning_logs_this_step`` is our copy of Lightning's rule for when a training
step's logged values reach the loggers (its logger connector's ``should_update_logs``, which is
not public API). These tests pin the copy against what Lightning itself writes, so a Lightning
release that changes the rule fails here instead of silently shifting the guard's and the
module's step logging."""

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainer.module import lightning_logs_this_step

STEPS = 12


class RecordingLogger(CSVLogger):
    """Keeps the ``probe`` values Lightning writes: the 1-based step of the batch that logged it."""

    def __init__(self, save_dir: Path) -> None:
        super().__init__(save_dir)
        self.written: list[int] = []

    def log_metrics(self, metrics, step=None) -> None:
        if "probe" in metrics:
            self.written.append(round(metrics["probe"]))


class Probe(L.LightningModule):
    """Logs its batch's 1-based step through Lightning every step, and asks our copy of the rule,
    before the optimizer step and after it, whether Lightning writes this step."""

    def __init__(self, stop_at: int | None) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)
        self.stop_at = stop_at
        self.before: list[int] = []
        self.after: list[int] = []

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        step = self.trainer.global_step + 1
        self.log("probe", float(step), on_step=True, on_epoch=False)
        if step == self.stop_at:
            self.trainer.should_stop = True
        return self.layer(batch[0]).pow(2).mean()

    def on_before_optimizer_step(self, optimizer) -> None:
        if lightning_logs_this_step(self.trainer):
            self.before.append(self.trainer.global_step + 1)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if lightning_logs_this_step(self.trainer, stepped=True):
            self.after.append(self.trainer.global_step)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.parametrize(
    ("every", "stop_at"), [(1, None), (3, None), (5, None), (4, 6), (50, None)]
)
def test_the_copied_rule_predicts_the_steps_lightning_writes(
    every: int, stop_at: int | None, tmp_path: Path
):
    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(STEPS * 2, 2)), batch_size=2)
    module, logger = Probe(stop_at), RecordingLogger(tmp_path)
    trainer = L.Trainer(
        max_epochs=1,
        logger=logger,
        log_every_n_steps=every,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
    )
    trainer.fit(module, data)
    last = stop_at or STEPS
    # the rule by hand: multiples of log_every_n_steps, and the step that stops the run
    expected = sorted({s for s in range(1, last + 1) if s % every == 0} | ({stop_at} - {None}))
    assert logger.written == expected
    assert module.after == expected
    assert module.before == expected
