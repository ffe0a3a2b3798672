"""Examples → token ids → left-padded batches whose answers all end at the last position.

Left padding puts every answer (and its EOS) at the end of its row, so one `logits_to_keep=K`
forward computes the output head only over the last K positions, where K is the longest
answer in the batch: the loss and the exact-match scorer never pay the vocabulary projection
for prompt tokens. Position ids are derived from the attention mask, so a padded row computes
exactly what it would alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from forgetless.core.errors import DataError
from forgetless.data.types import Example

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    """Prompt tokens, then answer tokens, then EOS."""
    n_answer: int
    """Answer tokens including the final EOS (the positions the loss and the scorer look at)."""
    history: tuple[int, ...] = ()
    """Positions in `input_ids` before the answer that are trained on too: a conversation's
    earlier assistant turns (`data.history_loss`). Never scored."""

    @property
    def n_targets(self) -> int:
        """Tokens the training loss is taken over."""
        return self.n_answer + len(self.history)


def answer_separator(template: str) -> str:
    """What comes between a prompt and its answer: a space, unless the prompt template already
    ends in whitespace — a chat template's assistant header ends with a newline, after which a
    chat model writes its answer directly."""
    return "" if template[-1:].isspace() else " "


def encode(example: Example, tokenizer, template: str, max_length: int,
           history: bool = False) -> Encoded:
    """`history`: mark the example's earlier assistant turns (`Example.history`) as targets
    too — for training; evaluation encodes without them."""
    if example.text:
        return encode_text(example.text, tokenizer, max_length)
    text = example.prompt or template.format(question=example.question)
    spans = example.history if history else ()
    try:
        prompt = tokenizer(text, add_special_tokens=True, return_offsets_mapping=bool(spans))
    except NotImplementedError:  # a Python ("slow") tokenizer keeps no character offsets
        raise DataError("data.history_loss needs a fast tokenizer (one with character "
                        "offsets); this model's is a Python one") from None
    answer = tokenizer(answer_separator(text) + example.answer.strip(),
                       add_special_tokens=False)
    answer_ids = [*answer["input_ids"], tokenizer.eos_token_id]
    ids = [*prompt["input_ids"], *answer_ids]
    targets = _tokens_in(prompt["offset_mapping"], _in_text(spans, example, template)) \
        if spans else []
    if len(ids) > max_length:
        # Cut the prompt from the left; an answer is never cut (it is what is scored), so a
        # too-small max_length keeps at least one token of context before the answer.
        cut = max(0, len(ids) - max(max_length, len(answer_ids) + 1))
        ids = ids[cut:]
        targets = [t - cut for t in targets if t - cut >= 1]
    return Encoded(ids, len(answer_ids), tuple(targets))


def _in_text(spans, example: Example, template: str) -> list[tuple[int, int]]:
    """`Example.history` spans as character spans of the prompt text: as they are in a rendered
    prompt; shifted by where the question sits in the prompt template otherwise."""
    if example.prompt:
        return list(spans)
    mark = "\x00"
    shift = template.format(question=mark).index(mark)
    return [(a + shift, b + shift) for a, b in spans]


def _tokens_in(offsets, spans: list[tuple[int, int]]) -> list[int]:
    """Indices of the tokens whose characters overlap a span (a token that carries the space
    before a word is the word's); the first token (BOS) never, it has nothing before it."""
    return [k for k, (start, end) in enumerate(offsets)
            if k > 0 and end > start and any(start < b and end > a for a, b in spans)]


def encode_text(text: str, tokenizer, max_length: int) -> Encoded:
    """Plain text as a language-modelling example: a start token (BOS, or EOS for tokenizers
    without one), the text, EOS; every token after the start is a target. Too long a text is cut
    at the end (its beginning keeps the context it was written with)."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    body = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = [start, *body, tokenizer.eos_token_id][:max(max_length, 2)]
    return Encoded(ids, len(ids) - 1)


def encode_all(examples: list[Example], tokenizer, template: str, max_length: int,
               history: bool = False) -> list[Encoded]:
    return [encode(ex, tokenizer, template, max_length, history) for ex in examples]


def collate(items: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-pad a batch. `labels` covers only the last K+1 positions (K = longest answer, or
    from a row's first `history` target on), aligned with `logits_to_keep=K+1` logits:
    labels[:, t] is the target predicted at kept position t."""
    width = max(len(it.input_ids) for it in items)
    keep = max(max([it.n_answer, *(len(it.input_ids) - j for j in it.history)]) for it in items) + 1
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), keep), IGNORE, dtype=torch.long)
    for row, it in enumerate(items):
        n = len(it.input_ids)
        input_ids[row, width - n:] = torch.tensor(it.input_ids)
        attention[row, width - n:] = 1
        # logits at kept position t predict token at absolute position width-keep+t+1
        answer = torch.tensor(it.input_ids[n - it.n_answer:])
        labels[row, keep - 1 - it.n_answer:keep - 1] = answer
        for j in it.history:  # token j is predicted at kept position keep - n + j - 1
            labels[row, keep - n + j - 1] = it.input_ids[j]
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": attention, "position_ids": positions,
            "labels": labels}


def forward_answer_logits(model, batch: dict[str, torch.Tensor]):
    """One forward pass; returns the model outputs with logits for the last K+1 positions only."""
    keep = batch["labels"].shape[1]
    return model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"], logits_to_keep=keep, use_cache=False,
    )


def answer_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token NLL of the answer, shape [B, K+1] (0 where there is no answer token)."""
    flat = torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="none"
    )
    return flat.view(labels.shape)


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), to waste no padding."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
