"""Sampling, LAMOL parsing, world facts, probe summary and batch layout with reserved rows."""

from types import SimpleNamespace

import pytest
import torch

from forgetless.core.config import load_config
from forgetless.core.errors import ConfigError
from forgetless.core.results import probe_summary
from forgetless.data.worldfacts import country_questions
from forgetless.engine.loop import layout_notes, step_layout
from forgetless.methods import registry
from forgetless.methods.lamol import parse_example
from forgetless.models.sampling import _draw, sample_chunk, sample_chunks, sample_shared

TEMPLATE = "Question: {question}\n Short Answer:"


class Bigram(torch.nn.Module):
    """A model whose next-token distribution depends only on the last token; counts calls."""

    def __init__(self, vocab=7, seed=0):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab,
                                                    generator=torch.Generator().manual_seed(seed)))

    def forward(self, input_ids, past_key_values=None, use_cache=True):
        return SimpleNamespace(logits=self.table[input_ids], past_key_values=None)


def test_draw_matches_the_distribution_and_never_picks_zero_probability():
    probs = torch.tensor([[0.1, 0.0, 0.2, 0.7]]).repeat(40000, 1)
    picks = _draw(probs, torch.Generator().manual_seed(0))[:, 0]
    freq = torch.bincount(picks, minlength=4) / len(picks)
    assert freq[1] == 0
    assert torch.allclose(freq, torch.tensor([0.1, 0.0, 0.2, 0.7]), atol=0.01)


def test_samples_are_seeded_full_length_and_independent_of_chunking():
    model = Bigram()
    a = sample_chunk(model, [3], 5, 12, seed=1)
    assert a == sample_chunk(model, [3], 5, 12, seed=1)
    assert a != sample_chunk(model, [3], 5, 12, seed=2)
    assert all(len(r) == 12 and r[0] == 3 for r in a)
    one = SimpleNamespace(process_index=0, num_processes=1)
    twelve = sample_shared(one, model, [3], 12, 10, seed=4)
    assert len(twelve) == 12 and twelve[:8] == sample_shared(one, model, [3], 8, 10, seed=4)


def test_chunks_sampled_together_are_the_chunks_sampled_alone():
    """Batched chunks draw from their own generators: the same rows as one at a time, also when
    one chunk stops at EOS long before another, and with chunks of different sizes."""
    model = Bigram(vocab=6)
    with torch.no_grad():
        model.table[:, 5] += 1.5  # EOS = 5: likely enough that rows end at different steps
    sizes, seeds = [8, 3, 5], [11, 12, 13]
    for eos in (None, 5):
        together = sample_chunks(model, [0], sizes, 25, seeds, eos_id=eos)
        alone = [sample_chunk(model, [0], n, 25, seed, eos_id=eos)
                 for n, seed in zip(sizes, seeds, strict=True)]
        assert together == alone
    assert len({len(r) for chunk in together for r in chunk}) > 1  # EOS did stop rows early


def test_sampling_stops_at_eos_and_top_k_cuts_the_tail():
    model = Bigram(vocab=5)
    with torch.no_grad():
        model.table.zero_()
        model.table[:, 4] = 5.0  # EOS = 4 is by far the likeliest next token
    rows = sample_chunk(model, [0, 1], 6, 20, seed=0, eos_id=4)
    assert all(r[-1] == 4 and 4 not in r[2:-1] for r in rows)
    rows = sample_chunk(model, [0], 4, 30, seed=0, top_k=1)
    assert all(t == 4 for r in rows for t in r[1:])  # top-1 is greedy


@pytest.mark.parametrize("text, expected", [
    ("Question: What colour is a zib?\n Short Answer: blue", ("What colour is a zib?", "blue")),
    ("Question:   Who made it?\n Short Answer:  Ann Lee ", ("Who made it?", "Ann Lee")),
    ("Question: no answer marker here", None),
    ("Question: Q?\n Short Answer: ", None),
    ("Question: Q?\n Short Answer: two\nlines", None),
    ("Something else\n Short Answer: x", None),
])
def test_lamol_parses_generated_examples_with_the_template(text, expected):
    assert parse_example(text, TEMPLATE) == expected


def test_country_questions_are_real_facts_and_a_stable_subset():
    qs = country_questions()
    by_uid = {q.uid: q for q in qs}
    assert by_uid["capital/france"].answer == "Paris"
    assert by_uid["region/japan"].answer == "Asia"
    assert len(qs) > 400 and len({q.uid for q in qs}) == len(qs)
    sub = country_questions(50)
    assert len(sub) == 50 and sub == country_questions(50) and set(sub) <= set(qs)


def test_probe_summary_by_hand():
    rows = [{"after": -1, "sample_nll": 2.0, "sample_kl": 0.0, "qa_accuracy": 0.5,
             "qa_retention": 1.0},
            {"after": 0, "sample_nll": 2.5, "sample_kl": 0.25, "qa_accuracy": 0.4,
             "qa_retention": 0.75},
            {"after": 1, "sample_nll": 3.25, "sample_kl": 0.5, "qa_accuracy": 0.3,
             "qa_retention": 0.5}]
    s = probe_summary(rows)
    assert s["sample_nll_rise"] == pytest.approx(1.25)
    assert s["sample_kl_final"] == 0.5 and s["qa_accuracy_base"] == 0.5
    assert s["qa_retention_final"] == 0.5
    assert probe_summary([])["sample_nll_rise"] is None


def layout(overrides, world=1, experience=1):
    cfg = load_config(None, overrides)
    return step_layout(cfg, registry.build(cfg), world, experience)


def test_reserved_rows_shrink_the_new_part_of_each_step():
    assert layout(["method=replay", "replay.mixing=batch", "replay.batch_share=0.25"]) == (6, 6)
    # nothing to replay during the first experience: the whole batch is new data
    assert layout(["method=replay", "replay.mixing=batch"], experience=0) == (8, 8)
    assert layout(["method=replay", "replay.mixing=batch"], world=2) == (6, 3)
    assert layout(["method=self_replay", "self_replay.loss=replace", "self_replay.weight=0.5"],
                  experience=0) == (4, 4)
    assert layout(["method=self_replay"]) == (8, 8)  # kl adds rows, replaces none


def notes(overrides, world, experience=1):
    cfg = load_config(None, ["train.batch_size=4", *overrides])
    return layout_notes(cfg, registry.build(cfg), world, experience)


def test_rows_rounded_to_the_processes_are_named_as_another_protocol():
    # batch 4, share 0.25: one process mixes 1 buffer row per step; two round it up to 2
    (note,) = notes(["method=replay", "replay.mixing=batch"], world=2)
    assert note.startswith("replay puts 2 rows of its own in every step of 4 under 2 process(es)")
    assert "one process without accumulation puts 1" in note
    assert "set replay.batch_share so that they are a multiple of 2 in both" in note
    # accumulation splits the step as processes do
    assert len(notes(["method=replay", "replay.mixing=batch", "train.grad_accum=2"], 1)) == 1
    # self-replay's default KL rows: a quarter of the batch, rounded up to the parts
    (note,) = notes(["method=replay+self_replay", "replay.batch_share=0.5",
                     "replay.mixing=batch"], world=2)
    assert note.startswith("self_replay puts 2 rows") and "set self_replay.rows so" in note
    # rows that are a multiple of the parts either way, or none before replay fills its buffer
    assert notes(["method=replay+self_replay", "replay.mixing=batch", "replay.batch_share=0.5",
                  "self_replay.rows=2"], world=2) == []
    assert notes(["method=replay", "replay.mixing=batch"], world=2, experience=0) == []
    assert notes(["method=replay", "replay.mixing=batch"], world=1) == []


def test_reservations_that_break_the_layout_are_config_errors():
    with pytest.raises(ConfigError, match="self_replay.weight=0.3: replaces 2 rows"):
        layout(["method=self_replay", "self_replay.loss=replace", "self_replay.weight=0.3",
                "train.grad_accum=4"])
    with pytest.raises(ConfigError, match="leaves 0"):
        layout(["method=replay+self_replay", "replay.mixing=batch", "replay.batch_share=0.5",
                "self_replay.loss=replace", "self_replay.weight=0.5"])


def test_lamol_lm_loss_counts_only_real_tokens_predicted_from_real_tokens():
    from types import SimpleNamespace

    import torch

    from forgetless.methods.lamol import Lamol, LamolConfig

    torch.manual_seed(0)
    vocab = 11
    table = torch.randn(vocab, vocab)

    class Bigram(torch.nn.Module):  # logits depend on the input token only
        def forward(self, input_ids, attention_mask, position_ids, use_cache):
            return SimpleNamespace(logits=table[input_ids])

    ids = torch.tensor([[0, 0, 3, 4, 5], [0, 6, 7, 8, 9]])  # left-padded with 0
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]])
    batch = {"input_ids": ids, "attention_mask": mask, "position_ids": mask.cumsum(-1)}
    ctx = SimpleNamespace(model=Bigram())
    got = Lamol(LamolConfig(lm_weight=1.0)).extra_loss(ctx, batch, None)
    # by hand: 3→4, 4→5, 6→7, 7→8, 8→9 (not pad→3 nor pad→6)
    pairs = [(3, 4), (4, 5), (6, 7), (7, 8), (8, 9)]
    want = torch.stack([torch.nn.functional.cross_entropy(table[a], torch.tensor(b))
                        for a, b in pairs]).mean()
    assert torch.allclose(got, want)


def test_sampling_can_run_to_the_second_eos():
    model = Bigram(vocab=5)
    with torch.no_grad():
        model.table[:, 4] += 1.0  # EOS = 4 is common, so rows hold several
    rows = sample_chunk(model, [0], 6, 40, seed=3, eos_id=4, eos_count=2)
    assert all(r[1:].count(4) == 2 and r[-1] == 4 for r in rows if len(r) < 40)
    assert any(len(r) < 40 for r in rows)
    once = sample_chunk(model, [0], 6, 40, seed=3, eos_id=4)
    assert [r[:len(o)] for r, o in zip(rows, once, strict=True)] == once  # the same draws, cut later


class Script(torch.nn.Module):
    """A model that writes one fixed token sequence, whatever it is given."""

    def __init__(self, tokens: list[int], vocab: int):
        super().__init__()
        self.tokens, self.vocab = tokens, vocab
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, past_key_values=None, use_cache=True):
        seen = (past_key_values or 0) + input_ids.shape[1]
        logits = torch.full((*input_ids.shape, self.vocab), -1e9)
        logits[:, -1, self.tokens[min(seen, len(self.tokens) - 1)]] = 0.0
        return SimpleNamespace(logits=logits, past_key_values=seen)


def test_lamol_keeps_an_example_written_in_the_chat_template():
    """With a chat template the model writes the user turn, its end (EOS), the assistant header
    and the answer: LAMOL samples to the second EOS and parses the special tokens back."""
    from forgetless.core.config import ModelConfig
    from forgetless.data.chat import prompt_template_for
    from forgetless.data.collate import encode
    from forgetless.data.types import Example
    from forgetless.methods.lamol import Lamol, LamolConfig
    from forgetless.models.load import load_tokenizer

    tok = load_tokenizer(ModelConfig())
    data = load_config(None, ["data.chat_template=auto"]).data
    template = prompt_template_for(data, tok)
    assert parse_example(template.format(question="What is Zorp?") + "a fish",
                         template) == ("What is Zorp?", "a fish")
    written = encode(Example("u", "What is Zorp?", "a fish"), tok, template, 512).input_ids
    ctx = SimpleNamespace(
        tokenizer=tok, config=SimpleNamespace(data=SimpleNamespace(prompt_template=template)),
        accelerator=SimpleNamespace(process_index=0, num_processes=1), seed=0,
        unwrapped_model=Script(written, len(tok)), agreed_digest=lambda name, rows: "d")
    lamol = Lamol(LamolConfig(sampling_ratio=1.0, max_length=128))
    lamol.before_experience(ctx, SimpleNamespace(index=1, train=[None, None]))
    assert lamol.stats["generated"] == 2 and lamol.stats["kept"] == 2
    assert {(ex.question, ex.answer) for ex in lamol.pseudo} == {("What is Zorp?", "a fish")}
