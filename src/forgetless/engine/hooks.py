"""The method protocol: the hooks the training loop calls, and the context it passes.

A method implements only the hooks it needs (the base class gives no-op defaults). The loop calls
every active method's hook in the order of `config.method` ("kif+replay+sam" → kif, replay, sam).

Order of calls, per run / experience / optimizer step:

    setup(ctx)                                   once, after model and stream exist
    for each experience:
        before_experience(ctx, exp)
        examples = train_examples(ctx, exp, examples)   # replay mixes its buffer in here
        for each optimizer step:
            compute_grads():                     # all accumulation micro-batches
                loss = answer NLL + sum(extra_loss(ctx, batch, outputs))  # EWC, LwF, KL …
                backward
            on_gradients(ctx)                    # full-step gradients, before clipping
            optimizer_step(ctx, compute_grads)   # at most one method owns it (SAM); else plain
            after_optimizer_step(ctx)            # KIF importance update
        after_experience(ctx, exp)               # fusion, Fisher, buffer update
    state_dict() / load_state_dict(state)        # saved after every experience, for resume

State that must agree across processes (buffers, samples, scores, norms) is the method's job:
use `ctx.accelerator` (gather / reduce / broadcast) or derive it from `ctx.seed` identically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from accelerate import Accelerator
    from pydantic import BaseModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from forgetless.config import RunConfig
    from forgetless.data.types import Example, Experience, Stream


@dataclass
class Context:
    """What a method may look at and use. Built once per run by the loop."""

    config: RunConfig
    accelerator: Accelerator
    model: torch.nn.Module
    """The model as prepared by accelerate (DDP-wrapped under multi-process training)."""
    tokenizer: PreTrainedTokenizerBase
    stream: Stream
    seed: int
    optimizer: torch.optim.Optimizer | None = None
    experience_index: int = -1
    global_step: int = 0
    """Optimizer steps taken so far over the whole run."""

    @property
    def unwrapped_model(self) -> PreTrainedModel:
        return self.accelerator.unwrap_model(self.model)

    def trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(n, p) for n, p in self.unwrapped_model.named_parameters() if p.requires_grad]

    def clip_and_step(self) -> None:
        """The plain update from the gradients in .grad: clip the global norm, step, zero.
        A method that owns the optimizer step calls this once it has the gradients it wants."""
        max_norm = self.config.train.max_grad_norm
        if max_norm is not None:
            self.accelerator.clip_grad_norm_(self.model.parameters(), max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


class Method:
    """Base class with no-op hooks. Subclasses set `config` from their registered config class."""

    name: str = "method"

    def __init__(self, config: BaseModel | None = None):
        self.config = config

    def setup(self, ctx: Context) -> None:
        pass

    def before_experience(self, ctx: Context, exp: Experience) -> None:
        pass

    def train_examples(
        self, ctx: Context, exp: Experience, examples: list[Example]
    ) -> list[Example]:
        return examples

    def extra_loss(
        self, ctx: Context, batch: dict[str, torch.Tensor], outputs: Any
    ) -> torch.Tensor | None:
        return None

    def on_gradients(self, ctx: Context) -> None:
        pass

    def optimizer_step(self, ctx: Context, compute_grads: Callable[[], float]) -> None:
        """Only for methods registered with owns_optimizer_step=True. Gradients of the step are
        already in .grad; `compute_grads()` zeroes them and recomputes over the same
        micro-batches (returns the loss). The method must leave the step taken."""
        raise NotImplementedError

    def after_optimizer_step(self, ctx: Context) -> None:
        pass

    def after_experience(self, ctx: Context, exp: Experience) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """Nested dict of tensors and JSON values; everything needed to resume."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
