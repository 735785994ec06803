"""Run the findings (``conf/findings/*.yaml``): does each claim from the literature hold here?

    .venv/bin/python scripts/findings.py                          # every finding -> results/
    .venv/bin/python scripts/findings.py --only regression_outliers
    .venv/bin/python scripts/findings.py --only regression_outliers --repeat-check
    .venv/bin/python scripts/findings.py --quick --only regression_outliers --out /tmp/r
    .venv/bin/python scripts/findings.py --only numerical_stability --report-only
    .venv/bin/python scripts/findings.py --only seg_imbalance --relabel
    .venv/bin/python scripts/findings.py --list

Each finding's suite trains with ``train.py -m suite=<its suite>`` (one subprocess, ``--jobs``
jobs at once through the joblib launcher, one thread each, CPU, ``trainer.deterministic=true``)
into ``--work/<finding>/``; the verdicts come from
``trainer.analysis``; ``--out/<finding>/`` gets summary.md, summary.csv, runs.csv, verdicts.csv,
finding.json and the report's pictures (no checkpoints, no event files), and ``--out/README.md``
is rebuilt from every finding in ``--out``. ``--repeat-check`` trains the finding a second time and
records how far the two runs' metrics differ (relative; 1e-3 is the tolerance).
``--report-only`` rebuilds a finding's results from its runs in ``--work`` without training
(after editing a spec's hand-written note).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.analysis.findings.evaluation import repeat_difference
from trainer.analysis.findings.runner import rebuild_finding, relabel_finding, run_finding
from trainer.analysis.findings.spec import ROOT, load_specs
from trainer.analysis.findings.writing import write_index


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", metavar="NAME", help="this finding (repeatable)")
    parser.add_argument("--seeds", type=int, help="the first N seeds (default: the spec's)")
    parser.add_argument("--out", type=Path, default=ROOT / "results", help="default results/")
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "outputs" / "findings",
        help="where the runs train (checkpoints, event files; default outputs/findings/)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke test: 1 seed, the debug=quick budget"
    )
    parser.add_argument(
        "--repeat-check",
        action="store_true",
        help="train each finding twice and record the largest relative difference of the metrics",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="no training: rebuild --out/NAME from the runs in --work (after editing a note)",
    )
    parser.add_argument(
        "--relabel",
        action="store_true",
        help="no training, no runs: judge --out/NAME/finding.json again with the spec's checks "
        "from the per-seed values it kept (after editing expected effects)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="jobs at once, one thread each (joblib launcher; default: the core count)",
    )
    parser.add_argument("--list", action="store_true", help="list the findings and exit")
    args = parser.parse_args()

    specs = load_specs()
    if args.list:
        for name, spec in specs.items():
            jobs = len(spec.variants) * len(spec.seeds)
            print(f"{name}: {len(spec.variants)} variants x {len(spec.seeds)} seeds = {jobs} jobs")
        return
    names = args.only or list(specs)
    if unknown := [n for n in names if n not in specs]:
        sys.exit(f"findings.py: unknown finding {unknown}; choose from {list(specs)}")
    for name in names:
        spec = specs[name]
        seeds = spec.seeds
        if args.quick:
            seeds = seeds[:1]
        if args.seeds is not None:
            seeds = (seeds + [s for s in range(args.seeds + len(seeds)) if s not in seeds])[
                : args.seeds
            ]
        start = time.monotonic()
        if args.relabel:
            record = relabel_finding(spec, args.out)
            write_index(args.out, specs)
            print(f"[{name}] {record['outcome']} (relabelled, no runs) -> {args.out / name}")
            continue
        if args.report_only:
            record = rebuild_finding(spec, args.out, args.work)
            write_index(args.out, specs)
            print(f"[{name}] {record['outcome']} (rebuilt, no training) -> {args.out / name}")
            continue
        record = run_finding(spec, args.out, args.work, seeds, args.quick, args.jobs)
        if args.repeat_check and not record["blocked"]:
            first = args.out / name / "runs.csv"
            saved = first.read_bytes()
            repeat_out = args.work / "_repeat_results"
            again = run_finding(
                spec, repeat_out, args.work / "_repeat", seeds, args.quick, args.jobs
            )
            check = repeat_difference(first, repeat_out / name / "runs.csv")
            check["second_wall_s"] = again["wall_s"]
            record["repeat_check"] = check
            (args.out / name / "runs.csv").write_bytes(saved)
            (args.out / name / "finding.json").write_text(
                json.dumps(record, indent=2, default=str) + "\n"
            )
            print(f"[{name}] repeat check: {check}")
        write_index(args.out, specs)
        print(
            f"[{name}] {record['outcome']} in {time.monotonic() - start:.0f} s -> {args.out / name}"
        )
    print(f"README: {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
