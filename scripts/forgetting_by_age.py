"""Forgetting by age with the earliest experiences left out: is an arm's gain the first
experience's alone? `forgetless compare` prints the table by age over every experience; this
prints it with experiences before `--first` left out of every age, each group minus the first
paired by seed (the same statistics).

    .venv/bin/python scripts/forgetting_by_age.py --first 1 REF_RUN_DIR... ARM_RUN_DIR...

Runs are read as `forgetless compare` reads them and grouped by config (the reference group is
the first one named); unfinished runs are left out. Example, docs/studies.md: tensor-unit KIF
against seqft without step 0.
"""

from __future__ import annotations

import argparse
import sys

from forgetless.core.errors import ForgetlessError
from forgetless.report import by_experience
from forgetless.report.compare import group_runs, load_runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first", type=int, default=1, help="leave experiences before this out")
    ap.add_argument("--split", choices=("train", "test"), default="train")
    ap.add_argument("--relative", action="store_true",
                    help="each drop as a share of what was learned (arms that learn less)")
    ap.add_argument("runs", nargs="+", help="run directories: the reference group first")
    args = ap.parse_args(argv)
    if args.first < 0:
        ap.error(f"--first must be 0 or more, got {args.first}")
    try:
        runs = group_runs(load_runs(args.runs))
    except ForgetlessError as e:  # a missing or unreadable run: one line, exit 2
        print(f"forgetting_by_age.py: {e}", file=sys.stderr)
        return 2
    table = by_experience.forgetting_by_age(runs, args.split, args.first, args.relative)
    if table is None:
        print("forgetting_by_age.py: needs two groups of finished runs with the same number of "
              f"experiences, at least {args.first + 3}", file=sys.stderr)
        return 2
    unit = "in % of what was learned" if args.relative else "in %"
    print(f"experiences {args.first} and later, {args.split} split, {unit}")
    print(" | ".join(by_experience.header(table)))
    for row in by_experience.rows(table):
        print(" | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
