"""What the base-knowledge probe's three savings buy, each side by side with what it replaced.

- 4-way choice over the country questions: each prompt run once, its options sharing its keys
  and values (`score_continuations`), against one full row per (question, option).
- held-out samples: all chunks drawn in one batch (`sample_chunks`) against one chunk at a time.
- KL to the base model: the base log-probabilities kept, one forward per measurement, against a
  base forward and a model forward per measurement.

Checks that each pair gives the same numbers, prints seconds and ratios.

    .venv/bin/python benchmarks/probe_cost.py [--questions 100] [--samples 16]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from forgetless.data.collate import (
    Encoded,
    answer_nll,
    collate,
    encode_all,
    forward_answer_logits,
    length_sorted_batches,
)
from forgetless.data.worldfacts import country_questions
from forgetless.eval.scoring import score_continuations
from forgetless.models.sampling import CHUNK, sample_chunk, sample_chunks, start_tokens

from common import device_note, setup, timed


@torch.no_grad()
def full_rows(model, tok, rows: list[Encoded], batch_size: int) -> list[float]:
    """What the probe did before: every (prompt, option) its own left-padded row."""
    out = [0.0] * len(rows)
    for idx in length_sorted_batches([len(r.input_ids) for r in rows], batch_size):
        batch = collate([rows[i] for i in idx], tok.pad_token_id)
        nll = answer_nll(forward_answer_logits(model, batch).logits, batch["labels"]).sum(-1)
        for row, i in enumerate(idx):
            out[i] = float(nll[row])
    return out


@torch.no_grad()
def log_probs(model, samples: torch.Tensor, batch_size: int = 8) -> list[torch.Tensor]:
    return [F.log_softmax(model(input_ids=samples[i:i + batch_size]).logits[:, :-1].float(), -1)
            for i in range(0, len(samples), batch_size)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    cfg, ctx = setup([])
    model, tok = ctx.unwrapped_model.eval(), ctx.tokenizer
    print(f"# probe cost, embedded model, {device_note(ctx)}")

    # 1. choice: 4 options per question (the answer and 3 other answers of its relation)
    qa = country_questions(args.questions)
    enc = encode_all(qa, tok, cfg.data.prompt_template, cfg.train.max_length)
    answers = sorted({q.answer for q in qa})
    prompts, options = [], []
    for i, (q, e) in enumerate(zip(qa, enc, strict=True)):
        others = [a for a in answers if a != q.answer]
        names = [q.answer, *(others[(i * 7 + k * 13) % len(others)] for k in range(3))]
        prompts.append(e.input_ids[:len(e.input_ids) - e.n_answer])
        options.append([tok(" " + n, add_special_tokens=False)["input_ids"] for n in names])
    rows = [Encoded([*p, *o], len(o)) for p, opts in zip(prompts, options, strict=True)
            for o in opts]
    score_continuations(model, prompts[:8], options[:8], args.batch, tok.pad_token_id)  # warm-up
    shared, t_shared = timed(lambda: score_continuations(model, prompts, options, args.batch,
                                                         tok.pad_token_id))
    full, t_full = timed(lambda: full_rows(model, tok, rows, args.batch))
    flat = [sum(c.nll) for opts in shared for c in opts]
    worst = max(abs(a - b) / max(abs(b), 1e-9) for a, b in zip(flat, full, strict=True))
    print(f"choice, {len(qa)} questions x 4 options: full rows {t_full:.2f} s, shared prompts "
          f"{t_shared:.2f} s -> {t_full / t_shared:.2f}x (largest relative NLL difference "
          f"{worst:.1e})")

    # 2. sampling: chunks of CHUNK rows, each from its own generator
    n_chunks = -(-args.samples // CHUNK)
    sizes = [min(CHUNK, args.samples - c * CHUNK) for c in range(n_chunks)]
    seeds = list(range(n_chunks))
    start = start_tokens(tok)
    alone, t_alone = timed(lambda: [sample_chunk(model, start, n, 64, s)
                                    for n, s in zip(sizes, seeds, strict=True)])
    together, t_together = timed(lambda: sample_chunks(model, start, sizes, 64, seeds))
    same = sum(a == b for ca, cb in zip(alone, together, strict=True)
               for a, b in zip(ca, cb, strict=True))
    print(f"sampling {args.samples} x 64 tokens: chunk by chunk {t_alone:.2f} s, batched "
          f"{t_together:.2f} s -> {t_alone / t_together:.2f}x ({same}/{args.samples} samples "
          f"token for token the same; batched matmuls may round differently)")

    # 3. KL(base ‖ model) per measurement: a base forward each time, or kept log-probabilities
    samples = torch.tensor([r for c in together for r in c])
    base_logp = log_probs(model, samples)  # the measured model is the base model here

    def two_forwards():
        return sum(float((b.exp() * (b - m)).sum())
                   for b, m in zip(log_probs(model, samples), log_probs(model, samples),
                                   strict=True))

    def one_forward():
        return sum(float((b.exp() * (b - m)).sum())
                   for b, m in zip(base_logp, log_probs(model, samples), strict=True))

    _, t_two = timed(two_forwards)
    _, t_one = timed(one_forward)
    kept_mb = sum(t.numel() for t in base_logp) * 4 / 2**20
    print(f"KL over the samples: two forwards {t_two:.2f} s, kept base log-probs {t_one:.2f} s "
          f"-> {t_two / t_one:.2f}x, keeping {kept_mb:.0f} MiB")


if __name__ == "__main__":
    main()
