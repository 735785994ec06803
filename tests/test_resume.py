"""Resume: a killed run continues from its last checkpoint with ``resume=RUN_DIR``, its curves
carry no duplicate steps, and with ``trainer.deterministic=true`` it ends where an uninterrupted
run ends."""

import json
import time
from pathlib import Path

import pytest
from conftest import read_events
from train_cli import run_train, start_train

RUN = [
    "debug=quick",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=12",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "data.n_train=256",
    "data.image_size=32",
    "model.width=8",
]


def _kill_after_first_checkpoint(run_dir: Path) -> None:
    process = start_train(*RUN, f"hydra.run.dir={run_dir}")
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert checkpoint.exists(), "the run ended before its first checkpoint"


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path: Path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert run_train(*RUN, f"hydra.run.dir={whole}").returncode == 0

    _kill_after_first_checkpoint(resumed)
    assert (
        json.loads((resumed / "status.json").read_text())["status"] == "running"
    )  # killed mid-run
    result = run_train(*RUN, f"resume={resumed}")
    assert result.returncode == 0, result.stderr[-3000:]

    expected = json.loads((whole / "status.json").read_text())
    got = json.loads((resumed / "status.json").read_text())
    assert got["status"] == "completed"
    for name in ("test/dice", "test/loss", "val/dice", "train/loss_epoch"):
        assert got["metrics"][name] == pytest.approx(
            expected["metrics"][name], rel=1e-5, abs=1e-7
        ), name

    scalars, reference = read_events(resumed)["scalars"], read_events(whole)["scalars"]
    for tag in ("train/loss_step", "val/dice"):  # every step once, none twice, none missing
        assert [step for step, _ in scalars[tag]] == [step for step, _ in reference[tag]], tag
