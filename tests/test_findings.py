"""Findings (trainer/findings.py, scripts/findings.py): the specs, the outcome logic, the repeat
check and one quick end-to-end run."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import findings as fd

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "conf" / "findings").glob("*.yaml"))


def test_there_are_specs():
    assert len(SPECS) >= 3


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_loads_and_names_existing_configs(path):
    spec = fd.load_spec(path)
    assert spec.claim and spec.source
    assert len(spec.seeds) >= 3, "a finding needs >= 3 seeds for a paired verdict"
    conf = ROOT / "conf"
    assert (conf / "data" / f"{spec.data}.yaml").is_file(), spec.data
    assert (conf / "model" / f"{spec.model}.yaml").is_file(), spec.model
    groups = {"loss", "data", "model", "debug", "optimizer", "scheduler", "trainer"}
    for overrides in [spec.overrides, *spec.variants.values()]:
        for override in overrides:
            key, _, value = override.partition("=")
            if key in groups:
                assert (conf / key / f"{value}.yaml").is_file(), override
    tags = fd.available_metrics(spec.data)
    assert tags is not None, spec.data
    for check in spec.checks:
        if check.metric.startswith("test/"):
            assert check.metric in tags, check.metric
        else:
            assert check.metric.startswith("nonfinite/"), check.metric


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("better", "better"), ("better", "better")], "reproduced"),
        ([("tie", "tie")], "reproduced"),
        ([("worse", "worse"), ("better", "better")], "reproduced"),
        ([("better", "tie"), ("better", "worse")], "not reproduced"),
        ([("better", "worse")], "not reproduced"),
        ([("tie", "better")], "not reproduced"),
        ([("better", "better"), ("better", "tie")], "mixed"),
        ([("better", "better"), ("worse", "better")], "mixed"),
        ([("better", "better"), ("better", "n/a")], "inconclusive"),
        ([("better", "n/a")], "inconclusive"),
        ([("better", "better"), ("better", "blocked")], "blocked"),
    ],
)
def test_outcome(pairs, expected):
    assert fd.outcome(pairs) == expected


def test_outcome_needs_verdicts():
    with pytest.raises(ValueError):
        fd.outcome([])


def _spec(tmp_path, text):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    return path


BASE = """
claim: c
source: s
runs:
  data: regression
  model: mlp
  variants:
    mse: [loss=mse]
    l1: [loss=l1]
baseline: {baseline}
checks:
  - metric: test/mae
    mode: {mode}
    expect: {{{expect}}}
"""


@pytest.mark.parametrize(
    ("baseline", "mode", "expect", "message"),
    [
        ("huber", "min", "l1: better", "baseline"),
        ("mse", "lower", "l1: better", "mode"),
        ("mse", "min", "l1: faster", "expected one of"),
        ("mse", "min", "mse: better", "non-baseline"),
        ("mse", "min", "", "names no variant"),
    ],
)
def test_bad_specs_fail_with_a_reason(tmp_path, baseline, mode, expect, message):
    path = _spec(tmp_path, BASE.format(baseline=baseline, mode=mode, expect=expect))
    with pytest.raises(fd.SpecError, match=message):
        fd.load_spec(path)


def test_a_good_spec_loads_with_default_seeds(tmp_path):
    spec = fd.load_spec(
        _spec(tmp_path, BASE.format(baseline="mse", mode="min", expect="l1: better"))
    )
    assert spec.seeds == [0, 1, 2]
    assert spec.checks[0].expect == {"l1": "better"}
    command = fd.job_command(spec, "l1", tmp_path, [0, 1], quick=True)
    assert "seed=0,1" in command and "loss=l1" in command
    assert "trainer.deterministic=true" in command and "trainer.max_epochs=1" in command


def _runs_csv(path, value):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["variant", "seed", "test/mae", "perf/train_samples_per_sec"])
        writer.writeheader()
        writer.writerow(
            {"variant": "l1", "seed": 0, "test/mae": value, "perf/train_samples_per_sec": value * 7}
        )


def test_repeat_difference(tmp_path):
    _runs_csv(tmp_path / "a.csv", 1.0)
    _runs_csv(tmp_path / "b.csv", 1.0005)
    check = fd.repeat_difference(tmp_path / "a.csv", tmp_path / "b.csv")
    assert check["values"] == 1  # throughput is not a result
    assert check["max_rel_diff"] == pytest.approx(0.0005 / 1.0005)
    assert check["ok"]
    _runs_csv(tmp_path / "b.csv", 1.1)
    assert not fd.repeat_difference(tmp_path / "a.csv", tmp_path / "b.csv")["ok"]


def test_quick_end_to_end(tmp_path):
    out = tmp_path / "results"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "scripts" / "findings.py"), "--quick"]
    command += ["--only", "regression_outliers", "--out", str(out), "--work", str(tmp_path / "w")]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    finding = out / "regression_outliers"
    with open(finding / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["variant"] for r in rows} == {"mse", "l1", "huber-delta=1.0"}
    readme = (out / "README.md").read_text()
    assert "regression_outliers" in readme and "Outcome: inconclusive" in readme  # one seed
    assert (finding / "runs.csv").is_file() and (finding / "verdicts.csv").is_file()
    assert not list(finding.rglob("*.ckpt")) and not list(finding.rglob("events.out.*"))
    # the hand-written text can change without training again: --report-only rebuilds
    rebuilt = subprocess.run(
        [*command, "--report-only"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert rebuilt.returncode == 0, rebuilt.stdout[-2000:] + rebuilt.stderr[-2000:]
    assert "rebuilt, no training" in rebuilt.stdout
    assert (finding / "summary.csv").is_file()
