"""Compare the runs of a sweep (or any directory of runs): summary.md, summary.csv and plots.

    .venv/bin/python scripts/compare.py outputs/multiruns/2026-11-23_10-00-00_000000

Multiruns write the same report by themselves when they end (a Hydra callback); run this to
rebuild it, or to compare runs gathered from several sweeps.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.report import write_report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep_dir", type=Path)
    summary = write_report(parser.parse_args().sweep_dir)
    print(summary.read_text())


if __name__ == "__main__":
    main()
