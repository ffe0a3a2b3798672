"""The loss landscape around a model: surfaces, ρ-sharpness, top Hessian eigenvalue.

All measures use the answer-token NLL (the training loss) over a fixed list of examples and
touch only trainable parameters (with LoRA: the adapters). Random directions are
filter-normalised (Li et al., 2018): each output row of a weight matrix gets the norm of the
same row of the weights, so distances are comparable across layers and models; 1-D parameters
(norms, biases) get no component, as in that paper.

- `surface`: loss at θ + a·d1 (+ b·d2) on a grid of a (and b).
- `rho_sharpness`: max loss rise within an L2 ball of radius ρ, by normalised gradient ascent
  projected on the ball (the first step is SAM's ε).
- `top_eigenvalue`: power iteration on Hessian-vector products (double backward).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from forgetless.data.collate import Encoded, answer_nll, collate, forward_answer_logits


class Loss:
    """Token-mean answer NLL of `items` under `model`, batched; differentiable or not."""

    def __init__(self, model, items: list[Encoded], pad_id: int, batch_size: int = 16):
        self.model = model
        self.batches = [collate(items[i:i + batch_size], pad_id)
                        for i in range(0, len(items), batch_size)]
        self.n_tokens = sum(it.n_answer for it in items)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.device = self.params[0].device

    def _sum(self, batch) -> torch.Tensor:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        return answer_nll(forward_answer_logits(self.model, batch).logits, batch["labels"]).sum()

    @torch.no_grad()
    def value(self) -> float:
        return sum(float(self._sum(b)) for b in self.batches) / self.n_tokens

    def gradient(self, create_graph: bool = False) -> list[torch.Tensor]:
        total = [torch.zeros_like(p) for p in self.params]
        for b in self.batches:
            grads = torch.autograd.grad(self._sum(b) / self.n_tokens, self.params,
                                        create_graph=create_graph, allow_unused=True)
            total = [t + (g if g is not None else 0) for t, g in zip(total, grads, strict=True)]
        return total

    def hvp(self, v: list[torch.Tensor]) -> list[torch.Tensor]:
        # The fused attention kernels have no double backward; the math one does.
        with sdpa_kernel(SDPBackend.MATH):
            return self._hvp(v)

    def _hvp(self, v: list[torch.Tensor]) -> list[torch.Tensor]:
        out = [torch.zeros_like(p) for p in self.params]
        for b in self.batches:
            grads = torch.autograd.grad(self._sum(b) / self.n_tokens, self.params,
                                        create_graph=True, allow_unused=True)
            dot = sum((g * x).sum() for g, x in zip(grads, v, strict=True) if g is not None)
            hv = torch.autograd.grad(dot, self.params, allow_unused=True)
            out = [o + (h.detach() if h is not None else 0) for o, h in zip(out, hv, strict=True)]
        return out


def _norm(vs: list[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in vs]))


@torch.no_grad()
def _place(params: list[torch.nn.Parameter], base: list[torch.Tensor],
           *terms: tuple[float, list[torch.Tensor]]) -> None:
    """θ = base + Σ α·d, computed from `base` every time: θ + α·d − α·d is not θ in floating
    point, and a measure that shifted and shifted back would leave the trained weights moved
    (by ~1e-7, enough to change a later step's scores)."""
    for i, p in enumerate(params):
        p.copy_(base[i])
        for alpha, d in terms:
            p.add_(d[i], alpha=alpha)


def _snapshot(params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def filter_normalized_direction(params: list[torch.nn.Parameter], seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for p in params:
        d = torch.randn(p.shape, generator=gen).to(p.device, p.dtype)
        if p.dim() <= 1:
            out.append(torch.zeros_like(p))
            continue
        rows_d = d.flatten(1).norm(dim=1, keepdim=True)
        rows_p = p.detach().flatten(1).norm(dim=1, keepdim=True)
        out.append((d.flatten(1) * rows_p / (rows_d + 1e-12)).view_as(p))
    return out


Tick = Callable[[int], object]
"""A progress callback: called with 1 after each unit of work (a loss, gradient or HVP pass)."""


def _no_tick(_n: int) -> None:
    return None


def surface(loss: Loss, directions: list[list[torch.Tensor]], coords: list[float],
            tick: Tick = _no_tick):
    """1 direction: list of losses at each coordinate; 2: a len(coords)² grid (rows: d2).
    `tick` after each point. The weights are as they were afterwards, bit for bit."""
    params, base = loss.params, _snapshot(loss.params)
    try:
        if len(directions) == 1:
            out = []
            for a in coords:
                _place(params, base, (a, directions[0]))
                out.append(loss.value())
                tick(1)
            return out
        d1, d2 = directions
        grid = []
        for b in coords:
            row = []
            for a in coords:
                _place(params, base, (a, d1), (b, d2))
                row.append(loss.value())
                tick(1)
            grid.append(row)
        return grid
    finally:
        _place(params, base)


def rho_sharpness(loss: Loss, rho: float, steps: int = 3, tick: Tick = _no_tick) -> dict:
    """max over the ascent iterates of L(θ + ε) − L(θ), ‖ε‖ ≤ ρ; `tick` after each step. The
    weights are as they were afterwards, bit for bit."""
    params, theta = loss.params, _snapshot(loss.params)
    base = loss.value()
    eps = [torch.zeros_like(p) for p in params]
    best = 0.0
    step = rho / max(steps, 1) * 2  # big enough to reach the sphere in a step or two
    try:
        for _ in range(steps):
            _place(params, theta, (1.0, eps))
            g = loss.gradient()
            gn = float(_norm(g))
            if gn == 0:
                break
            eps = [e + step * x / gn for e, x in zip(eps, g, strict=True)]
            en = float(_norm(eps))
            if en > rho:
                eps = [e * (rho / en) for e in eps]
            _place(params, theta, (1.0, eps))
            best = max(best, loss.value() - base)
            tick(1)
    finally:
        _place(params, theta)
    return {"loss": base, "rho": rho, "sharpness": best}


def top_eigenvalue(loss: Loss, iters: int = 20, seed: int = 0, tol: float = 1e-4,
                   tick: Tick = _no_tick) -> dict:
    """Power iteration (at most `iters` HVPs, fewer once the estimate settles: it changed by at
    most `tol`, relative, in one iteration); `tick` after each. `settled` is False where it ran
    out of iterations first. Every estimate is a Rayleigh quotient v·Hv, which never exceeds the
    top eigenvalue, so an unsettled one is a lower bound.

    Power iteration finds the eigenvalue of largest magnitude. Where that one is negative (the
    point is a saddle, not a minimum), a second run on H − λ·I, whose eigenvalues are all ≥ 0
    once λ is the most negative one, finds the top one (`negative_eigenvalue`: λ; `iterations`
    counts both runs)."""
    value, used, settled = _power_iteration(loss.hvp, loss.params, iters, seed, tol, tick)
    out = {"top_eigenvalue": value, "iterations": used, "settled": settled}
    if value < 0:
        def shifted(v: list[torch.Tensor]) -> list[torch.Tensor]:
            return [h - value * x for h, x in zip(loss.hvp(v), v, strict=True)]

        top, more, top_settled = _power_iteration(shifted, loss.params, iters, seed, tol, tick)
        out = {"top_eigenvalue": top + value, "iterations": used + more,
               "settled": settled and top_settled, "negative_eigenvalue": value}
    return out


def _power_iteration(matvec: Callable[[list[torch.Tensor]], list[torch.Tensor]],
                     params: list[torch.nn.Parameter], iters: int, seed: int, tol: float,
                     tick: Tick) -> tuple[float, int, bool]:
    """(the dominant eigenvalue's estimate, matrix-vector products used, settled)."""
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen).to(p.device, p.dtype) for p in params]
    n = _norm(v)
    v = [x / n for x in v]
    value, settled, used = 0.0, False, 0
    for i in range(iters):
        hv = matvec(v)
        used += 1
        tick(1)
        new = float(sum((a * b).sum() for a, b in zip(v, hv, strict=True)))
        n = float(_norm(hv))
        if n == 0:  # v is in the null space: v·Hv = 0 is exact
            value, settled = new, True
            break
        v = [x / n for x in hv]
        settled = i > 0 and abs(new - value) <= tol * max(abs(value), 1e-12)
        value = new
        if settled:
            break
    return value, used, settled


def direction_coords(radius: float, points: int) -> list[float]:
    if points < 2:
        return [0.0]
    return [radius * (2 * k / (points - 1) - 1) for k in range(points)]


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def flatness(model, items: list[Encoded], pad_id: int, rho: float, ascent_steps: int,
             hessian_iters: int, seed: int = 0, tick: Tick = _no_tick) -> dict:
    """ρ-sharpness and top Hessian eigenvalue of the answer NLL over `items` (weights unchanged);
    `tick` after each of the (at most) `ascent_steps + hessian_iters` passes."""
    was_training = model.training
    model.eval()  # no dropout: the measures are deterministic
    loss = Loss(model, items, pad_id)
    out = rho_sharpness(loss, rho, ascent_steps, tick)
    if hessian_iters:
        out.update(top_eigenvalue(loss, hessian_iters, seed, tick=tick))
    model.train(was_training)
    return out
