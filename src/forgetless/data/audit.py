"""`forgetless data --audit`: what a stream can be answered with *without* the thing it claims to
measure (memory of each concept or instance), and how clean its splits are.

Concept-blind baselines guess each test answer from the training answers alone:
- `relation_majority_experience`: the most common training answer of the test question's key
  within its own experience (what a model that learned "relation → answer of this step" gets);
- `relation_majority_stream`: the same over every experience's training answers;
- `answer_prior_experience`: the most common training answer of the experience, whatever the
  question (the majority-class baseline).
The key is the example's relation where every example has one; otherwise the question with its
concept masked. A benchmark that measures memory should keep all three low. The first two are
also scored on the training questions themselves (`train_relation_majority_*`): memorisation
metrics (MA, MF) are accuracies on training questions, so that is their concept-blind floor.

Also: test answers that appear verbatim in their own question, test questions that are exact
copies of a training question (same answer), training questions repeated across experiences,
and the spread of answer lengths (words).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter

from forgetless.core.errors import DataError
from forgetless.data.types import Example, Stream, answer_key


def normalize(text: str) -> str:
    """Lower case, punctuation and articles dropped, spaces collapsed: how questions are keyed and
    duplicates found (answers are compared as the scorers compare them, `answer_key`)."""
    text = re.sub(r"[^\w\s]", " ", text.lower())
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def _key(ex: Example, by_relation: bool) -> str:
    if by_relation:
        return ex.relation
    q = ex.question
    if ex.concept:
        q = re.sub(re.escape(ex.concept), "<concept>", q, flags=re.IGNORECASE)
    return normalize(q)


def _majority(answers: list[str]) -> str | None:
    """The most common answer; ties go to the one seen first (a deterministic guess)."""
    if not answers:
        return None
    counts = Counter(answers)
    best = max(counts.values())
    return next(a for a in answers if counts[a] == best)


def audit(stream: Stream) -> dict:
    tests = [(e.index, ex) for e in stream.experiences for ex in e.test]
    trains = [(e.index, ex) for e in stream.experiences for ex in e.train]
    if not tests or not trains:
        raise DataError(f"stream {stream.name}: nothing to audit (it has "
                        f"{len(trains)} training and {len(tests)} test examples)")
    if all(ex.text for _, ex in tests + trains):
        return _audit_text_stream(stream, trains, tests)
    by_relation = all(ex.relation for _, ex in tests + trains)
    per_exp: dict[tuple[int, str], list[str]] = {}
    per_stream: dict[str, list[str]] = {}
    prior: dict[int, list[str]] = {}
    for e, ex in trains:
        k, a = _key(ex, by_relation), answer_key(ex.answer)
        per_exp.setdefault((e, k), []).append(a)
        per_stream.setdefault(k, []).append(a)
        prior.setdefault(e, []).append(a)
    guess_exp = {k: _majority(v) for k, v in per_exp.items()}
    guess_stream = {k: _majority(v) for k, v in per_stream.items()}
    guess_prior = {e: _majority(v) for e, v in prior.items()}

    def right(examples: list[tuple[int, Example]]) -> Counter:
        """How many of `examples` each concept-blind guess answers."""
        hits = Counter()
        for e, ex in examples:
            a, k = answer_key(ex.answer), _key(ex, by_relation)
            hits["experience"] += guess_exp.get((e, k)) == a
            hits["stream"] += guess_stream.get(k) == a
            hits["prior"] += guess_prior.get(e) == a
        return hits

    hits, train_hits = right(tests), right(trains)
    verbatim = 0
    for _, ex in tests:
        words = normalize(answer_key(ex.answer))
        verbatim += bool(words) and re.search(rf"\b{re.escape(words)}\b",
                                              normalize(ex.question)) is not None
    train_pairs = {(normalize(ex.question), normalize(ex.answer)) for _, ex in trains}
    copied = sum((normalize(ex.question), normalize(ex.answer)) in train_pairs for _, ex in tests)
    where: dict[str, set[int]] = {}
    for e, ex in trains:
        where.setdefault(normalize(ex.question), set()).add(e)
    repeated = sum(len(where[normalize(ex.question)]) > 1 for _, ex in trains)
    lengths = [len(ex.answer.split()) for _, ex in tests]
    n = len(tests)
    return {
        "stream": stream.name, "experiences": len(stream), "train": len(trains), "test": n,
        "key": "relation" if by_relation else "question with the concept masked",
        "relation_majority_experience": hits["experience"] / n,
        "relation_majority_stream": hits["stream"] / n,
        "answer_prior_experience": hits["prior"] / n,
        "train_relation_majority_experience": train_hits["experience"] / len(trains),
        "train_relation_majority_stream": train_hits["stream"] / len(trains),
        "answer_in_question": verbatim / n,
        "test_copies_train": copied / n,
        "train_repeated_across_experiences": repeated / len(trains),
        "answer_words": {"min": min(lengths), "median": statistics.median(lengths),
                         "max": max(lengths)},
    }


def _audit_text_stream(stream: Stream, trains: list, tests: list) -> dict:
    """Language modelling has no answer to guess: what can leak is held-out text that was also
    trained on (a loss measured on it would be memory of that text, not of the domain)."""
    seen = {normalize(ex.text) for _, ex in trains}
    where: dict[str, set[int]] = {}
    for e, ex in trains:
        where.setdefault(normalize(ex.text), set()).add(e)
    return {
        "stream": stream.name, "experiences": len(stream), "train": len(trains),
        "test": len(tests), "key": "text (language modelling: no answers to guess)",
        "relation_majority_experience": None, "relation_majority_stream": None,
        "answer_prior_experience": None, "train_relation_majority_experience": None,
        "train_relation_majority_stream": None, "answer_in_question": None,
        "test_copies_train": sum(normalize(ex.text) in seen for _, ex in tests) / len(tests),
        "train_repeated_across_experiences": sum(len(where[normalize(ex.text)]) > 1
                                                 for _, ex in trains) / len(trains),
        "answer_words": None,
    }


AUDIT_ROWS = [
    ("relation_majority_experience", "concept-blind: majority answer of the key in its experience"),
    ("relation_majority_stream", "concept-blind: majority answer of the key over the stream"),
    ("answer_prior_experience", "majority answer of the experience (any question)"),
    ("train_relation_majority_experience",
     "the same key-in-its-experience guess on the training questions (MA/MF's floor)"),
    ("train_relation_majority_stream", "the same key-over-the-stream guess on the training questions"),
    ("answer_in_question", "test answers found verbatim in their question"),
    ("test_copies_train", "test questions (texts) identical to a training one"),
    ("train_repeated_across_experiences", "training questions (texts) in more than one experience"),
]


def audit_text(report: dict) -> str:
    lines = [f"audit of stream {report['stream']}: {report['experiences']} experiences, "
             f"{report['train']} train / {report['test']} test examples; key = {report['key']}"]
    for key, label in AUDIT_ROWS:
        if report[key] is not None:
            lines.append(f"  {100 * report[key]:5.1f} %  {label}")
    w = report["answer_words"]
    if w is not None:
        lines.append(f"  answer length (words): min {w['min']}, median {w['median']}, "
                     f"max {w['max']}")
    return "\n".join(lines)


def choice_only_guesses(items: list[tuple[list[str], int]]) -> dict[str, float]:
    """Multiple-choice items (options, index of the right one) guessed from the options alone,
    never the question: the best fixed position, and — where every option is a number — the best
    fixed rank (k-th smallest), the option closest to the others (medoid) and the option with the
    most others within 2 (ties: the first shown). Each as the share of items it gets right, with
    `chance` (mean of 1 / options) beside them: a task that measures the question's content keeps
    them all near chance."""
    if not items:
        raise DataError("multiple-choice audit: no items")
    n = len(items)
    out = {"chance": sum(1 / len(c) for c, _ in items) / n}
    width = max(len(c) for c, _ in items)
    out["best_position"] = max(sum(a == k for _, a in items) for k in range(width)) / n
    try:
        numbers = [([float(x) for x in c], a) for c, a in items]
    except ValueError:
        return out
    ranks = [sorted(range(len(c)), key=c.__getitem__).index(a) for c, a in numbers]
    out["best_rank"] = max(ranks.count(k) for k in range(width)) / n

    def first_best(c: list[float], score) -> int:
        scores = [score(c, i) for i in range(len(c))]
        return scores.index(max(scores))

    out["medoid"] = sum(first_best(c, lambda c, i: -sum(abs(c[i] - x) for x in c)) == a
                        for c, a in numbers) / n
    out["most_neighbours"] = sum(
        first_best(c, lambda c, i: sum(0 < abs(c[i] - x) <= 2 for x in c)) == a
        for c, a in numbers) / n
    return out
