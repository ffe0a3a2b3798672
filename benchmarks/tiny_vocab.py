"""What the tests' tiny models pay for the embedded 49,152-token vocabulary and for depth: the
same tiny run (tests/conftest.py's TINY: 3 experiences, 30 epochs, probe on) on tiny-llama-5m,
tiny-llama-5m-v4k (the same body, the embedded tokenizer cut to 4,096 ids) and
tiny-llama-5m-2layer-v4k (two of its four layers: what the tests use since 2026-12-02), side by
side in one run of this script, with their parameter counts, tokens and train-accuracy matrices.

    .venv/bin/python benchmarks/tiny_vocab.py [--repeats 2] [--models M1 M2 ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import forgetless

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' TINY, not a copy
from tests.conftest import TINY as TESTS_TINY

TINY = [o for o in TESTS_TINY if not o.startswith("model.name=")]
MODELS = ("tiny-llama-5m", "tiny-llama-5m-v4k", "tiny-llama-5m-2layer-v4k")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    args = parser.parse_args()
    wall: dict[str, list[float]] = {m: [] for m in args.models}
    for _ in range(args.repeats):
        for model in args.models:  # alternated, so drift in the machine's speed hits each
            with tempfile.TemporaryDirectory() as out:
                started = time.perf_counter()
                r = forgetless.run(None, [*TINY, f"model.name={model}", f"output_dir={out}"],
                                   quiet=True).results
                wall[model].append(time.perf_counter() - started)
            t = r["timings"]
            print(f"{model}: {wall[model][-1]:.1f} s (train {t['train_s']:.1f}, eval "
                  f"{t['eval_s']:.1f}, probe {t['probe_s']:.1f}); parameters "
                  f"{r['run']['parameters']['total']:,}; train tokens {t['train_tokens']:,}; "
                  f"train matrix {[[v for v in row if v is not None] for row in r['matrices']['train']]}",
                  flush=True)
    first = min(wall[args.models[0]])
    print(f"best of {args.repeats}: " + ", ".join(
        f"{m} {min(wall[m]):.1f} s ({first / min(wall[m]):.2f}x faster than {args.models[0]})"
        for m in args.models))


if __name__ == "__main__":
    main()
