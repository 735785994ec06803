"""The runtime imports no test-only library, and the default job no library it does not use:
``python train.py`` trains with ``hypothesis`` (the fuzz strategies live under ``tests/``), ``timm``
and ``segmentation_models_pytorch`` (imported seconds long, only when ``model=timm`` or
``model=smp`` is built), ``pandas`` and ``pyarrow`` (only when ``data=table`` reads its file)
unimportable."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST_TRAINER
from task_examples import tiny_budget

ROOT = Path(__file__).resolve().parent.parent
# a test dependency (requirements.txt), not a runtime one; the model libraries of model=timm and
# model=smp, which the default job (model=unet) must not import
# and the readers of data=table
BLOCKED = ("hypothesis", "timm", "segmentation_models_pytorch", "pandas", "pyarrow")


@pytest.mark.slow
def test_a_tiny_default_training_runs_without_the_blocked_packages(tmp_path: Path):
    # packages of the same names ahead of site-packages: `import hypothesis` raises
    shims = tmp_path / "shim"
    for name in BLOCKED:
        (shims / name).mkdir(parents=True)
        (shims / name / "__init__.py").write_text(
            f"raise ImportError('{name} is blocked: the default job must not import it')\n"
        )
    pythonpath = os.pathsep.join(filter(None, [str(shims), os.environ.get("PYTHONPATH")]))
    for name in BLOCKED:
        check = subprocess.run(
            [sys.executable, "-c", f"import {name}"],
            env={**os.environ, "PYTHONPATH": pythonpath},
            capture_output=True,
            text=True,
        )
        assert check.returncode != 0 and f"{name} is blocked" in check.stderr  # the shim works
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
