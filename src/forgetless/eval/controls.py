"""Controls: the same questions asked so that only a shortcut could still answer them.

`name_swap` re-asks every question with its concept's name replaced by another concept's name
from the same experience (a seeded derangement: no concept keeps its own name). A model that
stored facts about concepts now answers about the other concept and drops towards chance; a
model that learned "this relation in this experience → that answer" does not drop. The gap
between the real and the name-swapped accuracy is the share of the score that needs the concept.
"""

from __future__ import annotations

import dataclasses
import random

from forgetless.core.errors import ConfigError
from forgetless.core.seeding import derive_seed
from forgetless.data.types import Example, Stream

CONTROLS = ("name_swap",)


def derangement(names: list[str], seed: int) -> dict[str, str]:
    """A seeded permutation of `names` with no fixed point (a shuffled cycle)."""
    order = list(names)
    random.Random(seed).shuffle(order)
    return {a: order[(i + 1) % len(order)] for i, a in enumerate(order)}


def name_swapped(stream: Stream, seed: int) -> dict[tuple[int, str], list[Example]]:
    """Per (experience, split), its examples whose question names their concept, with that name
    swapped for another concept's of the same experience. Examples without their concept in
    the question are left out (they cannot be swapped)."""
    out: dict[tuple[int, str], list[Example]] = {}
    for exp in stream.experiences:
        names = sorted({ex.concept for ex in exp.train + exp.test if ex.concept})
        swap = derangement(names, derive_seed(seed, "name-swap", exp.index)) if len(names) > 1 else {}
        for split in ("train", "test"):
            out[(exp.index, split)] = [
                dataclasses.replace(ex, uid=f"{ex.uid}/swapped",
                                    question=ex.question.replace(ex.concept, swap[ex.concept]),
                                    prompt=ex.prompt.replace(ex.concept, swap[ex.concept]))
                for ex in exp.split(split) if ex.concept in swap and ex.concept in ex.question]
    if not any(out.values()):
        raise ConfigError("eval.controls: name_swap needs questions that name their concept "
                          f"(stream {stream.name} has none with two concepts per experience)")
    return out
