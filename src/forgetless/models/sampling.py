"""Seeded ancestral sampling from a causal LM, identical on every process.

Used by self-generated replay, LAMOL pseudo-examples and the held-out probe samples. Samples are
made in fixed-size chunks, each with its own generator seeded from (seed, chunk), so the result
depends neither on the number of processes nor on the global RNG. Under multi-process training
every process samples a share of the chunks and all of them are gathered, so every rank ends
with the same token lists while the work is split.

A hand-written loop over a KV cache rather than `generate()`: it guarantees the sampling rule
the papers specify (temperature, optional top-k, EOS allowed or not) and draws from an explicit
generator.
"""

from __future__ import annotations

import torch
from accelerate.utils import gather_object

from forgetless.core.seeding import derive_seed

CHUNK = 8
"""Samples per generator seed."""
BATCH_CHUNKS = 8
"""Chunks sampled together, one forward per token for all their rows."""


@torch.no_grad()
def sample_chunk(model, prefix: list[int], n: int, length: int, seed: int, *,
                 temperature: float = 1.0, top_k: int = 0,
                 eos_id: int | None = None, eos_count: int = 1) -> list[list[int]]:
    """`n` continuations of `prefix`, each `length` tokens in total (prefix included).

    eos_id=None: EOS is an ordinary token and every sample has full length (self-replay).
    Otherwise a row stops at its `eos_count`-th EOS (kept) and is returned shorter: a chat
    template's user turn ends with the EOS token too, so a whole example written in it has two.
    """
    return sample_chunks(model, prefix, [n], length, [seed], temperature=temperature,
                         top_k=top_k, eos_id=eos_id, eos_count=eos_count)[0]


@torch.no_grad()
def sample_chunks(model, prefix: list[int], sizes: list[int], length: int, seeds: list[int], *,
                  temperature: float = 1.0, top_k: int = 0,
                  eos_id: int | None = None, eos_count: int = 1) -> list[list[list[int]]]:
    """Several chunks in one batch, chunk c drawing its `sizes[c]` rows from its own generator
    (`seeds[c]`), so its samples are those it would get alone. One forward per token for all of
    them: on a CPU a forward of a few rows costs reading every weight from memory, so batching
    chunks divides the time by about their number."""
    device = next(model.parameters()).device
    gens = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    bounds = [sum(sizes[:c]) for c in range(len(sizes) + 1)]
    n = bounds[-1]
    was_training = model.training
    model.eval()
    ids = torch.tensor([prefix] * n, dtype=torch.long, device=device)
    out = ids
    past = None
    seen = torch.zeros(n, dtype=torch.long, device=device)
    for _ in range(length - len(prefix)):
        outputs = model(input_ids=ids, past_key_values=past, use_cache=True)
        past = outputs.past_key_values
        logits = outputs.logits[:, -1, :].float() / temperature
        if top_k:
            kth = logits.topk(top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = logits.softmax(-1)
        ids = torch.cat([_draw(probs[bounds[c]:bounds[c + 1]], gen) for c, gen in enumerate(gens)])
        out = torch.cat([out, ids], dim=1)
        if eos_id is not None:
            seen += ids[:, 0] == eos_id
            if bool((seen >= eos_count).all()):
                break
    model.train(was_training)
    rows = out.tolist()
    if eos_id is not None:
        rows = [_through_eos(r, len(prefix), eos_id, eos_count) for r in rows]
    return [rows[bounds[c]:bounds[c + 1]] for c in range(len(sizes))]


def _through_eos(row: list[int], start: int, eos_id: int, count: int) -> list[int]:
    """`row` up to and including its `count`-th EOS after `start` (all of it if fewer)."""
    for k, token in enumerate(row[start:], start):
        if token == eos_id:
            count -= 1
            if count == 0:
                return row[:k + 1]
    return row


def _draw(probs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One token per row by inverting the CDF with a uniform draw: exact like
    `torch.multinomial`, and on CPU 11× faster (1.1 vs 12.2 ms for 8 rows × 49k tokens)."""
    cdf = probs.double().cumsum(-1)
    u = torch.rand((probs.shape[0], 1), generator=gen, device=probs.device, dtype=torch.float64)
    u = u * cdf[:, -1:]  # the total is 1 up to rounding
    return torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[-1] - 1)


def sample_shared(accelerator, model, prefix: list[int], n: int, length: int, seed: int,
                  **kwargs) -> list[list[int]]:
    """`n` samples, the same list on every process (chunks shared out, then gathered).
    `model` must be a plain module (not DDP-wrapped): sampling runs no collective ops."""
    chunks = [(c, min(CHUNK, n - c * CHUNK)) for c in range((n + CHUNK - 1) // CHUNK)]
    mine = chunks[accelerator.process_index::accelerator.num_processes]
    made = []
    for g in range(0, len(mine), BATCH_CHUNKS):
        group = mine[g:g + BATCH_CHUNKS]
        rows = sample_chunks(model, prefix, [size for _, size in group], length,
                             [derive_seed(seed, "chunk", c) for c, _ in group], **kwargs)
        made += [(c, r) for (c, _), r in zip(group, rows, strict=True)]
    if accelerator.num_processes > 1:
        made = gather_object(made)
    return [row for _, rows in sorted(made) for row in rows]


def start_tokens(tokenizer) -> list[int]:
    """The unconditional prefix: BOS, or EOS for tokenizers without one (GPT-2 style, where EOS
    separates documents)."""
    bos = tokenizer.bos_token_id
    return [bos if bos is not None else tokenizer.eos_token_id]


def template_prefix(tokenizer, template: str) -> list[int]:
    """Tokens of the prompt template up to the question, tokenised as training prompts are
    (trailing space dropped, so the model writes the question's first word with its space)."""
    head = template.split("{question}")[0].rstrip()
    ids = tokenizer(head, add_special_tokens=True)["input_ids"] if head else []
    return ids or start_tokens(tokenizer)
