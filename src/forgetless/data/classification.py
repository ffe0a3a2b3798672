"""The five text-classification data sets of LM continual learning, in their published CSV layout.

Zhang et al. (2015) CSVs: no header; column 1 is the 1-based class index, then the text columns —
AG News: title, description; Yelp: text; Amazon: title, review; DBpedia: title, content;
Yahoo Answers: question title, question content, best answer. Each data set is a directory
(`ag_news_csv/`, `yelp_review_full_csv/`, …, or simply `ag_news/`) holding `train.csv` and
`test.csv` under `data.path`.

Every data set is one experience. Each class becomes a label word (Yelp and Amazon share theirs:
33 classes over the five). Task-incremental prompts name the data set's label set; the
class-incremental prompt is the same for all, and scoring offers every label seen so far.
Per-class caps keep a seeded uniform sample by reservoir sampling while streaming the file, so
a 1.4M-row Yahoo file never sits in memory.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from forgetless.core.config import SourceConfig
from forgetless.core.errors import DataError
from forgetless.data.types import Example, Experience, Stream

REVIEW_LABELS = ["terrible", "bad", "okay", "good", "great"]


@dataclass(frozen=True)
class DatasetSpec:
    dirs: tuple[str, ...]
    """Directory names tried under data.path, the published one first."""
    text_columns: tuple[str, ...]
    labels: tuple[str, ...]
    question: str
    """Task-incremental instruction; the label words are appended as the options."""


DATASETS: dict[str, DatasetSpec] = {
    "ag_news": DatasetSpec(("ag_news_csv", "ag_news", "agnews", "ag"), ("title", "description"),
                           ("world news", "sports news", "business news", "tech news"),
                           "What is the topic of this news article?"),
    "yelp": DatasetSpec(("yelp_review_full_csv", "yelp"), ("text",), tuple(REVIEW_LABELS),
                        "How would the reviewer rate this business?"),
    "amazon": DatasetSpec(("amazon_review_full_csv", "amazon"), ("title", "review"),
                          tuple(REVIEW_LABELS), "How would the reviewer rate this product?"),
    "dbpedia": DatasetSpec(
        ("dbpedia_csv", "dbpedia_14", "dbpedia"), ("title", "content"),
        ("company", "school", "artist", "athlete", "politician", "vehicle", "building", "nature",
         "village", "animal", "plant", "album", "film", "book"),
        "What kind of thing does this encyclopedia entry describe?"),
    "yahoo": DatasetSpec(
        ("yahoo_answers_csv", "yahoo_answers", "yahoo"), ("question title", "question content",
                                                          "best answer"),
        ("society", "science", "health", "education", "computers", "sports", "finance",
         "entertainment", "family", "politics"),
        "What is the topic of this question and answer?"),
}
CLASS_QUESTION = "Which category does this text belong to?"


def dataset_dir(root: Path, name: str) -> Path:
    spec = DATASETS[name]
    for d in spec.dirs:
        if (root / d).is_dir():
            return root / d
    raise DataError(f"{root}: no directory for data set '{name}' (expected one of "
                    f"{', '.join(spec.dirs)} with train.csv and test.csv)")


def _clean(text: str) -> str:
    # The published files escape newlines as a literal backslash-n and double quotes as "".
    return " ".join(text.replace("\\n", " ").replace('\\"', '"').split())


def read_csv(path: Path, spec: DatasetSpec, n_classes: int, cap: int | None,
             rng: random.Random) -> list[tuple[int, int, str]]:
    """(line, class index 0-based, text) rows; at most `cap` per class (seeded reservoir)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    want = 1 + len(spec.text_columns)
    kept: dict[int, list[tuple[int, int, str]]] = {}
    seen: dict[int, int] = {}
    n_rows = 0
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            line = 1
            for row in reader:
                start, line = line, reader.line_num + 1
                if not row:
                    continue
                if len(row) != want:
                    raise DataError(
                        f"{path}:{start}: expected {want} columns (class index, "
                        f"{', '.join(spec.text_columns)}), got {len(row)}")
                raw = row[0].strip()
                if not raw.isdigit() or not 1 <= int(raw) <= n_classes:
                    raise DataError(f"{path}:{start}: class index {raw!r} is not in 1..{n_classes}")
                label = int(raw) - 1
                text = " ".join(_clean(t) for t in row[1:] if t.strip())
                n_rows += 1
                seen[label] = seen.get(label, 0) + 1
                bucket = kept.setdefault(label, [])
                if cap is None or len(bucket) < cap:
                    bucket.append((start, label, text))
                else:  # reservoir sampling (Algorithm R): a uniform, seeded subset of the class
                    j = rng.randrange(seen[label])
                    if j < cap:
                        bucket[j] = (start, label, text)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: broken CSV ({e})") from None
    if not n_rows:
        raise DataError(f"{path}: empty file, expected CSV rows of {want} columns")
    return sorted(r for bucket in kept.values() for r in bucket)


def label_words(cfg: SourceConfig, name: str) -> list[str]:
    spec = DATASETS[name]
    words = (cfg.label_words or {}).get(name)
    if words is None:
        return list(spec.labels)
    if len(words) != len(spec.labels) or len(set(words)) != len(words):
        raise DataError(f"data.label_words.{name}: expected {len(spec.labels)} distinct words "
                        f"(one per class, in class-index order), got {words}")
    return list(words)


def classification_stream(cfg: SourceConfig, tasks: list[str]) -> Stream:
    root = Path(cfg.path or "")
    unknown = [t for t in tasks if t not in DATASETS]
    if unknown:
        raise DataError(f"data.tasks: unknown data set '{unknown[0]}' "
                        f"(known: {', '.join(DATASETS)})")
    for name in (cfg.label_words or {}):
        if name not in DATASETS:
            raise DataError(f"data.label_words: unknown data set '{name}'")
    experiences = []
    for e, name in enumerate(tasks):
        spec = DATASETS[name]
        words = label_words(cfg, name)
        folder = dataset_dir(root, name)
        ask = f"{spec.question} ({', '.join(words)})" if cfg.scenario == "task" else CLASS_QUESTION
        splits = {}
        for split, cap in (("train", cfg.max_train_per_class), ("test", cfg.max_test_per_class)):
            rng = random.Random(f"{cfg.seed}/{name}/{split}")
            rows = read_csv(folder / f"{split}.csv", spec, len(words), cap, rng)
            splits[split] = [
                Example(f"{name}/{split}/{line}", f"{text}\n{ask}", words[label], words[label],
                        name, tuple(words))
                for line, label, text in rows
            ]
        experiences.append(Experience(e, splits["train"], splits["test"], list(words), name,
                                      list(words)))
    return Stream(f"classification-{cfg.scenario}-{'-'.join(tasks)}", experiences, cfg.scenario)
