"""Small files in the published formats, written by the tests themselves (no downloads)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from forgetless.data.classification import DATASETS

# Per class a keyword the text carries, so a tiny model can learn the label from the text.
KEYWORDS = ["amber", "birch", "cobalt", "dune", "ember", "fjord", "garnet", "harbor", "iris",
            "juniper", "kelp", "lagoon", "moss", "nectar"]


def write_classification(root: Path, name: str, n_train: int, n_test: int) -> Path:
    """<root>/<published dir>/{train,test}.csv with n rows per class, text columns as published."""
    spec = DATASETS[name]
    folder = root / spec.dirs[0]
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        with (folder / f"{split}.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, quoting=csv.QUOTE_ALL)
            for i in range(n):
                for c in range(len(spec.labels)):
                    words = [f"{KEYWORDS[c]} {split} {i}"] + [
                        f"part {k} about {KEYWORDS[c]}" for k in range(1, len(spec.text_columns))]
                    w.writerow([str(c + 1), *words])
    return folder


def write_superni(root: Path, name: str, n: int, definition="Repeat the word.") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    task = {
        "Definition": [definition],
        "Positive Examples": [{"input": "sun", "output": "sun sun", "explanation": "twice"}],
        "Negative Examples": [],
        "Instances": [{"id": f"{name}-{i}", "input": f"word{i}",
                       "output": [f"word{i} word{i}", f"word{i}"]} for i in range(n)],
    }
    path = root / f"{name}.json"
    path.write_text(json.dumps(task, indent=1), encoding="utf-8")
    return path


def write_trace(root: Path, name: str, n_train: int, n_test: int) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        rows = [{"prompt": f"{name} {split} question {i}?", "answer": f"answer {i}"}
                for i in range(n)]
        (folder / f"{split}.json").write_text(json.dumps(rows), encoding="utf-8")
    return folder


def write_jsonl(root: Path, name: str, rows: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
