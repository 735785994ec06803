"""One contract for every loss config: it composes with each data config whose task it
declares, and a few training steps run end to end. A new ``conf/loss/*.yaml`` is tested the
moment it exists."""

import json
import math
from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from train import train
from trainer.config import declared_tasks

CONF = Path(__file__).resolve().parent.parent / "conf"
LOSSES = sorted(p.stem for p in (CONF / "loss").glob("*.yaml"))
DATA_TASKS = {
    p.stem: get_class(OmegaConf.load(p)._target_).task for p in (CONF / "data").glob("*.yaml")
}
# one data config per task is enough for the contract; prefer the offline fixtures
DATA_FOR_TASK = {}
for data, task in sorted(DATA_TASKS.items(), key=lambda item: item[0] == "fashion_mnist"):
    DATA_FOR_TASK.setdefault(task, data)


def _pairs():
    for loss in LOSSES:
        for task in sorted(declared_tasks(OmegaConf.load(CONF / "loss" / f"{loss}.yaml"))):
            data = DATA_FOR_TASK.get(task)
            marks = [] if data else [pytest.mark.skip(reason=f"no data config for task {task} yet")]
            yield pytest.param(loss, data, id=f"{loss}-{task}", marks=marks)


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_config_is_a_lab_note(loss: str):
    text = (CONF / "loss" / f"{loss}.yaml").read_text()
    first_key = next(line for line in text.splitlines() if line and not line.startswith("#"))
    assert first_key.startswith("_target_:"), f"{loss}.yaml: _target_ must come first"
    assert declared_tasks(OmegaConf.load(CONF / "loss" / f"{loss}.yaml")), (
        f"{loss} declares no task"
    )


@pytest.mark.slow
@pytest.mark.parametrize(("loss", "data"), list(_pairs()))
def test_loss_trains_on_every_task_it_declares(make_cfg, tmp_path: Path, loss: str, data: str):
    metrics = train(make_cfg(f"data={data}", f"loss={loss}"))
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "completed"
    assert math.isfinite(metrics["train/loss_epoch"])
    assert math.isfinite(metrics["test/loss"])
