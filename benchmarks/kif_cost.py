"""What KIF's importance tracking costs: step time over seqft and the extra memory it holds,
full fine-tuning and LoRA, same model and batches.

    .venv/bin/python benchmarks/kif_cost.py [--model embedded] [--epochs 2]
"""

from __future__ import annotations

import argparse
import copy
from types import SimpleNamespace

from forgetless.config import load_config
from forgetless.engine.loop import train_experience
from forgetless.methods import registry

from common import encoded, setup, timed


def measure(base: list[str], label: str) -> None:
    _, ctx = setup(base)
    items = encoded(ctx, ctx.stream.experiences[0].train)
    start = copy.deepcopy({n: p.detach().clone() for n, p in ctx.trainable_parameters()})
    train_experience(ctx, [], None, items[:8])  # warm-up
    times = {}
    for name in ("seqft", "kif"):
        ctx.config = load_config(None, [*base, f"method={name}"])
        named = dict(ctx.trainable_parameters())
        for n, value in start.items():
            named[n].data.copy_(value)
        methods = registry.build(ctx.config)
        for m in methods:
            m.setup(ctx)
            m.before_experience(ctx, SimpleNamespace(index=0))
        stats, seconds = timed(lambda m=methods: train_experience(ctx, m, None, items))
        times[name] = seconds / stats["steps"]
        if name == "kif":
            kif = methods[0]
            extra = sum(t.numel() * t.element_size() for d in (kif.ema, kif.unc, kif.prev)
                        for t in d.values())
            trainable = sum(p.numel() * p.element_size() for _, p in ctx.trainable_parameters())
            _, t_fuse = timed(lambda k=kif: k.after_experience(ctx, SimpleNamespace(index=0)))
    print(f"{label}: seqft {times['seqft']:.3f} s/step, kif {times['kif']:.3f} s/step = "
          f"{times['kif'] / times['seqft']:.2f}× (target ≤ 1.2×); extra memory "
          f"{extra / 2**20:.0f} MiB = {extra / trainable:.1f}× the trainable weights "
          f"(Ī, Ū, weights before the experience); end-of-experience scoring {t_fuse:.2f} s",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    base = [f"model.name={args.model}", f"train.epochs={args.epochs}", "probe.samples=0",
            "probe.qa=false"]
    measure(base, "full fine-tuning")
    measure([*base, "model.lora.enabled=true"], "LoRA r=8 all-linear")


if __name__ == "__main__":
    main()
