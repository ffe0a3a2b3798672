"""SAM does what it claims, on a landscape where the answer is known: among minima of equal loss it
goes to a flatter one than plain descent, through the method's own optimizer step.

The loss ½·eˣ·y² has a valley of minima (y = 0) whose curvature eˣ grows with x. Plain descent
from (1, 1) falls into the valley near where it starts. At a point of the valley SAM's
perturbation ε = ρ·g/‖g‖ points across it, and the gradient at θ + ε has an x component
½·eˣ·ρ² > 0, so SAM keeps walking down the valley towards smaller curvature (Wen et al., 2022:
SAM's implicit bias along a manifold of minima). The integration test on the tiny language model
checks that flatness is recorded; whether SAM ends flatter there depends on the seed."""

from types import SimpleNamespace

import pytest
import torch

from forgetless.methods.sam import SAM, SAMConfig


def valley(p: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.exp(p[0]) * p[1] ** 2


def descend(method: SAM | None, steps: int = 1000, lr: float = 0.2) -> tuple[float, float]:
    """SGD from (1, 1), each step taken by `method` (None: a plain step). Returns the final
    loss and the curvature across the valley there, eˣ."""
    p = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    opt = torch.optim.SGD([p], lr=lr)

    def compute_grads():
        opt.zero_grad()
        valley(p).backward()

    ctx = SimpleNamespace(trainable_parameters=lambda: [("p", p)], global_step=0,
                          clip_and_step=opt.step)
    for step in range(steps):
        ctx.global_step = step
        compute_grads()
        if method is None:
            opt.step()
        else:
            method.optimizer_step(ctx, compute_grads)
    return float(valley(p.detach())), float(torch.exp(p.detach()[0]))


def test_sam_goes_to_a_flatter_minimum_than_plain_descent():
    plain_loss, plain_curvature = descend(None)
    ends = {rho: descend(SAM(SAMConfig(rho=rho))) for rho in (0.05, 0.1, 0.5)}
    assert plain_loss < 1e-6 and plain_curvature == pytest.approx(1.94, abs=0.01)
    for loss, _ in ends.values():
        assert loss < 1e-4  # SAM too ends in the valley: a minimum, not a compromise
    curvature = [ends[rho][1] for rho in (0.05, 0.1, 0.5)]
    # flatter than plain descent, and flatter the larger the neighbourhood
    assert plain_curvature > 1.5 * curvature[0] and curvature[0] > curvature[1] > curvature[2]
    assert curvature[1] < plain_curvature / 2  # ρ 0.1: 0.57 against 1.94


def test_the_cheap_variant_flattens_less_than_full_sam():
    """`every: 2` takes a full SAM step every other step (reusing ε in between): it walks down the
    valley more slowly than full SAM, and still further than plain descent."""
    _, plain = descend(None)
    _, full = descend(SAM(SAMConfig(rho=0.1)))
    loss, cheap = descend(SAM(SAMConfig(rho=0.1, every=2)))
    assert loss < 1e-4 and full < cheap < plain


@pytest.mark.parametrize("between", ["reuse", "plain"])
def test_the_step_puts_the_weights_back_bit_for_bit(between):
    """With an optimizer that does not move them, a full SAM step and a reuse step leave the
    weights as they were, bit for bit: θ is restored from a copy, not by subtracting ε (in
    floating point θ + ε − ε is not θ)."""
    p = torch.nn.Parameter(torch.randn(64, generator=torch.Generator().manual_seed(0)) / 7)
    theta = p.detach().clone()

    def compute_grads():
        p.grad = None
        (p.sin() ** 2).sum().backward()

    ctx = SimpleNamespace(trainable_parameters=lambda: [("p", p)], global_step=0,
                          clip_and_step=lambda: None)
    sam = SAM(SAMConfig(rho=0.3, every=2, between=between))
    for step in range(4):
        ctx.global_step = step
        sam.before_step(ctx)
        compute_grads()
        sam.optimizer_step(ctx, compute_grads)
        assert torch.equal(p.detach(), theta), step
    assert sam.passes == 2 + 1 + 2 + 1  # full steps at 0 and 2, one pass at 1 and 3
