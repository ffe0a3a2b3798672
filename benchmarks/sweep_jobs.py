"""Throughput of `forgetless sweep --jobs N` against one run at a time, on the same four small
arms, in one run of this script.

On a CPU, one at a time means one process with every core's thread; N jobs means N processes
splitting the cores (`--threads`: cores // N each). On a GPU, the N processes share it. Each
sweep goes to its own directory, so nothing is skipped; the script checks that every sweep
recorded the same accuracy matrices (exactly, where thread counts match; otherwise it says how
many runs differ, since a different thread count may reorder float sums).

    .venv/bin/python benchmarks/sweep_jobs.py [--model tiny-llama-5m] [--jobs 2 4]
    .venv/bin/python benchmarks/sweep_jobs.py --study STUDY.yaml --jobs 2   # any study's arms
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from forgetless.studies.launch import cpu_cores
from forgetless.studies.sweep import sweep

STUDY = """name: jobs-benchmark
set: {{model.name: {model}, train.epochs: {epochs}, probe.samples: 0, probe.qa: false}}
variants:
  - {{method: seqft}}
  - {{method: replay, replay.buffer_size: 16}}
  - {{method: seqft, train.lr: 3.0e-4}}
  - {{method: replay, replay.buffer_size: 16, train.lr: 3.0e-4}}
seeds: [0]
"""


def matrices(out: Path) -> dict[str, dict]:
    return {run.name: json.loads((run / "results.json").read_text())["matrices"]
            for run in sorted((out / "runs").iterdir())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny-llama-5m")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--jobs", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--study", type=Path, help="a study YAML whose arms to run instead of the "
                    "four small ones (--model and --epochs then do not apply)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sweep-jobs-"))
    study = args.study.resolve() if args.study else root / "study.yaml"
    if not args.study:
        study.write_text(STUDY.format(model=args.model, epochs=args.epochs))
    cores = cpu_cores()
    gpus = torch.cuda.device_count()
    where = f"{gpus} GPU(s) ({torch.cuda.get_device_name(0)})" if gpus else f"CPU, {cores} cores"
    print(f"the arms of {study}; {where}" if args.study else
          f"4 arms of {args.model}, {args.epochs} epochs per experience; {where}")

    t0 = time.perf_counter()
    sweep(study, root / "jobs1", quiet=True, threads=cores)
    serial_s = time.perf_counter() - t0
    reference = matrices(root / "jobs1")
    print("| jobs | threads per run | wall s | throughput vs one at a time | same matrices |")
    print("|---|---|---|---|---|")
    print(f"| 1 | {cores} | {serial_s:.1f} | 1.00× | — |")
    for n in args.jobs:
        threads = max(1, cores // n)
        t0 = time.perf_counter()
        sweep(study, root / f"jobs{n}", quiet=True, jobs=n, threads=threads)
        wall = time.perf_counter() - t0
        got = matrices(root / f"jobs{n}")
        same = sum(got[k] == reference[k] for k in reference)
        print(f"| {n} | {threads} | {wall:.1f} | {serial_s / wall:.2f}× | {same}/{len(reference)} |")
    print(f"(study directories under {root})")


if __name__ == "__main__":
    main()
