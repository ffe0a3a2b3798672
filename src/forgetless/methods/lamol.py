"""LAMOL (Sun et al., 2020): the model learns to write examples of its tasks, and before each
new experience writes pseudo-examples of the earlier ones to train on with the new data.

Two parts:
- an LM term on every training example: λ · next-token loss over the whole example (question,
  template and answer), so the model can generate examples in the task format;
- before experience t > 0: γ · |new training set| pseudo-examples sampled from the current model
  (top-k sampling from the start of the prompt template, until EOS), parsed back into question
  and answer with the template, and appended to the experience's training set. Samples that do
  not parse are dropped and counted. With a chat template the model writes the user turn, the
  assistant header and the answer, special tokens included (its user turn ends in EOS, so a
  sample runs to its second EOS).

The paper's distillation variant corresponds to `lamol+lwf` here (distillation of the previous
model's outputs composed on top). Cost: one extra forward/backward over the full sequence per
micro-batch for the LM term; generation before each experience.
"""

from __future__ import annotations

import math
import re
import time

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, NonNegativeInt

from forgetless.core.config import Section
from forgetless.core.seeding import derive_seed
from forgetless.data.types import Example
from forgetless.methods.hooks import Context, Method
from forgetless.methods.registry import register
from forgetless.models.sampling import sample_shared, template_prefix


class LamolConfig(Section):
    sampling_ratio: NonNegativeFloat = 0.2
    """γ: pseudo-examples generated per new training example (the paper's 0.2)."""
    lm_weight: NonNegativeFloat = 0.25
    """λ: weight of the LM term on whole examples (the paper's 0.25)."""
    top_k: NonNegativeInt = 20
    """Sample among the k most likely tokens (the paper's 20; 0 = no cut)."""
    max_length: int = Field(64, ge=4)
    """Tokens per generated example at most; longer samples are dropped."""


def parse_example(text: str, template: str) -> tuple[str, str] | None:
    """'Question: Q\\n Short Answer: A' → (Q, A) for the template that made it, else None."""
    before, after = (part.replace("{{", "{").replace("}}", "}")
                     for part in template.split("{question}", 1))
    pattern = re.escape(before.rstrip()) + r"\s*(.+?)" + re.escape(after) + r"\s*(.+)"
    m = re.fullmatch(pattern, text.strip())
    if not m:
        return None
    question, answer = m.group(1).strip(), m.group(2).strip()
    return (question, answer) if question and answer and "\n" not in answer else None


@register("lamol", LamolConfig,
          summary="LAMOL pseudo-replay: the model writes examples of earlier experiences")
class Lamol(Method):
    config: LamolConfig

    def __init__(self, config: LamolConfig):
        super().__init__(config)
        self.pseudo: list[Example] = []
        self.stats: dict = {}

    def before_experience(self, ctx: Context, exp) -> None:
        self.pseudo = []
        self.stats = {}
        n = math.ceil(self.config.sampling_ratio * len(exp.train))
        if exp.index == 0 or n == 0:
            return
        tok = ctx.tokenizer
        template = ctx.config.data.prompt_template
        prefix = template_prefix(tok, template)
        # a chat template's special tokens are part of the format the samples are parsed with
        special = [t for t in tok.all_special_tokens if t in template]
        eos_in_template = template.split("{question}", 1)[1].count(tok.eos_token or "\0")
        t0 = time.perf_counter()
        samples = sample_shared(
            ctx.accelerator, ctx.unwrapped_model, prefix, n, self.config.max_length,
            derive_seed(ctx.seed, "lamol", exp.index), top_k=self.config.top_k,
            eos_id=tok.eos_token_id, eos_count=1 + eos_in_template)
        for i, ids in enumerate(samples):
            if ids[-1] != tok.eos_token_id:
                continue  # ran out of length: not a whole example
            text = tok.decode(ids[:-1], skip_special_tokens=not special)
            bos = tok.bos_token
            if special and bos and text.startswith(bos) and not template.startswith(bos):
                text = text[len(bos):]  # the BOS the tokenizer adds itself
            parsed = parse_example(text, template)
            if parsed:
                self.pseudo.append(Example(f"lamol/{exp.index}/{i}", *parsed, "pseudo", "pseudo"))
        self.stats = {"generated": n, "kept": len(self.pseudo),
                      "generation_s": time.perf_counter() - t0,
                      "digest": ctx.agreed_digest("lamol samples", samples)}

    def expected_train_examples(self, experience: int, n_experiences: int, planned: int,
                                seen: int) -> int:
        if experience == 0:
            return planned
        return planned + math.ceil(self.config.sampling_ratio * planned)  # if all parse

    def train_examples(self, ctx: Context, exp, examples: list[Example]) -> list[Example]:
        return [*examples, *self.pseudo]

    def extra_loss(self, ctx: Context, batch, outputs) -> torch.Tensor | None:
        if not self.config.lm_weight:
            return None
        mask = batch["attention_mask"]
        logits = ctx.model(input_ids=batch["input_ids"], attention_mask=mask,
                           position_ids=batch["position_ids"], use_cache=False).logits
        # Left padding: a row's first real token would be "predicted" from the pad before it;
        # only positions whose input and target are both real tokens carry loss.
        real = (mask[:, 1:] == 1) & (mask[:, :-1] == 1)
        targets = batch["input_ids"][:, 1:].masked_fill(~real, -100)
        lm = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), targets.flatten(),
                             ignore_index=-100)
        return self.config.lm_weight * lm

    def experience_stats(self) -> dict:
        return self.stats
