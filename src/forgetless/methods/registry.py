"""Methods by name. `register` a Method subclass with its typed config; `build` a run's list."""

from __future__ import annotations

from pydantic import BaseModel

from forgetless.core.registry import METHODS, MethodSpec, parse_method_list

__all__ = ["build", "get", "names", "parse_method_list", "register"]


def register(name: str, config_cls: type[BaseModel], summary: str, owns_optimizer_step=False,
             combines_with: tuple[str, ...] | None = None):
    def wrap(cls):
        METHODS.add(name, MethodSpec(name, cls, config_cls, owns_optimizer_step, summary,
                                     combines_with))
        cls.name = name
        return cls

    return wrap


names = METHODS.names
get = METHODS.get


def build(config) -> list:
    return [get(n).cls(config.method_config(n)) for n in config.method_names]
