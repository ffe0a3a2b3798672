"""Sharpness-aware minimization (PAPERS.md §2): step with the gradient taken at the worst point
within radius ρ, which leads to flatter minima that forget less.

Per optimizer step, with g the gradient of the *whole* step (every accumulation micro-batch, every
process, every method's extra loss — what the loop left in .grad):

    SAM  : ε = ρ · g / ‖g‖
    ASAM : ε = ρ · T² g / ‖T g‖,  T = |θ| + η   (Kwon et al., 2021: scale-invariant radius)
    θ ← θ + ε;  g' = gradient of the same micro-batches at θ + ε;  θ ← θ (restored);  step(g')

θ is restored from a copy, as the reference implementation does, not by subtracting ε: in floating
point θ + ε − ε is not θ (until 2026-12-03 forgetless subtracted; the difference is ~1e-7 per step).

Only trainable parameters are perturbed (with LoRA: only the adapters). ‖g‖ is the global norm:
under DDP every process holds the same averaged gradients after the backward pass, so the local
norm over all trainable parameters is the global one.

Cheaper variant (`every: k`): a full SAM step only every k-th step; in between either reuse the
last ε (`between: reuse`, one pass at θ + ε_last) or take a plain step (`between: plain`).
Average cost (1 + 1/k) forward/backward passes per step instead of 2.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt

from forgetless.core.config import Section
from forgetless.methods.hooks import Context, Method
from forgetless.methods.registry import register


class SAMConfig(Section):
    rho: PositiveFloat = 0.05
    """Radius ρ of the neighbourhood (SAM's default 0.05; ASAM typically uses larger, e.g. 0.5)."""
    adaptive: bool = False
    """ASAM: scale the perturbation per weight by (|θ| + η)."""
    eta: NonNegativeFloat = 0.01
    """ASAM's η, keeping zero weights perturbable."""
    every: PositiveInt = 1
    """A full SAM step (two passes) every k-th optimizer step; 1 = every step."""
    between: Literal["reuse", "plain"] = "reuse"
    """On the other steps: "reuse" the last perturbation (one pass at θ + ε_last) or take a
    "plain" step (one pass at θ)."""


def perturbation(params: list[torch.nn.Parameter], rho: float, adaptive: bool,
                 eta: float) -> list[torch.Tensor]:
    """ε for each parameter from its .grad (zeros where a parameter got no gradient)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    if adaptive:
        scale = [p.detach().abs() + eta for p in params]
        norm = torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(s * g) for s, g in zip(scale, grads, strict=True)]))
        return [rho * s * s * g / (norm + 1e-12) for s, g in zip(scale, grads, strict=True)]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    return [rho * g / (norm + 1e-12) for g in grads]


@register("sam", SAMConfig, owns_optimizer_step=True,
          summary="sharpness-aware minimization (SAM / ASAM), optionally every k-th step")
class SAM(Method):
    config: SAMConfig

    def __init__(self, config: SAMConfig):
        super().__init__(config)
        self.eps: list[torch.Tensor] | None = None
        self.theta: list[torch.Tensor] | None = None  # θ, while the weights hold θ + ε
        self.passes = 0
        self.steps = 0

    def _full_step(self, ctx: Context) -> bool:
        return ctx.global_step % self.config.every == 0 or self.eps is None

    def before_step(self, ctx: Context) -> None:
        if self.config.between == "reuse" and not self._full_step(ctx):
            self._perturb(ctx)

    @torch.no_grad()
    def _perturb(self, ctx: Context) -> None:
        params = [p for _, p in ctx.trainable_parameters()]
        self.theta = [p.detach().clone() for p in params]
        for p, e in zip(params, self.eps, strict=True):
            p.add_(e)

    @torch.no_grad()
    def _restore(self, ctx: Context) -> None:
        for (_, p), t in zip(ctx.trainable_parameters(), self.theta, strict=True):
            p.copy_(t)
        self.theta = None

    def optimizer_step(self, ctx: Context, compute_grads) -> None:
        self.steps += 1
        if self.theta is not None:  # reuse: the loop's pass was already at θ + ε_last
            self._restore(ctx)
            self.passes += 1
        elif self._full_step(ctx):
            c = self.config
            params = [p for _, p in ctx.trainable_parameters()]
            with torch.no_grad():
                self.eps = perturbation(params, c.rho, c.adaptive, c.eta)
            self._perturb(ctx)
            compute_grads()
            self._restore(ctx)
            self.passes += 2
        else:
            self.passes += 1
        ctx.clip_and_step()

    def after_experience(self, ctx: Context, exp) -> None:
        self.eps = None  # the next experience starts with a full SAM step

    def step_state(self) -> dict:
        # between steps the weights never hold θ + ε (reuse shifts inside a step only)
        return {"eps": self.eps or [], "passes": self.passes, "steps": self.steps}

    def load_step_state(self, ctx: Context, state: dict) -> None:
        eps = state["eps"]
        self.eps = [e.to(p.device) for (_, p), e in zip(ctx.trainable_parameters(), eps,
                                                        strict=True)] if eps else None
        self.passes, self.steps = state["passes"], state["steps"]

    def experience_stats(self) -> dict:
        stats = {"passes_per_step": self.passes / self.steps if self.steps else None}
        self.passes = self.steps = 0
        return stats
