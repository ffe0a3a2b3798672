"""The `corpus` source, text examples, the learning-rate schedule and their config checks."""

import math

import pytest
import torch

from forgetless.core.config import TrainConfig, load_config
from forgetless.core.errors import ConfigError, DataError
from forgetless.core.results import probe_summary
from forgetless.data.corpora import held_out_documents, training_documents
from forgetless.data.sources.registry import build_stream
from forgetless.engine.loop import _scheduler


def _lrs(train: TrainConfig, steps: int) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=123.0)  # the schedule starts from train.lr, not this
    sched = _scheduler(opt, train, steps)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return out


def test_cosine_schedule_by_hand():
    lr = 1e-3
    got = _lrs(TrainConfig(lr=lr, schedule="cosine", warmup=0.25, min_lr=0.1), 8)
    # 2 warm-up steps (0, 1/2 of the peak), then cosine over the 6 remaining steps to 10 %
    want = [0.0, lr / 2] + [lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 6)))
                            for k in range(6)]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_constant_schedule_restarts_from_lr():
    assert _lrs(TrainConfig(lr=2e-4), 3) == [2e-4] * 3


@pytest.mark.parametrize("override, message", [
    ("train.warmup=0.1", "train.warmup applies to schedule 'cosine' only"),
    ("train.betas=[0.9,1.0]", "train.betas: each must be in"),
    ("train.min_lr=2", "min_lr"),
])
def test_schedule_options_are_checked(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_user_text_held_out_is_never_trained_on(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("".join(f"document number {i}.\n" for i in range(50)))
    held = held_out_documents(str(path), 10, seed=3)
    train = training_documents(str(path), 200, seed=3, held_out=10)
    assert len(held) == 10 and len(train) == 200
    assert not set(held) & set(train)
    assert set(train) == {f"document number {i}." for i in range(50)} - set(held)
    with pytest.raises(DataError, match="holding out 50 leaves none"):
        held_out_documents(str(path), 50, seed=3)


def test_repeated_lines_are_one_document_so_held_out_stays_unseen(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("".join(f"line {i % 7}.\n" for i in range(40)))  # 7 texts, each repeated
    held = held_out_documents(str(path), 3, seed=1)
    train = training_documents(str(path), 30, seed=1, held_out=3)
    assert len(set(held)) == 3 and not set(held) & set(train) and len(set(train)) == 4


def test_python_docs_is_human_written_prose_split_like_user_text():
    from forgetless.data.corpora import python_docs_text

    docs = python_docs_text()
    assert len(docs) > 300 and all(len(d.split()) >= 30 and "\n" not in d for d in docs)
    assert any("statement" in d for d in docs)
    held = held_out_documents("python_docs", 64, seed=0)
    train = training_documents("python_docs", 500, seed=0, held_out=64)
    assert len(set(held)) == 64 and not set(held) & set(train)
    assert held == held_out_documents("python_docs", 64, seed=0)  # fixed text, seeded split


@pytest.mark.parametrize("domain", ["world", "arithmetic"])
def test_builtin_held_out_is_the_same_domain_never_trained_on(domain):
    held = held_out_documents(domain, 300, 4)
    train = training_documents(domain, 5000, 4, held_out=300)
    assert len(held) == 300 and len(train) == 5000
    assert not {d.lower() for d in held} & {d.lower() for d in train}


def test_world_held_out_tells_the_habits_training_taught():
    from forgetless.data.corpora import CREATURES, FOODS

    def usual_food(docs):
        counts = {c: {} for c in CREATURES}
        for d in docs:
            words = d.lower().rstrip(".").split()
            for c in set(words) & set(CREATURES):
                for f in set(words) & set(FOODS):
                    counts[c][f] = counts[c].get(f, 0) + 1
        # a creature whose held-out patterns never name a food names one only as noise
        return {c: max(fc, key=fc.get) for c, fc in counts.items() if sum(fc.values()) >= 20}

    held = usual_food(held_out_documents("world", 3000, 5))
    train = usual_food(training_documents("world", 3000, 5, held_out=3000))
    other_world = usual_food(training_documents("world", 3000, 6, held_out=3000))
    assert len(held) >= 8 and all(train[c] == food for c, food in held.items())  # same world...
    assert sum(held[c] == other_world.get(c) for c in held) < len(held) / 2  # ...not any world's


def test_builtin_held_out_prefix_is_stable():
    # the probe holds out the first n documents the source holds out: a prefix of the same draw
    assert held_out_documents("world", 5, 0) == held_out_documents("world", 20, 0)[:5]
    assert held_out_documents("world", 5, 0) != training_documents("world", 5, 0)


def test_corpus_stream_cuts_experiences_and_joins_documents():
    cfg = load_config(None, ["data.source=corpus", "data.domain=arithmetic",
                             "data.experiences=3", "data.documents=10", "data.test_documents=4",
                             "data.join=3"]).data
    stream = build_stream(cfg)
    assert len(stream) == 3
    for exp in stream.experiences:
        assert [len(ex.text.split(". ")) for ex in exp.train] == [3, 3, 3, 1]
        assert len(exp.test) == 2 and all(ex.question == "" for ex in exp.train + exp.test)
    train = [ex.text for e in stream.experiences for ex in e.train]
    assert len(set(train)) == len(train)


def test_bad_corpus_domain_names_the_key():
    cfg = load_config(None, ["data.source=corpus", "data.domain=/nowhere.txt"]).data
    with pytest.raises(DataError, match=r"data.domain: '/nowhere.txt' is neither"):
        build_stream(cfg)


def test_probe_summary_corpus_rise():
    rows = [{"after": -1, "corpus_nll": 1.25}, {"after": 0, "corpus_nll": 2.0},
            {"after": 1, "corpus_nll": 3.5}]
    s = probe_summary(rows)
    assert (s["corpus_nll_base"], s["corpus_nll_final"], s["corpus_nll_rise"]) == (1.25, 3.5, 2.25)
    assert s["sample_nll_rise"] is None


def test_text_stream_audit_counts_leaked_texts():
    from forgetless.data.audit import audit, audit_text
    from forgetless.data.types import Example, Experience, Stream

    def t(uid, text):
        return Example(uid, "", "", text=text)

    stream = Stream("s", [
        Experience(0, [t("a", "one two."), t("b", "three.")], [t("c", "One two"), t("d", "new.")]),
        Experience(1, [t("e", "three."), t("f", "four.")], [t("g", "five."), t("h", "six.")])])
    report = audit(stream)
    assert report["test_copies_train"] == 1 / 4  # "One two" is "one two." once normalised
    assert report["train_repeated_across_experiences"] == 2 / 4  # "three." in both
    assert report["relation_majority_experience"] is None
    assert "concept-blind" not in audit_text(report)
