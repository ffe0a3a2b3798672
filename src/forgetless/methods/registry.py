"""Methods by name. `register` a Method subclass with its typed config; `build` a run's list."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from forgetless.errors import ConfigError


@dataclass(frozen=True)
class MethodSpec:
    name: str
    cls: type
    config_cls: type[BaseModel]
    owns_optimizer_step: bool
    summary: str
    combines_with: tuple[str, ...] | None = None
    """The only methods it may be joined with (None: any)."""


_REGISTRY: dict[str, MethodSpec] = {}


def register(name: str, config_cls: type[BaseModel], summary: str, owns_optimizer_step=False,
             combines_with: tuple[str, ...] | None = None):
    def wrap(cls):
        if name in _REGISTRY:
            raise RuntimeError(f"method {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = MethodSpec(name, cls, config_cls, owns_optimizer_step, summary,
                                     combines_with)
        return cls

    return wrap


def _load_builtin() -> None:
    # Importing the package registers the built-in methods (one module each).
    import forgetless.methods  # noqa: F401


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get(name: str) -> MethodSpec:
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"method: unknown method '{name}' (known: {', '.join(names())})")
    return _REGISTRY[name]


def parse_method_list(text: str) -> list[str]:
    """'kif+replay+sam' → ['kif', 'replay', 'sam'], checked for unknown names, repeats and
    more than one method that owns the optimizer step."""
    parts = [p.strip() for p in text.split("+")]
    if not text.strip() or any(not p for p in parts):
        raise ConfigError(f"method: expected names joined by '+', got {text!r}")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"method: a method is listed twice in {text!r}")
    for p in parts:
        allowed = get(p).combines_with
        others = [q for q in parts if q != p]
        if allowed is not None and any(q not in allowed for q in others):
            with_what = ", ".join(allowed) or "nothing"
            raise ConfigError(f"method: {p} combines only with {with_what}, not with "
                              f"{', '.join(q for q in others if q not in allowed)}")
    owners = [p for p in parts if get(p).owns_optimizer_step]
    if len(owners) > 1:
        raise ConfigError(
            f"method: {' and '.join(owners)} both take over the optimizer step; use one of them"
        )
    return parts


def build(config) -> list:
    return [get(n).cls(config.method_config(n)) for n in config.method_names]
