"""A finding's evidence: each check's table (every variant against the check's baseline), the
expected effects labelled, the regime preconditions, and the repeat check of two trainings."""

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from trainer.analysis import evidence, stats
from trainer.analysis.comparison import compare_runs, metric_range
from trainer.analysis.findings.spec import Check, Finding
from trainer.analysis.report import write_report
from trainer.analysis.runs import load_run, status_paths

REPEAT_TOLERANCE = 1e-3
NONDETERMINISTIC = ("perf/",)  # throughput: wall-clock, not a result


@dataclass
class CheckResult:
    """One check's table: every variant with the metric against the check's baseline (one Holm
    family), the expected ones labelled."""

    metric: str
    mode: str
    baseline: str  # the report's name of the baseline variant
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per variant, baseline first

    def labels(self) -> list[str]:
        return [row["label"] for row in self.rows if row.get("expected")]


def _assignments(overrides: list[str]) -> set[tuple[str, str]]:
    """``(key, value)`` of each override, as Hydra parses it (``loss.delta=1.0``, ``=1.``)."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {(o.get_key_element(), o.get_value_element_as_str()) for o in parsed}


def run_keys(finding: Finding, sweep_dir: Path) -> dict[Path, str]:
    """The spec's variant key of each run below ``sweep_dir`` (by its path relative to it): the
    variant whose overrides the run's command line holds, the most specific where several do."""
    variants = {key: _assignments(overrides) for key, overrides in finding.variants.items()}
    keys = {}
    for status in status_paths(sweep_dir):
        given = _assignments(OmegaConf.load(status.parent / ".hydra" / "overrides.yaml"))
        matching = [key for key, wanted in variants.items() if wanted <= given]
        if matching:
            relative = status.parent.relative_to(sweep_dir)
            keys[relative] = max(matching, key=lambda k: len(variants[k]))
    return keys


def report_names(directory: Path, keys: dict[Path, str]) -> dict[str, str]:
    """Variant key -> the report's name of it, for the runs below ``directory`` (a run of none of
    the finding's variants has no key)."""
    plain = compare_runs(directory, read_curves=False)
    names: dict[str, str] = {}
    for c in plain.comparisons:
        for row in c.rows:
            for run in row.runs:
                if key := keys.get(run.path.relative_to(directory)):
                    names[key] = row.variant
    for run in plain.untasked:
        if key := keys.get(run.path.relative_to(directory)):
            names.setdefault(key, run.variant)
    return names


def _fnum(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _row(key: str, name: str, values: dict[int, float], bounds: tuple[float, float]) -> dict:
    interval = stats.within(stats.t_interval(list(values.values())), *bounds)
    return {
        "key": key,
        "variant": name,
        "n": interval.n,
        "mean": _fnum(interval.mean),
        "ci_low": _fnum(interval.low),
        "ci_high": _fnum(interval.high),
        "per_seed": {str(seed): value for seed, value in sorted(values.items())},
    }


def judge(
    check: Check,
    base: str,
    values: dict[str, dict[int, float]],
    names: dict[str, str],
    bounds: tuple[float, float],
    regime: dict[str, list[str]] | None = None,
) -> CheckResult:
    """One check's table from the per-seed values of every variant (by the spec's key) that
    has the metric: each against ``base`` by the paired t-test, Holm-adjusted over the table
    (as the report's table, so both show the same p); the differences' intervals at the
    adjusted level, within the metric's range ``bounds``; the expected variants labelled
    (``trainer.analysis.evidence``), equivalence and non-inferiority claims adjusted among
    themselves."""
    low, high = bounds
    result = CheckResult(check.metric, check.mode, names.get(base, base))
    reference = values.get(base, {})
    others = [k for k in values if k != base and values[k]]
    paired = {k: stats.paired(values[k], reference, check.mode) for k in others}
    p_holm = dict(zip(others, stats.holm([paired[k].p_value for k in others]), strict=True))
    claims = [k for k in others if k in check.expect]
    special = [k for k in claims if check.expect[k].kind in ("similar", "at_least_as_good")]
    raw = [evidence.raw_p(check.expect[k], paired[k], check.mode) for k in special]
    label_p = {**p_holm, **dict(zip(special, stats.holm(raw), strict=True))}
    flags = regime or {}
    result.rows.append(
        {**_row(base, names.get(base, base), reference, bounds), "verdict": "baseline"}
        | {"regime": flags.get(base, []), "expected": ""}
    )
    for key in others:
        pair = paired[key]
        diff = stats.within(
            stats.adjusted_interval(pair.diffs, pair.p_value, p_holm[key]), low - high, high - low
        )
        row = _row(key, names.get(key, key), values[key], bounds) | {
            "diff": _fnum(pair.diff.mean),
            "diff_ci_low": _fnum(diff.low),
            "diff_ci_high": _fnum(diff.high),
            "p_holm": _fnum(p_holm[key]),
            "mde": _fnum(pair.mde),
            "verdict": stats.verdict(p_holm[key], pair.diff.mean, pair.n, check.mode),
            "regime": flags.get(key, []),
            "expected": "",
        }
        if key in check.expect:
            family = len(special) if key in special else len(others)
            found = evidence.label(check.expect[key], pair, label_p[key], diff, check.mode, family)
            row |= {
                "expected": str(check.expect[key]),
                "label": found.label,
                "label_p": _fnum(found.p_holm),
                "seeds_needed": found.seeds_needed,
                "reason": found.reason,
            }
        result.rows.append(row)
    for key in check.expect:
        if key not in paired:  # no run of it recorded the metric
            result.rows.append(
                {"key": key, "variant": names.get(key, key), "n": 0, "verdict": "n/a"}
                | {"expected": str(check.expect[key]), "label": "n/a", "reason": "no runs"}
            )
    return result


def _check_result(
    finding: Finding, check: Check, sweep_dir: Path, keys: dict[Path, str], names: dict
) -> CheckResult:
    """One check over the whole sweep: the report's table of its metric against its baseline."""
    base = check.baseline or finding.baseline
    try:
        report = compare_runs(sweep_dir, check.metric, check.mode, names.get(base))
    except (ValueError, RuntimeError) as error:  # no run recorded the metric
        result = CheckResult(check.metric, check.mode, names.get(base, base))
        result.rows = [
            {"key": k, "variant": names.get(k, k), "verdict": "blocked", "label": "blocked"}
            | {"expected": str(e), "reason": str(error)}
            for k, e in check.expect.items()
        ]
        return result
    comparison = next(c for c in report.comparisons if c.metric == check.metric)
    key_of = {name: key for key, name in names.items()}
    values = {key_of[r.variant]: r.per_seed for r in comparison.rows if r.variant in key_of}
    flags = {key_of[r.variant]: r.regime for r in comparison.rows if r.variant in key_of}
    bounds = metric_range(finding.task, check.metric)
    return judge(check, base, values, names, bounds, flags)


def preconditions(finding: Finding, sweep_dir: Path, keys: dict[Path, str]) -> list[dict]:
    """Each regime precondition with the seed means it compares and whether it held."""
    checked = []
    for pre in finding.regime:
        runs = [
            load_run(sweep_dir / path / "status.json")
            for path, key in keys.items()
            if key == pre.variant
        ]
        completed = [r for r in runs if r.status == "completed"]
        value = stats.t_interval([r.metrics.get(pre.metric, math.nan) for r in completed]).mean
        bound = pre.bound
        if isinstance(bound, str):
            bound = stats.t_interval([r.metrics.get(bound, math.nan) for r in completed]).mean
        limit = pre.factor * bound
        # NaN (no completed run, a metric not logged): False, not shown to hold
        held = value < limit if pre.side == "below" else value > limit
        checked.append(
            {"condition": str(pre), "value": _fnum(value), "bound": _fnum(limit)}
            | {"held": bool(held)}
        )
    return checked


def evaluate(finding: Finding, sweep_dir: Path) -> tuple[list[CheckResult], list[dict]]:
    """Each check's table over the whole sweep, and the regime preconditions; the full report
    (every variant against the finding's baseline, by the first check's metric) with its tables
    and pictures goes into ``sweep_dir``. A failed precondition turns every label into ``out of
    regime``: the runs are not in the setting the claim is about."""
    keys = run_keys(finding, sweep_dir)
    names = report_names(sweep_dir, keys)
    if finding.baseline not in names:
        raise RuntimeError(f"{finding.name}: no run of the baseline {finding.baseline}")
    first = finding.checks[0]
    try:
        write_report(sweep_dir, first.metric, first.mode, names[finding.baseline])
    except ValueError as error:  # no run recorded the metric
        print(f"[{finding.name}] report: {error}")
    results = [_check_result(finding, check, sweep_dir, keys, names) for check in finding.checks]
    regime = preconditions(finding, sweep_dir, keys)
    _apply_preconditions(results, regime)
    return results, regime


def _apply_preconditions(results: list[CheckResult], regime: list[dict]) -> None:
    """A failed precondition turns every label into ``out of regime``."""
    if all(p["held"] for p in regime):
        return
    for result in results:
        for row in result.rows:
            if row.get("expected"):
                row["label"], row["reason"] = "out of regime", "a regime precondition failed"


def repeat_difference(first: Path, second: Path) -> dict[str, Any]:
    """The largest relative difference between two runs.csv of the same finding, over every
    metric of every run (matched by variant and seed), throughput excepted."""

    def read(path: Path) -> dict[tuple[str, str], dict[str, str]]:
        with open(path) as f:
            return {(r["variant"], r["seed"]): r for r in csv.DictReader(f)}

    a, b = read(first), read(second)
    if a.keys() != b.keys():
        raise ValueError(f"repeat check: the runs differ: {sorted(a.keys() ^ b.keys())}")
    worst, values = 0.0, 0
    for key, row in a.items():
        for column, text in row.items():
            if not column.startswith(("test/", "val/", "train/", "nonfinite/")):
                continue
            if column.startswith(NONDETERMINISTIC) or text in ("", None):
                continue
            x, y = float(text), float(b[key][column])
            if math.isnan(x) and math.isnan(y):
                continue
            values += 1
            rel = abs(x - y) / max(abs(x), abs(y), 1e-12) if x != y else 0.0
            worst = max(worst, rel if not math.isnan(rel) else math.inf)
    return {
        "runs": len(a),
        "values": values,
        "max_rel_diff": worst,
        "tolerance": REPEAT_TOLERANCE,
        "ok": worst <= REPEAT_TOLERANCE,
    }


def relabel(record: dict[str, Any], finding: Finding) -> tuple[list[CheckResult], list[dict]]:
    """The checks of ``finding`` judged again from the per-seed values a ``finding.json``
    kept (every variant of every check it had), without the runs: for labels computed after the
    runs. A check whose metric or variants the record lacks comes out ``n/a``. The regime needs
    the runs' curves and metrics, which ``results/`` does not keep, so it is carried over from
    a record whose regime was checked: each variant's flags, and the preconditions when the
    spec still declares exactly those (then applied as ``evaluate`` does); else it is None (not
    checked)."""
    values: dict[tuple[str, str], dict[int, float]] = {}
    names: dict[str, str] = {}
    flags: dict[str, list[str]] = {}
    for check in record["checks"]:
        for row in check["rows"]:
            if row.get("per_seed"):
                per_seed = {int(s): float(v) for s, v in row["per_seed"].items() if v is not None}
                values[(check["metric"], row["key"])] = per_seed
                names[row["key"]] = row["variant"]
                flags.setdefault(row["key"], list(row.get("regime") or []))
    kept = record.get("regime") or []
    regime = None
    if record.get("regime_checked") and [p["condition"] for p in kept] == [
        str(p) for p in finding.regime
    ]:
        regime = kept
    results = []
    for check in finding.checks:
        table = {key: v for (metric, key), v in values.items() if metric == check.metric}
        base = check.baseline or finding.baseline
        bounds = metric_range(finding.task, check.metric)
        results.append(
            judge(check, base, table, names, bounds, flags if regime is not None else None)
        )
    if regime is not None:
        _apply_preconditions(results, regime)
    return results, regime
