"""The Concept-1K protocol end to end, timed: one `forgetless run` of a preset (default
concept1k-small; concept1k-paper on a GPU), then what its results.json says about where the time
went — training, evaluation (every seen step scored after every step) and probe seconds, their
ratio, training tokens per second, the padding share of the training batches, MFU (on GPUs whose
peak forgetless knows, or with FORGETLESS_PEAK_TFLOPS) and peak memory.

Needs the data (CONCEPT1K_DIR or --set data.path=...).

    .venv/bin/python benchmarks/concept1k_protocol.py [--preset concept1k-small] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import forgetless
from forgetless.core.presets import resolve


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="concept1k-small")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", help="run directory (default: a new temporary one)")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="concept1k-protocol-")) / "run"
    t0 = time.perf_counter()
    result = forgetless.run(resolve(args.preset), args.overrides, run_dir=out, quiet=True)
    wall = time.perf_counter() - t0
    r = result.results
    t, run = r["timings"], r["run"]
    cfg = r["config"]
    print(f"# {args.preset} {' '.join(args.overrides)}")
    print(f"{len(r['experiences'])} steps, {cfg['train']['epochs']} epochs, batch "
          f"{cfg['train']['batch_size']}, {run['device']}, {cfg['train']['mixed_precision']}, "
          f"{run['parameters']['total']:,} parameters")
    mfu = f"{100 * t['mfu']:.1f} %" if t.get("mfu") is not None else "- (peak unknown)"
    rows = [
        ("wall (this script)", f"{wall:.1f} s"),
        ("run session", f"{run['session_s']:.1f} s"),
        ("training", f"{t['train_s']:.1f} s"),
        ("evaluation (all seen steps after each step)", f"{t['eval_s']:.1f} s"),
        ("probe", f"{t['probe_s']:.1f} s"),
        ("evaluation / training", f"{t['eval_s'] / t['train_s']:.2f}"),
        ("training tokens per second (real tokens)", f"{t['train_tokens_per_s']:,.0f}"),
        ("padding share of training batch positions", f"{100 * t['train_padding_share']:.1f} %"),
        ("MFU (6 × parameters × tokens/s / peak)", mfu),
        ("peak memory", f"{run['peak_memory_mb']:,.0f} MiB"),
        ("MA / GA / MF / GF", " / ".join(f"{100 * r['headline'][k]:.1f}"
                                         for k in ("MA", "GA", "MF", "GF"))),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"(run directory: {out})")


if __name__ == "__main__":
    main()
