"""What KIF's importance tracking costs: step time over seqft and the extra memory it holds,
full fine-tuning and LoRA, same model and batches.

    .venv/bin/python benchmarks/kif_cost.py [--model embedded] [--epochs 2]

It first times the importance update alone (one `on_gradients` over all trainable weights with
random gradients) at several CPU block sizes; "whole" = one block per tensor, i.e. every
elementwise pass streams the whole tensor through memory.
"""

from __future__ import annotations

import argparse
import copy
import time
from types import SimpleNamespace

import torch

from forgetless.core.config import load_config
from forgetless.engine.loop import train_experience
from forgetless.methods import registry

from common import encoded, setup, timed


def measure(base: list[str], label: str, rounds: int = 2) -> None:
    """Step time of seqft and kif from the same weights, alternated `rounds` times (best of each:
    on this shared CPU one step varies by ±15 %), plus the time spent inside KIF's hook."""
    _, ctx = setup(base)
    items = encoded(ctx, ctx.stream.experiences[0].train)
    start = copy.deepcopy({n: p.detach().clone() for n, p in ctx.trainable_parameters()})
    train_experience(ctx, [], None, items[:8])  # warm-up
    times = {"seqft": [], "kif": []}
    hook_s = []
    for _ in range(rounds):
        for name in ("seqft", "kif"):
            ctx.config = load_config(None, [*base, f"method={name}"])
            named = dict(ctx.trainable_parameters())
            for n, value in start.items():
                named[n].data.copy_(value)
            methods = registry.build(ctx.config)
            for m in methods:
                m.setup(ctx)
                m.before_experience(ctx, SimpleNamespace(index=0))
            spent = [0.0]
            if name == "kif":
                kif = methods[0]
                inner = kif.on_gradients

                def hook(c, inner=inner, spent=spent):
                    t0 = time.perf_counter()
                    inner(c)
                    spent[0] += time.perf_counter() - t0

                kif.on_gradients = hook
            stats, seconds = timed(lambda m=methods: train_experience(ctx, m, None, items))
            times[name].append(seconds / stats["steps"])
            if name == "kif":
                hook_s.append(spent[0] / stats["steps"])
    kif = methods[0]
    extra = sum(t.numel() * t.element_size() for d in (kif.ema, kif.unc, kif.prev)
                for t in d.values())
    trainable = sum(p.numel() * p.element_size() for _, p in ctx.trainable_parameters())
    _, t_fuse = timed(lambda k=kif: k.after_experience(ctx, SimpleNamespace(index=0)))
    seq, kf, hk = min(times["seqft"]), min(times["kif"]), min(hook_s)
    print(f"{label}: seqft {seq:.3f} s/step, kif {kf:.3f} s/step = {kf / seq:.2f}× (best of "
          f"{rounds}; all: seqft {' '.join(f'{t:.2f}' for t in times['seqft'])}, kif "
          f"{' '.join(f'{t:.2f}' for t in times['kif'])}); inside the importance hook "
          f"{hk:.3f} s/step → (seqft + hook) / seqft = {(seq + hk) / seq:.2f}× (target ≤ 1.2×); "
          f"extra memory {extra / 2**20:.0f} MiB = {extra / trainable:.1f}× the trainable weights "
          f"(Ī, Ū, weights before the experience); end-of-experience scoring {t_fuse:.2f} s",
          flush=True)


def update_only(base: list[str], repeats: int = 5) -> None:
    _, ctx = setup(base)
    named = ctx.trainable_parameters()
    gen = torch.Generator().manual_seed(0)
    for _, p in named:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    for block in (None, 1 << 16, 1 << 18, 1 << 20, 1 << 22):
        kif = registry.build(load_config(None, [*base, "method=kif"]))[0]
        kif.cpu_block = 1 << 62 if block is None else block
        kif.setup(ctx)
        kif.before_experience(ctx, SimpleNamespace(index=0))
        kif.on_gradients(ctx)  # warm-up: allocates the scratch block
        _, seconds = timed(lambda k=kif: [k.on_gradients(ctx) for _ in range(repeats)])
        label = "whole" if block is None else f"2^{block.bit_length() - 1}"
        print(f"importance update alone, block {label}: {seconds / repeats:.3f} s/step", flush=True)
    for _, p in named:
        p.grad = None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    base = [f"model.name={args.model}", f"train.epochs={args.epochs}", "probe.samples=0",
            "probe.qa=false"]
    update_only(base)
    measure(base, "full fine-tuning")
    measure([*base, "model.lora.enabled=true"], "LoRA r=8 all-linear")


if __name__ == "__main__":
    main()
