import random

import pytest

from forgetless.core.errors import DataError
from forgetless.data.concept1k import concept1k_stream, parse_concept1k, split_concepts

PUBLISHED = """(Zorblat, IsA, Gadget)
Q1: What is Zorblat classified as?
A1: gadget
Q2: Under what category does Zorblat fall?
Q2: gadget
(Zorblat, UsedFor, Sorting, Coins)
Q1: What is Zorblat used for?
A1: sorting coins
Q2: For what purpose is Zorblat employed?
A2: sorting coins
(Quimbel, MadeOf, Glass)
Q1: What is Quimbel made of?
A1: glass
Q2: What material forms a Quimbel?
Q2: glass
"""


def write(tmp_path, text, name="dataset.txt"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_parses_both_answer_tags_and_keeps_the_last_record(tmp_path):
    records = parse_concept1k(write(tmp_path, PUBLISHED))
    assert len(records) == 3  # the published script drops the last one; we keep it
    assert records[0].q2 == "Under what category does Zorblat fall?" and records[0].a2 == "gadget"
    assert records[1].a2 == "sorting coins" and records[1].target == "Sorting, Coins"
    assert records[2].concept == "Quimbel" and records[2].line == 11


def test_stream_train_is_q1_and_test_is_q2(tmp_path):
    stream = concept1k_stream(write(tmp_path, PUBLISHED), n_experiences=1)
    exp = stream.experiences[0]
    assert {e.question for e in exp.train} == {r.q1 for r in parse_concept1k(tmp_path / "dataset.txt")}
    assert all(t.answer == s.answer for t, s in zip(exp.train, exp.test, strict=True))
    assert len({e.uid for e in exp.train}) == 3


@pytest.mark.parametrize("text, needle", [
    ("", "empty file"),
    ("Zorblat, IsA, Gadget\nQ1: a\nA1: b\nQ2: c\nA2: b\n", ":1: expected a triplet"),
    ("(Zorblat, IsA)\nQ1: a\nA1: b\nQ2: c\nA2: b\n", ":1: triplet needs three"),
    ("(Z, IsA, G)\nQ1: a\nA1: b\nQ2: c\n", ":4: record starting at line 1 is cut short"),
    ("(Z, IsA, G)\nQ1: a\nB1: b\nQ2: c\nA2: b\n", ":3: expected 'A1: …'"),
    ("(Z, IsA, G)\nQ1: a\nA1: b\nQ2: c\nX2: b\n", ":5: expected 'A2: …' or 'Q2: …'"),
    ("(Z, IsA, G)\nQ1:\nA1: b\nQ2: c\nA2: b\n", ":2: empty Q1 field"),
])
def test_malformed_files_name_file_and_line(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as err:
        parse_concept1k(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        parse_concept1k(tmp_path / "nope.txt")


def test_published_split_sizes():
    sizes = [len(s) for s in split_concepts([f"c{i}" for i in range(1023)], 10)]
    assert sizes == [105] + [102] * 9


def test_shuffle_reproduces_random_seed_1(tmp_path):
    concepts = [f"C{i:02d}" for i in range(30)]
    text = "".join(f"({c}, IsA, Thing)\nQ1: q {c}?\nA1: a\nQ2: p {c}?\nQ2: a\n" for c in concepts)
    stream = concept1k_stream(write(tmp_path, text), n_experiences=3)
    expected = list(concepts)
    random.seed(1)
    random.shuffle(expected)
    assert [c for e in stream.experiences for c in e.concepts] == expected
    assert [len(e.concepts) for e in stream.experiences] == [10, 10, 10]


def thirty_concepts(tmp_path):
    concepts = [f"C{i:02d}" for i in range(30)]
    text = "".join(f"({c}, IsA, Thing)\nQ1: q {c}?\nA1: a\nQ2: p {c}?\nQ2: a\n" for c in concepts)
    return write(tmp_path, text), concepts


def test_concepts_per_step_keeps_the_published_steps_smaller(tmp_path):
    path, _ = thirty_concepts(tmp_path)
    full = concept1k_stream(path, n_experiences=3)
    small = concept1k_stream(path, n_experiences=3, concepts_per_step=2)
    assert [e.concepts for e in small.experiences] == [e.concepts[:2] for e in full.experiences]
    assert [len(e.train) for e in small.experiences] == [2, 2, 2]


def test_the_presets_read_data_path_a_folder_or_concept1k_dir(tmp_path, monkeypatch, capsys):
    """What concept1k-small and concept1k-paper do with the data: a file, its folder, or
    $CONCEPT1K_DIR; without any, one line saying where to get it."""
    from forgetless.cli import main
    from forgetless.core.config import load_config
    from forgetless.core.presets import resolve
    from forgetless.data.stream import build_stream

    path, _ = thirty_concepts(tmp_path)
    small = load_config(resolve("concept1k-small"))
    assert small.data.n_experiences == 10 and small.data.concepts_per_step == 3
    monkeypatch.delenv("CONCEPT1K_DIR", raising=False)
    for where in (str(path), str(tmp_path)):
        cfg = load_config(resolve("concept1k-small"), [f"data.path={where}"])
        assert [len(e.concepts) for e in build_stream(cfg.data).experiences] == [3] * 10
    monkeypatch.setenv("CONCEPT1K_DIR", str(tmp_path))
    paper = load_config(resolve("concept1k-paper"))
    assert [len(e.concepts) for e in build_stream(paper.data).experiences] == [3] * 10
    assert paper.train.epochs == 10 and paper.train.batch_size == 32 and paper.train.lr == 1e-5

    monkeypatch.delenv("CONCEPT1K_DIR")
    assert main(["data", "concept1k-small"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CONCEPT1K_DIR is not set" in err and "zzz47zzz" in err
    assert main(["data", "concept1k-paper", "--set", f"data.path={tmp_path / 'none'}"]) == 2
    assert "Concept-1K file not found" in capsys.readouterr().err
