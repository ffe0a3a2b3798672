"""Self-generated replay (PAPERS.md §3): the model samples its own replay data.

Before every experience a frozen copy π of the model is taken (or the base model is kept); π
samples replay texts — unconditionally from BOS, or prompted with the start of the task's prompt
template — by ancestral sampling at temperature 1 with EOS disabled, so every sample has the full
length. Samples are made `buffer_steps` optimizer steps ahead, each used once, then regenerated.
Each step adds `rows` replay samples to the new examples and the loss becomes

    kl      : NTP(new) + λ · mean over replay tokens of KL(π ‖ θ)
    ntp     : NTP(new) + λ · NTP(replay)
    replace : ⌊λ·B⌋ of the B rows of every step are replay samples instead of new examples.

`replace` is applied as NTP(new) + f/(1−f) · NTP(replay) with f the replaced share: the paper's
mean over a batch of which a share f is replay, times 1/(1−f). AdamW is invariant to that
constant factor (up to its ε), so the update is the paper's.
"""

from __future__ import annotations

import math
import time
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from forgetless.core.config import Section
from forgetless.core.errors import ConfigError
from forgetless.core.seeding import derive_seed
from forgetless.methods.hooks import Context, Method
from forgetless.methods.registry import register
from forgetless.models.sampling import sample_shared, start_tokens, template_prefix


class SelfReplayConfig(Section):
    loss: Literal["kl", "ntp", "replace"] = "kl"
    """"kl": distil π's next-token distribution on the samples; "ntp": train on the samples as
    text; "replace": overwrite a share of every batch with samples."""
    weight: NonNegativeFloat = 10.0
    """λ. For kl/ntp the weight of the replay term (the paper's 10); for replace the share of
    each batch's rows replaced by samples (0 ≤ λ < 1)."""
    source: Literal["previous", "base"] = "previous"
    """π: a copy of the model taken before each experience, or the base model throughout."""
    prompt: Literal["bos", "template"] = "bos"
    """"bos": unconditional samples from BOS; "template": start from the prompt template's text
    before the question, so π writes question/answer pairs in the task's format."""
    length: int = Field(64, ge=2)
    """Tokens per sample (the prefix included)."""
    rows: PositiveInt | None = None
    """Replay samples per optimizer step (kl/ntp), over all processes. Default: a quarter of
    train.batch_size (the paper's 64 vs 256), rounded up to a multiple of processes × grad_accum."""
    buffer_steps: PositiveInt = 16
    """Steps' worth of samples generated at a time."""
    temperature: PositiveFloat = 1.0
    """Sampling temperature (the paper: 1, no top-k/top-p)."""

    @model_validator(mode="after")
    def _check(self) -> SelfReplayConfig:
        if self.loss == "replace" and self.weight >= 1:
            raise ValueError("weight is the share of rows replaced when loss is 'replace'; "
                             "it must be < 1")
        if self.loss == "replace" and self.rows is not None:
            raise ValueError("rows is set by weight when loss is 'replace'; leave it unset")
        return self


@register("self_replay", SelfReplayConfig,
          summary="self-generated replay: the model's own samples, as KL, NTP or replaced rows")
class SelfReplay(Method):
    config: SelfReplayConfig
    rows_option = "self_replay.rows"

    def __init__(self, config: SelfReplayConfig):
        super().__init__(config)
        self.teacher: torch.nn.Module | None = None
        self.buffer: torch.Tensor | None = None
        self.prefix_len = 1
        self.cursor = 0  # steps of the buffer used so far
        self.refills = 0
        self.stats: dict = {}

    def step_rows(self, config, world: int) -> int:
        parts = world * config.train.grad_accum
        c = self.config
        if c.loss == "replace":
            rows = math.floor(c.weight * config.train.batch_size)
            if rows % parts:
                raise ConfigError(
                    f"self_replay.weight={c.weight}: replaces {rows} rows per step, which must be "
                    f"a multiple of processes × train.grad_accum = {world} × "
                    f"{config.train.grad_accum}")
            return rows
        if c.rows is not None:
            if c.rows % parts:
                raise ConfigError(f"self_replay.rows={c.rows} must be a multiple of processes × "
                                  f"train.grad_accum = {world} × {config.train.grad_accum}")
            return c.rows
        return parts * math.ceil(config.train.batch_size / 4 / parts)

    def reserved_rows(self, config, world: int, experience: int) -> int:
        return self.step_rows(config, world) if self.config.loss == "replace" else 0

    def rows_per_step(self, config, world: int, experience: int) -> int:
        return self.step_rows(config, world)

    def before_experience(self, ctx: Context, exp) -> None:
        if self.config.source == "base":
            self.teacher = ctx.base_model()
        else:
            self.teacher = ctx.previous_model()
        self.rows = self.step_rows(ctx.config, ctx.accelerator.num_processes)
        self.refills = 0
        self.stats = {"samples": 0, "generation_s": 0.0, "digest": None, "rows_per_step": self.rows}
        self._refill(ctx)

    def _refill(self, ctx: Context) -> None:
        c = self.config
        prefix = (start_tokens(ctx.tokenizer) if c.prompt == "bos"
                  else template_prefix(ctx.tokenizer, ctx.config.data.prompt_template))
        self.prefix_len = len(prefix)
        if self.rows == 0:
            self.buffer = None
            return
        n = self.rows * c.buffer_steps
        t0 = time.perf_counter()
        samples = sample_shared(
            ctx.accelerator, self.teacher, prefix, n, max(c.length, len(prefix) + 1),
            derive_seed(ctx.seed, "self-replay", ctx.experience_index, self.refills),
            temperature=c.temperature)
        self.stats["generation_s"] += time.perf_counter() - t0
        self.stats["samples"] += n
        self.stats["digest"] = ctx.agreed_digest("self_replay samples", samples)
        self.buffer = torch.tensor(samples, device=ctx.accelerator.device)
        self.cursor = 0
        self.refills += 1

    def extra_loss(self, ctx: Context, batch, outputs) -> torch.Tensor | None:
        if self.buffer is None:
            return None
        if self.cursor == self.config.buffer_steps:  # used up: refill (all processes are here)
            self._refill(ctx)
        step = self.buffer[self.cursor * self.rows:(self.cursor + 1) * self.rows]
        ids = step[ctx.my_rows(self.rows)]
        # Only what π chose is a target: the fixed prefix is not.
        first = self.prefix_len - 1
        logits = ctx.model(input_ids=ids, use_cache=False).logits[:, first:-1].float()
        if self.config.loss == "kl":
            with torch.no_grad():
                target = F.log_softmax(
                    self.teacher(input_ids=ids, use_cache=False).logits[:, first:-1].float(), -1)
            logp = F.log_softmax(logits, -1)
            term = (target.exp() * (target - logp)).sum(-1).mean()
        else:
            term = F.cross_entropy(logits.flatten(0, 1), ids[:, first + 1:].flatten())
        if self.config.loss == "replace":
            share = self.rows / ctx.config.train.batch_size
            return term * share / (1 - share)
        return self.config.weight * term

    def after_optimizer_step(self, ctx: Context) -> None:
        if self.buffer is None:
            return
        self.cursor += 1

    def after_experience(self, ctx: Context, exp) -> None:
        self.teacher = None
        self.buffer = None

    def step_state(self) -> dict:
        return {"buffer": self.buffer if self.buffer is not None else [], "cursor": self.cursor,
                "refills": self.refills, "stats": self.stats}

    def load_step_state(self, ctx: Context, state: dict) -> None:
        buffer = state["buffer"]
        self.buffer = (buffer.to(ctx.accelerator.device) if isinstance(buffer, torch.Tensor)
                       else None)
        self.cursor, self.refills = state["cursor"], state["refills"]
        self.stats = dict(state["stats"])

    def experience_stats(self) -> dict:
        s = self.stats
        rate = s["samples"] / s["generation_s"] if s.get("generation_s") else None
        return {**s, "samples_per_s": rate}
