"""config.data → Stream, through the source it names (data/sources/)."""

from __future__ import annotations

from forgetless.core.config import SourceConfig
from forgetless.data.sources.registry import build_stream as _build
from forgetless.data.types import Stream


def build_stream(cfg: SourceConfig) -> Stream:
    return _build(cfg)
