"""Experience replay: keep a budget of past training examples and train on them again.

After each experience the buffer is updated from that experience's training examples; before
the next one, the buffer is merged into its training set (the Concept-1K paper's protocol).
Every choice is seeded from (run seed, experience), so every process holds the same buffer.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Literal

from pydantic import NonNegativeInt

from forgetless.config import Section
from forgetless.data.types import Example
from forgetless.engine.hooks import Context, Method
from forgetless.engine.loop import derive_seed
from forgetless.methods.registry import register


class ReplayConfig(Section):
    buffer_size: NonNegativeInt = 200
    """Past training examples kept in total (0 = sequential fine-tuning)."""
    selection: Literal["balanced", "reservoir", "random"] = "balanced"
    """"balanced": equal budget per concept seen (the Concept-1K paper); "reservoir": a uniform
    sample of every example seen so far; "random": a uniform sample of buffer ∪ the newest
    experience (favours recent experiences)."""


@register("replay", ReplayConfig, summary="experience replay: a buffer of past examples merged "
          "into each experience's training set")
class Replay(Method):
    config: ReplayConfig

    def __init__(self, config: ReplayConfig):
        super().__init__(config)
        self.buffer: list[Example] = []
        self.seen = 0  # examples offered to the reservoir so far

    def train_examples(self, ctx: Context, exp, examples: list[Example]) -> list[Example]:
        return [*examples, *self.buffer]

    def after_experience(self, ctx: Context, exp) -> None:
        rng = random.Random(derive_seed(ctx.seed, "replay", exp.index))
        size = self.config.buffer_size
        if self.config.selection == "balanced":
            self.buffer = _balanced(self.buffer, exp.train, size, rng)
        elif self.config.selection == "reservoir":
            for ex in exp.train:
                self.seen += 1
                if len(self.buffer) < size:
                    self.buffer.append(ex)
                else:
                    slot = rng.randrange(self.seen)
                    if slot < size:
                        self.buffer[slot] = ex
        else:
            pool = [*self.buffer, *exp.train]
            self.buffer = rng.sample(pool, min(size, len(pool)))

    def state_dict(self) -> dict:
        return {"buffer": [asdict(ex) for ex in self.buffer], "seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = [Example(**ex) for ex in state.get("buffer", [])]
        self.seen = state.get("seen", 0)


def _balanced(buffer: list[Example], new: list[Example], size: int,
              rng: random.Random) -> list[Example]:
    """Equal budget per concept seen; concepts listed first get the remainder. Old concepts keep
    a prefix of what they had, so shrinking budgets never swap in different examples."""
    by_concept: dict[str, list[Example]] = {}
    for ex in buffer:
        by_concept.setdefault(ex.concept, []).append(ex)
    fresh: dict[str, list[Example]] = {}
    for ex in new:
        fresh.setdefault(ex.concept, []).append(ex)
    for concept, items in fresh.items():
        rng.shuffle(items)
        by_concept[concept] = by_concept.get(concept, []) + items
    n = len(by_concept)
    if n == 0:
        return []
    base, extra = divmod(size, n)
    out = []
    for k, items in enumerate(by_concept.values()):
        out += items[: base + (1 if k < extra else 0)]
    return out
