"""How far a run's "about N left" is from the time that was in fact left, replayed on finished
runs kept in evidence/ (their per-experience train and eval seconds): the estimate from the
run's own seconds per training example and per scored example times the work planned for the
experiences to come (what a study's progress line prints when no other seed of the arm has
finished), against the constant pace per experience it printed before 2026-12-04.

    .venv/bin/python benchmarks/time_left.py [evidence/*/runs/*]

For each run and each experience e with at least one to come: estimate / truth − 1, where truth
is the seconds the later experiences took. Printed per arm kind: the median over runs after the
first and the third experience, and the median and worst absolute error over every e. Runs that
recorded flatness after every step (`landscape.record`) form groups of their own: their
evaluations hold a fixed part that the estimate takes apart (`measured_apart`).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from forgetless.core.config import RunConfig
from forgetless.engine.experiment import planned_from_results
from forgetless.report.callbacks import planned_left


def errors(run: Path) -> tuple[str, list[tuple[int, float, float]]] | None:
    results = json.loads((run / "results.json").read_text())
    if not results.get("complete"):
        return None
    rows = results["experiences"]
    cfg = RunConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
    plan = planned_from_results(cfg, results)
    took = [x["train_s"] + (x.get("eval_s") or 0) for x in rows]
    out = []
    for e in range(len(rows) - 1):
        truth = sum(took[e + 1:])
        pace = sum(took[:e + 1]) / (e + 1) * (len(rows) - e - 1)
        estimate = planned_left(plan, results, e)
        if truth > 0 and estimate is not None:
            out.append((e, pace / truth - 1, estimate / truth - 1))
    arm = run.name.rsplit("-seed", 1)[0].split(",")[0].removeprefix("method=")
    return arm + (" (flatness recorded)" if cfg.landscape.record else ""), out


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path("evidence").glob("*/runs/*"))
    by_arm: dict[str, list[list[tuple[int, float, float]]]] = defaultdict(list)
    for run in paths:
        got = errors(run)
        if got:
            by_arm[got[0]].append(got[1])
    runs_used = sum(len(r) for r in by_arm.values() if any(r))
    print(f"{runs_used} finished runs with an estimate, of {len(paths)} run directories\n")
    print("| method | runs | after step 1: pace | planned | after step 3: pace | planned "
          "| every step: pace median / worst | planned median / worst |")
    print("|---|---|---|---|---|---|---|---|")
    for arm, runs in sorted(by_arm.items()):
        at1 = [r[0] for r in runs if r]
        at3 = [r[2] for r in runs if len(r) > 2]
        every = [x for r in runs for x in r]
        if not every:
            continue

        def pct(values):
            return f"{100 * statistics.median(values):+.0f} %" if values else "–"

        def spread(i, every=every):
            a = [abs(x[i]) for x in every]
            return f"{100 * statistics.median(a):.0f} % / {100 * max(a):.0f} %"

        print(f"| {arm} | {len(runs)} | {pct([x[1] for x in at1])} | {pct([x[2] for x in at1])} "
              f"| {pct([x[1] for x in at3])} | {pct([x[2] for x in at3])} "
              f"| {spread(1)} | {spread(2)} |")


if __name__ == "__main__":
    main()
