"""Training throughput of forgetless' loop vs a bare PyTorch loop, same model, same batches.

The bare loop is what one writes by hand: right-padded batches, `model(..., labels=...)`
(HF's mean token loss over answer tokens), AdamW step, clip. Both run the same number of
optimizer steps over the same examples in the same order; the ratio is examples/s of
forgetless over the bare loop (>1 means forgetless is faster).

    .venv/bin/python benchmarks/train_throughput.py [--epochs 3] [--batch 8] [--compile inductor]

`--compile BACKEND` adds two passes of the forgetless loop (fused AdamW) after the model is
compiled in place as `train.compile` does: the first pays the compilation, the second is the
steady state.
"""

from __future__ import annotations

import argparse

import torch

from forgetless.engine.loop import epoch_batches, new_optimizer, train_experience

from common import device_note, encoded, precision_flag, precision_override, setup, timed


def bare_loop(model, opt, items, batches, pad_id, max_norm):
    model.train()
    device = next(model.parameters()).device
    for idx in batches:
        rows = [items[i] for i in idx]
        width = max(len(r.input_ids) for r in rows)
        ids = torch.full((len(rows), width), pad_id)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for k, r in enumerate(rows):
            n = len(r.input_ids)
            ids[k, :n] = torch.tensor(r.input_ids)
            mask[k, :n] = 1
            labels[k, n - r.n_answer:n] = torch.tensor(r.input_ids[n - r.n_answer:])
        loss = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                     labels=labels.to(device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lora", action="store_true")
    ap.add_argument("--compile", choices=["inductor", "aot_eager", "eager"],
                    help="also time the loop with the model compiled by this backend")
    precision_flag(ap)
    args = ap.parse_args()
    overrides = [f"model.name={args.model}", f"train.batch_size={args.batch}",
                 f"train.epochs={args.epochs}", f"model.lora.enabled={args.lora}",
                 precision_override(args)]
    cfg, ctx = setup(overrides)
    items = encoded(ctx, ctx.stream.experiences[0].train)
    batches = [b for e in range(args.epochs)
               for b in epoch_batches(len(items), args.batch, seed=e)]
    n_examples = len(batches) * args.batch
    model, opt = ctx.unwrapped_model, ctx.optimizer
    bare_loop(model, opt, items, batches[:1], ctx.tokenizer.pad_token_id, 1.0)  # warm-up
    _, t_bare = timed(lambda: bare_loop(model, opt, items, batches, ctx.tokenizer.pad_token_id,
                                        cfg.train.max_grad_norm))
    _, t_ours = timed(lambda: train_experience(ctx, [], None, items))
    # the same loop with AdamW's fused kernel (train.fused_optimizer), same steps
    ctx.optimizer = new_optimizer(model, cfg.train.model_copy(update={"fused_optimizer": True}))
    _, t_fused = timed(lambda: train_experience(ctx, [], None, items))
    if args.compile:
        model.compile(backend=args.compile, dynamic=True)  # as train.compile does
        _, t_first = timed(lambda: train_experience(ctx, [], None, items))
        _, t_compiled = timed(lambda: train_experience(ctx, [], None, items))
    print(f"model {args.model}{' + LoRA' if args.lora else ''}, {len(batches)} steps of "
          f"{args.batch} examples ({device_note(ctx)})")
    print(f"bare PyTorch loop: {t_bare:.2f} s ({n_examples / t_bare:.2f} examples/s)")
    print(f"forgetless loop:   {t_ours:.2f} s ({n_examples / t_ours:.2f} examples/s)")
    print(f"  fused AdamW:     {t_fused:.2f} s ({n_examples / t_fused:.2f} examples/s)")
    if args.compile:
        print(f"  compiled ({args.compile}), first pass (compiles): {t_first:.2f} s")
        print(f"  compiled ({args.compile}), second pass: {t_compiled:.2f} s "
              f"({n_examples / t_compiled:.2f} examples/s; {t_fused / t_compiled:.2f}x eager fused)")
    print(f"throughput ratio forgetless/bare = {t_bare / t_ours:.2f}x, "
          f"with fused AdamW {t_bare / t_fused:.2f}x")


if __name__ == "__main__":
    main()
