"""Instruction-task sequences: SuperNI task files, TRACE task folders, and your own JSONL tasks.

- SuperNI (`data.source: superni`): `<path>/<task>.json` or `<path>/tasks/<task>.json`, the
  natural-instructions layout: an object with `Definition` (a list of strings, or a string),
  optional `Positive Examples` (objects with `input`, `output`) and `Instances` (objects with
  `input` and a non-empty list of `output`s). No split is published: a seeded shuffle holds out
  `max_test_per_task` instances (else `test_fraction`) and trains on up to
  `max_train_per_task` of the rest. Every output is a reference for ROUGE-L.
- TRACE (`data.source: trace`): `<path>/<task>/train.json` and `test.json`, each a JSON list of
  records with `prompt` and `answer`.
- JSONL (`data.source: jsonl`): `<path>/<task>.jsonl`, one JSON object per line with `prompt`,
  `answer`, optional `split` ("train" or "test") and optional `choices` (a list of strings that
  contains the answer). Rows without a split are held out with `test_fraction`, seeded.

Every task is one experience. Errors name the file and the line (JSONL, and JSON syntax) or the
record (JSON lists), and nothing is built from a half-valid task.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from forgetless.core.config import SourceConfig
from forgetless.core.errors import DataError
from forgetless.data.types import Example, Experience, Stream


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise DataError(f"{path}: empty file, expected JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def checked_text(value: Any, where: str, allow_empty: bool = False) -> str:
    if value is None:
        raise DataError(f"{where}: missing (expected a non-empty string)")
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise DataError(f"{where}: expected a non-empty string, got {str(value)[:40]!r}")
    return value


def _cap(items: list, n: int | None) -> list:
    return items if n is None else items[:n]


def split_seeded(items: list, cfg: SourceConfig, task: str, n_test: int | None) -> tuple[list, list]:
    """Seeded shuffle, then `n_test` (or test_fraction) for testing, capped training rest."""
    order = list(range(len(items)))
    random.Random(f"{cfg.seed}/{task}/split").shuffle(order)
    if n_test is None:
        n_test = max(1, round(cfg.test_fraction * len(items)))
    n_test = min(n_test, len(items) - 1)  # always leave something to train on
    test = sorted(order[:n_test])
    train = sorted(_cap(order[n_test:], cfg.max_train_per_task))
    return [items[i] for i in train], [items[i] for i in test]


# ---------------------------------------------------------------- SuperNI

def superni_task(cfg: SourceConfig, name: str) -> tuple[list[Example], list[Example]]:
    root = Path(cfg.path or "")
    path = next((p for p in (root / f"{name}.json", root / "tasks" / f"{name}.json")
                 if p.is_file()), root / f"{name}.json")
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a SuperNI task object with Definition and Instances")
    definition = data.get("Definition")
    if isinstance(definition, list):
        definition = " ".join(checked_text(d, f"{path}: Definition[{i}]") for i, d in enumerate(definition))
    definition = checked_text(definition, f"{path}: Definition")
    shots = []
    for i, ex in enumerate(data.get("Positive Examples", [])[: cfg.superni_examples]):
        where = f"{path}: Positive Examples[{i}]"
        if not isinstance(ex, dict):
            raise DataError(f"{where}: expected an object with input and output")
        shots.append(f"Positive Example {i + 1} -\nInput: {checked_text(ex.get('input'), where + '.input')}"
                     f"\nOutput: {checked_text(ex.get('output'), where + '.output')}")
    if len(shots) < cfg.superni_examples:
        raise DataError(f"{path}: data.superni_examples={cfg.superni_examples} but the task has "
                        f"{len(shots)} positive examples")
    instances = data.get("Instances")
    if not isinstance(instances, list) or not instances:
        raise DataError(f"{path}: Instances must be a non-empty list")
    header = "Definition: " + definition + "".join("\n\n" + s for s in shots)
    examples = []
    for i, inst in enumerate(instances):
        where = f"{path}: Instances[{i}]"
        if not isinstance(inst, dict):
            raise DataError(f"{where}: expected an object with input and output")
        outputs = inst.get("output")
        if isinstance(outputs, str):
            outputs = [outputs]
        if not isinstance(outputs, list) or not outputs:
            raise DataError(f"{where}.output: expected a non-empty list of strings")
        refs = tuple(checked_text(o, f"{where}.output[{k}]") for k, o in enumerate(outputs))
        question = f"{header}\n\nNow complete the following example -\nInput: " \
                   f"{checked_text(inst.get('input'), where + '.input')}\nOutput:"
        uid = f"{name}/{inst.get('id', i)}"
        examples.append(Example(uid, question, refs[0], name, name, (), refs))
    return split_seeded(examples, cfg, name, cfg.max_test_per_task)


# ---------------------------------------------------------------- TRACE

def trace_task(cfg: SourceConfig, name: str) -> tuple[list[Example], list[Example]]:
    folder = Path(cfg.path or "") / name
    if not folder.is_dir():
        raise DataError(f"{folder}: no folder for TRACE task '{name}' (expected train.json and "
                        f"test.json in it)")
    splits = {}
    for split, cap in (("train", cfg.max_train_per_task), ("test", cfg.max_test_per_task)):
        path = folder / f"{split}.json"
        records = _read_json(path)
        if not isinstance(records, list) or not records:
            raise DataError(f"{path}: expected a non-empty JSON list of {{prompt, answer}} records")
        rows = []
        for i, rec in enumerate(records):
            where = f"{path}: record {i}"
            if not isinstance(rec, dict):
                raise DataError(f"{where}: expected an object with prompt and answer")
            answer = checked_text(rec.get("answer"), f"{where}.answer")
            rows.append(Example(f"{name}/{split}/{i}", checked_text(rec.get("prompt"), f"{where}.prompt"),
                                answer, name, name))
        if cap is not None and len(rows) > cap:
            keep = sorted(random.Random(f"{cfg.seed}/{name}/{split}").sample(range(len(rows)), cap))
            rows = [rows[i] for i in keep]
        splits[split] = rows
    return splits["train"], splits["test"]


# ---------------------------------------------------------------- JSONL

def jsonl_task(cfg: SourceConfig, name: str) -> tuple[list[Example], list[Example]]:
    path = Path(cfg.path or "") / f"{name}.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: file not found (data.tasks names '{name}')")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    fixed: dict[str, list[Example]] = {"train": [], "test": []}
    loose: list[Example] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object with prompt and answer")
        unknown = set(row) - {"prompt", "answer", "split", "choices", "id"}
        if unknown:
            raise DataError(f"{where}: unknown field '{sorted(unknown)[0]}' (expected prompt, "
                            f"answer, optional split, choices, id)")
        prompt = checked_text(row.get("prompt"), f"{where}: prompt")
        answer = checked_text(row.get("answer"), f"{where}: answer")
        choices = row.get("choices", [])
        if not isinstance(choices, list) or not all(isinstance(c, str) and c for c in choices):
            raise DataError(f"{where}: choices must be a list of non-empty strings")
        if choices and answer not in choices:
            raise DataError(f"{where}: answer {answer!r} is not one of its choices")
        split = row.get("split")
        if split not in (None, "train", "test"):
            raise DataError(f"{where}: split must be 'train' or 'test', got {split!r}")
        ex = Example(f"{name}/{row.get('id', lineno)}", prompt, answer, answer if choices else name,
                     name, tuple(choices))
        (fixed[split] if split else loose).append(ex)
    if not (fixed["train"] or fixed["test"] or loose):
        raise DataError(f"{path}: empty file, expected one JSON object per line")
    train, test = fixed["train"], fixed["test"]
    if loose:
        held_train, held_test = split_seeded(loose, cfg, name, None) if len(loose) > 1 else (loose, [])
        train, test = train + held_train, test + held_test
    if not train:
        raise DataError(f"{path}: no training rows (every row has split 'test')")
    return cap_per_task(cfg, name, train, test)


def cap_per_task(cfg: SourceConfig, name: str, train: list, test: list) -> tuple[list, list]:
    """`max_train_per_task` / `max_test_per_task` applied as a seeded sample of each split (kept
    in their order)."""
    def sample(items: list, n: int | None, split: str) -> list:
        if n is None or len(items) <= n:
            return items
        keep = sorted(random.Random(f"{cfg.seed}/{name}/{split}").sample(range(len(items)), n))
        return [items[i] for i in keep]

    return (sample(train, cfg.max_train_per_task, "train"),
            sample(test, cfg.max_test_per_task, "test"))


LOADERS = {"superni": superni_task, "trace": trace_task, "jsonl": jsonl_task}


def jsonl_task_names(cfg: SourceConfig) -> list[str]:
    root = Path(cfg.path or "")
    if not root.is_dir():
        raise DataError(f"{root}: data.path is not a directory")
    names = sorted(p.stem for p in root.glob("*.jsonl"))
    if not names:
        raise DataError(f"{root}: no .jsonl task files")
    return names


def instruction_stream(cfg: SourceConfig, tasks: list[str]) -> Stream:
    load = LOADERS[cfg.source]
    experiences = []
    for e, name in enumerate(tasks):
        train, test = load(cfg, name)
        labels = sorted({c for ex in train + test for c in ex.choices})
        experiences.append(Experience(e, train, test, [name], name, labels))
    return Stream(f"{cfg.source}-{'-'.join(tasks)}" if len(tasks) <= 4 else
                  f"{cfg.source}-{len(tasks)}tasks", experiences, "task")
