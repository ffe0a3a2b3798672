"""The choice and ROUGE-L scorers against hand computations."""

import pytest
import torch

from forgetless.data.collate import encode
from forgetless.data.types import Example
from forgetless.eval.scoring import rouge_l, score_choice, score_rouge

pytestmark = pytest.mark.integration
TEMPLATE = "Question: {question}\n Short Answer:"


def test_rouge_l_hand_computed():
    # LCS("the cat sat", "the cat sat on the mat") = 3 → P 3/3, R 3/6, F = 2PR/(P+R) = 2/3
    assert rouge_l("the cat sat", ["the cat sat on the mat"]) == pytest.approx(2 / 3)
    # the best reference counts, and Porter stemming makes "cats" match "cat"
    assert rouge_l("cats", ["dogs", "cat"]) == pytest.approx(1.0)
    assert rouge_l("", ["anything"]) == 0.0


@torch.no_grad()
def summed_nll(model, tok, prompt: str, candidate: str) -> float:
    """One row alone, no padding: -log p(candidate tokens + EOS | prompt)."""
    p = tok(TEMPLATE.format(question=prompt))["input_ids"]
    c = [*tok(" " + candidate, add_special_tokens=False)["input_ids"], tok.eos_token_id]
    ids = torch.tensor([p + c])
    logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    return -sum(float(logp[len(p) - 1 + k, t]) for k, t in enumerate(c))


def test_choice_picks_the_highest_likelihood_candidate(tiny):
    tok, model = tiny
    cands = ["red", "dark green", "blue sky today", "x"]
    examples = [Example(f"u{i}", q, cands[i % 4], choices=tuple(cands))
                for i, q in enumerate(["short?", "a much longer question than the others here?",
                                       "mid length one?", "q", "another"])]
    items = [encode(ex, tok, TEMPLATE, 64) for ex in examples]
    scores = score_choice(model, tok, items, [ex.answer for ex in examples],
                          [list(cands)] * len(examples), batch_size=3)
    for ex, s in zip(examples, scores, strict=True):
        nll = [summed_nll(model, tok, ex.question, c) for c in cands]
        best = cands[min(range(4), key=nll.__getitem__)]
        assert s.prediction == best
        assert s.correct == (best == ex.answer)
        n_tokens = len(tok(" " + ex.answer, add_special_tokens=False)["input_ids"]) + 1
        assert s.nll == pytest.approx(nll[cands.index(ex.answer)] / n_tokens, rel=1e-4)


def test_rouge_scorer_scores_generated_text(tiny):
    tok, model = tiny
    ex = Example("u", "say something", "anything at all")
    [s] = score_rouge(model, tok, [encode(ex, tok, TEMPLATE, 64)], [ex.answer],
                      [["anything at all"]], batch_size=1, max_new_tokens=5)
    assert s.value == pytest.approx(rouge_l(s.prediction, ["anything at all"]))
    assert s.points == s.value


def test_shared_prompt_continuations_equal_one_row_alone(tiny):
    """Prompts run once with their keys and values shared by every continuation give the NLL
    and argmax that each full row gives alone, unpadded: across left-padded prompts of
    different lengths, right-padded continuations of different lengths and counts."""
    tok, model = tiny
    prompts = [tok(TEMPLATE.format(question=q))["input_ids"]
               for q in ["a much longer question than the others here?", "q", "mid length one?"]]
    continuations = [[[5, 9, 11], [7]], [[3], [4, 4, 4, 4], [8, 2]], [[12, 13]]]
    from forgetless.eval.scoring import score_continuations

    scored = score_continuations(model, prompts, continuations, batch_size=4,
                                 pad_id=tok.pad_token_id)
    for p, conts, got in zip(prompts, continuations, scored, strict=True):
        for c, g in zip(conts, got, strict=True):
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=torch.tensor([p + c])).logits[0].float(), -1)
            rows = logp[len(p) - 1:len(p) - 1 + len(c)]
            assert g.nll == pytest.approx([-float(rows[k, t]) for k, t in enumerate(c)], rel=1e-4)
            assert g.argmax == rows.argmax(-1).tolist()
