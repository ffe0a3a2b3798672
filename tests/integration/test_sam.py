"""SAM: the update equals a hand computation; accumulation and extra losses are inside both
passes; the cheap variant does fewer passes; flatness is recorded after each experience (that
SAM finds flatter minima: tests/unit/test_sam.py)."""

import copy

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from forgetless.core.config import load_config
from forgetless.data.collate import answer_nll, collate, encode_all, forward_answer_logits
from forgetless.data.stream import build_stream
from forgetless.engine.loop import train_experience
from forgetless.methods import registry
from forgetless.methods.hooks import Context
from forgetless.models.load import load_model, load_tokenizer

pytestmark = pytest.mark.integration

BASE = ["model.name=tiny-llama-2m-v4k", "data.concepts_per_experience=4", "data.facts_per_concept=2",
        "train.epochs=1", "train.batch_size=8", "train.lr=1e-2", "probe.samples=0",
        "probe.qa=false"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(load_config(None, BASE).model)


def make(overrides, tokenizer, sgd=False):
    cfg = load_config(None, [*BASE, *overrides])
    model = load_model(cfg.model, tokenizer, seed=0)
    # On CPU even beside a GPU (the hand computation's tolerances are fp32-on-CPU ones); an
    # earlier in-process run may have set accelerate's per-process state to CUDA.
    AcceleratorState._reset_state(reset_partial_state=True)
    acc = Accelerator(cpu=True)
    # SGD keeps the update linear in the gradient, so a hand computation can match it tightly
    # (AdamW's first step divides by |g| + ε and amplifies rounding where |g| ≈ ε).
    opt = (torch.optim.SGD(model.parameters(), lr=cfg.train.lr) if sgd else
           torch.optim.AdamW(model.parameters(), lr=cfg.train.lr,
                             weight_decay=cfg.train.weight_decay))
    model, opt = acc.prepare(model, opt)
    stream = build_stream(cfg.data)
    ctx = Context(cfg, acc, model, tokenizer, stream, 0, opt, experience_index=0)
    items = encode_all(stream.experiences[0].train, tokenizer, cfg.data.prompt_template,
                       cfg.train.max_length)
    methods = registry.build(cfg)
    owner = next((m for m in methods if registry.get(m.name).owns_optimizer_step), None)
    return ctx, methods, owner, items


def batch_loss(model, items, pad):
    batch = collate(items, pad)
    nll = answer_nll(forward_answer_logits(model, batch).logits, batch["labels"])
    return nll.sum() / sum(it.n_answer for it in items)


def test_sam_step_equals_the_hand_computed_update(tokenizer):
    rho = 0.5
    ctx, methods, owner, items = make(["method=sam", f"sam.rho={rho}", "train.lr=0.5"], tokenizer,
                                      sgd=True)
    reference = copy.deepcopy(ctx.unwrapped_model)
    train_experience(ctx, methods, owner, items)  # one step: 8 examples, batch 8, 1 epoch

    # by hand: g at θ, ε = ρ g/‖g‖, g' at θ + ε, clip g' to norm 1, one SGD step from θ
    params = [p for p in reference.parameters()]
    # the loop draws the batch in a seeded order; the loss is a mean, so order does not matter
    g = torch.autograd.grad(batch_loss(reference, items, tokenizer.pad_token_id), params)
    norm = torch.linalg.vector_norm(torch.stack([x.norm() for x in g]))
    with torch.no_grad():
        for p, x in zip(params, g, strict=True):
            p.add_(rho * x / norm)
    g2 = torch.autograd.grad(batch_loss(reference, items, tokenizer.pad_token_id), params)
    with torch.no_grad():
        for p, x in zip(params, g, strict=True):
            p.sub_(rho * x / norm)
    scale = min(1.0, 1.0 / float(torch.linalg.vector_norm(torch.stack([x.norm() for x in g2]))))
    got = dict(ctx.unwrapped_model.named_parameters())
    diffs = []
    with torch.no_grad():
        for (name, p), x, x0 in zip(reference.named_parameters(), g2, g, strict=True):
            sam_update = -0.5 * scale * x
            diffs.append(float(((got[name] - p) - sam_update).abs().max()))
            # and the plain step (with g) would be visibly different
            assert name != "model.embed_tokens.weight" or float(
                (0.5 * scale * (x - x0)).abs().max()) > 1e-4
    assert max(diffs) < 1e-6


def test_sam_differs_from_a_plain_step(tokenizer):
    ctx_s, m_s, o_s, items = make(["method=sam", "sam.rho=0.5"], tokenizer)
    ctx_p, m_p, o_p, _ = make([], tokenizer)
    train_experience(ctx_s, m_s, o_s, items)
    train_experience(ctx_p, m_p, o_p, items)
    a = dict(ctx_s.unwrapped_model.named_parameters())
    diff = max(float((a[n] - p).detach().abs().max()) for n, p in ctx_p.unwrapped_model.named_parameters())
    assert diff > 1e-4


@pytest.mark.parametrize("method", ["sam", "sam+ewc", "replay+sam"])
def test_accumulation_2x4_equals_batch_8(tokenizer, method):
    common = [f"method={method}", "sam.rho=0.2", "train.epochs=3"]
    one, m1, o1, items = make(common, tokenizer)
    two, m2, o2, _ = make([*common, "train.grad_accum=2"], tokenizer)
    train_experience(one, m1, o1, items)
    train_experience(two, m2, o2, items)
    a = dict(one.unwrapped_model.named_parameters())
    diff = max(float((a[n] - p).detach().abs().max()) for n, p in two.unwrapped_model.named_parameters())
    assert diff < 1e-4


def test_extra_losses_enter_both_passes(tokenizer):
    """An extra loss that moves the gradient changes SAM's perturbation and its second pass."""
    common = ["sam.rho=0.5", "train.epochs=2"]
    a, ma, oa, items = make(["method=sam", *common], tokenizer)
    b, mb, ob, _ = make(["method=lamol+sam", "lamol.lm_weight=1", *common], tokenizer)
    calls = []
    original = mb[0].extra_loss

    def counting(ctx, batch, outputs):
        calls.append(ctx.global_step)
        return original(ctx, batch, outputs)

    mb[0].extra_loss = counting
    train_experience(a, ma, oa, items)
    train_experience(b, mb, ob, items)
    assert calls == [0, 0, 1, 1]  # two passes per step, the extra loss in each


@pytest.mark.parametrize("between, passes", [("reuse", 1.5), ("plain", 1.5)])
def test_every_k_steps_costs_fewer_passes(tokenizer, between, passes):
    ctx, methods, owner, items = make(
        ["method=sam", "sam.every=2", f"sam.between={between}", "train.epochs=4"], tokenizer)
    train_experience(ctx, methods, owner, items)
    assert methods[0].experience_stats()["passes_per_step"] == passes
    assert methods[0].theta is None  # the weights hold θ, not θ + ε


# one power-iteration step cannot settle (nothing to compare it with): the reports must say
# the estimate is a lower bound
RECORD = ["landscape.record=true", "landscape.hessian_iters=1", "landscape.examples=8"]


def test_flatness_is_recorded_after_each_experience(tiny_overrides, tmp_path):
    """SAM's claim itself is tested where the answer is known (tests/unit/test_sam.py). On this
    random-init tiny model, whether SAM ends flatter than seqft depends on the seed and on the
    processor's rounding: at ρ 0.05 its final ρ-sharpness was lower on seed 0 in the earlier CI
    runs (Xeon and AVX2 EPYC machines), but on an AVX-512 EPYC (2026-12-02) lower on 1 of seeds
    0–2, and at ρ 0.2 on 2 of 3 — too unstable for an assertion about the method."""
    import forgetless

    sam = forgetless.run(None, [*tiny_overrides, *RECORD, "method=sam"], run_dir=tmp_path / "sam")
    flatness = sam.results["flatness"]
    print("flatness:", flatness, "forgetting:", sam.headline)
    assert [row["after"] for row in flatness] == [0, 1, 2]
    for row in flatness:
        assert row["sharpness"] >= 0 and row["loss"] >= 0 and row["top_eigenvalue"] is not None
        assert row["seconds"] > 0 and row["settled"] is False and row["iterations"] == 1
    timings = sam.results["timings"]
    # flatness is timed on its own, and is part of the evaluations' time
    assert timings["landscape_s"] == pytest.approx(sum(row["seconds"] for row in flatness))
    assert timings["landscape_s"] < timings["eval_s"]
    summary = (sam.run_dir / "summary.md").read_text()
    assert "## Flatness after each experience" in summary
    assert f"| {flatness[0]['sharpness']:.4f} | ≥ {flatness[0]['top_eigenvalue']:.2f} |" in summary
    assert "lower bound" in summary and "lower bound" in (sam.run_dir / "report.html").read_text()
    assert f"flatness {timings['landscape_s']:.1f} s (within evaluation)" in summary
    # measuring leaves the weights as they were, bit for bit: the run trains on as one without
    plain = forgetless.run(None, [*tiny_overrides, "method=sam"], run_dir=tmp_path / "plain")
    assert plain.results["matrices"] == sam.results["matrices"]
    assert ([x["epoch_losses"] for x in plain.results["experiences"]]
            == [x["epoch_losses"] for x in sam.results["experiences"]])


def test_landscape_command_writes_plots_and_numbers(tiny_overrides, tmp_path):
    import json

    import forgetless
    from tests.integration.test_run import cli

    run = forgetless.run(None, [*tiny_overrides, "keep_checkpoints=all", "data.n_experiences=2"],
                         run_dir=tmp_path / "run").run_dir
    out = cli("landscape", str(run), "--experience", "0", "--data", "0", "--points", "5",
              "--hessian-iters", "3", "--examples", "8")
    assert "ρ-sharpness" in out.stdout
    for name in ("after-000-on-000-train-1d.png", "after-000-on-000-train-2d.png"):
        assert (run / "landscape" / name).stat().st_size > 1000
    rows = json.loads((run / "landscape.json").read_text())
    assert len(rows) == 1 and len(rows[0]["surface_2d"]) == 5
    # an estimate cut short by --hessian-iters says it is a lower bound, wherever it is shown
    assert ("lower bound" in out.stdout) == (rows[0]["settled"] is False)
    # the surface's centre is the checkpoint's own loss
    assert rows[0]["surface_1d"][2] == pytest.approx(rows[0]["loss"], rel=1e-5)
    assert rows[0]["surface_2d"][2][2] == pytest.approx(rows[0]["loss"], rel=1e-5)
    results = json.loads((run / "results.json").read_text())
    assert results["landscape"][0]["after"] == 0
    assert "## Loss landscape" in (run / "summary.md").read_text()

    bad = cli("landscape", str(run), "--experience", "7", check=False)
    assert bad.returncode == 2 and "--experience 7: no checkpoint" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    bad = cli("landscape", str(run), "--rho", "0", check=False)
    assert bad.returncode == 2 and "--rho must be positive" in bad.stderr


def test_two_processes_replay_sam_match_one(tiny_overrides, tmp_path):
    import forgetless
    from tests.integration.test_run import TWO_PROCESS_EPOCHS, run_two_processes

    overrides = [*tiny_overrides, "method=replay+sam", "replay.buffer_size=8",
                 "data.n_experiences=2", TWO_PROCESS_EPOCHS]
    one = forgetless.run(None, overrides, run_dir=tmp_path / "one").results
    two = run_two_processes(overrides, tmp_path / "two")
    # Same gradients up to summation order: 1e-3 over the first epochs, where a mis-weighted
    # term would show. SAM's second pass starts from a perturbation of the rounded weights, so
    # the difference grows faster than with one pass (0.18 % by the last epoch on an AVX-512
    # machine, 2026-11-30), and the rest of the curve is held to 1e-2 as in test_run.py.
    for exp in (0, 1):
        a, b = one["experiences"][exp]["epoch_losses"], two["experiences"][exp]["epoch_losses"]
        assert a[:5] == pytest.approx(b[:5], rel=1e-3)
        assert a == pytest.approx(b, rel=1e-2)
    assert one["matrices"]["train"][0][0] == two["matrices"]["train"][0][0]
