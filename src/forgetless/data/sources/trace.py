"""`trace`: TRACE benchmark task folders (train.json / test.json each)."""

from __future__ import annotations

from typing import Literal

from forgetless.data.instructions import instruction_stream
from forgetless.data.sources.registry import register
from forgetless.data.sources.tasks import PerTaskCaps, task_order, task_root
from forgetless.data.types import Stream


class TraceConfig(PerTaskCaps):
    source: Literal["trace"] = "trace"


@register("trace", TraceConfig, "TRACE task folders (<path>/<task>/train.json, test.json)")
def build(cfg: TraceConfig) -> Stream:
    task_root(cfg)
    return instruction_stream(cfg, task_order(cfg))
