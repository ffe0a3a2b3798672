"""Left padding with logits_to_keep computes exactly what each example computes alone."""

import pytest
import torch

from forgetless.data.collate import IGNORE, answer_nll, collate, encode, forward_answer_logits
from forgetless.data.types import Example

pytestmark = pytest.mark.integration

TEMPLATE = "Question: {question}\n Short Answer:"


def test_answer_tokens_and_labels(tiny):
    tok, _ = tiny
    enc = encode(Example("u", "What does a Zorp eat?", "pine nuts"), tok, TEMPLATE, 64)
    answer = tok(" pine nuts", add_special_tokens=False)["input_ids"]
    assert enc.input_ids[-enc.n_answer:] == [*answer, tok.eos_token_id]
    batch = collate([enc], tok.pad_token_id)
    labels = batch["labels"][0]
    assert labels[-1] == IGNORE and labels[labels != IGNORE].tolist() == [*answer, tok.eos_token_id]


def test_truncation_keeps_the_answer(tiny):
    tok, _ = tiny
    enc = encode(Example("u", "word " * 50, "blue"), tok, TEMPLATE, 8)
    assert len(enc.input_ids) == 8 and enc.input_ids[-1] == tok.eos_token_id


def test_padded_batch_equals_examples_alone(tiny):
    tok, model = tiny
    examples = [Example("a", "Which river flows through Velmar?", "the Osk"),
                Example("b", "Hi?", "a very long answer of many words indeed"),
                Example("c", "What color is a Quorb, described in one word please?", "teal")]
    items = [encode(e, tok, TEMPLATE, 64) for e in examples]
    with torch.no_grad():
        batch = collate(items, tok.pad_token_id)
        together = answer_nll(forward_answer_logits(model, batch).logits, batch["labels"])
        for row, it in enumerate(items):
            alone_batch = collate([it], tok.pad_token_id)
            alone = answer_nll(forward_answer_logits(model, alone_batch).logits,
                               alone_batch["labels"])
            got = together[row][batch["labels"][row] != IGNORE]
            want = alone[0][alone_batch["labels"][0] != IGNORE]
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
            # and the same as a plain full forward pass with HF's own shifted labels
            ids = torch.tensor([it.input_ids])
            logits = model(input_ids=ids).logits[0, :-1]
            ref = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")
            torch.testing.assert_close(got, ref[-it.n_answer:], rtol=1e-4, atol=1e-5)


def test_text_example_trains_every_token_after_the_start(tiny):
    from forgetless.data.collate import IGNORE, collate, encode, forward_answer_logits
    from forgetless.data.types import Example

    tok, model = tiny
    text = Example("t", "", "", text="the otter eats fish.")
    enc = encode(text, tok, "Q: {question} A:", max_length=64)
    body = tok("the otter eats fish.", add_special_tokens=False)["input_ids"]
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    assert enc.input_ids == [start, *body, tok.eos_token_id] and enc.n_answer == len(body) + 1
    short = Example("q", "a question", "yes")
    batch = collate([enc, encode(short, tok, "Q: {question} A:", 64)], tok.pad_token_id)
    labels = batch["labels"][0]
    assert labels[labels != IGNORE].tolist() == [*body, tok.eos_token_id]
    # the NLL of the text equals a plain forward's next-token loss over the same ids
    with torch.no_grad():
        logits = forward_answer_logits(model, batch).logits[0]
        ids = torch.tensor([enc.input_ids])
        plain = model(input_ids=ids, labels=ids).loss
    mask = labels != IGNORE
    nll = torch.nn.functional.cross_entropy(logits[mask].float(), labels[mask])
    assert float(nll) == pytest.approx(float(plain), abs=1e-4)
    cut = encode(text, tok, "{question}", max_length=3)
    assert cut.input_ids == [start, *body[:2]] and cut.n_answer == 2
