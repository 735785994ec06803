"""Findings: does a claim from the literature hold in our setting? One spec per claim
(``conf/findings/<name>.yaml``), its runs, its verdicts (``trainer.report``) and its outcome.

A spec names the claim and its source (hand-written), the runs (data, model, the budget and other
overrides shared by every variant, each variant's overrides, the seed list), the checks (a metric,
its direction and, per variant, the verdict against the baseline that the claim predicts:
``better`` / ``worse`` / ``tie``) and an optional hand-written note. Everything else is computed:
the runs train through ``train.py -m`` in subprocesses, the verdicts are the report's paired,
Holm-corrected ones, and the outcome compares them with the expected directions
(:func:`outcome`).
"""

import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT / "conf" / "findings"
VERDICTS = ("better", "worse", "tie")
OUTCOMES = ("reproduced", "not reproduced", "mixed", "inconclusive", "blocked")
# the environment of every training subprocess: one thread per BLAS/OpenMP pool, so a CPU run's
# floating-point reductions happen in one order, and the same commit on the same CPU reproduces
DETERMINISM_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
# appended to every job: CPU, Lightning's deterministic mode (torch.use_deterministic_algorithms)
DETERMINISM_OVERRIDES = ["trainer.accelerator=cpu", "trainer.deterministic=true"]
QUIET_OVERRIDES = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "~hydra.callbacks.compare",  # the report is built once, over every variant, below
]
# --quick: one short epoch on a few batches (as debug=quick, but as overrides, so a finding whose
# runs already pick a debug preset, debug=saturate, still takes it)
QUICK_OVERRIDES = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.num_sanity_val_steps=0",
]
COPIED = ("summary.md", "summary.csv", "runs.csv")  # and the report's *.png


class SpecError(ValueError):
    pass


@dataclass
class Check:
    metric: str  # a key of status.json's metrics: "test/mae", "nonfinite/skipped"
    mode: str  # max | min: the direction that is better
    expect: dict[str, str]  # variant key -> better | worse | tie
    baseline: str | None = None  # a variant key; None: the finding's


@dataclass
class Finding:
    name: str
    claim: str
    source: str
    data: str
    model: str
    overrides: list[str]  # shared by every variant: budget, data options, presets
    variants: dict[str, list[str]]  # key -> overrides (loss=..., loss.x=...)
    baseline: str  # a variant key
    seeds: list[int]
    checks: list[Check]
    setting: str = ""  # hand-written: why this budget / data size
    note: str = ""  # hand-written remark on the outcome, shown as such

    @property
    def data_overrides(self) -> list[str]:
        return [f"data={self.data}", f"model={self.model}", *self.overrides]


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: expected a list of override strings, got {value!r}")
    return list(value)


def load_spec(path: Path) -> Finding:
    """A finding spec, checked: every key known, the baseline and the expectations naming
    variants, the expected verdicts among better / worse / tie."""
    path = Path(path)
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    known = {"claim", "source", "runs", "checks", "baseline", "setting", "note"}
    if unknown := set(raw) - known:
        raise SpecError(f"{path.name}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    for key in ("claim", "source", "runs", "checks", "baseline"):
        if key not in raw:
            raise SpecError(f"{path.name}: missing key {key!r}")
    runs = raw["runs"]
    run_keys = {"data", "model", "overrides", "variants", "seeds"}
    if unknown := set(runs) - run_keys:
        raise SpecError(f"{path.name}: runs: unknown keys {sorted(unknown)}")
    variants = {
        str(k): _strings(v, f"{path.name}: variant {k}") for k, v in runs["variants"].items()
    }
    for key, overrides in variants.items():
        if not any(o.startswith("loss=") for o in overrides):
            raise SpecError(f"{path.name}: variant {key}: name its loss (loss=...)")
    baseline = str(raw["baseline"])
    if baseline not in variants:
        raise SpecError(f"{path.name}: baseline {baseline!r} is not a variant: {list(variants)}")
    checks = []
    for i, check in enumerate(raw["checks"]):
        where = f"{path.name}: checks[{i}]"
        if check.get("mode") not in ("max", "min"):
            raise SpecError(f"{where}: mode must be max or min, got {check.get('mode')!r}")
        if unknown := set(check) - {"metric", "mode", "expect", "baseline"}:
            raise SpecError(f"{where}: unknown keys {sorted(unknown)}")
        expect = {str(k): str(v) for k, v in (check.get("expect") or {}).items()}
        base = str(check.get("baseline") or baseline)
        if base not in variants:
            raise SpecError(f"{where}: baseline {base!r} is not a variant: {list(variants)}")
        for key, verdict in expect.items():
            if key not in variants or key == base:
                raise SpecError(f"{where}: expect names {key!r}, not a non-baseline variant")
            if verdict not in VERDICTS:
                raise SpecError(f"{where}: {key}: expected one of {VERDICTS}, got {verdict!r}")
        if not expect:
            raise SpecError(f"{where}: expect names no variant")
        checks.append(Check(str(check["metric"]), check["mode"], expect, check.get("baseline")))
    seeds = [int(s) for s in runs.get("seeds", [0, 1, 2])]
    return Finding(
        name=path.stem,
        claim=" ".join(str(raw["claim"]).split()),
        source=" ".join(str(raw["source"]).split()),
        data=str(runs["data"]),
        model=str(runs["model"]),
        overrides=_strings(runs.get("overrides", []), f"{path.name}: runs.overrides"),
        variants=variants,
        baseline=baseline,
        seeds=seeds,
        checks=checks,
        setting=" ".join(str(raw.get("setting") or "").split()),
        note=" ".join(str(raw.get("note") or "").split()),
    )


def load_specs(spec_dir: Path = SPEC_DIR) -> dict[str, Finding]:
    return {p.stem: load_spec(p) for p in sorted(Path(spec_dir).glob("*.yaml"))}


# ---------------------------------------------------------------------------------------------
# outcome


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


# ---------------------------------------------------------------------------------------------
# running


def _without(overrides: list[str], replaced: list[str]) -> list[str]:
    """``overrides`` less those of the keys that ``replaced`` sets (Hydra takes one value a key)."""
    keys = {o.split("=", 1)[0] for o in replaced}
    return [o for o in overrides if o.split("=", 1)[0] not in keys]


def job_command(
    finding: Finding, key: str, sweep_dir: Path, seeds: list[int], quick: bool = False
) -> list[str]:
    """``train.py -m`` over every seed of one variant, into ``sweep_dir/<key>``."""
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        *_without(finding.data_overrides + finding.variants[key], QUICK_OVERRIDES if quick else []),
        *(QUICK_OVERRIDES if quick else []),
        *DETERMINISM_OVERRIDES,
        *QUIET_OVERRIDES,
        f"seed={','.join(str(s) for s in seeds)}",
        f"hydra.sweep.dir={sweep_dir / key}",
    ]


def run_jobs(
    finding: Finding,
    sweep_dir: Path,
    seeds: list[int],
    quick: bool = False,
    log=print,
    resume: bool = False,
) -> float:
    """Train every variant (one subprocess at a time); the wall time in seconds. A variant whose
    process fails is kept: its runs' status.json say why, and the report lists them. ``resume``:
    a variant whose seeds all finished is kept, with its recorded wall time."""
    env = os.environ | DETERMINISM_ENV
    total = 0.0
    for key in finding.variants:
        if resume and (done := _finished_wall(sweep_dir / key, seeds)) is not None:
            log(f"[{finding.name}] {key}: already trained ({done:.0f} s), kept (--resume)")
            total += done
            continue
        command = job_command(finding, key, sweep_dir, seeds, quick)
        if (sweep_dir / key).exists():
            shutil.rmtree(sweep_dir / key)
        (sweep_dir / key).mkdir(parents=True)
        log(f"[{finding.name}] {key}: {' '.join(command[2:])}")
        start = time.monotonic()
        with open(sweep_dir / key / "train.out", "w") as out:
            code = subprocess.call(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        wall = time.monotonic() - start
        total += wall
        (sweep_dir / key / WALL_FILE).write_text(f"{wall:.1f}\n")
        if code != 0:
            log(f"[{finding.name}] {key}: train.py exited {code}; see {sweep_dir / key}/train.out")
    return total


WALL_FILE = "wall_s.txt"


def _finished_wall(variant_dir: Path, seeds: list[int]) -> float | None:
    """The wall time of a variant whose every seed finished (completed or stopped), else None.
    Runs trained before wall_s.txt existed: from the multirun's first to its last write."""
    statuses = [json.loads(p.read_text()) for p in variant_dir.glob("*/status.json")]
    if len(statuses) != len(seeds) or any(
        s.get("status") not in ("completed", "stopped") for s in statuses
    ):
        return None
    if (variant_dir / WALL_FILE).exists():
        return float((variant_dir / WALL_FILE).read_text())
    start = (variant_dir / "multirun.yaml").stat().st_mtime
    return (variant_dir / "train.out").stat().st_mtime - start


def available_metrics(data: str) -> set[str] | None:
    """The test/ tags the data's task logs (from the task itself), or None when unknown."""
    from trainer.records import metric_tags
    from trainer.tasks import TASKS

    task = {
        "seg_imbalanced": "segmentation",
        "mnist": "classification",
        "fashion_mnist": "classification",
        "regression": "regression",
        "boxes": "boxes",
        "retrieval": "retrieval",
        "restoration": "restoration",
    }.get(data)
    if task is None or task not in TASKS:
        return None
    return set(metric_tags(TASKS[task].example()))


def blocked_metrics(finding: Finding) -> list[str]:
    """The test metrics of the checks that the data's task does not log (yet)."""
    tags = available_metrics(finding.data)
    if tags is None:
        return []
    return [
        c.metric for c in finding.checks if c.metric.startswith("test/") and c.metric not in tags
    ]


# ---------------------------------------------------------------------------------------------
# verdicts


@dataclass
class CheckResult:
    metric: str
    mode: str
    baseline: str  # the report's name of the baseline variant
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per variant, baseline first


def _variant_key(run, sweep_dir: Path) -> str:
    return run.path.relative_to(sweep_dir).parts[0]


def _fnum(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _report_names(directory: Path) -> dict[str, str]:
    """Variant key (the sub-directory its runs trained in) -> the report's name of it."""
    from trainer import report as rp

    plain = rp.compare_runs(directory, read_curves=False)
    names: dict[str, str] = {}
    for c in plain.comparisons:
        for row in c.rows:
            for run in row.runs:
                names[_variant_key(run, directory)] = row.variant
    for run in plain.untasked:
        names.setdefault(_variant_key(run, directory), run.variant)
    return names


RUN_RECORDS = ("status.json", "nonfinite.json", ".hydra")  # what the report reads of a run


def family_dir(sweep_dir: Path, keys: list[str], index: int) -> Path:
    """A directory holding only the records of the runs of ``keys`` (no weights, no events): the
    report's Holm correction then counts exactly the comparisons the check makes."""
    target = sweep_dir.parent / f"_{sweep_dir.name}_check{index}"
    if target.exists():
        shutil.rmtree(target)
    for key in keys:
        for status in sorted((sweep_dir / key).rglob("status.json")):
            run_dir = status.parent
            copy = target / run_dir.relative_to(sweep_dir)
            copy.mkdir(parents=True)
            for name in RUN_RECORDS:
                source = run_dir / name
                if source.is_dir():
                    shutil.copytree(source, copy / name)
                elif source.exists():
                    shutil.copy2(source, copy / name)
    return target


def evaluate(finding: Finding, sweep_dir: Path) -> list["CheckResult"]:
    """Each check's verdicts from ``trainer.report``, over its own family (its baseline and the
    variants it expects something of); the full report (every variant against the finding's
    baseline, by the first check's metric) with its tables and pictures goes into ``sweep_dir``."""
    from trainer import report as rp

    names = _report_names(sweep_dir)
    if finding.baseline not in names:
        raise RuntimeError(f"{finding.name}: no run of the baseline {finding.baseline}")
    first = finding.checks[0]
    try:
        rp.write_report(sweep_dir, first.metric, first.mode, names[finding.baseline])
    except ValueError as error:  # no run recorded the metric
        print(f"[{finding.name}] report: {error}")
    results = []
    for i, check in enumerate(finding.checks):
        base = check.baseline or finding.baseline
        keys = [base, *check.expect]
        directory = sweep_dir
        if set(keys) != set(finding.variants):
            directory = family_dir(sweep_dir, keys, i)
        family_names = _report_names(directory)
        result = CheckResult(check.metric, check.mode, family_names.get(base, base))
        try:
            report = rp.compare_runs(
                directory, check.metric, check.mode, family_names.get(base), read_curves=False
            )
        except (ValueError, RuntimeError) as error:  # no run recorded the metric
            result.rows = [
                {
                    "key": k,
                    "variant": family_names.get(k, k),
                    "verdict": "blocked",
                    "error": str(error),
                }
                for k in keys
            ]
            results.append(result)
            continue
        comparison = next(c for c in report.comparisons if c.metric == check.metric)
        by_name = {row.variant: row for row in comparison.rows}
        for key in keys:
            row = by_name.get(family_names.get(key, ""))
            if row is None:
                result.rows.append({"key": key, "variant": key, "verdict": "n/a", "n": 0})
                continue
            paired = row.vs_baseline
            result.rows.append(
                {
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
            )
        results.append(result)
        if directory != sweep_dir:
            shutil.rmtree(directory)
    return results


def verdict_pairs(finding: Finding, results: list[CheckResult]) -> list[tuple[str, str]]:
    pairs = []
    for check, result in zip(finding.checks, results, strict=True):
        observed = {r["key"]: r["verdict"] for r in result.rows}
        pairs += [(exp, observed.get(key, "n/a")) for key, exp in check.expect.items()]
    return pairs


# ---------------------------------------------------------------------------------------------
# the setting, as the runs resolved it


def resolved_setting(sweep_dir: Path) -> dict[str, Any]:
    """Budget, data size and optimizer from one baseline run's resolved config."""
    configs = sorted(Path(sweep_dir).rglob(".hydra/config.yaml"))
    if not configs:
        return {}
    cfg = OmegaConf.load(configs[0])
    data = OmegaConf.to_container(cfg.data, resolve=False)
    optimizer = OmegaConf.to_container(cfg.optimizer, resolve=False)
    trainer = cfg.trainer
    return {
        "data": {k: v for k, v in data.items() if not str(k).startswith("_")},
        "optimizer": optimizer.get("_target_", "").rsplit(".", 1)[-1],
        "lr": optimizer.get("lr"),
        "weight_decay": optimizer.get("weight_decay"),
        "scheduler": OmegaConf.select(cfg, "scheduler._target_", default="none").rsplit(".", 1)[-1],
        "max_epochs": trainer.max_epochs,
        "limit_train_batches": trainer.limit_train_batches,
        "test_ckpt": cfg.get("test_ckpt"),
        "logit_scale": cfg.get("logit_scale"),
        "model": OmegaConf.select(cfg, "model._target_", default="").rsplit(".", 1)[-1],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
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


# ---------------------------------------------------------------------------------------------
# writing results/


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000 or (value != 0 and abs(value) < 10 ** -(digits - 1)):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}f}"


def _interval(mean, low, high) -> str:
    if mean is None:
        return "n/a"
    if low is None:
        return f"{_fmt(mean)} [n/a]"
    return f"{_fmt(mean)} [{_fmt(low)}, {_fmt(high)}]"


def write_finding(
    finding: Finding,
    sweep_dir: Path,
    out_dir: Path,
    wall_s: float,
    seeds: list[int],
    quick: bool,
    env: dict[str, Any],
) -> dict[str, Any]:
    """``out_dir/<name>/``: the report's tables and pictures (copied), verdicts.csv and
    finding.json, which ``write_index`` reads."""
    target = Path(out_dir) / finding.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    blocked = blocked_metrics(finding)
    if blocked:
        results = [
            CheckResult(
                c.metric,
                c.mode,
                finding.baseline,
                [{"key": k, "verdict": "blocked"} for k in c.expect],
            )
            for c in finding.checks
        ]
        pictures: list[str] = []
    else:
        results = evaluate(finding, sweep_dir)
        for name in COPIED:
            if (sweep_dir / name).exists():
                shutil.copy2(sweep_dir / name, target / name)
        pictures = sorted(p.name for p in sweep_dir.glob("*.png"))
        for name in pictures:
            shutil.copy2(sweep_dir / name, target / name)
    pairs = verdict_pairs(finding, results)
    with open(target / "verdicts.csv", "w", newline="") as f:
        head = ["metric", "mode", "variant", "n", "mean", "ci_low", "ci_high", "diff"]
        head += ["diff_ci_low", "diff_ci_high", "p_holm", "verdict", "expected", "met"]
        writer = csv.DictWriter(f, head, restval="", extrasaction="ignore")
        writer.writeheader()
        for result in results:
            for row in result.rows:
                hit = met(row["expected"], row["verdict"]) if row.get("expected") else ""
                writer.writerow({"metric": result.metric, "mode": result.mode, **row, "met": hit})
    record = {
        "name": finding.name,
        "claim": finding.claim,
        "source": finding.source,
        "setting_note": finding.setting,
        "note": finding.note,
        "data": finding.data,
        "model": finding.model,
        "overrides": finding.overrides,
        "variants": finding.variants,
        "baseline": finding.baseline,
        "seeds": seeds,
        "quick": quick,
        "blocked": blocked,
        "resolved": {} if blocked else resolved_setting(sweep_dir / finding.baseline),
        "checks": [
            {"metric": r.metric, "mode": r.mode, "baseline": r.baseline, "rows": r.rows}
            for r in results
        ],
        "outcome": outcome(pairs),
        "pictures": pictures,
        "wall_s": round(wall_s, 1),
        "env": env,
    }
    (target / "finding.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


def _finding_section(record: dict[str, Any]) -> list[str]:
    name = record["name"]
    lines = [f"## {name}", ""]
    lines += [f"**Claim.** {record['claim']}", "", f"**Source.** {record['source']}", ""]
    r = record.get("resolved") or {}
    variants = "; ".join(f"`{k}`: `{' '.join(v)}`" for k, v in record["variants"].items())
    data_opts = ", ".join(
        f"{k}={v}"
        for k, v in (r.get("data") or {}).items()
        if k not in ("data_dir", "download", "num_workers", "eval_batch_size")
    )
    lines += [
        "**Our setting.**",
        "",
        f"- data `{record['data']}` ({data_opts}), model `{record['model']}` "
        f"({r.get('model', '')})",
        f"- shared overrides: `{' '.join(record['overrides']) or 'none'}`",
        f"- variants: {variants}; baseline `{record['baseline']}`",
        f"- budget: {r.get('max_epochs')} epochs (limit_train_batches "
        f"{r.get('limit_train_batches')}), tested checkpoint: {r.get('test_ckpt')} on validation",
        f"- learning rate: fixed at {r.get('lr')} for every variant ({r.get('optimizer')}, weight "
        f"decay {r.get('weight_decay')}, {r.get('scheduler')} schedule); not tuned per loss",
        f"- seeds: {', '.join(str(s) for s in record['seeds'])}"
        + (" (--quick: 1 epoch, 4 batches: a smoke test, not a result)" if record["quick"] else ""),
        f"- wall time: {record['wall_s']:.0f} s on {record['env']['device']}, commit "
        f"`{record['env']['commit']}`{' (uncommitted changes)' if record['env']['dirty'] else ''}"
        f", torch {record['env']['torch']}",
    ]
    if repro := record.get("repeat_check"):
        lines.append(
            f"- reproducibility: run twice on this commit and CPU, {repro['values']} metric values "
            f"of {repro['runs']} runs compared; largest relative difference "
            f"{repro['max_rel_diff']:.2e} ({'within' if repro['ok'] else 'NOT within'} "
            f"{repro['tolerance']:g})"
        )
    if record.get("setting_note"):
        lines.append(f"- why this setting (hand-written): {record['setting_note']}")
    lines.append("")
    if record["blocked"]:
        lines += [
            f"**Blocked:** the task does not log {', '.join(record['blocked'])} yet; not run.",
            "",
        ]
    for check in record["checks"]:
        lines += [
            f"**{check['metric']}** ({'higher' if check['mode'] == 'max' else 'lower'} is "
            f"better; verdicts: paired over seeds vs `{check['baseline']}`, Holm-corrected, "
            "alpha 0.05)",
            "",
            "| variant | n | mean [95 % CI] | diff vs baseline [95 % CI] | p (Holm) | verdict "
            "| expected |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in check["rows"]:
            if "mean" not in row:
                lines.append(f"| {row.get('variant', row['key'])} | | | | | {row['verdict']} | |")
                continue
            diff = (
                _interval(row["diff"], row["diff_ci_low"], row["diff_ci_high"])
                if row["diff"] is not None
                else ""
            )
            p = "" if row["p_holm"] is None else f"{row['p_holm']:.3g}"
            label = row["variant"]
            if row["key"] != label:  # the spec's name of the variant beside the report's
                label = f"{label} (`{row['key']}`)"
            lines.append(
                f"| {label} | {row['n']} | "
                f"{_interval(row['mean'], row['ci_low'], row['ci_high'])} | {diff} | {p} | "
                f"{row['verdict']} | {row['expected']} |"
            )
        lines.append("")
    pictures = record["pictures"]
    picture = next((p for p in ("paired.png", "final.png") if p in pictures), None)
    if picture:
        lines += [f"![{name}: {picture}]({name}/{picture})", ""]
    lines += [f"**Outcome: {record['outcome']}** (computed from the verdicts above).", ""]
    if record.get("note"):
        lines += [f"*Note (hand-written, not computed):* {record['note']}", ""]
    lines += [
        f"Files: [{name}/summary.md]({name}/summary.md), [summary.csv]({name}/summary.csv), "
        f"[runs.csv]({name}/runs.csv), [verdicts.csv]({name}/verdicts.csv).",
        "",
    ]
    return lines


def write_index(out_dir: Path, specs: dict[str, Finding]) -> Path:
    """``out_dir/README.md`` from every ``*/finding.json`` there (findings run earlier stay)."""
    out_dir = Path(out_dir)
    records = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*/finding.json"))]
    order = list(specs)
    records.sort(key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))
    lines = [
        "# Findings: what the literature claims, reproduced (or not) in our settings",
        "",
        "Generated by `python scripts/findings.py` from the specs in `conf/findings/` (claim, "
        "source, runs, metrics, baseline and expected directions are written by hand there; "
        "every number, verdict and outcome here is computed). Do not edit by hand: rerun the "
        "script.",
        "",
        "**How verdicts and outcomes are computed.** Each variant trains on the same seeds as the "
        "baseline; `trainer.report` pairs the runs by seed, tests the differences (paired t-test), "
        "corrects for the variants compared (Holm) and says `better` / `worse` (p < 0.05, by the "
        "sign of the mean difference) or `tie`; `n/a` when fewer than two seeds pair up. A "
        "finding is `reproduced` when every verdict it names is the expected one, `not "
        "reproduced` when none is, `mixed` in between, `inconclusive` when a verdict is `n/a`, "
        "`blocked` when a metric is not logged. With 3 seeds a paired t-test has 2 degrees of "
        "freedom: only consistent effects reach p < 0.05, so a `tie` often means "
        "'not shown at this budget', not 'equal'.",
        "",
        "**Determinism.** Every job runs on the CPU with `trainer.accelerator=cpu "
        "trainer.deterministic=true` (Lightning then calls "
        "`torch.use_deterministic_algorithms(True)`), seeded (`seed=`, model init and batch "
        "order; the data have their own fixed seed) and with one thread per math library "
        "(`OMP_NUM_THREADS=1 MKL_NUM_THREADS=1` in the training subprocess, so torch's intra-op "
        "pool has one thread and reductions run in one order). Rerunning on the same commit and "
        "CPU should give the same numbers; `scripts/findings.py --repeat-check NAME` runs a "
        "finding a second time and records the largest relative difference of its runs' "
        "metrics (below, per finding where it was checked).",
        "",
        "| finding | outcome | seeds | wall time | commit | torch | device |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        env = r["env"]
        lines.append(
            f"| [{r['name']}](#{r['name']}) | {r['outcome']} | {len(r['seeds'])} | "
            f"{r['wall_s']:.0f} s | `{env['commit']}`{'+' if env['dirty'] else ''} | "
            f"{env['torch']} | {env['device']} |"
        )
    lines += [
        "",
        "`+` after a commit: the working tree had uncommitted changes when the finding ran.",
        "",
    ]
    for r in records:
        lines += _finding_section(r)
    done = {r["name"] for r in records}
    if missing := [name for name in specs if name not in done]:
        lines += [
            "## Specified, not run here",
            "",
            "These findings have a spec in `conf/findings/` but no results in this directory yet "
            "(`python scripts/findings.py --only NAME` runs one):",
            "",
        ]
        for name in missing:
            spec = specs[name]
            jobs = len(spec.variants) * len(spec.seeds)
            lines.append(
                f"- `{name}`: {spec.claim} ({spec.source}) {len(spec.variants)} variants x "
                f"{len(spec.seeds)} seeds = {jobs} jobs."
            )
        lines.append("")
    path = out_dir / "README.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def run_finding(
    finding: Finding,
    out_dir: Path,
    work_dir: Path,
    seeds: list[int] | None = None,
    quick: bool = False,
    log=print,
    resume: bool = False,
) -> dict[str, Any]:
    """Train (unless a metric is blocked), compare, write ``out_dir/<name>/``; ``resume`` keeps
    the variants already trained in ``work_dir/<name>``."""
    seeds = seeds if seeds is not None else finding.seeds
    sweep_dir = Path(work_dir) / finding.name
    if sweep_dir.exists() and not resume:
        shutil.rmtree(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    for stale in sweep_dir.iterdir():  # a variant the spec no longer has
        if stale.is_dir() and stale.name not in finding.variants:
            shutil.rmtree(stale)
    for stale in sweep_dir.glob("*.png"):
        stale.unlink()
    env = environment()
    wall = 0.0
    if blocked := blocked_metrics(finding):
        log(f"[{finding.name}] blocked: the task logs no {', '.join(blocked)}; not run")
    else:
        wall = run_jobs(finding, sweep_dir, seeds, quick, log, resume)
    return write_finding(finding, sweep_dir, out_dir, wall, seeds, quick, env)


REPEAT_TOLERANCE = 1e-3
NONDETERMINISTIC = ("perf/",)  # throughput: wall-clock, not a result


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
    if "repeat_check" in previous:
        record["repeat_check"] = previous["repeat_check"]
        previous_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record
