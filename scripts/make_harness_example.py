"""Writes src/forgetless/eval/harness_tasks/arithmetic.jsonl, the example lm-evaluation-harness
task (probe.lm_eval: [example]), deterministically: 50 sums of two numbers between 10 and 89,
each with 3 near misses. Every item's options have the same shape, {x, x+1, x+10, x+11}, and the
sum takes each rank in that shape and each shown position equally often, so a guess from the
options alone — a position, a rank, the middle, the most crowded — is right about a quarter of
the time (docs/benchmarks.md). tests/unit/test_audit.py checks the shipped file is this output.

    .venv/bin/python scripts/make_harness_example.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "src/forgetless/eval/harness_tasks/arithmetic.jsonl"
SHAPE = (0, 1, 10, 11)


def rows(n: int = 50, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    ranks = [k % 4 for k in range(n)]
    positions = [k % 4 for k in range(n)]
    rng.shuffle(ranks)
    rng.shuffle(positions)
    out = []
    for rank, position in zip(ranks, positions, strict=True):
        a, b = rng.randint(10, 89), rng.randint(10, 89)
        total = a + b
        others = [total - SHAPE[rank] + d for d in SHAPE if d != SHAPE[rank]]
        rng.shuffle(others)
        choices = [*others[:position], total, *others[position:]]
        out.append({"question": f"What is {a} + {b}?", "choices": [str(c) for c in choices],
                    "answer": position})
    return out


def text() -> str:
    return "".join(json.dumps(r) + "\n" for r in rows())


if __name__ == "__main__":
    TARGET.write_text(text())
    print(f"wrote {TARGET}")
