"""What the task sources (classification, superni, trace, jsonl) share: a directory of task
files and a task order, by name or a published preset."""

from __future__ import annotations

from pathlib import Path

from pydantic import PositiveInt, model_validator

from forgetless.core.config import SourceConfig
from forgetless.core.errors import DataError
from forgetless.data.orders import ORDERS

DEFAULT_ORDER = {"classification": "i", "superni": "superni-1", "trace": "trace"}


class TaskSourceConfig(SourceConfig):
    path: str
    """The directory that holds the task files."""
    tasks: list[str] | None = None
    """The task order, by name (classification: ag_news, yelp, amazon, dbpedia, yahoo; superni:
    task file names; trace: task folder names; jsonl: file names without .jsonl). Default: the
    preset `order`, or for jsonl every file in alphabetical order."""
    order: str | None = None
    """A published task order (classification: i, ii, iii, iv, O1, O2, O3; superni: superni-1,
    superni-2; trace: trace; jsonl: long-4, long-5, long-6)."""

    @model_validator(mode="after")
    def _check_order(self) -> TaskSourceConfig:
        if self.tasks is not None and self.order is not None:
            raise ValueError("data.tasks and data.order are alternatives; set one")
        if self.tasks is not None:
            if not self.tasks:
                raise ValueError("data.tasks is empty")
            if len(set(self.tasks)) != len(self.tasks):
                raise ValueError(f"data.tasks lists a task twice: {self.tasks}")
        if self.order is not None and self.order not in ORDERS[self.source]:
            raise ValueError(f"data.order: unknown order '{self.order}' for source "
                             f"'{self.source}' (known: {', '.join(ORDERS[self.source])})")
        return self


class PerTaskCaps(TaskSourceConfig):
    max_train_per_task: PositiveInt | None = None
    """Training examples kept per task (seeded; null: all)."""
    max_test_per_task: PositiveInt | None = None
    """Test examples kept per task (seeded; null: all)."""


def task_root(cfg: TaskSourceConfig) -> Path:
    root = Path(cfg.path)
    if not root.is_dir():
        raise DataError(f"{cfg.path}: data.path must be a directory for data.source "
                        f"'{cfg.source}'")
    return root


def task_order(cfg: TaskSourceConfig) -> list[str]:
    """data.tasks, else the preset data.order, else the source's default order."""
    if cfg.tasks is not None:
        return list(cfg.tasks)
    if cfg.order is not None:
        return list(ORDERS[cfg.source][cfg.order])
    return list(ORDERS[cfg.source][DEFAULT_ORDER[cfg.source]])
