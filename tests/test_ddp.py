"""Two-process DDP on CPU (gloo) through the real command line: synchronised metrics, and the
non-finite guard taking the same decision on both ranks when only one of them sees a NaN."""

import json
import os
from pathlib import Path

import pytest
from nan_injection import BAD_STEP
from train_cli import run_train

TESTS = Path(__file__).resolve().parent


@pytest.mark.slow
def test_ddp_two_processes_skip_the_same_step(tmp_path: Path):
    result = run_train(
        "loss._target_=nan_injection.NaNOnRankOne",
        "debug=quick",
        "trainer.limit_train_batches=5",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.enable_progress_bar=false",
        "data.n_train=256",
        "data.image_size=32",  # what DDP must show does not need the default's 64 px and width
        "model.width=8",
        "~callbacks.figures",
        f"hydra.run.dir={tmp_path}",
        env={"PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = json.loads((tmp_path / "nonfinite.json").read_text())
    rank1 = json.loads((tmp_path / "nonfinite.rank1.json").read_text())
    # only rank 1 saw the NaN loss, yet both ranks recorded and skipped the same step
    assert (
        rank0["incidents"]
        == rank1["incidents"]
        == [{"step": BAD_STEP, "kinds": ["loss", "grad"], "action": "skip"}]
    )
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "completed"
    # validation metrics are computed over both processes' shares of the split
    assert 0.0 <= status["metrics"]["val/dice"] <= 1.0
