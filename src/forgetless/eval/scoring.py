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
    model, tokenizer, items: list[Encoded], batch_size: int, max_new_tokens: int
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
            n_words = target.numel() - 1  # without EOS
            if n_words > max_new_tokens:
                correct = False  # generation would be cut before the answer ends
            elif n_words == max_new_tokens:
                correct = bool((guess[:-1] == target[:-1]).all())  # budget ends, no EOS needed
            else:
                correct = bool((guess == target).all())
            stop = (guess == eos).nonzero()
            shown = guess[: int(stop[0])] if len(stop) else guess
            out[i] = Score(
                correct,
                tokenizer.decode(shown.tolist(), skip_special_tokens=True).strip(),
                float(nll[row].sum() / target.numel()),
            )
    return out  # type: ignore[return-value]


@torch.no_grad()
def score_generate(
    model, tokenizer, items: list[Encoded], answers: list[str], batch_size: int,
    max_new_tokens: int,
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
    return out  # type: ignore[return-value]


@torch.no_grad()
def score_choice(
    model, tokenizer, items: list[Encoded], answers: list[str], candidates: list[list[str]],
    batch_size: int,
) -> list[Score]:
    """Log-likelihood choice: per item, the candidate whose tokens + EOS have the highest summed
    log-probability after the item's prompt. `prediction` is that candidate; `nll` is the
    answer's mean NLL per token, as for the other scorers."""
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    device = next(model.parameters()).device
    tokens: dict[str, list[int]] = {}
    rows: list[Encoded] = []
    owner: list[tuple[int, int]] = []
    for i, (it, cands) in enumerate(zip(items, candidates, strict=True)):
        prompt = it.input_ids[: len(it.input_ids) - it.n_answer]
        for k, cand in enumerate(cands):
            if cand not in tokens:
                tokens[cand] = [*tokenizer(" " + cand.strip(), add_special_tokens=False)["input_ids"],
                                eos]
            rows.append(Encoded([*prompt, *tokens[cand]], len(tokens[cand])))
            owner.append((i, k))
    total = [0.0] * len(rows)
    for idx in length_sorted_batches([len(r.input_ids) for r in rows], batch_size):
        batch = {k: v.to(device) for k, v in collate([rows[r] for r in idx], pad).items()}
        nll = answer_nll(forward_answer_logits(model, batch).logits, batch["labels"]).sum(-1)
        for row, r in enumerate(idx):
            total[r] = float(nll[row])
    per_item: list[list[float]] = [[] for _ in items]
    for r, (i, _) in enumerate(owner):
        per_item[i].append(total[r])
    out = []
    for i, losses in enumerate(per_item):
        best = min(range(len(losses)), key=losses.__getitem__)  # ties: the earlier candidate
        chosen = candidates[i][best]
        truth = candidates[i].index(answers[i])
        n_tokens = len(tokens[answers[i]])
        out.append(Score(chosen == answers[i], chosen, losses[truth] / n_tokens))
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
    batch_size: int, max_new_tokens: int,
) -> list[Score]:
    generated = score_generate(model, tokenizer, items, answers, batch_size, max_new_tokens)
    return [Score(g.correct, g.prediction, g.nll, rouge_l(g.prediction, refs))
            for g, refs in zip(generated, references, strict=True)]
