"""The Concept-1K Table 2 of docs/studies.md, rendered from the runs on disk: one row per arm,
each paired by seed with its reference runs (seqft), with where the runs ran, their cost and
memory. It reads results.json files and trains nothing, so a reader can check the table without
re-running a study, and the table cannot drift from its evidence.

    .venv/bin/python scripts/table2.py evidence/table2.yaml

The spec names each row's runs by glob, relative to the spec's folder:

    rows:
      - arm: replay-200
        reference: [concept1k-table2-xeon/runs/method=seqft-seed*]
        runs: ["concept1k-table2-xeon/runs/method=replay,buffer_size=200-seed*"]
        paper: "replay-2000: 77.3 / 22.5 / 47.0"   # optional, printed as it is

(quote globs with commas: YAML splits flow lists on them). A row without `runs` is the reference
itself (its MF alone). Unfinished runs are left out, as `forgetless compare` leaves them out of
its statistics. One seed is an anecdote: its cells have no interval. Cost is the run's training,
scoring and probe seconds, summed over the sessions of a resumed run (runs that shared the CPU or
were paused took longer); peak memory is the process's peak resident set, in GiB.
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import yaml

from forgetless.core.errors import ForgetlessError
from forgetless.core.results import work_seconds
from forgetless.core.stats import describe, difference_text, interval_text
from forgetless.report.compare import group_runs, load_runs, machine_of, paired_comparison

COLUMNS = ["arm", "runs (machine × n)", "n paired", "learned − ref", "MF − ref",
           "MF as a share − ref", "MA − ref", "GA − ref", "MF",
           "run time (train + eval + probe, no flatness)", "peak memory", "paper (MA / GA / MF)"]
DIFFERENCES = ["LA_train", "MF", "MF_relative", "MA", "GA"]
"""Paired with the reference; MF_relative (each drop over what was learned) is the control for an
arm that forgets less because it learned less."""


class SpecError(ForgetlessError):
    """The spec names no runs, or runs that do not form the two groups a row compares."""


def expand(base: Path, patterns: list[str], where: str) -> list[Path]:
    paths = sorted({Path(p) for pattern in patterns for p in glob.glob(str(base / pattern))})
    if patterns and not paths:
        raise SpecError(f"{where}: no run directory matches {patterns}")
    return [p for p in paths if (p / "results.json").exists()]


def machines_text(runs: list[tuple[str, dict]]) -> str:
    """"Xeon AVX512 2t × 3" per machine kind and thread count, in order of first appearance: the
    thread count is part of the machine, since it reorders float sums (docs/reliability.md)."""
    counts: dict[str, int] = {}
    for _, r in runs:
        m = (r.get("run") or {}).get("machine") or {}
        cpu = "Xeon" if "Xeon" in m.get("cpu", "") else ("EPYC" if "EPYC" in m.get("cpu", "")
                                                         else m.get("cpu", "unrecorded"))
        threads = f"{m['threads']}t" if m.get("threads") else ""
        key = " ".join(x for x in (cpu, m.get("cpu_capability", ""), threads) if x)
        counts[key] = counts.get(key, 0) + 1
    return " + ".join(f"{k} × {n}" for k, n in counts.items())


def span(values: list[float], scale: float, unit: str) -> str:
    if not values:
        return "–"
    lo, hi = min(values) * scale, max(values) * scale
    fmt = "{:,.0f}" if unit == "s" else "{:.1f}"
    return (fmt.format(lo) if round(lo, 1) == round(hi, 1) else
            f"{fmt.format(lo)}–{fmt.format(hi)}") + f" {unit}"


def row_cells(base: Path, row: dict) -> list[str]:
    if not isinstance(row, dict) or not isinstance(row.get("arm"), str):
        raise SpecError(f"each row needs an `arm` name, got {row!r}")
    where = f"row {row['arm']!r}"
    reference = expand(base, row.get("reference") or [], where)
    arm_dirs = expand(base, row.get("runs") or [], where)
    if not reference:
        raise SpecError(f"{where}: `reference` names no finished run")
    ref_runs = [r for r in load_runs(reference) if r[1]["complete"]]
    arm_runs = [r for r in load_runs(arm_dirs) if r[1]["complete"]] if arm_dirs else ref_runs
    mf = describe([r["headline"]["MF"] for _, r in arm_runs])
    # the method's cost: flatness (`landscape.record`) is a measurement some runs add
    cost = [work_seconds(r) - (r["timings"].get("landscape_s") or 0) for _, r in arm_runs]
    memory = [r["run"]["peak_memory_mb"] for _, r in arm_runs if r["run"].get("peak_memory_mb")]
    cells = [row["arm"], machines_text(arm_runs)]
    if arm_dirs:
        groups = group_runs(ref_runs + arm_runs)
        if len(groups) != 2:
            raise SpecError(f"{where}: reference and runs form {len(groups)} groups, not 2 (each "
                            f"side must be one config over seeds)")
        diffs, _ = paired_comparison(groups)
        d = diffs[0]
        ref_machine = {r["seed"]: machine_of(r) for _, r in ref_runs}
        across = sum(1 for _, r in arm_runs if ref_machine.get(r["seed"]) not in (None,
                                                                                   machine_of(r)))
        n = max(d[k]["n"] for k in DIFFERENCES)
        cells.append(f"{n}" + (f" ({across} across machines)" if across else ""))
        cells += [difference_text({**d[k], "p": None}, 100, 1) for k in DIFFERENCES]
    else:
        cells += ["–"] * 6
    cells += [interval_text(mf, 100, 1, with_n=False), span(cost, 1, "s"),
              span(memory, 1 / 1024, "GiB"), str(row.get("paper", "–"))]
    return cells


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", help="a YAML file of rows (see the module docstring)")
    args = ap.parse_args(argv)
    spec_path = Path(args.spec)
    try:
        try:
            spec = yaml.safe_load(spec_path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise SpecError(f"{spec_path}: cannot read the spec ({e})") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("rows"), list):
            raise SpecError(f"{spec_path}: expected a mapping with a list under `rows`")
        table = [row_cells(spec_path.parent, row) for row in spec["rows"]]
    except ForgetlessError as e:
        print(f"table2.py: {e}", file=sys.stderr)
        return 2
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for cells in table:
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
