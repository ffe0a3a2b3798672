"""How close a training step comes to what this machine's matrix products allow.

A CPU step of a 135M model is mostly matrix products. This script times, at the shapes of one
real batch of the quickstart stream, each linear layer's three products (forward, and the two
of the backward: input gradient and weight gradient) one after another with nothing else, and
sums them: the *matmul floor* of a step. Beside it, in the same run, the forgetless loop itself
on the same batches twice: with AdamW's fused kernel (the default) and with PyTorch's per-tensor
loop (`train.fused_optimizer=false`). The ratio floor / loop says how much of a step is left to
win by a faster loop; the rest is AdamW, attention, norms and the elementwise work.

    .venv/bin/python benchmarks/matmul_floor.py [--epochs 2] [--model embedded]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from forgetless.core.seeding import derive_seed
from forgetless.data.collate import collate
from forgetless.engine.loop import epoch_batches, new_optimizer, train_experience

from common import device_note, encoded, setup, timed


def best_of(fn, reps: int = 5) -> float:
    fn()  # warm-up: the first call allocates
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_floor(model, rows: int) -> tuple[float, float]:
    """(seconds, GFLOP) of every linear layer's forward and backward products for `rows`
    positions, the output head excluded (the loop computes it only at answer positions)."""
    head = model.get_output_embeddings()
    shapes: dict[tuple[int, int], int] = {}
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            key = (module.in_features, module.out_features)
            shapes[key] = shapes.get(key, 0) + 1
    seconds = gflop = 0.0
    for (n_in, n_out), count in shapes.items():
        x, w, dy = torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(rows, n_out)
        products = (lambda x=x, w=w: x @ w.t(),     # forward
                    lambda dy=dy, w=w: dy @ w,      # gradient of the input
                    lambda dy=dy, x=x: dy.t() @ x)  # gradient of the weight
        seconds += count * sum(best_of(p) for p in products)
        gflop += count * 3 * 2 * rows * n_in * n_out / 1e9
    return seconds, gflop


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of experience 0 the loop trains")
    args = ap.parse_args()
    cfg, ctx = setup([f"model.name={args.model}", f"train.epochs={args.epochs}"])
    if ctx.accelerator.device.type != "cpu":
        raise SystemExit("matmul_floor.py measures CPU matrix products; run it on a CPU")
    model = ctx.unwrapped_model
    items = encoded(ctx, ctx.stream.experiences[0].train)
    batch = cfg.train.batch_size
    # the loop's own batches of experience 0 (its seeds), and their padded positions
    steps = [b for e in range(args.epochs)
             for b in epoch_batches(len(items), batch, derive_seed(0, "order", 0, e))]
    positions = [collate([items[i] for i in b], ctx.tokenizer.pad_token_id)["input_ids"].numel()
                 for b in steps]
    rows = int(statistics.median(positions))

    floor_s, gflop = matmul_floor(model, rows)
    model.train()
    per_step = {}
    for fused in (True, False):
        ctx.optimizer = new_optimizer(model, cfg.train.model_copy(update={"fused_optimizer": fused}))
        train_experience(ctx, [], None, items[:batch])  # warm-up: one step, the optimizer's state
        _, took = timed(lambda: train_experience(ctx, [], None, items))
        per_step[fused] = took / len(steps)

    print(f"model {args.model}, {device_note(ctx)}; experience 0 of the quickstart stream, "
          f"{len(steps)} steps of {batch} examples, median {rows} positions per step")
    print(f"matmul floor per step:            {floor_s:.3f} s ({gflop:.1f} GFLOP, "
          f"{gflop / floor_s:.1f} GFLOP/s at these shapes)")
    for fused, name in ((True, "fused AdamW (default)"), (False, "per-tensor AdamW")):
        print(f"forgetless loop per step, {name + ':':22s} {per_step[fused]:.3f} s "
              f"(floor / loop = {floor_s / per_step[fused]:.2f})")
    print(f"per-tensor / fused = {per_step[False] / per_step[True]:.2f}x per step")


if __name__ == "__main__":
    main()
