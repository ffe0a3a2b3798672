"""`jsonl`: your own tasks, one `<task>.jsonl` file per task (docs/benchmarks.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from forgetless.data.instructions import instruction_stream, jsonl_task_names
from forgetless.data.orders import ORDERS
from forgetless.data.sources.registry import register
from forgetless.data.sources.tasks import PerTaskCaps, task_root
from forgetless.data.types import Stream


class JsonlConfig(PerTaskCaps):
    source: Literal["jsonl"] = "jsonl"
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """The seeded share of rows without a `split` field held out for testing."""


@register("jsonl", JsonlConfig, "your own tasks: <path>/<task>.jsonl (prompt, answer, split)")
def build(cfg: JsonlConfig) -> Stream:
    task_root(cfg)
    if cfg.tasks is not None:
        tasks = list(cfg.tasks)
    elif cfg.order is not None:
        tasks = list(ORDERS["jsonl"][cfg.order])
    else:
        tasks = jsonl_task_names(cfg)
    return instruction_stream(cfg, tasks)
