"""Registries by name for the extension points (methods, data sources).

The ground floor cannot import the floors above it, yet config validation needs every method's
and source's config class. So a registry is filled lazily: on first use it imports its built-in
package (which registers one module per entry) and then the entry points of its group, where
third-party packages register theirs:

    # a plugin's pyproject.toml
    [project.entry-points."forgetless.methods"]
    my_method = "my_package.my_method"      # a module that calls @register(...) on import

Import-linter sees no static import upwards: the built-in package is named as a string here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from forgetless.core.errors import ConfigError


class Registry:
    def __init__(self, kind: str, option: str, builtin_package: str, entry_point_group: str):
        self.kind = kind
        """What an entry is called in messages ("method", "data source")."""
        self.option = option
        """The config option that names entries (in error messages)."""
        self.builtin_package = builtin_package
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Any] = {}
        self._loaded = False
        self._loading = False

    def add(self, name: str, entry: Any) -> None:
        if name in self._entries:
            raise RuntimeError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = entry

    def _load(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            importlib.import_module(self.builtin_package)
            for ep in importlib.metadata.entry_points(group=self.entry_point_group):
                try:
                    ep.load()
                except Exception as e:  # a broken plugin names itself, in one line
                    raise ConfigError(f"{self.entry_point_group} plugin '{ep.name}' ({ep.value}) "
                                      f"failed to load: {type(e).__name__}: {e}") from None
            self._loaded = True
        finally:
            self._loading = False

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def get(self, name: str) -> Any:
        self._load()
        if name not in self._entries:
            raise ConfigError(f"{self.option}: unknown {self.kind} '{name}' "
                              f"(known: {', '.join(self.names())})")
        return self._entries[name]


METHODS = Registry("method", "method", "forgetless.methods", "forgetless.methods")
SOURCES = Registry("data source", "data.source", "forgetless.data.sources", "forgetless.sources")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    cls: type
    config_cls: type[BaseModel]
    owns_optimizer_step: bool
    summary: str
    combines_with: tuple[str, ...] | None = None
    """The only methods it may be joined with (None: any)."""


def parse_method_list(text: str) -> list[str]:
    """'kif+replay+sam' → ['kif', 'replay', 'sam'], checked for unknown names, repeats and
    more than one method that owns the optimizer step."""
    parts = [p.strip() for p in text.split("+")]
    if not text.strip() or any(not p for p in parts):
        raise ConfigError(f"method: expected names joined by '+', got {text!r}")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"method: a method is listed twice in {text!r}")
    for p in parts:
        allowed = METHODS.get(p).combines_with
        others = [q for q in parts if q != p]
        if allowed is not None and any(q not in allowed for q in others):
            with_what = ", ".join(allowed) or "nothing"
            raise ConfigError(f"method: {p} combines only with {with_what}, not with "
                              f"{', '.join(q for q in others if q not in allowed)}")
    owners = [p for p in parts if METHODS.get(p).owns_optimizer_step]
    if len(owners) > 1:
        raise ConfigError(
            f"method: {' and '.join(owners)} both take over the optimizer step; use one of them"
        )
    return parts
