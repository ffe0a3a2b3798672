"""Keep a study's finished runs in the repository, and bring them back.

    .venv/bin/python scripts/evidence.py save    runs/studies/concept1k-table2 evidence/concept1k-table2
    .venv/bin/python scripts/evidence.py restore evidence/concept1k-table2 runs/studies/concept1k-table2

`save` copies each complete run's config.yaml and results.json (no weights, no predictions),
with the concept names of third-party streams left out (Concept-1K carries no license: its text
is never committed). `forgetless compare evidence/…/runs/*` then reproduces a study's tables
from the repository alone. `restore` copies them into a study's output folder, where
`forgetless sweep` counts them as finished and runs only the rest — so a long study carries on
from another machine. Runs restored that way have no checkpoints or predictions: the recovery
probe cannot be added to them afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from forgetless.core.store import atomic_write_text


def save(out: Path, evidence: Path) -> int:
    runs = sorted(p for p in (out / "runs").glob("*") if (p / "results.json").is_file())
    saved = 0
    for run in runs:
        results = json.loads((run / "results.json").read_text(encoding="utf-8"))
        if not results.get("complete"):
            continue
        for row in results.get("stream", {}).get("experiences", []):
            row.pop("concepts", None)  # the data's own words stay out of the repository
        target = evidence / "runs" / run.name
        target.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target / "config.yaml", (run / "config.yaml").read_text(encoding="utf-8"))
        atomic_write_text(target / "results.json", json.dumps(results, indent=1) + "\n")
        saved += 1
    print(f"saved {saved} complete runs of {len(runs)} to {evidence / 'runs'}")
    return 0


def restore(evidence: Path, out: Path) -> int:
    runs = sorted(p for p in (evidence / "runs").glob("*") if (p / "results.json").is_file())
    restored = 0
    for run in runs:
        target = out / "runs" / run.name
        if (target / "results.json").is_file():
            continue  # a run here already: never overwrite it
        target.mkdir(parents=True, exist_ok=True)
        # results.json last: a run counts as finished only once both are whole
        for name in ("config.yaml", "results.json"):
            atomic_write_text(target / name, (run / name).read_text(encoding="utf-8"))
        restored += 1
    print(f"restored {restored} runs of {len(runs)} into {out / 'runs'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("save", help="a study's complete runs → the repository")
    s.add_argument("out", type=Path, help="the study's output folder (sweep --out)")
    s.add_argument("evidence", type=Path)
    r = sub.add_parser("restore", help="the repository's runs → a study's output folder")
    r.add_argument("evidence", type=Path)
    r.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    source = args.out if args.command == "save" else args.evidence
    if not (source / "runs").is_dir():
        print(f"evidence: {source}: no runs/ folder (expected a study's output folder)",
              file=sys.stderr)
        return 2
    return save(args.out, args.evidence) if args.command == "save" else restore(args.evidence,
                                                                                args.out)


if __name__ == "__main__":
    sys.exit(main())
