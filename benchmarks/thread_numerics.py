"""Does the thread count change the numbers? The same training, run at two thread counts.

Experience 0 of the quickstart stream is trained from the same seed three times on this CPU:
with `--threads` A, with A again (the control: same threads, same numbers, or nothing below can
be read), and with B. The script prints each run's epoch losses and, against the first, how many
weight tensors differ and by how much. On a CPU whose kernels split a product's sum across
threads, B sums in another order: the weights differ in their last bits after one step, and
training carries the difference on — so a run with 2 threads is not the same run as with 1,
and `run.machine.threads` is part of what `forgetless compare` checks.

    .venv/bin/python benchmarks/thread_numerics.py [--threads 1,2] [--epochs 1] [--model embedded]
"""

from __future__ import annotations

import argparse

import torch

from forgetless.engine.loop import train_experience

from common import encoded, setup


def trained(threads: int, overrides: list[str]) -> tuple[list[float], list[torch.Tensor]]:
    torch.set_num_threads(threads)
    _, ctx = setup(overrides)
    if ctx.accelerator.device.type != "cpu":
        raise SystemExit("thread_numerics.py compares CPU thread counts; run it on a CPU")
    out = train_experience(ctx, [], None, encoded(ctx, ctx.stream.experiences[0].train))
    weights = [p.detach().clone() for p in ctx.unwrapped_model.parameters()]
    return out["epoch_losses"], weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--epochs", type=int, default=1, help="epochs of experience 0")
    ap.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                    help="A,B: the thread counts compared (default: 1 and this process's count)")
    args = ap.parse_args()
    a, b = (int(t) for t in args.threads.split(","))
    overrides = [f"model.name={args.model}", f"train.epochs={args.epochs}"]
    runs = [(f"{a} thread(s)", *trained(a, overrides)),
            (f"{a} thread(s) again", *trained(a, overrides)),
            (f"{b} thread(s)", *trained(b, overrides))]

    print(f"model {args.model}, {torch.backends.cpu.get_cpu_capability()} kernels; "
          f"experience 0 of the quickstart stream, {args.epochs} epoch(s)")
    _, _, first = runs[0]
    for name, losses, weights in runs:
        differ = sum(not torch.equal(w, f) for w, f in zip(weights, first, strict=True))
        largest = max((w - f).abs().max().item() for w, f in zip(weights, first, strict=True))
        print(f"{name:22s} epoch losses {', '.join(f'{x:.9f}' for x in losses)}; "
              f"weight tensors differing from the first run: {differ} of {len(first)}, "
              f"largest difference {largest:.3g}")


if __name__ == "__main__":
    main()
