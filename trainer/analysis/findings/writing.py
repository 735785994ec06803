"""A finding's results in ``results/``: its directory (the report's tables and pictures,
``verdicts.csv``, ``finding.json``) and the index ``README.md`` over every finding there."""

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from trainer.analysis.findings.evaluation import (
    CheckResult,
    evaluate,
    met,
    outcome,
    run_keys,
    verdict_pairs,
)
from trainer.analysis.findings.spec import Finding, blocked_metrics

COPIED = ("summary.md", "summary.csv", "runs.csv")  # and the report's *.png
VERDICT_COLUMNS = ["metric", "mode", "variant", "n", "mean", "ci_low", "ci_high", "diff"]
VERDICT_COLUMNS += ["diff_ci_low", "diff_ci_high", "p_holm", "verdict", "expected", "met"]


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


def resolved_setting(finding: Finding, sweep_dir: Path) -> dict[str, Any]:
    """Budget, data size and optimizer from the resolved config of the baseline's first run."""
    keys = run_keys(finding, sweep_dir)
    runs = sorted(run for run, key in keys.items() if key == finding.baseline)
    if not runs:
        return {}
    cfg = OmegaConf.load(sweep_dir / runs[0] / ".hydra" / "config.yaml")
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


def _copy_report(sweep_dir: Path, target: Path) -> list[str]:
    """The report's tables and pictures into ``target``; the pictures' names."""
    for name in COPIED:
        if (sweep_dir / name).exists():
            shutil.copy2(sweep_dir / name, target / name)
    pictures = sorted(p.name for p in sweep_dir.glob("*.png"))
    for name in pictures:
        shutil.copy2(sweep_dir / name, target / name)
    return pictures


def _write_verdicts(path: Path, results: list[CheckResult]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, VERDICT_COLUMNS, restval="", extrasaction="ignore")
        writer.writeheader()
        for result in results:
            for row in result.rows:
                hit = met(row["expected"], row["verdict"]) if row.get("expected") else ""
                writer.writerow({"metric": result.metric, "mode": result.mode, **row, "met": hit})


def _blocked_rows(expect: dict[str, str]) -> list[dict[str, Any]]:
    return [{"key": key, "verdict": "blocked"} for key in expect]


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
    pictures: list[str] = []
    if blocked := blocked_metrics(finding):
        results = [
            CheckResult(c.metric, c.mode, finding.baseline, _blocked_rows(c.expect))
            for c in finding.checks
        ]
    else:
        results = evaluate(finding, sweep_dir)
        pictures = _copy_report(sweep_dir, target)
    _write_verdicts(target / "verdicts.csv", results)
    record = {
        "name": finding.name,
        "claim": finding.claim,
        "source": finding.source,
        "setting_note": finding.setting,
        "note": finding.note,
        "suite": finding.suite,
        "data": finding.data,
        "model": finding.model,
        "overrides": finding.overrides,
        "variants": finding.variants,
        "baseline": finding.baseline,
        "seeds": seeds,
        "quick": quick,
        "blocked": blocked,
        "resolved": {} if blocked else resolved_setting(finding, sweep_dir),
        "checks": [
            {"metric": r.metric, "mode": r.mode, "baseline": r.baseline, "rows": r.rows}
            for r in results
        ],
        "outcome": outcome(verdict_pairs(finding, results)),
        "pictures": pictures,
        "wall_s": round(wall_s, 1),
        "env": env,
    }
    (target / "finding.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


def _runs_line(record: dict[str, Any]) -> str:
    """Where the runs come from: the finding's suite and what it adds."""
    if "suite" not in record:  # a finding.json written before findings named suites
        return f"- shared overrides: `{' '.join(record['overrides']) or 'none'}`"
    added = f", with `{' '.join(record['overrides'])}`" if record["overrides"] else ""
    return f"- runs: suite `{record['suite']}` (conf/suite/{record['suite']}.yaml){added}"


def _setting_lines(record: dict[str, Any]) -> list[str]:
    r = record.get("resolved") or {}
    env = record["env"]
    quick = " (--quick: debug=quick's budget: a smoke test)" if record["quick"] else ""
    variants = "; ".join(f"`{k}`: `{' '.join(v)}`" for k, v in record["variants"].items())
    data_opts = ", ".join(
        f"{k}={v}"
        for k, v in (r.get("data") or {}).items()
        if k not in ("data_dir", "download", "num_workers", "eval_batch_size")
    )
    lines = [
        "**Our setting.**",
        "",
        f"- data `{record['data']}` ({data_opts}), model `{record['model']}` "
        f"({r.get('model', '')})",
        _runs_line(record),
        f"- variants: {variants}; baseline `{record['baseline']}`",
        f"- budget: {r.get('max_epochs')} epochs (limit_train_batches "
        f"{r.get('limit_train_batches')}), tested checkpoint: {r.get('test_ckpt')} on validation",
        f"- learning rate: fixed at {r.get('lr')} for every variant ({r.get('optimizer')}, weight "
        f"decay {r.get('weight_decay')}, {r.get('scheduler')} schedule); not tuned per loss",
        f"- seeds: {', '.join(str(s) for s in record['seeds'])}{quick}",
        f"- wall time: {record['wall_s']:.0f} s on {env['device']}, commit "
        f"`{env['commit']}`{' (uncommitted changes)' if env['dirty'] else ''}"
        f", torch {env['torch']}",
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
    return [*lines, ""]


def _check_lines(check: dict[str, Any]) -> list[str]:
    lines = [
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
    return [*lines, ""]


def _finding_section(record: dict[str, Any]) -> list[str]:
    name = record["name"]
    lines = [f"## {name}", ""]
    lines += [f"**Claim.** {record['claim']}", "", f"**Source.** {record['source']}", ""]
    lines += _setting_lines(record)
    if record["blocked"]:
        lines += [
            f"**Blocked:** the task does not log {', '.join(record['blocked'])} yet; not run.",
            "",
        ]
    for check in record["checks"]:
        lines += _check_lines(check)
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


INDEX_HEAD = [
    "# Findings: what the literature claims, reproduced (or not) in our settings",
    "",
    "Generated by `python scripts/findings.py` from the specs in `conf/findings/` (claim, "
    "source, runs, metrics, baseline and expected directions are written by hand there; "
    "every number, verdict and outcome here is computed). Do not edit by hand: rerun the "
    "script.",
    "",
    "**How verdicts and outcomes are computed.** Each variant trains on the same seeds as the "
    "baseline; `trainer.analysis` pairs the runs by seed, tests the differences (paired t-test), "
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
]


def _index_table(records: list[dict[str, Any]]) -> list[str]:
    lines = [
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
    return [
        *lines,
        "",
        "`+` after a commit: the working tree had uncommitted changes when the finding ran.",
        "",
    ]


def _not_run_lines(specs: dict[str, Finding], missing: list[str]) -> list[str]:
    lines = [
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
    return [*lines, ""]


def write_index(out_dir: Path, specs: dict[str, Finding]) -> Path:
    """``out_dir/README.md`` from every ``*/finding.json`` there (findings run earlier stay)."""
    out_dir = Path(out_dir)
    records = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*/finding.json"))]
    order = list(specs)
    records.sort(key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))
    lines = [*INDEX_HEAD, *_index_table(records)]
    for r in records:
        lines += _finding_section(r)
    done = {r["name"] for r in records}
    if missing := [name for name in specs if name not in done]:
        lines += _not_run_lines(specs, missing)
    path = out_dir / "README.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
