"""Text domains for pretraining studies and held-out loss probes, all offline.

Generated from a seed, two clearly different domains:
- `world`: English-like sentences about a small invented world. Every creature has its own
  habits (what it eats, where it lives, what it does), so there is structure to learn beyond
  word frequencies, and more of it the more sentences a model has seen.
- `arithmetic`: sums and differences of numbers below 100, written out (`17 + 25 = 42.`):
  nothing in common with `world` but digits and punctuation.
Each splits its sentence space in two, so held-out text is the same world (the same habits,
the same kind of sums) in sentences or problems that no training document is.

Human-written, fixed:
- `python_docs`: the prose paragraphs of the Python Language Reference as the interpreter ships
  it for `help()` (`pydoc_data.topics`, Python Software Foundation License 2.0): text that no
  model wrote, for measuring what a model forgets of ordinary written English independently of
  anything it generates itself. It changes with Python's minor version (results record it).

Or the user's own text: a .txt file or a directory of them (one document per non-empty line).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from forgetless.core.errors import DataError

CREATURES = ["otter", "heron", "badger", "lynx", "beetle", "moth", "salmon", "raven", "newt",
             "marten", "wren", "hare", "toad", "vole", "crane", "ferret", "gecko", "ibis"]
FOODS = ["berries", "snails", "roots", "seeds", "fish", "moss", "ants", "clover", "acorns",
         "worms", "reeds", "mushrooms"]
PLACES = ["the marsh", "the high pines", "the river bend", "the old quarry", "the meadow",
          "the cliffs", "the hollow oak", "the dunes", "the fen", "the birch wood"]
DOINGS = ["sings at dawn", "sleeps through the winter", "hunts at night", "builds a nest of twigs",
          "swims against the current", "hides under stones", "travels in pairs",
          "digs long tunnels", "watches from the branches", "calls before the rain"]
COLOURS = ["grey", "rust-red", "speckled", "pale", "dark", "golden", "striped", "silver"]
PATTERNS = [
    "the {c} eats {food}.", "a {col} {c} lives near {place}.", "every {c} {doing}.",
    "the {c} from {place} eats {food} and {doing}.", "if you visit {place}, you may see a {c}.",
    "a {c} is {col} and {doing}.", "in spring the {c} leaves {place} to look for {food}.",
]


def world_text(n: int, seed: int | str, part: str = "all") -> list[str]:
    """`n` sentences about the invented world of `seed`. `part` "train" and "held" are two
    disjoint halves of its sentence space about the same habits: each creature has two of the
    patterns held out, so a held-out sentence is never a training sentence, yet it tells what a
    model that learned the world can predict; "all" draws from both."""
    world = random.Random(f"world/{seed}")
    habits = {c: {"food": world.choice(FOODS), "place": world.choice(PLACES),
                  "doing": world.choice(DOINGS), "col": world.choice(COLOURS)} for c in CREATURES}
    held = {(c, p) for c in CREATURES for p in world.sample(range(len(PATTERNS)), 2)}

    def draw(rng: random.Random) -> tuple[tuple[str, int], str]:
        c = rng.choice(CREATURES)
        # mostly the creature's own habits; now and then a random one (noise to fit, too)
        facts = habits[c] if rng.random() < 0.9 else {
            "food": rng.choice(FOODS), "place": rng.choice(PLACES), "doing": rng.choice(DOINGS),
            "col": rng.choice(COLOURS)}
        p = rng.randrange(len(PATTERNS))
        return (c, p), PATTERNS[p].format(c=c, **facts)

    sentences = _part_of(draw, held, n, random.Random(f"world/{seed}/{part}"), part)
    return [s[0].upper() + s[1:] if k % 2 else s for k, s in enumerate(sentences)]


def arithmetic_text(n: int, seed: int | str, part: str = "all") -> list[str]:
    """`n` sums and differences; `part` "train" and "held" split the problems one in ten held
    out (the same for every part of `seed`), so a held-out problem is never trained on."""
    problems = [(a, b, "+") for a in range(100) for b in range(100)] + [
        (a, b, "-") for a in range(100) for b in range(a + 1)]
    held = set(random.Random(f"arithmetic/{seed}").sample(problems, len(problems) // 10))

    def draw(rng: random.Random) -> tuple[tuple[int, int, str], str]:
        a, b = rng.randrange(100), rng.randrange(100)
        if rng.random() < 0.5:
            return (a, b, "+"), f"{a} + {b} = {a + b}."
        a, b = max(a, b), min(a, b)
        return (a, b, "-"), f"{a} - {b} = {a - b}."

    return _part_of(draw, held, n, random.Random(f"arithmetic/{seed}/{part}"), part)


def _part_of(draw, held: set, n: int, rng: random.Random, part: str) -> list[str]:
    """`n` draws whose key is in `held` (part "held"), outside it ("train"), or either ("all"):
    rejection keeps each part's distribution the generator's, conditioned on the split."""
    if part not in ("all", "train", "held"):
        raise ValueError(f"part: expected all, train or held, got {part!r}")
    out = []
    while len(out) < n:
        key, text = draw(rng)
        if part == "all" or (key in held) == (part == "held"):
            out.append(text)
    return out


def user_text(path: str) -> list[str]:
    p = Path(path)
    files = sorted(p.glob("*.txt")) if p.is_dir() else [p]
    if not files or not all(f.is_file() for f in files):
        raise DataError(f"{path}: expected a .txt file or a directory of .txt files")
    docs = []
    for f in files:
        try:
            docs += [line.strip() for line in f.read_text(encoding="utf-8").splitlines()
                     if line.strip()]
        except UnicodeDecodeError as e:
            raise DataError(f"{f}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not docs:
        raise DataError(f"{path}: no text (one document per non-empty line)")
    return docs


def python_docs_text() -> list[str]:
    """The Language Reference's prose paragraphs of at least 30 words, whitespace joined, in
    the interpreter's topic order (grammar, code and indented examples left out)."""
    from pydoc_data.topics import topics

    paragraphs = (p for text in topics.values() for p in re.split(r"\n\s*\n", text))
    return [" ".join(p.split()) for p in paragraphs
            if not p.startswith(" ") and len(p.split()) >= 30]


BUILTIN = {"world": world_text, "arithmetic": arithmetic_text}
"""Generated domains: any number of documents from a seed."""
FIXED = {"python_docs": python_docs_text}
"""Human-written domains: a fixed set of documents, split like the user's text."""


def corpus(name: str, n: int, seed: int) -> list[str]:
    """A built-in domain (`n` documents), or the user's text at a path (all of it, repeated
    by the caller as needed)."""
    if name in BUILTIN:
        return BUILTIN[name](n, seed)
    return fixed_or_user_text(name)


def fixed_or_user_text(name: str) -> list[str]:
    return FIXED[name]() if name in FIXED else user_text(name)


def check_domain(name: str, option: str) -> None:
    """A built-in domain or an existing path; otherwise a DataError naming `option`."""
    if name not in BUILTIN and name not in FIXED and not Path(name).exists():
        raise DataError(f"{option}: '{name}' is neither a built-in domain "
                        f"({', '.join([*BUILTIN, *FIXED])}) nor an existing path")


def held_out_documents(name: str, n: int, seed: int | str) -> list[str]:
    """`n` documents kept for measuring, never among `training_documents(name, ..., seed,
    held_out=n)`: for a built-in domain, the held-out part of the same generated domain (the
    same invented world, sentences or problems no training document is); for fixed or the
    user's text, the first `n` of a seeded shuffle."""
    if name in BUILTIN:
        return BUILTIN[name](n, seed, "held")
    docs = _shuffled_user_text(name, seed)
    if n >= len(docs):
        raise DataError(f"{name}: {len(docs)} documents; holding out {n} leaves none to train on")
    return docs[:n]


def training_documents(name: str, n: int, seed: int | str, held_out: int = 0) -> list[str]:
    """`n` training documents: fresh text for a built-in domain (no document is drawn twice
    on purpose); the user's text without its `held_out` first documents, repeated in seeded
    shuffles as often as `n` needs."""
    if name in BUILTIN:
        return BUILTIN[name](n, seed, "train")
    pool = _shuffled_user_text(name, seed)[held_out:]
    if not pool:
        raise DataError(f"{name}: no documents left to train on after {held_out} held out")
    out: list[str] = []
    round_ = 0
    while len(out) < n:
        docs = list(pool)
        random.Random(f"{seed}/train/{round_}").shuffle(docs)
        out += docs[:n - len(out)]
        round_ += 1
    return out


def _shuffled_user_text(name: str, seed: int | str) -> list[str]:
    # a text repeated in the source (the Language Reference repeats 93 of its paragraphs) is one
    # document: otherwise a held-out copy could have been trained on as another
    docs = list(dict.fromkeys(fixed_or_user_text(name)))
    random.Random(f"{seed}/split").shuffle(docs)
    return docs
