"""Concept-1K in its published text format, with the instance-incremental (IIL) split.

Records of five lines, no blank lines between them (blank lines are tolerated):

    (Concept, Relation, Target)
    Q1: <question>            → train (memorization)
    A1: <answer>
    Q2: <paraphrased question> → test (generalization)
    A2: <answer>               (the published file tags this line "Q2:" as well; both accepted)

Unlike the published preprocessing script, every record is kept (it silently dropped the last
record and any record whose two answers differ). Concepts are listed in order of first
appearance, shuffled with `random.seed(split_seed); random.shuffle(...)` (seed 1 reproduces the
published order), and split into T steps of n//T concepts with the first step taking the
remainder (1,023 concepts, T=10 → 105 + 9×102).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from forgetless.core.errors import DataError
from forgetless.data.types import Example, Experience, Stream


@dataclass(frozen=True)
class Record:
    concept: str
    relation: str
    target: str
    q1: str
    a1: str
    q2: str
    a2: str
    line: int


def _field(path: Path, lineno: int, line: str, tags: tuple[str, ...]) -> str:
    for tag in tags:
        if line.startswith(tag + ":"):
            value = line[len(tag) + 1:].strip()
            if not value:
                raise DataError(f"{path}:{lineno}: empty {tag} field")
            return value
    want = " or ".join(f"'{t}: …'" for t in tags)
    raise DataError(f"{path}:{lineno}: expected {want}, got {line[:60]!r}")


def parse_concept1k(path: str | Path) -> list[Record]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: Concept-1K file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines:
        raise DataError(f"{path}: empty file, expected records of 5 lines")
    records = []
    for start in range(0, len(lines), 5):
        block = lines[start:start + 5]
        lineno, head = block[0]
        if not (head.startswith("(") and head.endswith(")")):
            raise DataError(f"{path}:{lineno}: expected a triplet '(Concept, Relation, Target)'")
        parts = [p.strip() for p in head[1:-1].split(",")]
        if len(parts) < 3 or not all(parts[:2]):
            raise DataError(f"{path}:{lineno}: triplet needs three comma-separated fields")
        if len(block) < 5:
            raise DataError(
                f"{path}:{block[-1][0]}: record starting at line {lineno} is cut short "
                f"(expected Q1, A1, Q2, A2 lines)"
            )
        q1 = _field(path, *block[1], ("Q1",))
        a1 = _field(path, *block[2], ("A1",))
        q2 = _field(path, *block[3], ("Q2",))
        a2 = _field(path, *block[4], ("A2", "Q2"))
        records.append(Record(parts[0], parts[1], ", ".join(parts[2:]), q1, a1, q2, a2, lineno))
    return records


def split_concepts(concepts: list[str], n_steps: int) -> list[list[str]]:
    """n//T concepts per step; the first step also takes the remainder (as published)."""
    if n_steps > len(concepts):
        raise DataError(f"data.n_experiences={n_steps} exceeds the {len(concepts)} concepts")
    per = len(concepts) // n_steps
    first = len(concepts) - per * (n_steps - 1)
    steps = [concepts[:first]]
    for k in range(n_steps - 1):
        steps.append(concepts[first + k * per:first + (k + 1) * per])
    return steps


def concept1k_stream(
    path: str | Path, n_experiences: int, split_seed: int = 1, max_concepts: int | None = None,
    concepts_per_step: int | None = None,
) -> Stream:
    """The stream; `max_concepts` cuts the shuffled list before the split (other steps),
    `concepts_per_step` keeps the first m concepts of each published step (same steps, smaller)."""
    records = parse_concept1k(path)
    concepts = list(dict.fromkeys(r.concept for r in records))  # order of first appearance
    random.Random(split_seed).shuffle(concepts)  # = random.seed(s); random.shuffle(...)
    if max_concepts is not None:
        concepts = concepts[:max_concepts]
    by_concept: dict[str, list[Record]] = {}
    for r in records:
        by_concept.setdefault(r.concept, []).append(r)
    experiences = []
    for e, names in enumerate(split_concepts(concepts, n_experiences)):
        names = names[:concepts_per_step] if concepts_per_step else names
        train, test = [], []
        for name in names:
            for k, r in enumerate(by_concept[name]):
                uid = f"{name}/{r.relation}/{k}"
                train.append(Example(f"{uid}/train", r.q1, r.a1, name, r.relation))
                test.append(Example(f"{uid}/test", r.q2, r.a2, name, r.relation))
        experiences.append(Experience(e, train, test, names))
    return Stream(f"concept1k-{n_experiences}step", experiences)
