"""Data sources by name. `register` a function config → Stream with its typed config class
(a subclass of `SourceConfig` whose fields carry docstrings); `build_stream` calls it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from forgetless.core.config import SourceConfig
from forgetless.core.registry import SOURCES
from forgetless.data.types import Stream


@dataclass(frozen=True)
class SourceSpec:
    name: str
    config_cls: type[SourceConfig]
    build: Callable[[SourceConfig], Stream]
    summary: str


def register(name: str, config_cls: type[SourceConfig], summary: str):
    def wrap(build: Callable[[SourceConfig], Stream]):
        SOURCES.add(name, SourceSpec(name, config_cls, build, summary))
        return build

    return wrap


names = SOURCES.names
get = SOURCES.get


def build_stream(cfg: SourceConfig) -> Stream:
    return get(cfg.source).build(cfg)
