"""Task-source loaders on files the tests write: layout, presets, caps, and one-line errors."""

import json

import pytest

from forgetless.core.config import load_config
from forgetless.core.errors import ConfigError, DataError
from forgetless.data.classification import DATASETS
from forgetless.data.orders import ORDERS
from forgetless.data.stream import build_stream
from forgetless.eval.evaluator import candidates_for, check_scorer, seen_labels
from tests.datafiles import write_classification, write_jsonl, write_superni, write_trace


def stream_of(**data):
    return build_stream(load_config({"data": data}).data)


@pytest.fixture
def five(tmp_path):
    for name in DATASETS:
        write_classification(tmp_path, name, n_train=6, n_test=3)
    return tmp_path


def test_classification_order_preset_and_layout(five):
    s = stream_of(source="classification", path=str(five), order="ii")
    assert [e.name for e in s.experiences] == ["dbpedia", "yahoo", "ag_news", "amazon", "yelp"]
    assert s.scenario == "task"
    ag = s.experiences[2]
    assert len(ag.train) == 4 * 6 and len(ag.test) == 4 * 3
    ex = ag.train[0]
    # class 1 of AG News, title and description joined, the task's label set in the prompt
    assert ex.answer == "world news" and ex.question.startswith("amber train 0 part 1 about amber")
    assert "(world news, sports news, business news, tech news)" in ex.question
    assert ex.choices == DATASETS["ag_news"].labels


def test_33_classes_with_yelp_and_amazon_sharing_labels():
    words = [w for spec in DATASETS.values() for w in spec.labels]
    assert len(set(words)) == 33
    assert DATASETS["yelp"].labels == DATASETS["amazon"].labels


def test_class_incremental_candidates_grow_with_what_was_seen(five):
    s = stream_of(source="classification", path=str(five), order="i", scenario="class")
    assert s.scenario == "class"
    # yelp → ag_news → dbpedia → amazon → yahoo; amazon adds no new label
    assert [len(seen_labels(s, i)) for i in range(5)] == [5, 9, 23, 23, 33]
    ex = s.experiences[0].test[0]
    assert "Which category" in ex.question
    assert candidates_for(s, after=1, experience=0, example=ex) == seen_labels(s, 1)
    # the next, not yet trained experience (FWT row) is scored among its own labels too
    assert "company" in candidates_for(s, after=1, experience=2, example=ex)
    check_scorer("choice", s)


def test_per_class_caps_are_seeded_uniform_samples(five):
    a = stream_of(source="classification", path=str(five), tasks=["ag_news"],
                  max_train_per_class=2, max_test_per_class=1)
    b = stream_of(source="classification", path=str(five), tasks=["ag_news"],
                  max_train_per_class=2, max_test_per_class=1)
    c = stream_of(source="classification", path=str(five), tasks=["ag_news"],
                  max_train_per_class=2, max_test_per_class=1, seed=5)
    train = a.experiences[0].train
    assert len(train) == 8 and len(a.experiences[0].test) == 4
    assert sorted(ex.answer for ex in train).count("world news") == 2
    assert [x.uid for x in train] == [x.uid for x in b.experiences[0].train]
    assert [x.uid for x in train] != [x.uid for x in c.experiences[0].train]


def test_label_word_override(five):
    s = stream_of(source="classification", path=str(five), tasks=["ag_news"],
                  label_words={"ag_news": ["w", "s", "b", "t"]})
    assert s.experiences[0].labels == ["w", "s", "b", "t"]
    with pytest.raises(DataError, match=r"data.label_words.ag_news: expected 4 distinct words"):
        stream_of(source="classification", path=str(five), tasks=["ag_news"],
                  label_words={"ag_news": ["w", "s"]})


def test_quoted_multiline_fields_and_escaped_newlines(tmp_path):
    folder = tmp_path / "yelp_review_full_csv"
    folder.mkdir()
    (folder / "train.csv").write_text('"5","great\\nplace, ""really""\nsecond line"\n"1","bad"\n')
    (folder / "test.csv").write_text('"3","fine"\n')
    s = stream_of(source="classification", path=str(tmp_path), tasks=["yelp"])
    train = s.experiences[0].train
    assert train[0].question.startswith('great place, "really" second line\n')
    assert train[0].answer == "great" and train[1].answer == "terrible"
    assert train[1].uid == "yelp/train/3"  # the line the record starts on


@pytest.mark.parametrize("content, message", [
    ('"1","title only"\n', r"train.csv:1: expected 3 columns \(class index, title, description\), got 2"),
    ('"1","a","b"\n"5","a","b"\n', r"train.csv:2: class index '5' is not in 1..4"),
    ('"x","a","b"\n', r"train.csv:1: class index 'x' is not in 1..4"),
    ("", r"train.csv: empty file"),
    ("\n\n", r"train.csv: empty file"),
])
def test_malformed_csv_is_one_line_error(tmp_path, content, message):
    folder = write_classification(tmp_path, "ag_news", 1, 1)
    (folder / "train.csv").write_text(content)
    with pytest.raises(DataError, match=message) as err:
        stream_of(source="classification", path=str(tmp_path), tasks=["ag_news"])
    assert "\n" not in str(err.value) and str(folder / "train.csv") in str(err.value)


def test_missing_dataset_and_unknown_names(five, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no directory for data set 'yahoo' \(expected one "
                                        r"of yahoo_answers_csv, yahoo_answers, yahoo"):
        stream_of(source="classification", path=str(tmp_path / "empty"), tasks=["yahoo"])
    with pytest.raises(DataError, match=r"nowhere: data.path must be a directory"):
        stream_of(source="classification", path=str(tmp_path / "nowhere"), tasks=["yahoo"])
    with pytest.raises(DataError, match=r"unknown data set 'imdb'"):
        stream_of(source="classification", path=str(five), tasks=["imdb"])
    with pytest.raises(ConfigError, match=r"data.order: unknown order 'v' for source "
                                          r"'classification' \(known: i, ii, iii, iv, O1, O2, O3\)"):
        load_config({"data": {"source": "classification", "path": str(five), "order": "v"}})
    with pytest.raises(ConfigError, match=r"data.tasks and data.order are alternatives"):
        load_config({"data": {"source": "jsonl", "path": ".", "order": "long-4", "tasks": ["a"]}})
    with pytest.raises(ConfigError, match=r"data.scenario: not an option of data.source 'jsonl'"):
        load_config({"data": {"source": "jsonl", "path": ".", "scenario": "class"}})
    with pytest.raises(ConfigError, match=r"data.path: required for data.source 'superni' \(the "
                                          r"directory that holds the task files\)"):
        load_config({"data": {"source": "superni"}})


def test_presets_are_complete():
    for name, order in ORDERS["classification"].items():
        assert set(order) <= set(DATASETS) and len(set(order)) == len(order), name
    for source, n in (("superni", 15), ("jsonl", 15), ("trace", 8)):
        orders = list(ORDERS[source].values())
        assert all(len(o) == n and sorted(o) == sorted(orders[0]) for o in orders), source


def test_superni_split_prompt_and_references(tmp_path):
    write_superni(tmp_path / "tasks", "task001_repeat", 20)
    s = stream_of(source="superni", path=str(tmp_path), tasks=["task001_repeat"],
                  max_test_per_task=5, max_train_per_task=10, superni_examples=1)
    exp = s.experiences[0]
    assert (len(exp.train), len(exp.test)) == (10, 5)
    assert not {x.uid for x in exp.train} & {x.uid for x in exp.test}
    ex = exp.test[0]
    assert ex.question.startswith("Definition: Repeat the word.\n\nPositive Example 1 -\n"
                                  "Input: sun\nOutput: sun sun\n\nNow complete")
    assert ex.question.endswith("\nOutput:")
    assert ex.references == (ex.answer, ex.answer.split()[0]) and ex.answer.count("word") == 2
    # no caps: test_fraction of the instances, the rest trains
    s = stream_of(source="superni", path=str(tmp_path), tasks=["task001_repeat"])
    assert (len(s.experiences[0].train), len(s.experiences[0].test)) == (16, 4)


@pytest.mark.parametrize("text, message", [
    ('{"Definition": ["x"], "Instances": [', r"task\.json:1: not valid JSON"),
    ('{\n"Definition": ["x"],\n"Instances": [}', r"task\.json:3: not valid JSON"),
    ("", r"task\.json: empty file"),
    ('["not", "an", "object"]', r"expected a SuperNI task object"),
    ('{"Definition": ["x"], "Instances": []}', r"Instances must be a non-empty list"),
    ('{"Definition": ["x"], "Instances": [{"input": "a", "output": []}]}',
     r"Instances\[0\]\.output: expected a non-empty list"),
    ('{"Definition": [""], "Instances": [{"input": "a", "output": ["b"]}]}',
     r"Definition\[0\]: expected a non-empty string"),
])
def test_malformed_superni(tmp_path, text, message):
    (tmp_path / "task.json").write_text(text)
    with pytest.raises(DataError, match=message) as err:
        stream_of(source="superni", path=str(tmp_path), tasks=["task"])
    assert "\n" not in str(err.value) and str(tmp_path / "task.json") in str(err.value)


def test_trace_and_caps(tmp_path):
    write_trace(tmp_path, "FOMC", 12, 6)
    write_trace(tmp_path, "C-STANCE", 12, 6)
    s = stream_of(source="trace", path=str(tmp_path), tasks=["C-STANCE", "FOMC"],
                  max_train_per_task=5)
    assert [e.name for e in s.experiences] == ["C-STANCE", "FOMC"]
    assert (len(s.experiences[1].train), len(s.experiences[1].test)) == (5, 6)
    assert s.experiences[1].test[2].answer == "answer 2"
    (tmp_path / "FOMC" / "test.json").write_text('[{"prompt": "p"}]')
    with pytest.raises(DataError, match=r"FOMC/test\.json: record 0\.answer: missing"):
        stream_of(source="trace", path=str(tmp_path), tasks=["FOMC"])
    with pytest.raises(DataError, match=r"no folder for TRACE task 'Py150'"):
        stream_of(source="trace", path=str(tmp_path), tasks=["Py150"])


def test_jsonl_own_data(tmp_path):
    rows = [{"prompt": f"q{i}", "answer": "yes" if i % 2 else "no", "choices": ["yes", "no"]}
            for i in range(10)]
    rows += [{"prompt": "fixed", "answer": "no", "choices": ["yes", "no"], "split": "test"}]
    write_jsonl(tmp_path, "b_task", rows)
    write_jsonl(tmp_path, "a_task", [{"prompt": "x", "answer": "y", "split": "train"},
                                     {"prompt": "z", "answer": "w", "split": "test"}])
    s = stream_of(source="jsonl", path=str(tmp_path))
    assert [e.name for e in s.experiences] == ["a_task", "b_task"]  # alphabetical by default
    b = s.experiences[1]
    assert len(b.train) == 8 and len(b.test) == 3 and b.labels == ["no", "yes"]
    assert any(x.question == "fixed" for x in b.test)
    s = stream_of(source="jsonl", path=str(tmp_path), tasks=["b_task", "a_task"])
    assert [e.name for e in s.experiences] == ["b_task", "a_task"]
    # choice scoring needs choices on every example: a_task has none
    with pytest.raises(ConfigError, match=r"eval.scorer: 'choice' needs candidate answers, but "
                                          r"example 'a_task/1' of experience 1 has no choices"):
        check_scorer("choice", s)


@pytest.mark.parametrize("lines, message", [
    (['{"prompt": "a", "answer": "b"}', '{"prompt": "a", "answer": '], r"t\.jsonl:2: not valid JSON"),
    (['{"prompt": "a"}'], r"t\.jsonl:1: answer: missing \(expected a non-empty string\)"),
    (['{"prompt": "a", "answer": "b", "choices": ["c", "d"]}'],
     r"t\.jsonl:1: answer 'b' is not one of its choices"),
    (['{"prompt": "a", "answer": "b", "label": 1}'], r"t\.jsonl:1: unknown field 'label'"),
    (['{"prompt": "a", "answer": "b", "split": "dev"}'], r"t\.jsonl:1: split must be 'train' or"),
    (['["a", "b"]'], r"t\.jsonl:1: expected an object"),
    ([], r"t\.jsonl: empty file"),
    (['{"prompt": "a", "answer": "b", "split": "test"}'], r"t\.jsonl: no training rows"),
])
def test_malformed_jsonl(tmp_path, lines, message):
    (tmp_path / "t.jsonl").write_text("".join(line + "\n" for line in lines))
    with pytest.raises(DataError, match=message) as err:
        stream_of(source="jsonl", path=str(tmp_path), tasks=["t"])
    assert "\n" not in str(err.value)


def test_jsonl_missing_task_file(tmp_path):
    write_jsonl(tmp_path, "a", [{"prompt": "x", "answer": "y"}])
    with pytest.raises(DataError, match=r"mnli\.jsonl: file not found"):
        stream_of(source="jsonl", path=str(tmp_path), order="long-4")
    with pytest.raises(DataError, match=r"data.path must be a directory"):
        stream_of(source="jsonl", path=str(tmp_path / "a.jsonl"))


def test_bad_data_leaves_nothing_written(tmp_path):
    """The CLI exits non-zero with one line and no run directory."""
    from tests.conftest import forgetless_cli

    (tmp_path / "t.jsonl").write_text(json.dumps({"prompt": "a"}) + "\n")
    out = tmp_path / "runs"
    proc = forgetless_cli("run", "--set", "data.source=jsonl", "--set", f"data.path={tmp_path}",
                          "--set", "model.name=tiny-llama-2m-v4k", "--set", f"output_dir={out}",
                          check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "t.jsonl:1: answer" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("preset", ["classification-task-il", "classification-class-il",
                                    "superni", "trace", "long-sequence"])
def test_benchmark_presets_build_their_streams(preset, tmp_path):
    from tests.conftest import REPO

    cfg = load_config(REPO / "configs" / "benchmarks" / f"{preset}.yaml",
                      [f"data.path={tmp_path}"])
    order = ORDERS[cfg.data.source][cfg.data.order]
    for name in order:
        if cfg.data.source == "classification":
            write_classification(tmp_path, name, 2, 1)
        elif cfg.data.source == "superni":
            write_superni(tmp_path, name, 5)
        elif cfg.data.source == "trace":
            write_trace(tmp_path, name, 3, 2)
        else:
            write_jsonl(tmp_path, name, [{"prompt": f"{name} {i}", "answer": "a",
                                          "choices": ["a", "b"]} for i in range(4)])
    stream = build_stream(cfg.data)
    assert [e.name for e in stream.experiences] == order
    check_scorer(cfg.eval.scorer, stream)
    with pytest.raises(ConfigError, match="data.path: required for data.source"):
        load_config(REPO / "configs" / "benchmarks" / f"{preset}.yaml")


def test_a_hub_id_in_the_local_cache_loads_offline(tmp_path, monkeypatch):
    """model.name: "org/model" found in the Hugging Face cache (refs/main → snapshot), never
    fetched; an id the cache does not hold is the usual one-line error."""
    import torch

    from forgetless.core.config import ModelConfig
    from forgetless.core.errors import ModelError
    from forgetless.models.load import load_model, load_tokenizer

    tiny = ModelConfig(name="tiny-llama-2m-v4k")
    tok = load_tokenizer(tiny)
    model = load_model(tiny, tok, seed=0)
    repo = tmp_path / "hub" / "models--acme--tiny"
    snapshot = repo / "snapshots" / "0123abcd"
    model.save_pretrained(snapshot)
    tok.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    cached = ModelConfig(name="acme/tiny")
    loaded = load_model(cached, load_tokenizer(cached), seed=1)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ModelError, match=r"'acme/other': not a built-in model .* nor a hub id in "
                                         r"the local Hugging Face cache"):
        load_tokenizer(ModelConfig(name="acme/other"))


def test_the_cut_vocabulary_keeps_the_embedded_ids_and_encodes_any_text():
    """The -v4k tiny models' tokenizer is the embedded one's first 4,096 ids: the same token
    strings at the same ids, the same specials and chat template, and any text (accents, CJK,
    emoji, a special token) still round-trips through the byte fallback of byte-level BPE."""
    from forgetless.core.config import ModelConfig
    from forgetless.models.load import CUT_VOCABULARY, load_model, load_tokenizer

    full = load_tokenizer(ModelConfig(name="tiny-llama-2m"))
    cut = load_tokenizer(ModelConfig(name="tiny-llama-2m-v4k"))
    assert len(cut) == CUT_VOCABULARY == 4096 and len(full) == 49152
    assert cut.convert_ids_to_tokens(list(range(4096))) == full.convert_ids_to_tokens(
        list(range(4096)))
    assert (cut.eos_token_id, cut.pad_token_id, cut.bos_token_id) == (
        full.eos_token_id, full.pad_token_id, full.bos_token_id)
    chat = [{"role": "user", "content": "Where is Ilmar?"}]
    assert cut.apply_chat_template(chat, tokenize=False) == full.apply_chat_template(
        chat, tokenize=False)
    text = "Question: Où est Zürich — 東京? 🎉 Short Answer: in the north<|im_end|>"
    ids = cut(text, add_special_tokens=False)["input_ids"]
    assert max(ids) < 4096 and cut.decode(ids) == text
    assert ids[-1] == cut.eos_token_id  # a special token stays one token
    assert len(ids) > len(full(text, add_special_tokens=False)["input_ids"])  # fewer merges
    model = load_model(ModelConfig(name="tiny-llama-2m-v4k"), cut, seed=0)
    assert model.get_input_embeddings().weight.shape[0] == 4096
