"""Landscape measures against hand-computed cases on a quadratic and a toy network."""

import pytest
import torch

from forgetless.eval.landscape import (
    Loss,
    direction_coords,
    filter_normalized_direction,
    rho_sharpness,
    surface,
    top_eigenvalue,
)
from forgetless.methods.sam import perturbation


class Quadratic(Loss):
    """L(w) = ½ wᵀAw, with the Loss interface (one 'batch', one 'token')."""

    def __init__(self, A, w0):
        self.A = A
        self.w = torch.nn.Parameter(w0.clone())
        self.params = [self.w]
        self.batches = [None]
        self.n_tokens = 1
        self.device = self.w.device

    def _sum(self, _batch):
        return 0.5 * self.w @ self.A @ self.w


def spd(eigenvalues, seed=0):
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues),
                                       generator=torch.Generator().manual_seed(seed)))
    return q @ torch.diag(torch.tensor(eigenvalues)) @ q.T, q


def test_power_iteration_finds_the_top_eigenvalue_of_a_quadratic():
    A, _ = spd([5.0, 2.0, 1.0, 0.5, 0.1])
    out = top_eigenvalue(Quadratic(A, torch.ones(5)), iters=100, tol=1e-7)
    assert out["top_eigenvalue"] == pytest.approx(5.0, rel=1e-4)


def test_rho_sharpness_of_a_quadratic_by_hand():
    # w0 = c·e1 on the top eigenvector: the worst ε of norm ρ is ρ·e1, the rise ½a((c+ρ)² − c²)
    A, q = spd([4.0, 1.0, 0.5])
    c, rho = 0.3, 0.1
    out = rho_sharpness(Quadratic(A, c * q[:, 0]), rho, steps=3)
    assert out["sharpness"] == pytest.approx(0.5 * 4.0 * ((c + rho) ** 2 - c ** 2), rel=1e-4)
    assert out["loss"] == pytest.approx(0.5 * 4.0 * c * c, rel=1e-5)


def test_surface_at_the_origin_is_the_loss_and_leaves_the_weights_alone():
    A, _ = spd([3.0, 1.0])
    quad = Quadratic(A, torch.tensor([0.5, -1.0]))
    w = quad.w.detach().clone()
    d = [torch.tensor([1.0, 0.0])]
    coords = direction_coords(1.0, 5)
    line = surface(quad, [d], coords)
    assert coords == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert line[2] == pytest.approx(quad.value())
    for a, value in zip(coords, line, strict=True):
        x = w + a * d[0]
        assert value == pytest.approx(float(0.5 * x @ A @ x), rel=1e-6)
    grid = surface(quad, [d, [torch.tensor([0.0, 1.0])]], coords)
    assert grid[2][2] == pytest.approx(quad.value()) and len(grid) == 5
    assert torch.equal(quad.w.detach(), w)


def test_filter_normalised_direction_matches_row_norms_and_skips_vectors():
    weight = torch.nn.Parameter(torch.randn(4, 6))
    bias = torch.nn.Parameter(torch.randn(4))
    d_w, d_b = filter_normalized_direction([weight, bias], seed=0)
    assert torch.allclose(d_w.norm(dim=1), weight.detach().norm(dim=1), rtol=1e-5)
    assert torch.count_nonzero(d_b) == 0
    again = filter_normalized_direction([weight, bias], seed=0)[0]
    assert torch.equal(d_w, again)


def test_sam_and_asam_perturbations_by_hand():
    p = torch.nn.Parameter(torch.tensor([3.0, -4.0]))
    p.grad = torch.tensor([0.6, 0.8])
    (eps,) = perturbation([p], rho=0.5, adaptive=False, eta=0.0)
    assert torch.allclose(eps, torch.tensor([0.3, 0.4]))  # ρ g / ‖g‖, ‖g‖ = 1
    (eps,) = perturbation([p], rho=0.5, adaptive=True, eta=0.0)
    t = torch.tensor([3.0, 4.0])
    expected = 0.5 * t * t * p.grad / torch.linalg.vector_norm(t * p.grad)
    assert torch.allclose(eps, expected)
    assert torch.linalg.vector_norm(eps / t) == pytest.approx(0.5)  # ‖T⁻¹ε‖ = ρ


def test_an_estimate_cut_short_says_so_and_is_a_lower_bound():
    """Eigenvalues 5 and 4.9 are hard to tell apart: three iterations do not settle, and the
    estimate so far (a Rayleigh quotient) is below the top eigenvalue; enough iterations settle
    on it."""
    A, _ = spd([5.0, 4.9, 1.0, 0.5])
    quad = Quadratic(A, torch.ones(4))
    short = top_eigenvalue(quad, iters=3, tol=1e-6)
    assert short["iterations"] == 3 and short["settled"] is False
    assert short["top_eigenvalue"] < 5.0
    long = top_eigenvalue(quad, iters=2000, tol=1e-9)
    assert long["settled"] is True and long["iterations"] < 2000
    assert long["top_eigenvalue"] == pytest.approx(5.0, rel=1e-3)


def test_at_a_saddle_the_top_eigenvalue_is_found_past_a_larger_negative_one():
    """Power iteration alone finds the eigenvalue of largest magnitude, here −5; the top one is 2.
    The second run on H + 5·I finds it, and says which negative one it went past."""
    A, _ = spd([-5.0, 2.0, 1.0, 0.5])
    out = top_eigenvalue(Quadratic(A, torch.ones(4)), iters=500, tol=1e-10)
    assert out["negative_eigenvalue"] == pytest.approx(-5.0, rel=1e-4)
    assert out["top_eigenvalue"] == pytest.approx(2.0, rel=1e-3) and out["settled"] is True
    # at a minimum there is no second run
    A, _ = spd([5.0, 2.0, 1.0, 0.5])
    assert "negative_eigenvalue" not in top_eigenvalue(Quadratic(A, torch.ones(4)), iters=500,
                                                       tol=1e-10)


def test_each_measure_ticks_once_per_pass():
    """The progress callbacks count what was done: one per ascent step, one per
    Hessian-vector product (the iteration may stop early), one per surface point."""
    A, _ = spd([5.0, 2.0, 1.0])
    quad = Quadratic(A, torch.ones(3))
    ticks = []
    rho_sharpness(quad, 0.1, steps=3, tick=ticks.append)
    assert ticks == [1, 1, 1]
    ticks.clear()
    out = top_eigenvalue(quad, iters=50, tol=1e-3, tick=ticks.append)
    assert 1 < out["iterations"] < 50 and len(ticks) == out["iterations"]
    ticks.clear()
    d = [torch.tensor([1.0, 0.0, 0.0])]
    surface(quad, [d], direction_coords(1.0, 3), tick=ticks.append)
    surface(quad, [d, [torch.tensor([0.0, 1.0, 0.0])]], direction_coords(1.0, 3),
            tick=ticks.append)
    assert len(ticks) == 3 + 9


def test_the_measures_leave_the_weights_as_they_were_bit_for_bit():
    """θ + ε − ε is not θ in floating point: the measures place each point from a copy of θ and
    put θ back, so a run that records flatness trains on from the same weights."""
    A, _ = spd([4.0, 1.0, 0.5, 0.25])
    quad = Quadratic(A, torch.randn(4, generator=torch.Generator().manual_seed(1)) / 3)
    w = quad.w.detach().clone()
    rho_sharpness(quad, 0.07, steps=3)
    d = [torch.randn(4, generator=torch.Generator().manual_seed(2))]
    surface(quad, [d], direction_coords(0.3, 5))
    surface(quad, [d, [torch.randn(4, generator=torch.Generator().manual_seed(3))]],
            direction_coords(0.3, 3))
    assert torch.equal(quad.w.detach(), w)
