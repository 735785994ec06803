"""A finding's verdicts and outcome: each check compared over its own family of variants, the
verdicts set against the expected ones, and the repeat check of two trainings."""

import csv
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from trainer.analysis.comparison import Row, compare_runs
from trainer.analysis.findings.spec import VERDICTS, Check, Finding
from trainer.analysis.report import write_report
from trainer.analysis.runs import status_paths

OUTCOMES = ("reproduced", "not reproduced", "mixed", "inconclusive", "blocked")
RUN_RECORDS = ("status.json", "nonfinite.json", ".hydra")  # what the report reads of a run
REPEAT_TOLERANCE = 1e-3
NONDETERMINISTIC = ("perf/",)  # throughput: wall-clock, not a result


def met(expected: str, observed: str) -> bool | None:
    """Whether a verdict is the expected one; None when the comparison could not be made."""
    if observed not in VERDICTS:  # n/a: fewer than two seeds, or a run without the metric
        return None
    return observed == expected


def outcome(pairs: list[tuple[str, str]]) -> str:
    """The outcome of a finding from its (expected, observed) verdicts, over every check:
    ``reproduced`` when every one is as expected, ``not reproduced`` when none is, ``mixed`` in
    between; ``inconclusive`` when any could not be compared (``n/a``: one seed, failed runs),
    since a missing verdict neither supports nor refutes; ``blocked`` when a metric is missing.

    >>> outcome([("better", "better"), ("better", "better")])
    'reproduced'
    >>> outcome([("better", "tie"), ("better", "worse")])
    'not reproduced'
    >>> outcome([("better", "better"), ("better", "tie")])
    'mixed'
    >>> outcome([("better", "better"), ("better", "n/a")])
    'inconclusive'
    """
    if not pairs:
        raise ValueError("outcome: no verdicts")
    if any(observed == "blocked" for _, observed in pairs):
        return "blocked"
    hits = [met(expected, observed) for expected, observed in pairs]
    if any(h is None for h in hits):
        return "inconclusive"
    if all(hits):
        return "reproduced"
    return "mixed" if any(hits) else "not reproduced"


@dataclass
class CheckResult:
    metric: str
    mode: str
    baseline: str  # the report's name of the baseline variant
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per variant, baseline first


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


def family_dir(sweep_dir: Path, runs: list[Path], index: int) -> Path:
    """A directory holding only the records of ``runs`` (relative to ``sweep_dir``; no weights,
    no events): the report's Holm correction then counts exactly the comparisons a check makes."""
    target = sweep_dir.parent / f"_{sweep_dir.name}_check{index}"
    if target.exists():
        shutil.rmtree(target)
    for run in runs:
        copy = target / run
        copy.mkdir(parents=True)
        for name in RUN_RECORDS:
            source = sweep_dir / run / name
            if source.is_dir():
                shutil.copytree(source, copy / name)
            elif source.exists():
                shutil.copy2(source, copy / name)
    return target


def _fnum(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _verdict_row(key: str, row: Row, check: Check) -> dict[str, Any]:
    paired = row.vs_baseline
    return {
        "key": key,
        "variant": row.variant,
        "n": row.metric.n,
        "mean": _fnum(row.metric.mean),
        "ci_low": _fnum(row.metric.low),
        "ci_high": _fnum(row.metric.high),
        "diff": _fnum(paired.diff.mean) if paired else None,
        "diff_ci_low": _fnum(paired.diff.low) if paired else None,
        "diff_ci_high": _fnum(paired.diff.high) if paired else None,
        "p_holm": _fnum(row.p_holm),
        "verdict": row.verdict,
        "expected": check.expect.get(key, ""),
        "status": row.status,
        "nonfinite": row.nonfinite,
        "per_seed": {str(s): v for s, v in row.per_seed.items()},
    }


def _check_result(
    finding: Finding, check: Check, index: int, sweep_dir: Path, keys: dict[Path, str]
) -> CheckResult:
    """One check's verdicts, over its family: its baseline and the variants it expects of."""
    base = check.baseline or finding.baseline
    family = [base, *check.expect]
    directory = sweep_dir
    if set(family) != set(finding.variants):
        directory = family_dir(sweep_dir, [run for run, k in keys.items() if k in family], index)
    names = report_names(directory, keys)
    result = CheckResult(check.metric, check.mode, names.get(base, base))
    try:
        report = compare_runs(
            directory, check.metric, check.mode, names.get(base), read_curves=False
        )
    except (ValueError, RuntimeError) as error:  # no run recorded the metric
        result.rows = [
            {"key": k, "variant": names.get(k, k), "verdict": "blocked", "error": str(error)}
            for k in family
        ]
        return result
    comparison = next(c for c in report.comparisons if c.metric == check.metric)
    by_name = {row.variant: row for row in comparison.rows}
    for key in family:
        row = by_name.get(names.get(key, ""))
        if row is None:
            result.rows.append({"key": key, "variant": key, "verdict": "n/a", "n": 0})
        else:
            result.rows.append(_verdict_row(key, row, check))
    if directory != sweep_dir:
        shutil.rmtree(directory)
    return result


def evaluate(finding: Finding, sweep_dir: Path) -> list[CheckResult]:
    """Each check's verdicts over its own family (its baseline and the variants it expects
    something of); the full report (every variant against the finding's baseline, by the first
    check's metric) with its tables and pictures goes into ``sweep_dir``."""
    keys = run_keys(finding, sweep_dir)
    names = report_names(sweep_dir, keys)
    if finding.baseline not in names:
        raise RuntimeError(f"{finding.name}: no run of the baseline {finding.baseline}")
    first = finding.checks[0]
    try:
        write_report(sweep_dir, first.metric, first.mode, names[finding.baseline])
    except ValueError as error:  # no run recorded the metric
        print(f"[{finding.name}] report: {error}")
    return [
        _check_result(finding, check, i, sweep_dir, keys) for i, check in enumerate(finding.checks)
    ]


def verdict_pairs(finding: Finding, results: list[CheckResult]) -> list[tuple[str, str]]:
    pairs = []
    for check, result in zip(finding.checks, results, strict=True):
        observed = {r["key"]: r["verdict"] for r in result.rows}
        pairs += [(exp, observed.get(key, "n/a")) for key, exp in check.expect.items()]
    return pairs


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
