"""The methods table: every method on the embedded model and the built-in stream.

Runs each method with the default config (3 experiences × 32 training questions, 5 epochs,
lr 1e-4, seed 0) and prints one Markdown row per method: MA, GA, MF, GF, the probe's held-out
NLL rise and final KL to the base model, QA retention, wall time, and the generation rate of
the methods that sample (self_replay, lamol). Runs are ordinary run directories under
`--out`, so an interrupted table resumes where it stopped.

    .venv/bin/python benchmarks/methods_table.py [--out bench-runs] [--only seqft,replay-16]
"""

from __future__ import annotations

import argparse
import json
import time

import forgetless

METHODS = {
    "seqft": ["method=seqft"],
    "replay-16": ["method=replay", "replay.buffer_size=16"],
    "replay-64": ["method=replay", "replay.buffer_size=64"],
    "self_replay": ["method=self_replay"],
    "lamol": ["method=lamol"],
    "ewc": ["method=ewc"],
    "lwf": ["method=lwf"],
    "kif": ["method=kif"],
    "kif+replay-16": ["method=kif+replay", "replay.buffer_size=16"],
}


def pct(x):
    return "-" if x is None else f"{100 * x:.1f}"


def num(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench-runs")
    ap.add_argument("--only", default=",".join(METHODS))
    ap.add_argument("--set", action="append", default=[], help="extra overrides for every run")
    args = ap.parse_args()
    print("| method | MA ↑ | GA ↑ | MF ↓ | GF ↓ | held-out NLL rise ↓ | KL to base ↓ | "
          "QA choice (base → final) | QA retention ↑ | QA exact match (final) | wall time | "
          "samples/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.only.split(","):
        t0 = time.perf_counter()
        result = forgetless.run(None, [*METHODS[name], *args.set, f"name=bench-{name}"],
                                run_dir=f"{args.out}/{name}")
        wall = time.perf_counter() - t0
        res = result.results
        h, p = result.headline, res["probe_summary"]
        rates = [st.get("samples_per_s") or (st["generated"] / st["generation_s"]
                                             if st.get("generation_s") else None)
                 for x in res["experiences"] for st in x["methods"].values()
                 if "generation_s" in st]
        rates = [r for r in rates if r]
        rate = f"{sum(rates) / len(rates):.1f}" if rates else "-"
        session = res["run"]["session_s"]  # this session's time (a resumed run: its last part)
        print(f"| {name} | {pct(h['MA'])} | {pct(h['GA'])} | {pct(h['MF'])} | {pct(h['GF'])} | "
              f"{num(p['sample_nll_rise'])} | {num(p['sample_kl_final'])} | "
              f"{pct(p['qa_choice_accuracy_base'])} → {pct(p['qa_choice_accuracy_final'])} | "
              f"{pct(p['qa_retention_final'])} | {pct(p['qa_accuracy_final'])} | "
              f"{session:.0f} s (call {wall:.0f} s) | {rate} |",
              flush=True)
        extra = {k: x["methods"] for k, x in enumerate(res["experiences"]) if x["methods"]}
        if extra:
            print(f"<!-- {name} stats: {json.dumps(extra)} -->", flush=True)


if __name__ == "__main__":
    main()
