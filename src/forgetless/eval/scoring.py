"""Scorers: exact match under greedy decoding (two ways), log-likelihood choice, ROUGE-L.

`teacher_forced` (default): greedy decoding reproduces the answer exactly when every answer token
is the argmax given the true prefix and the answer is then terminated (EOS is the argmax). One
batched forward pass gives that, plus the answer's log-likelihood, for a whole batch.
Where the two can differ: `generate` normalises text (strip + lowercase), so a model that
writes " Blue" or "blue\\n" for "blue" counts as right there and wrong here, and a different
tokenisation of the same string likewise. The parity test and benchmarks/ measure agreement.

`generate`: batched greedy `generate()` (left-padded), cut at EOS, decoded, strip + lowercase
(`data.types.answer_key`, shared with the audit), compared with the answer — the Concept-1K
protocol (PAPERS.md §1).

`choice`: the candidate answer (label word) with the highest log-likelihood, answer tokens plus
EOS, summed, wins — the standard for classification. All (example, candidate) rows go through
the same left-padded batches as training, so scoring k candidates costs k short rows per example.

`rouge`: greedy `generate()`, then ROUGE-L F1 (Google's `rouge-score`, Porter stemming, as in
the SuperNI evaluation) against the best of the example's references.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from forgetless.data.collate import (
    IGNORE,
    Encoded,
    answer_nll,
    collate,
    forward_answer_logits,
    length_sorted_batches,
)
from forgetless.data.types import answer_key


@dataclass(frozen=True)
class Score:
    correct: bool
    prediction: str
    """Decoded greedy output (generate) or teacher-forced argmax up to EOS (teacher_forced)."""
    nll: float
    """Mean NLL per answer token (EOS included) under teacher forcing; NaN for `generate`."""
    value: float | None = None
    """The example's score where it is not 0/1 (ROUGE-L F1); None = float(correct)."""

    @property
    def points(self) -> float:
        return float(self.correct) if self.value is None else self.value


@torch.no_grad()
def score_teacher_forced(
    model, tokenizer, items: list[Encoded], batch_size: int, max_new_tokens: int,
    tick: Callable[[int], None] | None = None,
) -> list[Score]:
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    out: list[Score | None] = [None] * len(items)
    device = next(model.parameters()).device
    for idx in length_sorted_batches([len(it.input_ids) for it in items], batch_size):
        batch = {k: v.to(device) for k, v in collate([items[i] for i in idx], pad).items()}
        labels = batch["labels"]
        logits = forward_answer_logits(model, batch).logits
        argmax = logits.argmax(-1)
        nll = answer_nll(logits, labels)
        mask = labels != IGNORE
        for row, i in enumerate(idx):
            target = labels[row][mask[row]]  # answer tokens then EOS
            guess = argmax[row][mask[row]]
            out[i] = Score(
                greedy_reproduces(guess.tolist(), target.tolist(), max_new_tokens),
                shown_text(tokenizer, guess.tolist(), eos),
                float(nll[row].sum() / target.numel()),
            )
        if tick is not None:
            tick(len(idx))
    return out  # type: ignore[return-value]


def greedy_reproduces(guess: list[int], target: list[int], max_new_tokens: int) -> bool:
    """Whether greedy decoding with `max_new_tokens` writes `target` (answer tokens then EOS),
    given the teacher-forced argmax `guess` at each of its positions."""
    n_words = len(target) - 1  # without EOS
    if n_words > max_new_tokens:
        return False  # generation would be cut before the answer ends
    if n_words == max_new_tokens:
        return guess[:-1] == target[:-1]  # the budget ends there: no EOS needed
    return guess == target


def shown_text(tokenizer, guess: list[int], eos: int) -> str:
    """The teacher-forced argmax up to its first EOS, decoded: what the scorer shows."""
    shown = guess[: guess.index(eos)] if eos in guess else guess
    return tokenizer.decode(shown, skip_special_tokens=True).strip()


@dataclass(frozen=True)
class Continuation:
    nll: list[float]
    """Per token of the continuation: its negative log-likelihood after the prompt."""
    argmax: list[int]
    """Per token: the model's most likely token at that position (teacher forcing)."""


@torch.no_grad()
def score_continuations(
    model, prompts: list[list[int]], continuations: list[list[list[int]]], batch_size: int,
    pad_id: int, tick: Callable[[int], None] | None = None,
) -> list[list[Continuation]]:
    """Per prompt, per continuation of it: token NLLs and argmaxes under teacher forcing — the
    numbers one forward over prompt + continuation gives, but with each prompt run once and its
    keys and values shared by all its continuations (k candidates cost one prompt plus k short
    rows, not k full rows). `batch_size` bounds the rows of a forward: prompts, and continuations
    taken in length order so that each forward pads them only to the longest of similar lengths."""
    device = next(model.parameters()).device
    out: list[list[Continuation | None]] = [[None] * len(c) for c in continuations]
    for idx in length_sorted_batches([len(p) for p in prompts], batch_size):
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        for row, i in enumerate(idx):
            ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            attention[row, width - len(prompts[i]):] = 1
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        first = model(input_ids=ids.to(device), attention_mask=attention.to(device),
                      position_ids=positions.to(device), use_cache=True, logits_to_keep=1)
        first_logp = torch.log_softmax(first.logits[:, -1].float(), -1)  # predicts token 0
        mine = [continuations[i] for i in idx]
        rows = sorted(((row, k) for row in range(len(idx)) for k in range(len(mine[row]))),
                      key=lambda rk: len(mine[rk[0]][rk[1]]))
        for start in range(0, len(rows), batch_size):
            group = rows[start:start + batch_size]
            last = start + batch_size >= len(rows)
            # batch_select_indices replaces the cache's tensors: every group but the last
            # selects from a copy, the last from the prompt pass's cache itself.
            cache = first.past_key_values if last else copy.deepcopy(first.past_key_values)
            for r, scored in zip(group, _score_rows(model, group, mine, cache, first_logp, attention,
                                                    pad_id, device), strict=True):
                out[idx[r[0]]][r[1]] = scored
        if tick is not None:
            tick(len(idx))
    return out  # type: ignore[return-value]


def _score_rows(model, rows: list[tuple[int, int]], continuations: list[list[list[int]]], cache,
                first_logp: torch.Tensor, attention: torch.Tensor, pad_id: int, device
                ) -> list[Continuation]:
    """Teacher-forced NLLs and argmaxes of continuation rows (prompt row, option k) after their
    prompts' keys and values in `cache` (which this repeats per row)."""
    length = max(len(continuations[row][k]) for row, k in rows)
    owner = torch.tensor([row for row, _ in rows])
    cont = torch.full((len(rows), length), pad_id, dtype=torch.long)
    cont_mask = torch.zeros_like(cont)
    for r, (row, k) in enumerate(rows):
        tokens = continuations[row][k]
        cont[r, :len(tokens)] = torch.tensor(tokens)
        cont_mask[r, :len(tokens)] = 1  # right-padded: padding comes after what is scored
    logp = first_logp[owner.to(device)][:, None]
    if length > 1:
        cache.batch_select_indices(owner.to(device))
        start = attention.sum(-1)[owner]
        logits = model(
            input_ids=cont[:, :-1].to(device),
            attention_mask=torch.cat([attention[owner], cont_mask[:, :-1]], -1).to(device),
            position_ids=(start[:, None] + torch.arange(length - 1)).to(device),
            past_key_values=cache, use_cache=True).logits
        logp = torch.cat([logp, torch.log_softmax(logits.float(), -1)], 1)
    nll = -logp.gather(-1, cont.to(device)[..., None])[..., 0]
    argmax = logp.argmax(-1)
    return [Continuation(nll[r, :len(continuations[row][k])].tolist(),
                         argmax[r, :len(continuations[row][k])].tolist())
            for r, (row, k) in enumerate(rows)]


@torch.no_grad()
def score_generate(
    model, tokenizer, items: list[Encoded], answers: list[str], batch_size: int,
    max_new_tokens: int, tick: Callable[[int], None] | None = None,
) -> list[Score]:
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    out: list[Score | None] = [None] * len(items)
    device = next(model.parameters()).device
    prompts = [it.input_ids[: len(it.input_ids) - it.n_answer] for it in items]
    for idx in length_sorted_batches([len(p) for p in prompts], batch_size):
        width = max(len(prompts[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for row, i in enumerate(idx):
            n = len(prompts[i])
            input_ids[row, width - n:] = torch.tensor(prompts[i])
            attention[row, width - n:] = 1
        generated = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos, pad_token_id=pad,
            use_cache=True, top_p=None, top_k=None, temperature=None,
        )[:, width:]
        for row, i in enumerate(idx):
            tokens = generated[row].tolist()
            if eos in tokens:
                tokens = tokens[: tokens.index(eos)]
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            out[i] = Score(answer_key(text) == answer_key(answers[i]), text.strip(), float("nan"))
        if tick is not None:
            tick(len(idx))
    return out  # type: ignore[return-value]


def score_choice(
    model, tokenizer, items: list[Encoded], answers: list[str], candidates: list[list[str]],
    batch_size: int, tick: Callable[[int], None] | None = None, separator: str = " ",
) -> list[Score]:
    """Log-likelihood choice: per item, the candidate whose tokens + EOS have the highest summed
    log-probability after the item's prompt (each candidate after `separator`, as `encode` puts
    the answer: `answer_separator` of the template). `prediction` is that candidate; `nll` is the
    answer's mean NLL per token, as for the other scorers. The prompt runs once per item; its
    candidates share its keys and values (`score_continuations`)."""
    eos = tokenizer.eos_token_id
    tokens: dict[str, list[int]] = {}
    for cands in candidates:
        for cand in cands:
            if cand not in tokens:
                tokens[cand] = [*tokenizer(separator + cand.strip(),
                                           add_special_tokens=False)["input_ids"], eos]
    prompts = [it.input_ids[: len(it.input_ids) - it.n_answer] for it in items]
    scored = score_continuations(model, prompts, [[tokens[c] for c in cands] for cands in candidates],
                                 batch_size, tokenizer.pad_token_id, tick)
    out = []
    for i, per_candidate in enumerate(scored):
        losses = [sum(c.nll) for c in per_candidate]
        best = min(range(len(losses)), key=losses.__getitem__)  # ties: the earlier candidate
        chosen = candidates[i][best]
        truth = candidates[i].index(answers[i])
        out.append(Score(chosen == answers[i], chosen, losses[truth] / len(tokens[answers[i]])))
    return out


_ROUGE = None


def rouge_l(prediction: str, references: list[str]) -> float:
    """ROUGE-L F1 of a prediction against the best-matching reference (0 for an empty one)."""
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return max(_ROUGE.score(ref, prediction)["rougeL"].fmeasure for ref in references)


def score_rouge(
    model, tokenizer, items: list[Encoded], answers: list[str], references: list[list[str]],
    batch_size: int, max_new_tokens: int, tick: Callable[[int], None] | None = None,
) -> list[Score]:
    generated = score_generate(model, tokenizer, items, answers, batch_size, max_new_tokens, tick)
    return [Score(g.correct, g.prediction, g.nll, rouge_l(g.prediction, refs))
            for g, refs in zip(generated, references, strict=True)]
