"""The runtime imports no test-only library: ``python train.py`` trains with ``hypothesis``
unimportable (the fuzz strategies live under ``tests/``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import FAST_TRAINER
from task_examples import tiny_budget

ROOT = Path(__file__).resolve().parent.parent
BLOCKED = "hypothesis"  # a test dependency (requirements.txt), not a runtime one


def test_a_tiny_training_runs_without_hypothesis(tmp_path: Path):
    # a package of the same name ahead of site-packages: `import hypothesis` raises
    shim = tmp_path / "shim" / BLOCKED
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        f"raise ImportError('{BLOCKED} is blocked: the runtime must not import it')\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(shim.parent), os.environ.get("PYTHONPATH")]))
    check = subprocess.run(
        [sys.executable, "-c", f"import {BLOCKED}"],
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
    )
    assert check.returncode != 0 and f"{BLOCKED} is blocked" in check.stderr  # the shim works
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            *tiny_budget("seg_imbalanced"),
            *FAST_TRAINER,
            f"hydra.run.dir={run_dir}",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
