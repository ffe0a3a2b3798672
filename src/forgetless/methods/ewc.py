"""Elastic weight consolidation, online variant (Kirkpatrick et al. 2017; Schwarz et al. 2018).

After each experience, the diagonal empirical Fisher F of the training NLL (the answer, and the
earlier assistant turns with `data.history_loss`) is estimated from that experience's training
examples (one backward pass per example, squared gradients, averaged),
folded into a running Fisher `F ← γ·F + F_new`, and the weights θ* are anchored. While training
later experiences the loss gains `λ/2 · Σ F · (θ − θ*)²` on the trainable parameters.
Under several processes each computes the Fisher on its share of the examples and the sums are
all-reduced, so every process holds the same F.
"""

from __future__ import annotations

import torch
from pydantic import Field, NonNegativeFloat, PositiveInt

from forgetless.core.config import Section
from forgetless.data.collate import answer_nll, collate, encode_all, forward_answer_logits
from forgetless.methods.hooks import Context, Method
from forgetless.methods.registry import register


class EWCConfig(Section):
    lam: NonNegativeFloat = 1000.0
    """Penalty strength λ (0 = sequential fine-tuning)."""
    gamma: float = Field(1.0, ge=0.0, le=1.0)
    """Decay of the running Fisher (online EWC): F ← γ·F + F_new; 1 sums all experiences."""
    fisher_examples: PositiveInt = 64
    """Training examples per experience used to estimate the Fisher (the first N)."""


@register("ewc", EWCConfig, summary="elastic weight consolidation (online, diagonal Fisher)")
class EWC(Method):
    config: EWCConfig

    def __init__(self, config: EWCConfig):
        super().__init__(config)
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def extra_loss(self, ctx: Context, batch, outputs) -> torch.Tensor | None:
        if not self.fisher:
            return None
        penalty = sum(
            (self.fisher[name] * (p - self.anchor[name]) ** 2).sum()
            for name, p in ctx.trainable_parameters()
        )
        return 0.5 * self.config.lam * penalty

    def after_experience(self, ctx: Context, exp) -> None:
        acc = ctx.accelerator
        model = ctx.unwrapped_model  # no DDP hooks: each process works on its own share
        params = dict(ctx.trainable_parameters())
        examples = exp.train[: self.config.fisher_examples]
        mine = examples[acc.process_index::acc.num_processes]
        items = encode_all(mine, ctx.tokenizer, ctx.config.data.prompt_template,
                           ctx.config.train.max_length, history=True)
        fisher = {name: torch.zeros_like(p) for name, p in params.items()}
        for item in items:
            model.zero_grad(set_to_none=True)
            batch = {k: v.to(acc.device) for k, v in
                     collate([item], ctx.tokenizer.pad_token_id).items()}
            outputs = forward_answer_logits(model, batch)
            answer_nll(outputs.logits, batch["labels"]).sum().backward()
            for name, p in params.items():
                if p.grad is not None:
                    fisher[name] += p.grad.detach() ** 2
        model.zero_grad(set_to_none=True)
        for name in fisher:
            new = acc.reduce(fisher[name], reduction="sum") / max(len(examples), 1)
            old = self.fisher.get(name)
            self.fisher[name] = new if old is None else self.config.gamma * old + new
            self.anchor[name] = params[name].detach().clone()

    def state_dict(self) -> dict:
        return {"fisher": self.fisher, "anchor": self.anchor}

    def load_state_dict(self, state: dict) -> None:
        self.fisher = dict(state.get("fisher", {}))
        self.anchor = dict(state.get("anchor", {}))
