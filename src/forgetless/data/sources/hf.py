"""`hf`: Hugging Face `datasets` from local disk, one experience per data set (or per task).

Each entry of `data.datasets` is a directory written by `Dataset.save_to_disk` /
`DatasetDict.save_to_disk` (read with `datasets.load_from_disk`) or a local .json, .jsonl, .parquet
or .csv file (read with `datasets.load_dataset`); nothing is fetched from the hub. Rows become
question/answer examples by their shape:
- alpaca: `instruction`, optional `input`, `output` (LLaMA-Factory's default);
- sharegpt: `conversations` (`from`/`value`) or `messages` (`role`/`content`): the last assistant
  turn is the answer, the turns before it the question;
- columns: any columns named by `data.columns` (question, answer, and optionally task, split,
  concept, choices).
Splits come from the data set's own `train`/`test` (or `validation`) splits, else a split
column, else a seeded `test_fraction` of the rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from forgetless.core.config import Section, SourceConfig
from forgetless.core.errors import DataError
from forgetless.data.instructions import cap_per_task, checked_text, split_seeded
from forgetless.data.sources.registry import register
from forgetless.data.types import Example, Experience, Stream

FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
USER_ROLES = {"human", "user"}
ASSISTANT_ROLES = {"gpt", "assistant"}


class Columns(Section):
    question: str = "question"
    """Column of the question or prompt (shape "columns")."""
    answer: str = "answer"
    """Column of the answer (shape "columns")."""
    task: str | None = None
    """Column naming each row's task: one data set is cut into one experience per task."""
    split: str | None = "split"
    """Column with "train"/"test" per row, used when present (rows without it are split by
    test_fraction)."""
    concept: str | None = None
    """Column of what replay balances over (default: the task)."""
    choices: str | None = None
    """Column with a list of candidate answers (for `eval.scorer: choice`)."""


class HfConfig(SourceConfig):
    source: Literal["hf"] = "hf"
    datasets: list[str] = Field(min_length=1)
    """Local data sets in stream order: save_to_disk directories or .json/.jsonl/.parquet/.csv
    files. One experience each (or one per task with `columns.task`)."""
    shape: Literal["auto", "columns", "alpaca", "sharegpt"] = "auto"
    """How rows become questions and answers; "auto": alpaca if the rows have instruction and
    output, sharegpt if they have conversations or messages, else "columns"."""
    columns: Columns = Columns()
    """Column names (shape "columns", and the task/split/concept/choices columns of any shape)."""
    tasks: list[str] | None = None
    """With `columns.task`: the tasks to keep, in this order (default: in order of first row)."""
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """Seeded share of rows held out for testing where the data set has no test split."""
    max_train_per_task: PositiveInt | None = None
    """Training examples kept per experience (seeded; null: all)."""
    max_test_per_task: PositiveInt | None = None
    """Test examples kept per experience (seeded; null: all)."""
    history_loss: bool = False
    """sharegpt conversations: train on every assistant turn, not only the last one (the
    default of LLaMA-Factory, `mask_history: false`, and of TRL's `assistant_only_loss`). The
    earlier turns' text, and with a chat template their end-of-turn token, become targets too;
    user and system turns never do. Evaluation scores the last answer alone either way."""

    @model_validator(mode="after")
    def _check(self) -> HfConfig:
        if self.tasks is not None and self.columns.task is None:
            raise ValueError("data.tasks needs data.columns.task (the column naming each row's "
                             "task)")
        return self


def load_rows(location: str) -> dict[str, list[dict]]:
    """Rows per split ("train", "test", or "all" where the data set has no such splits)."""
    import datasets

    path = Path(location)
    datasets.disable_progress_bars()
    try:
        if path.is_dir():
            data = datasets.load_from_disk(str(path))
        elif path.is_file() and path.suffix in FILE_BUILDERS:
            data = datasets.load_dataset(FILE_BUILDERS[path.suffix], data_files=str(path))
        elif path.is_file():
            raise DataError(f"{location}: expected a .json, .jsonl, .parquet or .csv file, or a "
                            f"save_to_disk directory")
        else:
            raise DataError(f"{location}: no such file or directory (data.datasets)")
    except DataError:
        raise
    except Exception as e:  # datasets raises many types for unreadable input
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataError(f"{location}: cannot be read as a data set ({first})") from None
    if isinstance(data, datasets.Dataset):
        return {"all": data.to_list()}
    splits = dict(data)
    test = splits.get("test", splits.get("validation"))
    if "train" in splits and test is not None:
        return {"train": splits["train"].to_list(), "test": test.to_list()}
    return {"all": [row for split in splits.values() for row in split.to_list()]}


def detect_shape(cfg: HfConfig, columns: set[str], location: str) -> str:
    if cfg.shape != "auto":
        return cfg.shape
    if {"instruction", "output"} <= columns:
        return "alpaca"
    if "conversations" in columns or "messages" in columns:
        return "sharegpt"
    if {cfg.columns.question, cfg.columns.answer} <= columns:
        return "columns"
    raise DataError(f"{location}: cannot tell the shape of its rows (columns: "
                    f"{', '.join(sorted(columns))}); expected alpaca (instruction, output), "
                    f"sharegpt (conversations or messages), or set data.columns.question and "
                    f"data.columns.answer")


def _text(row: dict, column: str, where: str, allow_empty: bool = False) -> str:
    if column not in row:
        raise DataError(f"{where}: no column '{column}' (columns: {', '.join(sorted(row))})")
    value = row[column]
    if value is None and allow_empty:
        return ""
    return checked_text(value, f"{where}: column '{column}'", allow_empty)


def _conversation(row: dict, where: str
                  ) -> tuple[str, str, tuple[tuple[str, str], ...], tuple[tuple[int, int], ...]]:
    """(question, answer, turns before the answer, spans of earlier assistant turns in the
    question)."""
    turns = row.get("conversations", row.get("messages"))
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: conversations/messages must be a non-empty list of turns")
    parsed = []
    for k, turn in enumerate(turns):
        role = turn.get("from", turn.get("role")) if isinstance(turn, dict) else None
        text = turn.get("value", turn.get("content")) if isinstance(turn, dict) else None
        if not isinstance(role, str) or not isinstance(text, str):
            raise DataError(f"{where}: turn {k} must have from/value or role/content strings")
        parsed.append((role.lower(), text))
    last = max((k for k, (role, _) in enumerate(parsed) if role in ASSISTANT_ROLES), default=None)
    if last is None or not parsed[last][1].strip():
        raise DataError(f"{where}: no assistant (gpt) turn with text to use as the answer")
    before = [(r, t) for r, t in parsed[:last] if t.strip()]
    if not any(r in USER_ROLES for r, _ in before):
        raise DataError(f"{where}: no user (human) turn before the answer")
    if len(before) == 1:
        return before[0][1], parsed[last][1], (), ()
    # several turns: the question keeps who said what; a chat template renders each turn
    turns = tuple((_role(r), t) for r, t in before)
    lines, spans, at = [], [], 0
    for role, text in turns:
        head = f"{_speaker(role)}: "
        if role == "assistant":
            spans.append((at + len(head), at + len(head) + len(text)))
        lines.append(head + text)
        at += len(head) + len(text) + 1
    return "\n".join(lines), parsed[last][1], turns, tuple(spans)


def _role(role: str) -> str:
    """sharegpt's role names as chat templates know them; any other role is kept as it is."""
    return "user" if role in USER_ROLES else "assistant" if role in ASSISTANT_ROLES else role


def _speaker(role: str) -> str:
    return "User" if role in USER_ROLES else "Assistant" if role in ASSISTANT_ROLES else \
        role.capitalize()


def to_example(cfg: HfConfig, shape: str, row: dict, uid: str, task: str, where: str) -> Example:
    c = cfg.columns
    turns: tuple[tuple[str, str], ...] = ()
    history: tuple[tuple[int, int], ...] = ()
    if shape == "alpaca":
        instruction = _text(row, "instruction", where)
        extra = _text(row, "input", where, allow_empty=True) if "input" in row else ""
        question = f"{instruction}\n{extra}" if extra.strip() else instruction
        answer = _text(row, "output", where)
    elif shape == "sharegpt":
        question, answer, turns, history = _conversation(row, where)
        history = history if cfg.history_loss else ()
    else:
        question, answer = _text(row, c.question, where), _text(row, c.answer, where)
    choices: tuple[str, ...] = ()
    if c.choices is not None:
        value = row.get(c.choices)
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            raise DataError(f"{where}: column '{c.choices}' must be a list of non-empty strings")
        if answer not in value:
            raise DataError(f"{where}: answer {answer!r} is not one of its choices")
        choices = tuple(value)
    concept = _text(row, c.concept, where) if c.concept is not None else task
    return Example(uid, question, answer, concept, task, choices, turns=turns, history=history)


def experiences_of(cfg: HfConfig, location: str) -> list[tuple[str, list[Example], list[Example]]]:
    """(name, train, test) per experience this data set contributes."""
    rows = load_rows(location)
    first = next((r for split in rows.values() for r in split), None)
    if first is None:
        raise DataError(f"{location}: no rows")
    shape = detect_shape(cfg, set(first), location)
    stem = Path(location).name.split(".")[0]
    c = cfg.columns
    groups: dict[str, dict[str, list[Example]]] = {}
    for split, split_rows in rows.items():
        for i, row in enumerate(split_rows):
            where = f"{location}: row {i}" + (f" of split {split}" if split != "all" else "")
            task = _text(row, c.task, where) if c.task is not None else stem
            which = split
            if split == "all" and c.split is not None and row.get(c.split) is not None:
                which = row[c.split]
                if which not in ("train", "test"):
                    raise DataError(f"{where}: column '{c.split}' must be 'train' or 'test', "
                                    f"got {which!r}")
            ex = to_example(cfg, shape, row, f"{task}/{split}/{i}", task, where)
            groups.setdefault(task, {"train": [], "test": [], "all": []})[which].append(ex)
    names = list(groups)
    if cfg.tasks is not None:
        missing = [t for t in cfg.tasks if t not in groups]
        if missing:
            raise DataError(f"{location}: data.tasks names '{missing[0]}', which no row has in "
                            f"column '{c.task}' (tasks: {', '.join(names)})")
        names = list(cfg.tasks)
    out = []
    for name in names:
        g = groups[name]
        train, test, loose = g["train"], g["test"], g["all"]
        if loose:  # rows of no split: held out as for jsonl tasks
            held_train, held_test = split_seeded(loose, cfg, name, None)
            train, test = train + held_train, test + held_test
        if not train:
            raise DataError(f"{location}: task '{name}' has no training rows")
        out.append((name, *cap_per_task(cfg, name, train, test)))
    return out


@register("hf", HfConfig, "Hugging Face datasets from disk: save_to_disk dirs, json/parquet/csv")
def build(cfg: HfConfig) -> Stream:
    experiences: list[Experience] = []
    for location in cfg.datasets:
        for name, train, test in experiences_of(cfg, location):
            labels = sorted({c for ex in train + test for c in ex.choices})
            experiences.append(Experience(len(experiences), train, test, [name], name, labels))
    names = [e.name for e in experiences]
    if len(set(names)) != len(names):
        raise DataError(f"data.datasets: two experiences are both named "
                        f"'{next(n for n in names if names.count(n) > 1)}'; give the files "
                        f"different names")
    return Stream(f"hf-{'-'.join(names)}" if len(names) <= 4 else f"hf-{len(names)}tasks",
                  experiences, "task")
