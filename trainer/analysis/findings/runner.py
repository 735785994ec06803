"""Training a finding: its suite through ``train.py -m`` in a subprocess (CPU, one thread,
deterministic), the environment it ran in, and the finding's directory written from the runs.

A finding runs as ``train.py -m suite=<its suite> <its overrides>``: the suite sweeper expands
it, as any suite. ``--quick`` adds the ``debug=quick`` preset (``conf/debug/quick.yaml`` holds
the budget) after the finding's own preset, if any.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from trainer.analysis.findings.evaluation import relabel
from trainer.analysis.findings.spec import ROOT, Finding, blocked_metrics
from trainer.analysis.findings.writing import (
    check_records,
    outcome_of,
    write_finding,
    write_verdicts,
)
from trainer.config import CONF_DIR

# the environment of every training subprocess: one thread per BLAS/OpenMP pool, so a CPU run's
# floating-point reductions happen in one order, and the same commit on the same CPU reproduces
DETERMINISM_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
# appended to every job: CPU, Lightning's deterministic mode (torch.use_deterministic_algorithms)
DETERMINISM_OVERRIDES = ["trainer.accelerator=cpu", "trainer.deterministic=true"]
QUIET_OVERRIDES = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "~hydra.callbacks.compare",  # the report is built once, per check, by the evaluation
]
QUICK_PRESET = "quick"


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _dotted_keys(node: Any, prefix: str = "") -> set[str]:
    if not isinstance(node, dict):
        return {prefix}
    return {k for key, value in node.items() for k in _dotted_keys(value, f"{prefix}{key}.")}


def quick_overrides(overrides: list[str]) -> list[str]:
    """``overrides`` with the quick preset: the finding's own preset kept before it, whose keys
    quick then sets again, and the finding's overrides of the keys quick sets dropped (the
    command line would win over the preset).

    >>> quick_overrides(["debug=saturate", "trainer.max_epochs=5", "data.n_train=10"])
    ['data.n_train=10', 'debug=[saturate,quick]']
    """
    preset = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "debug" / f"{QUICK_PRESET}.yaml"))
    budget = {key.rstrip(".") for key in _dotted_keys(preset)}
    presets = [o.split("=", 1)[1].strip("[]") for o in overrides if _key(o) == "debug"]
    kept = [o for o in overrides if _key(o) not in budget | {"debug"}]
    if not presets:
        return [*kept, f"debug={QUICK_PRESET}"]
    return [*kept, f"debug=[{','.join([*presets, QUICK_PRESET])}]"]


def job_command(
    finding: Finding, sweep_dir: Path, seeds: list[int], quick: bool = False, jobs: int = 1
) -> list[str]:
    """``train.py -m suite=<suite>`` with the finding's overrides, into ``sweep_dir``; the seeds
    on the command line where they are not the suite's; ``jobs`` > 1 runs that many jobs at once
    through the joblib launcher (each job single-threaded, as ``DETERMINISM_ENV`` says, so the
    numbers are those of ``jobs=1``)."""
    overrides = quick_overrides(finding.overrides) if quick else finding.overrides
    seed_sweep = [] if seeds == finding.seeds else [f"seed={','.join(str(s) for s in seeds)}"]
    parallel = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}"] if jobs > 1 else []
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        f"suite={finding.suite}",
        *overrides,
        *seed_sweep,
        *DETERMINISM_OVERRIDES,
        *QUIET_OVERRIDES,
        *parallel,
        f"hydra.sweep.dir={sweep_dir}",
    ]


def run_suite(
    finding: Finding, sweep_dir: Path, seeds: list[int], quick: bool, jobs: int, log
) -> float:
    """Train every variant (one subprocess, ``jobs`` at once); the wall time in seconds. A job
    that fails is kept: its run's status.json says why, and the report lists it."""
    command = job_command(finding, sweep_dir, seeds, quick, jobs)
    log(f"[{finding.name}] {' '.join(command[2:])}")
    start = time.monotonic()
    with open(sweep_dir / "train.out", "w") as out:
        code = subprocess.call(
            command,
            cwd=ROOT,
            env=os.environ | DETERMINISM_ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if code != 0:
        log(f"[{finding.name}] train.py exited {code}; see {sweep_dir}/train.out")
    return time.monotonic() - start


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """The commit, torch and CPU a finding trains on."""
    import torch

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    # results/ left out: the findings run before this one write there (generated, not code)
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"))
    return {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "dirty": dirty,
        "torch": torch.__version__,
        "device": f"CPU ({_cpu_model()}, {os.cpu_count()} cores)",
        "python": platform.python_version(),
        "threads": DETERMINISM_ENV["OMP_NUM_THREADS"],
    }


def run_finding(
    finding: Finding,
    out_dir: Path,
    work_dir: Path,
    seeds: list[int] | None = None,
    quick: bool = False,
    jobs: int = 1,
    log=print,
) -> dict[str, Any]:
    """Train (unless a metric is blocked) into ``work_dir/<name>``, compare, write
    ``out_dir/<name>/``."""
    seeds = seeds if seeds is not None else finding.seeds
    sweep_dir = Path(work_dir) / finding.name
    if sweep_dir.exists():
        shutil.rmtree(sweep_dir)
    sweep_dir.mkdir(parents=True)
    env = environment()
    wall = 0.0
    if blocked := blocked_metrics(finding):
        log(f"[{finding.name}] blocked: the task logs no {', '.join(blocked)}; not run")
    else:
        wall = run_suite(finding, sweep_dir, seeds, quick, jobs, log)
    record = write_finding(finding, sweep_dir, out_dir, wall, seeds, quick, env)
    record["jobs"] = jobs
    _save(out_dir, record)
    return record


def _save(out_dir: Path, record: dict[str, Any]) -> None:
    path = Path(out_dir) / record["name"] / "finding.json"
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")


def relabel_finding(finding: Finding, out_dir: Path) -> dict[str, Any]:
    """Judge ``out_dir/<name>/finding.json`` again with the spec's current checks, from the
    per-seed values it kept (no runs needed: ``evaluation.relabel``, which carries the regime
    over where it still applies); its summary.md and the other files of the original runs stay
    as they were."""
    path = Path(out_dir) / finding.name / "finding.json"
    record = json.loads(path.read_text())
    results, regime = relabel(record, finding)
    record |= {"claim": finding.claim, "source": finding.source, "note": finding.note}
    record["setting_note"] = finding.setting  # hand-written texts follow the spec
    record |= {"checks": check_records(results), "regime": regime or []}
    record["regime_checked"] = regime is not None
    record |= outcome_of(results)
    record["relabelled"] = environment()["commit"]
    write_verdicts(path.parent / "verdicts.csv", results)
    _save(out_dir, record)
    return record


def rebuild_finding(finding: Finding, out_dir: Path, work_dir: Path) -> dict[str, Any]:
    """Rewrite ``out_dir/<name>/`` from the runs already in ``work_dir/<name>`` (after editing a
    spec's hand-written text): no training; wall time, environment, seeds and the repeat check
    are the recorded ones of the training."""
    previous_path = Path(out_dir) / finding.name / "finding.json"
    if not previous_path.exists():
        raise FileNotFoundError(f"{finding.name}: no {previous_path} to rebuild from")
    previous = json.loads(previous_path.read_text())
    sweep_dir = Path(work_dir) / finding.name
    record = write_finding(
        finding,
        sweep_dir,
        out_dir,
        previous["wall_s"],
        previous["seeds"],
        previous["quick"],
        previous["env"],
    )
    for key in ("repeat_check", "jobs"):
        if key in previous:
            record[key] = previous[key]
    _save(out_dir, record)
    return record
