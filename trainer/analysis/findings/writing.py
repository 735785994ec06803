"""A finding's results in ``results/``: its directory (the report's tables and pictures,
``verdicts.csv``, ``finding.json``) and the index ``README.md`` over every finding there."""

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from trainer.analysis import evidence
from trainer.analysis.findings.evaluation import CheckResult, evaluate, run_keys
from trainer.analysis.findings.spec import Finding, blocked_metrics

COPIED = ("summary.md", "summary.csv", "runs.csv")  # and the report's *.png
VERDICT_COLUMNS = ["metric", "mode", "baseline", "variant", "n", "mean", "ci_low", "ci_high"]
VERDICT_COLUMNS += ["per_seed", "diff", "diff_ci_low", "diff_ci_high", "p_holm", "mde"]
VERDICT_COLUMNS += ["verdict", "expected", "label", "label_p", "seeds_needed", "reason", "regime"]


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


def write_verdicts(path: Path, results: list[CheckResult]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, VERDICT_COLUMNS, restval="", extrasaction="ignore")
        writer.writeheader()
        for result in results:
            for row in result.rows:
                cells = {**row, "per_seed": json.dumps(row.get("per_seed", {}))}
                cells["regime"] = "; ".join(row.get("regime", []))
                head = {"metric": result.metric, "mode": result.mode, "baseline": result.baseline}
                writer.writerow(head | cells)


def _blocked_rows(expect: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"key": key, "verdict": "blocked", "label": "blocked", "expected": str(e)}
        for key, e in expect.items()
    ]


def outcome_of(results: list[CheckResult]) -> dict[str, Any]:
    """The finding's outcome from every expectation's label, and what drove it (in words)."""
    expected = [(result, row) for result in results for row in result.rows if row.get("expected")]
    labels = [row["label"] for _, row in expected]
    found = evidence.outcome(labels)
    index = evidence.driver(labels, found)
    if index is None:
        return {"outcome": found, "driver": "every check supported"}
    result, row = expected[index]
    driver = (
        f"{result.metric} vs `{result.baseline}`: `{row['key']}` {row['expected']}: "
        f"{row['label']} ({row.get('reason', '')})"
    )
    return {"outcome": found, "driver": driver}


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
    regime: list[dict[str, Any]] = []
    if blocked := blocked_metrics(finding):
        results = [
            CheckResult(c.metric, c.mode, finding.baseline, _blocked_rows(c.expect))
            for c in finding.checks
        ]
    else:
        results, regime = evaluate(finding, sweep_dir)
        pictures = _copy_report(sweep_dir, target)
    write_verdicts(target / "verdicts.csv", results)
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
        "checks": check_records(results),
        "regime": regime,
        "regime_checked": True,
        **outcome_of(results),
        "pictures": pictures,
        "wall_s": round(wall_s, 1),
        "env": env,
    }
    (target / "finding.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


def check_records(results: list[CheckResult]) -> list[dict[str, Any]]:
    return [
        {"metric": r.metric, "mode": r.mode, "baseline": r.baseline, "rows": r.rows}
        for r in results
    ]


def _runs_line(record: dict[str, Any]) -> str:
    """Where the runs come from: the finding's suite and what it adds."""
    if "suite" not in record:  # a finding.json written before findings named suites
        return f"- shared overrides: `{' '.join(record['overrides']) or 'none'}`"
    added = f", with `{' '.join(record['overrides'])}`" if record["overrides"] else ""
    return f"- runs: suite `{record['suite']}` (conf/suite/{record['suite']}.yaml){added}"


def _jobs(repro: dict[str, Any]) -> str:
    """How many jobs ran at once in each of the two runs, where they differed."""
    jobs = repro.get("jobs")
    return f" (--jobs {jobs[0]}, then --jobs {jobs[1]})" if jobs else ""


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
        f"{r.get('limit_train_batches')}), tested weights: "
        f"{'the best on validation' if r.get('test_ckpt') == 'best' else 'the last epoch'}",
        f"- learning rate: fixed at {r.get('lr')} for every variant ({r.get('optimizer')}, weight "
        f"decay {r.get('weight_decay')}, {r.get('scheduler')} schedule); not tuned per loss",
        f"- seeds: {', '.join(str(s) for s in record['seeds'])}{quick}",
        f"- wall time: {record['wall_s']:.0f} s on {env['device']}, commit "
        f"`{env['commit']}`{' (uncommitted changes)' if env['dirty'] else ''}"
        f", torch {env['torch']}",
    ]
    if repro := record.get("repeat_check"):
        lines.append(
            f"- reproducibility: run twice on this commit and CPU{_jobs(repro)}, "
            f"{repro['values']} metric values "
            f"of {repro['runs']} runs compared; largest relative difference "
            f"{repro['max_rel_diff']:.2e} ({'within' if repro['ok'] else 'NOT within'} "
            f"{repro['tolerance']:g})"
        )
    if record.get("setting_note"):
        lines.append(f"- why this setting (hand-written): {record['setting_note']}")
    return [*lines, ""]


def _per_seed(row: dict[str, Any]) -> str:
    return ", ".join(_fmt(v, 3) for v in (row.get("per_seed") or {}).values())


def _check_lines(check: dict[str, Any]) -> list[str]:
    lines = [
        f"**{check['metric']}** ({'higher' if check['mode'] == 'max' else 'lower'} is "
        f"better; each variant paired over seeds with `{check['baseline']}`, one Holm family "
        "per table)",
        "",
        "| variant | n | mean [95 % CI] | per seed | Δ vs baseline [adj. CI] | p (Holm) | MDE "
        "| verdict | expected | label |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    reasons = []
    for row in check["rows"]:
        label = row["variant"]
        if row["key"] != label:  # the spec's name of the variant beside the report's
            label = f"{label} (`{row['key']}`)"
        if "mean" not in row:
            lines.append(
                f"| {label} | | | | | | | {row['verdict']} | {row.get('expected', '')} "
                f"| {row.get('label', '')} |"
            )
            continue
        diff = (
            _interval(row["diff"], row["diff_ci_low"], row["diff_ci_high"])
            if row.get("diff") is not None
            else ""
        )
        p = "" if row.get("p_holm") is None else f"{row['p_holm']:.3g}"
        mde = "" if row.get("mde") is None else _fmt(row["mde"])
        lines.append(
            f"| {label} | {row['n']} | "
            f"{_interval(row['mean'], row['ci_low'], row['ci_high'])} | {_per_seed(row)} | "
            f"{diff} | {p} | {mde} | {row['verdict']} | {row.get('expected', '')} | "
            f"{'**' + row['label'] + '**' if row.get('label') else ''} |"
        )
        if row.get("label"):  # a record judged before labels has none: rerun --relabel
            reasons.append(f"- `{row['key']}` {row['expected']}: {row['label']}: {row['reason']}")
        reasons += [f"- `{row['key']}`: {flag}" for flag in row.get("regime", [])]
    return [*lines, "", *reasons, ""]


def _regime_lines(record: dict[str, Any]) -> list[str]:
    if not record.get("regime_checked", False):
        return [
            "*Regime:* not checked: the labels were recomputed from the per-seed values kept "
            "here, and the runs' validation curves are not kept in results/.",
            "",
        ]
    lines = [
        f"- regime precondition: {p['condition']}: {_fmt(p['value'])} vs {_fmt(p['bound'])}: "
        f"{'held' if p['held'] else 'FAILED: labels are out of regime'}"
        for p in record.get("regime", [])
    ]
    return [*lines, ""] if lines else []


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
    lines += _regime_lines(record)
    lines += [
        f"**Outcome: {record['outcome']}**, driven by: {record.get('driver', 'n/a')} (computed "
        "from the labels above).",
        "",
    ]
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
    "**How labels and outcomes are computed.** Each variant trains on the same seeds as the "
    "baseline; `trainer.analysis` pairs the runs by seed and tests the differences (paired "
    "t-test; the exact sign-flip test where they have no spread, so p never reads 0), one "
    "Holm family per table (every variant against that table's baseline, the same p as in the "
    "finding's summary.md for its first table); intervals of a difference are at the level "
    "of its adjusted test (they exclude 0 exactly when the verdict is not `tie`) and stay in "
    "the metric's range. Each check declares the effect it expects and the smallest one that "
    "matters (`better by 0.015`), or a margin (`similar within`, `at least as good`: "
    "equivalence by two one-sided tests, non-inferiority by one), and reads `supported` "
    "(significant in the expected direction, or equivalence / non-inferiority shown), "
    "`contradicted` (significant the other way, or the whole interval short of the smallest "
    "effect that matters, or beyond the margin), `not shown` (the interval holds both 0 and "
    "the effect: it says how many seeds would show the effect at 80 % power from the observed "
    "spread) or `out of regime` (a declared precondition of the claim failed). A finding is "
    "`reproduced` when every check is supported, `contradicted` when any is contradicted, "
    "`partly shown` when some are supported, else `not shown`; the outcome names the check "
    "that drove it. The verdict column (`better`/`worse`/`tie`, MDE beside) is the plain "
    "comparison, which a label reads together with the declared effect.",
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
        "| finding | outcome | driven by | seeds | wall time | commit | torch | device |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        env = r["env"]
        lines.append(
            f"| [{r['name']}](#{r['name']}) | {r['outcome']} | {r.get('driver', '')} | "
            f"{len(r['seeds'])} | "
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


def _effect(row: dict[str, Any]) -> str:
    return f"Δ {_interval(row.get('diff'), row.get('diff_ci_low'), row.get('diff_ci_high'))}"


def _pick_line(record: dict[str, Any]) -> str:
    """One finding's answer: the expectations its evidence supports, with their effects (the
    loss to pick first: the baseline where the variant was expected worse), what it leaves
    open, the regime flags of its variants (the caveats), and the CPU cost of one run."""
    supported, open_, caveats = [], [], {}
    for check in record["checks"]:
        base = next((r["key"] for r in check["rows"] if r.get("verdict") == "baseline"), "")
        base = base or check["baseline"]
        for row in check["rows"]:
            for flag in row.get("regime") or []:
                caveats.setdefault(row["key"], set()).add(flag.split(":")[0])
            if not row.get("label"):
                continue
            pair = (base, row["key"]) if row["expected"].startswith("worse") else (row["key"], base)
            what = f"`{pair[0]}` over `{pair[1]}` on {check['metric']}"
            if row["label"] == "supported":
                # the declared effect beside the observed one: a supported check is significant
                # in its direction, and its mean may still fall short of the declared size
                expected = f"expected `{row['key']}` {row['expected']}"
                supported.append(f"{what} ({expected}; observed {_effect(row)})")
            else:
                open_.append(f"{what} {row['label']}")
    runs = len(record["seeds"]) * len(record["variants"])
    cpu = record["wall_s"] * record.get("jobs", 1) / max(runs, 1)
    line = f"[{record['name']}](#{record['name']}): "
    line += "; ".join(supported) if supported else "nothing supported"
    if open_:
        line += f". Open: {'; '.join(open_)}"
    if caveats:
        flagged = (f"`{key}` {', '.join(sorted(flags))}" for key, flags in caveats.items())
        line += f". Regime flags: {'; '.join(flagged)}"
    line += f". About {cpu:.0f} CPU-s per run"
    if not record.get("regime_checked", False):
        line += "; regime not checked (labels recomputed without the runs)"
    return line + "."


def _what_to_pick(records: list[dict[str, Any]], specs: dict[str, Finding]) -> list[str]:
    """Per task, what the evidence supports (generated from the labels, never typed)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        task = specs[record["name"]].task if record["name"] in specs else "other"
        by_task.setdefault(task, []).append(record)
    lines = [
        "## What to pick",
        "",
        "Per task, the losses whose advantage the evidence below supports (the effect each check "
        "declared, and the observed Δ: the mean paired difference [its Holm-consistent "
        "interval]), what stays open, and what one run costs "
        "on this CPU (one thread). Generated from the labels; a loss not named here was not "
        "shown to help at these budgets, which is not evidence that it does not.",
        "",
    ]
    for task, group in sorted(by_task.items()):
        lines += [f"- **{task}**: " + " ".join(_pick_line(r) for r in group)]
    return [*lines, ""]


def write_index(out_dir: Path, specs: dict[str, Finding]) -> Path:
    """``out_dir/README.md`` from every ``*/finding.json`` there (findings run earlier stay)."""
    out_dir = Path(out_dir)
    records = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*/finding.json"))]
    order = list(specs)
    records.sort(key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))
    lines = [*INDEX_HEAD[:4], *_what_to_pick(records, specs), *INDEX_HEAD[4:]]
    lines += _index_table(records)
    for r in records:
        lines += _finding_section(r)
    done = {r["name"] for r in records}
    if missing := [name for name in specs if name not in done]:
        lines += _not_run_lines(specs, missing)
    path = out_dir / "README.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
