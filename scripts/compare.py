"""Compare the runs of a sweep (or any directory of runs): summary.md, summary.csv, runs.csv and
pictures, with intervals, paired verdicts against a baseline and ranks with ties.

    .venv/bin/python scripts/compare.py outputs/multiruns/2026-11-23_10-00-00_000000
    .venv/bin/python scripts/compare.py DIR --select optimizer.lr   # tune lr per variant on val
    .venv/bin/python scripts/compare.py DIR --metric test/min_recall --mode max --baseline ce
    .venv/bin/python scripts/compare.py DIR --json                  # the verdicts, on stdout

Multiruns write the same report by themselves when they end (a Hydra callback); run this to
rebuild it with other choices, or to compare runs gathered from several sweeps.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.analysis.report import write_report
from trainer.analysis.tables import report_json


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument(
        "--metric", help="rank by this test metric instead of the task's (e.g. test/min_recall)"
    )
    parser.add_argument(
        "--mode",
        choices=("max", "min"),
        help="direction of --metric (needed unless it is the task's ranking metric)",
    )
    parser.add_argument(
        "--baseline",
        help="the variant verdicts compare with (default: the suite's, else ce/bce/mse)",
    )
    parser.add_argument(
        "--select",
        type=lambda text: [key for key in text.split(",") if key],
        help="KEY[,KEY]: overrides tuned per variant on the tested checkpoint's validation metric",
    )
    parser.add_argument("--json", action="store_true", help="print the verdicts as JSON only")
    args = parser.parse_args()
    try:
        report = write_report(args.sweep_dir, args.metric, args.mode, args.baseline, args.select)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(str(error))
    print(json.dumps(report_json(report), indent=2) if args.json else report.summary.read_text())


if __name__ == "__main__":
    main()
