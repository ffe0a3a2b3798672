"""The method protocol: the hooks the training loop calls, and the context it passes.

A method implements only the hooks it needs (the base class gives no-op defaults). The loop calls
every active method's hook in the order of `config.method` ("kif+replay+sam" → kif, replay, sam).

Order of calls, per run / experience / optimizer step:

    configure_model(model)                       once, before the optimizer exists (freeze)
    setup(ctx)                                   once, after model and stream exist
    for each experience:
        before_experience(ctx, exp)
        examples = train_examples(ctx, exp, examples)   # replay mixes its buffer in here
        rows = batch_size - sum(reserved_rows(config, world, e))    # new examples per step
        for each optimizer step:
            before_step(ctx)                     # SAM's cheap variant re-applies its last ε
            compute_grads():                     # all accumulation micro-batches
                loss = answer NLL + sum(extra_loss(ctx, batch, outputs))  # EWC, LwF, KL …
                backward
            on_gradients(ctx)                    # full-step gradients, before clipping
            optimizer_step(ctx, compute_grads)   # at most one method owns it (SAM); else plain
            after_optimizer_step(ctx)            # KIF importance update
        after_experience(ctx, exp)               # fusion, Fisher, buffer update
        experience_stats()                       # e.g. samples generated, seconds spent
    state_dict() / load_state_dict(state)        # saved after every experience, for resume
    step_state() / load_step_state(ctx, state)       # what changes inside an experience, saved by
                                                 # mid-experience checkpoints (train.checkpoint_every)

Resuming inside experience e replays `before_experience` and `train_examples` from the state
after e − 1 (same weights, same seed, so the same teacher, samples and examples), then restores
the weights, the optimizer and each method's `step_state()` as they were at the checkpoint.

`extra_loss` returns a mean over its micro-batch; the loop weights it by the micro-batch's share of
the step, so a term that is a mean per example enters once per step whatever the layout. A method
that feeds rows of its own into every step (replay with batch mixing, self-replay) reserves them
with `reserved_rows` and picks them from (ctx.global_step, ctx.micro_index, ctx.process_index),
which a re-run of `compute_grads` (SAM) sees unchanged.

State that must agree across processes (buffers, samples, scores, norms) is the method's job:
use `ctx.accelerator` (gather / reduce / broadcast) or derive it from `ctx.seed` identically.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from accelerate import Accelerator
    from pydantic import BaseModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from forgetless.core.config import RunConfig
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
    micro_index: int = 0
    """Which of the step's `train.grad_accum` micro-batches is being computed."""
    pristine: bool = True
    """No training has touched the model yet (not resumed, first experience not trained)."""
    eval_batch_size: int | None = None
    """The scoring batch size `eval.batch_size: auto` settled on (None until it is first used)."""
    _base_model: torch.nn.Module | None = field(default=None, repr=False)

    def frozen_copy(self) -> torch.nn.Module:
        """A frozen, eval-mode copy of the model as it is now (teachers, samplers)."""
        model = copy.deepcopy(self.unwrapped_model).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def previous_model(self) -> torch.nn.Module:
        """The model as it is now, frozen, for a teacher or sampler over the coming experience.
        With LoRA: the training model run with a snapshot of its trainable (adapter) weights
        (`WithSnapshot`: only those are copied); otherwise a full frozen copy."""
        if self.config.model.lora.enabled:
            return WithSnapshot(self.unwrapped_model)
        return self.frozen_copy()

    def base_model(self) -> torch.nn.Module:
        """The model as it was before any training (no adapters), frozen, on the training device.
        With LoRA: the training model itself with its adapters switched off per call
        (`WithoutAdapters`, no second copy); otherwise a copy before training, or a reload from
        the model's source after a resume."""
        if self._base_model is None:
            from forgetless.models.load import load_model

            if self.config.model.lora.enabled:
                self._base_model = WithoutAdapters(self.unwrapped_model)
            elif self.pristine:
                self._base_model = self.frozen_copy()  # cheaper than a reload
            else:
                model = load_model(self.config.model, self.tokenizer, self.seed).to(
                    self.accelerator.device)
                for p in model.parameters():
                    p.requires_grad_(False)
                self._base_model = model.eval()
        return self._base_model

    @property
    def unwrapped_model(self) -> PreTrainedModel:
        return self.accelerator.unwrap_model(self.model)

    def my_rows(self, rows_per_step: int) -> slice:
        """Which of a step's `rows_per_step` rows (a multiple of processes × grad_accum) belong to
        this process's current micro-batch, laid out as the loop lays out examples."""
        world = self.accelerator.num_processes
        per_micro = rows_per_step // (world * self.config.train.grad_accum)
        start = (self.micro_index * world + self.accelerator.process_index) * per_micro
        return slice(start, start + per_micro)

    def agreed_digest(self, what: str, value: Any) -> str:
        """sha256 of a JSON-able value, checked to be the same on every process (replay buffers,
        generated samples). A mismatch would silently train each rank on different data."""
        digest = hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]
        if self.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            digests = gather_object([digest])
            if len(set(digests)) != 1:
                raise RuntimeError(f"{what} differs between processes: {digests}")
        return digest

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


class FrozenView(torch.nn.Module):
    """A frozen view of a live model for teachers and samplers: holds no weights of its own and
    the live model is not a submodule, so nothing done to the view (eval/train) changes the
    training model; every call runs the live model in eval mode, without gradients, through
    `_call` (what the view changes about it)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.__dict__["model"] = model
        self.training = False

    def train(self, mode: bool = True) -> FrozenView:
        return self  # always frozen, in eval mode

    def parameters(self, recurse: bool = True):
        return self.model.parameters(recurse)

    @property
    def config(self):
        return self.model.config

    @torch.no_grad()
    def forward(self, *args, **kwargs):
        was_training = self.model.training
        self.model.eval()
        try:
            return self._call(args, kwargs)
        finally:
            self.model.train(was_training)

    def _call(self, args: tuple, kwargs: dict):
        raise NotImplementedError


class WithoutAdapters(FrozenView):
    """The base model inside a peft model: the same weights, every call run with the adapters
    disabled."""

    def _call(self, args: tuple, kwargs: dict):
        with self.model.disable_adapter():
            return self.model(*args, **kwargs)


class Method:
    """Base class with no-op hooks. Subclasses set `config` from their registered config class."""

    name: str = "method"
    rows_option: str | None = None
    """The option that sets `rows_per_step` (named in the warning when processes round it)."""

    def __init__(self, config: BaseModel | None = None):
        self.config = config

    def configure_model(self, model: torch.nn.Module) -> None:
        """Change which parameters train (`requires_grad`), before the optimizer is built and
        before a checkpoint is restored; called in every run, resumed ones too."""

    def setup(self, ctx: Context) -> None:
        pass

    def before_experience(self, ctx: Context, exp: Experience) -> None:
        pass

    def train_examples(
        self, ctx: Context, exp: Experience, examples: list[Example]
    ) -> list[Example]:
        """The experience's training set; a method may only append to it."""
        return examples

    def reserved_rows(self, config: RunConfig, world: int, experience: int) -> int:
        """Rows of every global batch (over `world` processes) this method fills itself during
        `experience`, in `extra_loss`; the loop takes that many fewer of its examples per step.
        Must depend only on the arguments (it is checked before the run starts)."""
        return 0

    def expected_train_examples(self, experience: int, n_experiences: int, planned: int,
                                seen: int) -> int:
        """How many examples `train_examples` will return for `experience`, given `planned`
        (what it receives) and `seen` (the stream's training examples before it): an estimate for
        the time left that progress lines print; `train_examples` alone decides."""
        return planned

    def rows_per_step(self, config: RunConfig, world: int, experience: int) -> int:
        """Rows of its own data this method brings into every global batch during `experience`,
        reserved or added (self-replay's KL rows). Where this is rounded to a multiple of
        processes × accumulation, one process and several train different protocols, and the
        run says so before it starts (`engine.loop.layout_notes`)."""
        return self.reserved_rows(config, world, experience)

    def before_step(self, ctx: Context) -> None:
        pass

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

    def experience_stats(self) -> dict[str, Any]:
        """Numbers about the experience just trained (JSON values), kept in results.json."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Nested dict of tensors and JSON values; everything needed to resume."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def step_state(self) -> dict[str, Any]:
        """Nested dict of tensors and JSON values: what the hooks inside an experience have
        changed since `before_experience` (accumulators, cursors, counters). Everything else is
        rebuilt by replaying `before_experience`/`train_examples` on resume."""
        return {}

    def load_step_state(self, ctx: Context, state: dict[str, Any]) -> None:
        pass


class WithSnapshot(FrozenView):
    """A model as it was when this view was made, without a second copy of its frozen weights:
    the trainable parameters (with LoRA, the adapters) are copied, and every call runs the live
    model with those copies in their place (`torch.func.functional_call`: nothing in the live
    model is modified, so its autograd graph and optimizer are untouched). Valid while only
    trainable parameters change, as with LoRA."""

    def __init__(self, model: torch.nn.Module):
        super().__init__(model)
        self.__dict__["snapshot"] = {name: p.detach().clone()
                                     for name, p in model.named_parameters() if p.requires_grad}

    def _call(self, args: tuple, kwargs: dict):
        return torch.func.functional_call(self.model, self.snapshot, args, kwargs, strict=False)
