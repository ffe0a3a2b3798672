"""What SAM costs: optimizer-step time of sam (and its every-k variants) over seqft, and the
time of the landscape measures, on the same model and batches.

Every variant trains the same examples from the same weights for the same number of steps
(experience 0 of the built-in stream, `--epochs` passes); the ratio is step time over seqft's.
SAM's physical floor is 2× (two forward/backward passes per step).

    .venv/bin/python benchmarks/sam_cost.py [--model embedded] [--epochs 2] [--lora]
"""

from __future__ import annotations

import argparse
import copy

import torch

from forgetless.core.config import load_config
from forgetless.engine.loop import train_experience
from forgetless.eval.landscape import Loss, filter_normalized_direction, flatness, surface
from forgetless.methods import registry

from common import encoded, setup, timed

VARIANTS = {
    "seqft": [],
    "sam": ["method=sam"],
    "sam every 2, reuse ε": ["method=sam", "sam.every=2", "sam.between=reuse"],
    "sam every 4, reuse ε": ["method=sam", "sam.every=4", "sam.between=reuse"],
    "sam every 2, plain": ["method=sam", "sam.every=2", "sam.between=plain"],
    "asam": ["method=sam", "sam.adaptive=true", "sam.rho=0.5"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lora", action="store_true")
    ap.add_argument("--points", type=int, default=5, help="landscape grid points per direction")
    args = ap.parse_args()
    base = [f"model.name={args.model}", f"train.epochs={args.epochs}",
            f"model.lora.enabled={args.lora}", "probe.samples=0", "probe.qa=false"]
    _, ctx = setup(base)
    items = encoded(ctx, ctx.stream.experiences[0].train)
    start = copy.deepcopy(ctx.unwrapped_model.state_dict())
    train_experience(ctx, [], None, items[:8])  # warm-up
    times = {}
    for name, extra in VARIANTS.items():
        ctx.config = load_config(None, [*base, *extra])
        ctx.unwrapped_model.load_state_dict(start)
        ctx.global_step = 0
        methods = registry.build(ctx.config)
        owner = next((m for m in methods if registry.get(m.name).owns_optimizer_step), None)
        stats, seconds = timed(lambda m=methods, o=owner: train_experience(ctx, m, o, items))
        times[name] = seconds / stats["steps"]
        passes = methods[0].experience_stats()["passes_per_step"] if owner else 1.0
        print(f"{name:<22} {times[name]:.3f} s/step  {times[name] / times['seqft']:.2f}× seqft "
              f"({passes:.2f} passes/step; final epoch loss {stats['epoch_losses'][-1]:.3f})",
              flush=True)

    model = ctx.unwrapped_model
    pad = ctx.tokenizer.pad_token_id
    sample = items[:32]
    row, t_flat = timed(lambda: flatness(model, sample, pad, 0.05, 3, 10))
    print(f"landscape on {len(sample)} examples: ρ-sharpness (3 ascent steps) + top Hessian "
          f"eigenvalue ({row.get('iterations')} HVP iterations): {t_flat:.1f} s")
    loss = Loss(model, sample, pad)
    d1 = filter_normalized_direction(loss.params, 0)
    d2 = filter_normalized_direction(loss.params, 1)
    coords = [k / (args.points - 1) * 2 - 1 for k in range(args.points)]
    _, t_1d = timed(lambda: surface(loss, [d1], coords))
    _, t_2d = timed(lambda: surface(loss, [d1, d2], coords))
    print(f"1-D surface, {args.points} points: {t_1d:.1f} s; 2-D surface, {args.points}² "
          f"points: {t_2d:.1f} s ({t_2d / args.points ** 2:.2f} s per loss evaluation)")
    if torch.cuda.is_available():
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
