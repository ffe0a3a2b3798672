"""Experience replay: keep a budget of past training examples and train on them again.

After each experience the buffer is updated from that experience's training examples. Mixing:
- "merge": the buffer joins the next experience's training set (the Concept-1K paper's protocol);
  steps grow with the buffer.
- "batch": a fixed share of every step's rows are buffer examples (as in ER, Chaudhry et al.);
  the number of steps stays that of the new data. The loss is the token mean over the new rows
  plus share/(1−share) × the token mean over the buffer rows, i.e. each part weighted by its
  share of the batch, up to a constant factor AdamW ignores.
Every choice is seeded from (run seed, experience, step), so every process holds the same buffer
and draws the same rows.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Literal

import torch
from pydantic import Field, NonNegativeInt

from forgetless.core.config import Section
from forgetless.core.seeding import derive_seed
from forgetless.data.collate import answer_nll, collate, encode_all, forward_answer_logits
from forgetless.data.types import Example
from forgetless.methods.hooks import Context, Method
from forgetless.methods.registry import register


class ReplayConfig(Section):
    buffer_size: NonNegativeInt = 200
    """Past training examples kept in total (0 = sequential fine-tuning)."""
    selection: Literal["balanced", "reservoir", "random"] = "balanced"
    """"balanced": equal budget per concept seen (the Concept-1K paper); "reservoir": a uniform
    sample of every example seen so far; "random": a uniform sample of buffer ∪ the newest
    experience (favours recent experiences)."""
    mixing: Literal["merge", "batch"] = "merge"
    """"merge": add the buffer to each experience's training set; "batch": fill a fixed share of
    every step's rows with buffer examples."""
    batch_share: float = Field(0.25, gt=0, lt=1)
    """With mixing "batch": share of every step's rows drawn from the buffer (rounded to a
    multiple of processes × grad_accum, at least one per micro-batch)."""


@register("replay", ReplayConfig, summary="experience replay: a buffer of past examples merged "
          "into each experience's training set")
class Replay(Method):
    config: ReplayConfig
    rows_option = "replay.batch_share"

    def __init__(self, config: ReplayConfig):
        super().__init__(config)
        self.buffer: list[Example] = []
        self.seen = 0  # examples offered to the reservoir so far
        self.rows = 0  # buffer rows per step (mixing "batch")
        self.digest: str | None = None
        self.encoded: list = []

    def train_examples(self, ctx: Context, exp, examples: list[Example]) -> list[Example]:
        if self.config.mixing == "batch":
            cfg = ctx.config
            self.rows = self.reserved_rows(cfg, ctx.accelerator.num_processes, exp.index)
            self.encoded = encode_all(self.buffer, ctx.tokenizer, cfg.data.prompt_template,
                                      cfg.train.max_length, history=True)
            return examples
        return [*examples, *self.buffer]

    def expected_train_examples(self, experience: int, n_experiences: int, planned: int,
                                seen: int) -> int:
        if self.config.mixing == "batch":
            return planned
        return planned + min(self.config.buffer_size, seen)  # every selection fills up to size

    def reserved_rows(self, config, world: int, experience: int) -> int:
        # The buffer is filled after the first experience; nothing to mix in before.
        if self.config.mixing != "batch" or experience == 0 or self.config.buffer_size == 0:
            return 0
        parts = world * config.train.grad_accum
        return parts * max(1, round(self.config.batch_share * config.train.batch_size / parts))

    def extra_loss(self, ctx: Context, batch, outputs) -> torch.Tensor | None:
        if self.config.mixing != "batch" or not self.rows or not self.buffer:
            return None
        # The step's buffer rows, the same on every process: seeded by the step.
        rng = random.Random(derive_seed(ctx.seed, "replay-rows", ctx.global_step))
        picks = [rng.randrange(len(self.encoded)) for _ in range(self.rows)]
        n_tokens = sum(self.encoded[i].n_targets for i in picks)
        mine = [self.encoded[i] for i in picks[ctx.my_rows(self.rows)]]
        rows = {k: v.to(ctx.accelerator.device)
                for k, v in collate(mine, ctx.tokenizer.pad_token_id).items()}
        nll = answer_nll(forward_answer_logits(ctx.model, rows).logits, rows["labels"]).sum()
        # Scaled so that, summed over micro-batches and processes after the loop's weighting,
        # the term is (buffer NLL sum / buffer token count) × share / (1 − share).
        parts = ctx.accelerator.num_processes * ctx.config.train.grad_accum
        share = self.rows / ctx.config.train.batch_size
        return nll * parts / n_tokens * share / (1 - share)

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
        self.digest = ctx.agreed_digest("replay buffer", [ex.uid for ex in self.buffer])

    def experience_stats(self) -> dict:
        stats = {"buffer": len(self.buffer), "digest": self.digest}
        if self.config.mixing == "batch":
            stats["rows_per_step"] = self.rows
        return stats

    def state_dict(self) -> dict:
        return {"buffer": [asdict(ex) for ex in self.buffer], "seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = [Example(**ex) for ex in state.get("buffer", [])]
        self.seen = state.get("seen", 0)


def _balanced(buffer: list[Example], new: list[Example], size: int,
              rng: random.Random) -> list[Example]:
    """Equal budget per concept seen; the remainder goes to a seeded random set of concepts (when
    the budget is smaller than the number of concepts, new concepts still get their chance).
    Old concepts keep a prefix of what they had, so shrinking budgets never swap in different
    examples."""
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
    lucky = set(rng.sample(range(n), extra))
    out = []
    for k, items in enumerate(by_concept.values()):
        out += items[: base + (1 if k in lucky else 0)]
    return out
