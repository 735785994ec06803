"""The comparison report on synthetic run directories with fixed numbers: verdicts, ranks with
ties, tuned hyperparameters, tables, JSON, mixed tasks and the TensorBoard seed means."""

import csv
import json
import math
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as scipy_stats

from trainer.analysis import regime, stats
from trainer.analysis.comparison import compare_runs
from trainer.analysis.report import write_report

ROOT = Path(__file__).resolve().parent.parent
TASK_METRIC = {"classification": ("acc", "max"), "regression": ("mae", "min")}
DATA_TARGET = {
    "classification": "datasets.mnist.MNISTDataModule",
    "regression": "datasets.regression.RegressionDataModule",
}


def make_run(
    root: Path,
    loss: str,
    seed: int,
    score: float | None,
    *,
    overrides: tuple[str, ...] = (),
    task: str | None = "classification",
    status: str = "completed",
    val: float | None = None,
    extra_metrics: dict | None = None,
    config: dict | None = None,
    error: str | None = None,
) -> Path:
    """A run dir as ``train.py`` leaves it: ``.hydra/`` files and ``status.json`` (no events)."""
    all_overrides = [f"loss={loss}", *overrides, f"seed={seed}"]
    run_dir = root / "-".join([loss, *overrides, f"seed={seed}"])
    (run_dir / ".hydra").mkdir(parents=True)
    cfg = {"seed": seed, "data": {"_target_": DATA_TARGET.get(task or "classification")}}
    for override in overrides:
        key, value = override.split("=", 1)
        node = cfg
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = yaml.safe_load(value)
    for key, value in (config or {}).items():
        cfg.setdefault(key, {}).update(value)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    hydra = {"hydra": {"runtime": {"choices": {"loss": loss}}}}
    (run_dir / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(all_overrides))
    record: dict = {"status": status}
    if error:
        record["error"] = error
    if task is not None:
        name, mode = TASK_METRIC[task]
        metrics = {} if score is None else {f"test/{name}": score, f"val/{name}": val or score}
        record |= {
            "task": task,
            "ranking_metric": name,
            "mode": mode,
            "test_ckpt": "best",
            "selection": {
                "metric": f"val/{name}",
                "value": score if val is None else val,
                "checkpoint": "best",
            },
            "metrics": metrics | (extra_metrics or {}),
        }
    (run_dir / "status.json").write_text(json.dumps(record))
    return run_dir


# Fashion-MNIST-like accuracies over three seeds; `log` beats ce clearly, `inverse` does not.
ACC = {
    "ce": [0.810, 0.822, 0.815],
    "class_weighted_ce-scheme=log": [0.832, 0.839, 0.830],
    "class_weighted_ce-scheme=inverse": [0.812, 0.821, 0.818],
}


def three_variants(root: Path) -> None:
    for name, scores in ACC.items():
        loss, *rest = name.split("-")
        overrides = tuple(f"loss.{r}" for r in rest)
        for seed, score in enumerate(scores):
            make_run(root, loss, seed, score, overrides=overrides)


def test_intervals_paired_p_values_holm_and_verdicts_against_scipy(tmp_path: Path):
    three_variants(tmp_path)
    (comparison,) = compare_runs(tmp_path, read_curves=False).comparisons
    assert (comparison.metric, comparison.mode, comparison.baseline) == ("test/acc", "max", "ce")
    rows = {row.variant: row for row in comparison.rows}
    assert set(rows) == set(ACC)
    for name, scores in ACC.items():
        x = np.array(scores, dtype=np.float64)
        low, high = scipy_stats.t.interval(0.95, 2, loc=x.mean(), scale=scipy_stats.sem(x))
        assert rows[name].metric.n == 3
        assert (rows[name].metric.low, rows[name].metric.high) == pytest.approx(
            (low, high), rel=1e-12
        )
    raw = {name: scipy_stats.ttest_rel(ACC[name], ACC["ce"]).pvalue for name in ACC if name != "ce"}
    log_p, inverse_p = raw["class_weighted_ce-scheme=log"], raw["class_weighted_ce-scheme=inverse"]
    assert log_p < inverse_p
    holm = {  # m = 2: the smaller p doubles, the larger stays (but not below the first)
        "class_weighted_ce-scheme=log": min(1, 2 * log_p),
        "class_weighted_ce-scheme=inverse": min(1, max(2 * log_p, inverse_p)),
    }
    for name, p in holm.items():
        assert rows[name].vs_baseline.p_value == pytest.approx(raw[name], rel=1e-10)
        assert rows[name].p_holm == pytest.approx(p, rel=1e-10)
    assert holm["class_weighted_ce-scheme=log"] < 0.05 < holm["class_weighted_ce-scheme=inverse"]
    assert rows["class_weighted_ce-scheme=log"].verdict == "better"
    assert rows["class_weighted_ce-scheme=inverse"].verdict == "tie"
    assert rows["ce"].verdict == "baseline" and rows["ce"].vs_baseline is None
    # inverse wins seeds 0 and 2, loses seed 1
    assert rows["class_weighted_ce-scheme=inverse"].vs_baseline.p_improve == pytest.approx(2 / 3)
    # ranks: log tops; both others are separable from it (Holm over their two paired tests)
    p_top = sorted(
        scipy_stats.ttest_rel(ACC[name], ACC["class_weighted_ce-scheme=log"]).pvalue
        for name in ("ce", "class_weighted_ce-scheme=inverse")
    )
    assert max(2 * p_top[0], p_top[1]) < 0.05
    assert [(r.variant, r.rank) for r in comparison.rows] == [
        ("class_weighted_ce-scheme=log", 1),
        ("class_weighted_ce-scheme=inverse", 2),
        ("ce", 3),
    ]


def test_variants_the_top_cannot_be_separated_from_share_rank_1(tmp_path: Path):
    scores = {"ce": [0.80, 0.81, 0.79], "focal": [0.81, 0.80, 0.80], "kl_div": [0.70, 0.71, 0.69]}
    for loss, values in scores.items():
        for seed, score in enumerate(values):
            make_run(tmp_path, loss, seed, score)
    (comparison,) = compare_runs(tmp_path, read_curves=False).comparisons
    ranks = {r.variant: r.rank for r in comparison.rows}
    assert ranks == {"focal": 1, "ce": 1, "kl_div": 3}
    summary = write_report(tmp_path).summary.read_text()
    assert "| 1 | **focal** |" in summary and "| 1 | **ce** |" in summary
    assert "| 3 | kl_div |" in summary
    assert "3 paired seeds: only large effects are caught" in summary


def test_one_seed_shows_n_a_not_plus_minus_zero(tmp_path: Path):
    make_run(tmp_path, "ce", 0, 0.81, extra_metrics={"test/balanced_acc": 0.7})
    make_run(tmp_path, "focal", 0, 0.83, extra_metrics={"test/balanced_acc": 0.72})
    report = write_report(tmp_path)
    summary = report.summary.read_text()
    assert "± 0.0000" not in summary
    assert "0.8300 [n/a]" in summary and "0.7200 ± n/a" in summary
    rows = {r.variant: r for r in report.comparisons[0].rows}
    assert rows["focal"].verdict == "n/a" and rows["ce"].verdict == "baseline"
    assert [r.rank for r in report.comparisons[0].rows] == [1, 1]  # one seed separates nothing
    with open(tmp_path / "summary.csv") as f:
        csv_rows = {row["variant"]: row for row in csv.DictReader(f)}
    assert csv_rows["focal"]["test/acc mean"] == "0.83"
    assert csv_rows["focal"]["test/acc std"] == "nan" and csv_rows["focal"]["verdict"] == "n/a"


@pytest.fixture
def compare_cli(monkeypatch, capsys):
    """``scripts/compare.py ARGS`` in this process (a subprocess would import torch again):
    what it prints on stdout."""

    def run(*args: str) -> str:
        monkeypatch.setattr(sys, "argv", ["compare.py", *args])
        runpy.run_path(str(ROOT / "scripts" / "compare.py"), run_name="__main__")
        return capsys.readouterr().out

    return run


JSON_KEYS = {"metric", "mode", "baseline", "variants"}
VARIANT_KEYS = {
    "variant",
    "n",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "p_value",
    "p_improve",
    "verdict",
    "label",
    "regime",
    "mde",
    "selected",
}


def test_json_on_stdout_has_the_stated_schema_and_null_for_undefined(compare_cli, tmp_path: Path):
    three_variants(tmp_path)
    make_run(tmp_path, "focal", 0, 0.84)  # one seed: no interval, one pair: no test
    out = json.loads(compare_cli(str(tmp_path), "--json"))
    assert set(out) == JSON_KEYS
    assert (out["metric"], out["mode"], out["baseline"]) == ("test/acc", "max", "ce")
    by_name = {v["variant"]: v for v in out["variants"]}
    assert all(set(v) == VARIANT_KEYS for v in out["variants"])
    focal = by_name["focal"]
    assert focal["n"] == 1 and focal["mean"] == 0.84 and focal["selected"] == {}
    assert focal["std"] is None and focal["ci_low"] is None and focal["p_value"] is None
    assert focal["verdict"] == "n/a" and focal["diff"] == pytest.approx(0.84 - 0.810)
    base = by_name["ce"]
    assert base["verdict"] == "baseline" and base["diff"] is None and base["p_improve"] is None
    log, inverse = "class_weighted_ce-scheme=log", "class_weighted_ce-scheme=inverse"
    log_variant = by_name[log]
    assert log_variant["verdict"] == log_variant["label"] == "better"
    assert log_variant["regime"] == [] and focal["mde"] is None
    p = {name: scipy_stats.ttest_rel(ACC[name], ACC["ce"]).pvalue for name in (log, inverse)}
    # Holm over the two testable comparisons (focal's one pair has no test), by hand
    first, second = sorted(p.values())
    p_holm = {
        name: min(1.0, 2 * first) if p[name] == first else max(2 * first, second) for name in p
    }
    # the interval at the level of the adjusted test: it excludes 0 exactly when p_holm < 0.05
    level = 1 - 0.05 * p[log] / p_holm[log]
    ci = scipy_stats.ttest_rel(ACC[log], ACC["ce"]).confidence_interval(level)
    assert (log_variant["diff_ci_low"], log_variant["diff_ci_high"]) == pytest.approx(
        (ci.low, ci.high), rel=1e-10
    )
    assert log_variant["p_value"] == pytest.approx(p_holm[log], rel=1e-10)
    std = np.std(np.subtract(ACC[log], ACC["ce"]), ddof=1)
    # the JSON carries the report's MDE (its power is pinned in test_stats)
    assert log_variant["mde"] == pytest.approx(stats.min_detectable_effect(3, std), rel=1e-12)


def test_a_mixed_task_directory_gets_one_section_per_task_and_failures_are_listed(
    compare_cli, tmp_path
):
    for seed, (ce, focal) in enumerate([(0.80, 0.82), (0.81, 0.84), (0.79, 0.83)]):
        make_run(tmp_path / "cls", "ce", seed, ce)
        make_run(tmp_path / "cls", "focal", seed, focal)
    for seed, (mse, l1) in enumerate([(0.30, 0.25), (0.32, 0.26), (0.31, 0.24)]):
        make_run(tmp_path / "reg", "mse", seed, mse, task="regression")
        make_run(tmp_path / "reg", "l1", seed, l1, task="regression")
    make_run(
        tmp_path / "reg",
        "huber",
        0,
        None,
        task=None,
        status="failed",
        error="ValueError: regression: expected noise > 0, got -1",
    )
    report = write_report(tmp_path)
    assert [(c.task, c.metric, c.mode, c.baseline) for c in report.comparisons] == [
        ("classification", "test/acc", "max", "ce"),
        ("regression", "test/mae", "min", "mse"),
    ]
    regression = {r.variant: r for r in report.comparisons[1].rows}
    assert set(regression) == {"mse", "l1"}  # the failed run is no variant
    assert regression["l1"].verdict == "better"  # lower mae
    summary = report.summary.read_text()
    assert "## classification: 2 variants ranked by test/acc (higher is better)" in summary
    assert "## regression: 2 variants ranked by test/mae (lower is better)" in summary
    assert "huber-seed=0: failed before training: ValueError: regression: expected noise" in summary
    with open(tmp_path / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 13
    failed = next(r for r in runs if r["status"] == "failed")
    assert failed["task"] == "" and "expected noise > 0" in failed["reason"]
    out = json.loads(compare_cli(str(tmp_path), "--json"))
    assert [o["metric"] for o in out] == ["test/acc", "test/mae"]
    assert all(set(o) == JSON_KEYS for o in out)


def test_runs_csv_has_every_override_metric_and_status(tmp_path: Path):
    make_run(
        tmp_path,
        "focal",
        0,
        0.8,
        overrides=("loss.gamma=2", "optimizer.lr=0.01"),
        extra_metrics={"test/macro_f1": 0.7},
    )
    make_run(tmp_path, "focal", 1, None, overrides=("loss.gamma=2",), status="failed", error="boom")
    write_report(tmp_path)
    with open(tmp_path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["seed"], r["status"]) for r in rows] == [("0", "completed"), ("1", "failed")]
    assert rows[0]["loss"] == "focal" and rows[0]["loss.gamma"] == "2"
    assert rows[0]["optimizer.lr"] == "0.01" and rows[1]["optimizer.lr"] == ""
    assert rows[0]["test/acc"] == "0.8" and rows[0]["test/macro_f1"] == "0.7"
    assert rows[1]["reason"] == "boom"


def lr_sweep(root: Path) -> None:
    """ce and focal at two learning rates; validation prefers 0.01 for ce and 0.001 for focal,
    whose test scores would prefer the other value (choosing on test would be cheating)."""
    table = {
        ("ce", "0.01"): ([0.80, 0.81, 0.82], [0.90, 0.91, 0.92]),
        ("ce", "0.001"): ([0.85, 0.86, 0.87], [0.80, 0.80, 0.80]),
        ("focal", "0.01"): ([0.95, 0.95, 0.95], [0.85, 0.85, 0.86]),
        ("focal", "0.001"): ([0.70, 0.72, 0.71], [0.93, 0.93, 0.94]),
    }
    for (loss, lr), (tests, vals) in table.items():
        for seed, (test, val) in enumerate(zip(tests, vals, strict=True)):
            make_run(root, loss, seed, test, overrides=(f"optimizer.lr={lr}",), val=val)


def test_select_picks_each_variants_knob_on_validation_and_ranks_only_its_runs(
    compare_cli, tmp_path
):
    lr_sweep(tmp_path)
    report = write_report(tmp_path, select=["optimizer.lr"])
    rows = {r.variant: r for r in report.comparisons[0].rows}
    assert set(rows) == {"ce", "focal"}  # the knob is not part of the name
    assert rows["ce"].selected == {"optimizer.lr": 0.01}
    assert rows["focal"].selected == {"optimizer.lr": 0.001}
    assert rows["ce"].metric.mean == pytest.approx(0.81)
    assert rows["focal"].metric.mean == pytest.approx(0.71)
    assert rows["focal"].verdict == "worse" and rows["focal"].metric.n == 3
    summary = report.summary.read_text()
    assert "| ce | optimizer.lr=0.01 | " in summary
    out = json.loads(compare_cli(str(tmp_path), "--json", "--select", "optimizer.lr"))
    assert {v["variant"]: v["selected"] for v in out["variants"]} == {
        "ce": {"optimizer.lr": 0.01},
        "focal": {"optimizer.lr": 0.001},
    }


def test_a_suite_declares_select_and_baseline(tmp_path: Path):
    for seed, (ce, focal, kl) in enumerate(
        [(0.80, 0.82, 0.70), (0.81, 0.84, 0.71), (0.79, 0.8, 0.7)]
    ):
        suite = {"suite": {"baseline": "focal", "select": ["optimizer.lr"]}}
        for loss, score in (("ce", ce), ("focal", focal), ("kl_div", kl)):
            make_run(tmp_path, loss, seed, score, overrides=("optimizer.lr=0.01",), config=suite)
    (comparison,) = compare_runs(tmp_path, read_curves=False).comparisons
    assert comparison.baseline == "focal" and comparison.select == ["optimizer.lr"]
    assert {r.variant: r.verdict for r in comparison.rows} == {
        "focal": "baseline",
        "ce": "tie",
        "kl_div": "worse",
    }
    # the command line wins over the suite
    assert compare_runs(tmp_path, baseline="ce", read_curves=False).comparisons[0].baseline == "ce"


def test_metric_override_needs_a_direction_and_a_recorded_metric(compare_cli, tmp_path: Path):
    for seed in range(3):
        make_run(tmp_path, "ce", seed, 0.8, extra_metrics={"test/min_recall": 0.1 + seed / 100})
        make_run(tmp_path, "focal", seed, 0.8, extra_metrics={"test/min_recall": 0.3 + seed / 50})
    with pytest.raises(ValueError, match="say --mode max or --mode min"):
        compare_runs(tmp_path, metric="test/min_recall", read_curves=False)
    with pytest.raises(ValueError, match=r"no run below .* recorded it"):
        compare_runs(tmp_path, metric="test/nope", mode="max", read_curves=False)
    with pytest.raises(ValueError, match="--baseline kl is not a variant; variants: "):
        compare_runs(tmp_path, baseline="kl", read_curves=False)
    (comparison,) = compare_runs(
        tmp_path, metric="test/min_recall", mode="max", read_curves=False
    ).comparisons
    assert comparison.metric == "test/min_recall"
    assert next(r for r in comparison.rows if r.variant == "focal").verdict == "better"
    out = compare_cli(str(tmp_path), "--metric", "test/min_recall", "--mode", "max", "--json")
    assert json.loads(out)["metric"] == "test/min_recall"


def write_scalars(run_dir: Path, curves: dict[str, list[tuple[int, float]]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(run_dir)) as writer:
        for tag, points in curves.items():
            for step, value in points:
                writer.add_scalar(tag, value, step)


def read_scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: {e.step: e.value for e in acc.Scalars(t)} for t in acc.Tags()["scalars"]}


def test_tensorboard_view_writes_seed_means_at_the_shared_steps(tmp_path: Path):
    rng = np.random.default_rng(7)
    steps = {0: [10, 20, 30], 1: [10, 20, 30, 40], 2: [10, 20, 30]}  # seed 1 ran longer
    logged: dict = {}
    for seed, seed_steps in steps.items():
        run = make_run(tmp_path, "ce", seed, 0.8 + seed / 100, extra_metrics={"test/recall/0": 1.0})
        make_run(tmp_path, "focal", seed, 0.82 + seed / 100)
        curves = {
            tag: [(s, float(rng.uniform())) for s in seed_steps]
            for tag in (
                "val/acc",
                "val/loss",
                "train/loss_epoch",
                "val/balanced_acc",
                "val/min_recall",
            )
        }
        write_scalars(run, curves)
        logged[seed] = curves
    write_report(tmp_path, tensorboard_view=True)
    view = read_scalars(tmp_path / "_variants" / "ce")
    for tag in ("val/acc", "val/loss", "train/loss_epoch", "val/balanced_acc", "val/min_recall"):
        per_seed = np.array([[v for _, v in logged[s][tag][:3]] for s in steps], dtype=np.float64)
        assert sorted(view[tag]) == [10, 20, 30]  # step 40 only seed 1 logged
        # event files store float32
        assert [view[tag][s] for s in (10, 20, 30)] == pytest.approx(per_seed.mean(0), rel=1e-6)
        assert [view[f"{tag}/min"][s] for s in (10, 20, 30)] == pytest.approx(per_seed.min(0))
        assert [view[f"{tag}/max"][s] for s in (10, 20, 30)] == pytest.approx(per_seed.max(0))
    assert not (tmp_path / "_variants" / "focal").exists()  # focal logged no curves
    assert not list((tmp_path / "_variants").rglob("status.json"))
    # the report ignores _variants, and a rerun replaces it rather than appending
    first = (tmp_path / "summary.csv").read_text()
    write_report(tmp_path, tensorboard_view=True)
    assert (tmp_path / "summary.csv").read_text() == first
    assert len(list((tmp_path / "_variants" / "ce").glob("events.out.tfevents.*"))) == 1
    assert math.isclose(
        read_scalars(tmp_path / "_variants" / "ce")["val/acc"][10], view["val/acc"][10]
    )


def test_pictures_are_written(tmp_path: Path):
    for seed, (ce, focal) in enumerate([(0.80, 0.82), (0.81, 0.84), (0.79, 0.83)]):
        recall = {f"test/recall/{c}": 0.9 - 0.1 * i + seed / 100 for i, c in enumerate("abcdef")}
        for loss, score in (("ce", ce), ("focal", focal)):
            run = make_run(
                tmp_path,
                loss,
                seed,
                score,
                extra_metrics=recall,
                config={"data": {"imbalance_ratio": 100}},
            )
            write_scalars(run, {"val/acc": [(10, score - 0.1), (20, score)]})
    write_report(tmp_path)
    for name in ("curves", "final", "paired", "per_class_recall"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_regime_flags_reach_the_json_and_the_summary(compare_cli, tmp_path: Path):
    # ce (the plain loss) above the training prior's loss; one focal seed stopped
    for seed, (ce, focal) in enumerate([(0.80, 0.82), (0.81, 0.84), (0.79, 0.83)]):
        make_run(tmp_path, "ce", seed, ce, extra_metrics={"test/loss": 2.4, "test/prior_loss": 2.3})
        make_run(tmp_path, "focal", seed, focal, status="stopped" if seed == 2 else "completed")
    out = json.loads(compare_cli(str(tmp_path), "--json"))
    regime = {v["variant"]: v["regime"] for v in out["variants"]}
    assert regime["ce"] == [
        "worse than the trivial predictor: test/loss (ce) 2.4 vs 2.3 for the training prior"
    ]
    assert regime["focal"] == ["not completed: 1 stopped of 3 runs"]
    write_report(tmp_path)
    assert "not completed: 1 stopped of 3 runs" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize(
    ("curve", "mode", "flagged"),
    [
        ([0.50, 0.70, 0.80], "max", True),  # the last of 3 gained a third of the whole gain
        ([0.50, 0.79, 0.80], "max", False),  # 0.01 of 0.30: a plateau
        ([0.50, 0.80, 0.79], "max", False),  # the last is not the best
        ([0.9, 0.5, 0.4], "min", True),  # a loss still falling
        ([0.5, 0.7], "max", False),  # two points cannot tell
        (
            [0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.89, 0.895],
            "max",
            False,
        ),  # last 2 of 8: 0.015 of 0.395
    ],
)
def test_budget_too_short_rule(curve, mode, flagged):
    points = [(10 * (i + 1), v) for i, v in enumerate(curve)]
    flag = regime.still_improving(points, mode, "val/m")
    assert (flag is not None) == flagged, flag
