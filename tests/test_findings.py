"""Findings (trainer/analysis/findings/, scripts/findings.py): the specs, the outcome logic, the
quick preset, the repeat check and one quick end-to-end run."""

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf
from train_cli import run_script

from trainer.analysis.evidence import Expectation
from trainer.analysis.findings import evaluation, runner
from trainer.analysis.findings import spec as findings_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "conf" / "findings").glob("*.yaml"))


def test_there_are_specs():
    assert len(SPECS) >= 3


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_loads_and_names_existing_configs(path):
    spec = findings_spec.load_spec(path)
    assert spec.claim and spec.source
    assert len(spec.seeds) >= 3, "a finding needs >= 3 seeds for a paired verdict"
    conf = ROOT / "conf"
    assert (conf / "suite" / f"{spec.suite}.yaml").is_file(), spec.suite
    assert (conf / "data" / f"{spec.data}.yaml").is_file(), spec.data
    assert (conf / "model" / f"{spec.model}.yaml").is_file(), spec.model
    groups = {"loss", "data", "model", "debug", "optimizer", "scheduler", "trainer"}
    for overrides in [spec.overrides, *spec.variants.values()]:
        for override in overrides:
            key, _, value = override.partition("=")
            if key in groups:
                assert (conf / key / f"{value}.yaml").is_file(), override
    tags = findings_spec.available_metrics(spec.task)
    for check in spec.checks:
        if check.metric.startswith("test/"):
            assert check.metric in tags, check.metric
        else:
            assert check.metric.startswith("nonfinite/"), check.metric


def _spec(tmp_path, text):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    return path


BASE = """
claim: c
source: s
suite: {suite}
variants: [{names}]
baseline: {baseline}
checks:
  - metric: test/mae
    mode: {mode}
    expect: {{{expect}}}
"""


SUITE = "finding_regression_outliers"  # variants mse, l1, huber; seeds 0-4


def _good(**changes) -> str:
    fields = {"suite": SUITE, "names": "mse, l1, huber", "baseline": "mse", "mode": "min"}
    return BASE.format(**(fields | {"expect": "l1: {better: 0.1}"} | changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"baseline": "tweedie"}, "baseline"),
        ({"mode": "lower"}, "mode"),
        ({"expect": "l1: better"}, "the smallest effect that matters"),
        ({"expect": "l1: {faster: 0.1}"}, "expected one of"),
        ({"expect": "l1: {better: -0.1}"}, "expected an effect > 0"),
        ({"expect": "l1: {better: 0.1, similar: 0.1}"}, "expected one of"),
        ({"expect": "mse: {better: 0.1}"}, "non-baseline"),
        ({"expect": ""}, "names no variant"),
        ({"names": "mse, l1"}, "distinct names for the suite's 3 variants"),
        ({"names": "mse, l1, l1"}, "distinct names"),
        # a grid in a variant (huber's deltas) would make one name several variants
        ({"suite": "regression_outliers", "names": "a, b, c, d"}, "not a sweep"),
        ({"suite": "restoration", "names": "a, b, c, d, e"}, "no grid or select"),
    ],
)
def test_bad_specs_fail_with_a_reason(tmp_path, changes, message):
    path = _spec(tmp_path, _good(**changes))
    with pytest.raises(findings_spec.SpecError, match=message):
        findings_spec.load_spec(path)


def test_a_good_spec_takes_its_suite_s_runs(tmp_path):
    spec = findings_spec.load_spec(_spec(tmp_path, _good()))
    assert spec.seeds == [0, 1, 2, 3, 4]
    assert spec.variants == {
        "mse": ["loss=mse"],
        "l1": ["loss=l1"],
        "huber": ["loss=huber", "loss.delta=1.0"],
    }
    assert (spec.data, spec.model, spec.task) == ("regression", "mlp", "regression")
    assert spec.checks[0].expect == {"l1": Expectation("better", 0.1)}
    command = runner.job_command(spec, tmp_path, [0, 1], quick=True)
    assert f"suite={SUITE}" in command and "seed=0,1" in command and "debug=quick" in command
    assert "trainer.deterministic=true" in command
    assert not any(o.startswith("seed=") for o in runner.job_command(spec, tmp_path, spec.seeds))


def test_quick_keeps_the_finding_s_preset_and_drops_what_quick_sets():
    quick = OmegaConf.load(ROOT / "conf" / "debug" / "quick.yaml")
    assert quick.trainer.max_epochs == 1  # the key the finding's override below gives way to
    overrides = ["debug=saturate", "trainer.max_epochs=5", "trainer.max_steps=9", "data.n_train=9"]
    assert runner.quick_overrides(overrides) == [
        "trainer.max_steps=9",
        "data.n_train=9",
        "debug=[saturate,quick]",
    ]
    assert runner.quick_overrides([]) == ["debug=quick"]


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
    check = evaluation.repeat_difference(tmp_path / "a.csv", tmp_path / "b.csv")
    assert check["values"] == 1  # throughput is not a result
    assert check["max_rel_diff"] == pytest.approx(0.0005 / 1.0005)
    assert check["ok"]
    _runs_csv(tmp_path / "b.csv", 1.1)
    assert not evaluation.repeat_difference(tmp_path / "a.csv", tmp_path / "b.csv")["ok"]


@pytest.mark.slow
def test_quick_end_to_end(tmp_path):
    out = tmp_path / "results"
    script = ROOT / "scripts" / "findings.py"
    command = ["--quick", "--only", "regression_outliers", "--out", str(out)]
    command += [
        "--work",
        str(tmp_path / "w"),
        "--jobs",
        "1",
    ]  # --jobs 2: one finding, shown in results/
    result = run_script(script, *command, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    finding = out / "regression_outliers"
    with open(finding / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["variant"] for r in rows} == {"mse", "l1", "huber-delta=1.0"}
    readme = (out / "README.md").read_text()
    # one seed: no paired test, so nothing is shown, and the outcome says which check
    assert "regression_outliers" in readme and "Outcome: not shown**, driven by: test/mae" in readme
    assert (finding / "runs.csv").is_file() and (finding / "verdicts.csv").is_file()
    assert not list(finding.rglob("*.ckpt")) and not list(finding.rglob("events.out.*"))
    # the hand-written text can change without training again: --report-only rebuilds
    rebuilt = run_script(script, *command, "--report-only", timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stdout[-2000:] + rebuilt.stderr[-2000:]
    assert "rebuilt, no training" in rebuilt.stdout
    assert (finding / "summary.csv").is_file()
    # new expected effects need no runs: --relabel judges the kept per-seed values again
    relabelled = run_script(script, *command, "--relabel", timeout=120)
    assert relabelled.returncode == 0, relabelled.stdout[-2000:] + relabelled.stderr[-2000:]
    assert "relabelled, no runs" in relabelled.stdout


def test_regime_preconditions_compare_seed_means_with_a_metric_or_a_number(tmp_path):
    from test_report import make_run

    metrics = [(0.16, 0.33, 0.007), (0.17, 0.32, 0.006)]  # train loss, test loss, conf gap
    keys = {}
    for seed, (train, test, gap) in enumerate(metrics):
        extra = {"train/loss_epoch": train, "test/loss": test, "test/conf_gap": gap}
        run = make_run(tmp_path, "ce", seed, 0.88, extra_metrics=extra)
        keys[run.relative_to(tmp_path)] = "ce"
    overfitted = findings_spec.Precondition("ce", "train/loss_epoch", "below", "test/loss", 0.5, "")
    overconfident = findings_spec.Precondition("ce", "test/conf_gap", "above", 0.01, 1.0, "")
    finding = SimpleNamespace(regime=[overfitted, overconfident])
    first, second = evaluation.preconditions(finding, tmp_path, keys)
    # 0.165 < 0.5 x 0.325 = 0.1625 fails; the seed means, not a seed's own pair, decide
    assert first["value"] == pytest.approx(0.165) and first["bound"] == pytest.approx(0.1625)
    assert first["held"] is False
    assert second["value"] == pytest.approx(0.0065) and second["held"] is False
    assert str(overconfident) == "ce: test/conf_gap > 0.01 ()"


@pytest.mark.parametrize(
    ("regime", "message"),
    [
        ("[{variant: mse, metric: test/mae, why: w}]", "below or above"),
        ("[{variant: x, metric: test/mae, below: 1, why: w}]", "variant 'x' is not one of"),
        ("[{variant: mse, metric: test/mae, below: 1, factor: 0, why: w}]", "factor"),
    ],
)
def test_bad_regime_preconditions_fail_with_a_reason(tmp_path, regime, message):
    path = _spec(tmp_path, _good() + f"regime: {regime}\n")
    with pytest.raises(findings_spec.SpecError, match=message):
        findings_spec.load_spec(path)


def test_relabel_carries_the_checked_regime_over(tmp_path):
    """--relabel has no runs: it keeps what the runs established (each variant's flags, and a
    failed precondition the spec still declares) instead of dropping it; a precondition the
    spec changed cannot be judged without the runs, so the regime reads not checked."""
    gain = {"0": 0.93, "1": 0.94, "2": 0.935, "3": 0.945}
    base = {"0": 0.80, "1": 0.81, "2": 0.805, "3": 0.79}
    flag = "budget too short: val/dice still improved"
    overconfident = findings_spec.Precondition("ce", "test/conf_gap", "above", 0.01, 1.0, "")
    record = {
        "regime_checked": True,
        "regime": [{"condition": str(overconfident), "value": 0.006, "bound": 0.01, "held": False}],
        "checks": [
            {
                "metric": "test/dice",
                "rows": [
                    {"key": "ce", "variant": "ce", "per_seed": base, "regime": [flag]},
                    {"key": "v", "variant": "v", "per_seed": gain, "regime": []},
                ],
            }
        ],
    }
    check = findings_spec.Check("test/dice", "max", {"v": Expectation("better", 0.015)})
    spec = SimpleNamespace(checks=[check], baseline="ce", task="segmentation")
    results, regime = evaluation.relabel(
        record, SimpleNamespace(**vars(spec), regime=[overconfident])
    )
    rows = {row["key"]: row for row in results[0].rows}
    assert regime == record["regime"] and rows["ce"]["regime"] == [flag]
    assert rows["v"]["label"] == "out of regime"
    changed = findings_spec.Precondition("ce", "test/conf_gap", "above", 0.02, 1.0, "")
    results, regime = evaluation.relabel(record, SimpleNamespace(**vars(spec), regime=[changed]))
    rows = {row["key"]: row for row in results[0].rows}
    assert regime is None and rows["ce"]["regime"] == [] and rows["v"]["label"] == "supported"


def test_what_to_pick_names_the_loss_to_pick_and_the_regime_caveats():
    """A supported "worse" expectation recommends the baseline, not the variant expected worse;
    the variants' regime flags stand beside the answer."""
    from trainer.analysis.findings import writing

    stopped = "not completed: 6 stopped of 6 runs"
    rows = [
        {"key": "bce", "verdict": "baseline", "regime": ["budget too short: val/dice rose"]},
        {"key": "bce_manual", "expected": "worse by 1", "label": "supported", "regime": [stopped]}
        | {"diff": 20.0, "diff_ci_low": None, "diff_ci_high": None},
    ]
    record = {
        "name": "numerical_stability",
        "checks": [{"metric": "nonfinite/skipped", "baseline": "bce", "rows": rows}],
        "seeds": [0, 1],
        "variants": {"bce": [], "bce_manual": []},
        "wall_s": 40.0,
        "jobs": 2,
        "regime_checked": True,
    }
    line = writing._pick_line(record)
    assert (
        "`bce` over `bce_manual` on nonfinite/skipped (expected `bce_manual` worse by 1; "
        "observed Δ 20.0000 [n/a])" in line
    )
    assert "Regime flags: `bce` budget too short; `bce_manual` not completed." in line
    assert "About 20 CPU-s per run." in line
