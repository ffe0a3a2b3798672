"""`data.source: hf` on small data sets written here: alpaca, sharegpt and mapped columns, from
files and save_to_disk directories; splits, tasks, and one-line errors."""

import json

import datasets
import pytest

from forgetless.core.config import load_config
from forgetless.core.errors import ConfigError, DataError
from forgetless.data.sources.registry import build_stream


def stream(*overrides):
    return build_stream(load_config(None, ["data.source=hf", *overrides]).data)


@pytest.fixture
def files(tmp_path):
    alpaca = [{"instruction": f"Add one to {i}.", "input": "" if i % 2 else "Answer briefly.",
               "output": str(i + 1)} for i in range(10)]
    (tmp_path / "sums.json").write_text(json.dumps(alpaca))
    chat = [{"conversations": [{"from": "system", "value": "Be terse."},
                               {"from": "human", "value": f"Colour {i}?"},
                               {"from": "gpt", "value": "Which one?"},
                               {"from": "human", "value": "The first."},
                               {"from": "gpt", "value": f"red{i}"}]} for i in range(5)]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chat))
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_list([{"q": f"q{i}", "a": f"a{i}", "t": "x" if i < 5 else "y"}
                                             for i in range(10)]),
        "test": datasets.Dataset.from_list([{"q": f"tq{i}", "a": f"ta{i}", "t": "y" if i else "x"}
                                            for i in range(4)])})
    dd.save_to_disk(str(tmp_path / "disk"))
    return tmp_path


def test_alpaca_and_sharegpt_files_in_order(files):
    s = stream(f"data.datasets=[{files / 'sums.json'},{files / 'chat.jsonl'}]")
    assert [e.name for e in s.experiences] == ["sums", "chat"]
    sums, chat = s.experiences
    assert len(sums.train) == 8 and len(sums.test) == 2  # test_fraction 0.2, seeded
    by_q = {ex.question: ex.answer for ex in sums.train + sums.test}
    assert by_q["Add one to 0.\nAnswer briefly."] == "1" and by_q["Add one to 1."] == "2"
    ex = next(x for x in chat.train + chat.test if x.answer == "red0")
    assert ex.question == ("System: Be terse.\nUser: Colour 0?\nAssistant: Which one?\n"
                           "User: The first.")
    again = stream(f"data.datasets=[{files / 'sums.json'},{files / 'chat.jsonl'}]")
    assert [x.uid for x in again.experiences[0].test] == [x.uid for x in sums.test]


def test_save_to_disk_splits_and_task_column(files):
    s = stream(f"data.datasets=[{files / 'disk'}]", "data.columns.question=q",
               "data.columns.answer=a", "data.columns.task=t", "data.tasks=[y,x]")
    assert [e.name for e in s.experiences] == ["y", "x"]
    y, x = s.experiences
    assert [ex.question for ex in x.train] == [f"q{i}" for i in range(5)]
    assert [ex.question for ex in x.test] == ["tq0"] and len(y.test) == 3  # the data set's own split


def test_split_column(tmp_path):
    rows = [{"question": f"q{i}", "answer": "a", "split": "test" if i < 3 else "train"}
            for i in range(8)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (exp,) = stream(f"data.datasets=[{tmp_path / 't.jsonl'}]").experiences
    assert [ex.question for ex in exp.test] == ["q0", "q1", "q2"] and len(exp.train) == 5


@pytest.mark.parametrize("rows, overrides, message", [
    ([{"prompt": "p", "response": "r"}], [], "cannot tell the shape of its rows (columns: prompt, "
                                            "response)"),
    ([{"prompt": "p", "response": "r"}], ["data.columns.question=prompt",
                                          "data.columns.answer=answer"],
     "cannot tell the shape"),
    ([{"prompt": "p", "response": "r"}], ["data.shape=columns", "data.columns.question=prompt"],
     "row 0: no column 'answer' (columns: prompt, response)"),
    ([{"instruction": "i", "output": ""}], [], "row 0: column 'output': expected a non-empty string"),
    ([{"messages": [{"role": "user", "content": "hi"}]}], [], "no assistant (gpt) turn"),
    ([{"question": "q", "answer": "a", "split": "dev"}], [], "column 'split' must be 'train' or"),
    ([{"question": "q", "answer": "a", "t": "x"}, {"question": "q", "answer": "a", "t": "x"}],
     ["data.columns.task=t", "data.tasks=[z]"], "data.tasks names 'z', which no row has"),
])
def test_bad_rows_are_one_line(tmp_path, rows, overrides, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="bad.jsonl") as err:
        stream(f"data.datasets=[{path}]", *overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_locations_and_options(tmp_path):
    with pytest.raises(DataError, match=r"nowhere.json: no such file or directory"):
        stream(f"data.datasets=[{tmp_path / 'nowhere.json'}]")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match=r"x.txt: expected a .json, .jsonl, .parquet or .csv"):
        stream(f"data.datasets=[{tmp_path / 'x.txt'}]")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match=r"broken.json: cannot be read as a data set"):
        stream(f"data.datasets=[{tmp_path / 'broken.json'}]")
    with pytest.raises(ConfigError, match="data.datasets: required"):
        load_config(None, ["data.source=hf"])
    with pytest.raises(ConfigError, match="data.tasks needs data.columns.task"):
        load_config(None, ["data.source=hf", "data.datasets=[a]", "data.tasks=[x]"])
