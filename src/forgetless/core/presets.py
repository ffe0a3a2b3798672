"""Config presets shipped inside the package (src/forgetless/configs, `configs/` in a checkout):
named by their path without `.yaml`, e.g. `quickstart`, `benchmarks/trace`, `studies/sharpness`."""

from __future__ import annotations

import shutil
from pathlib import Path

from forgetless.core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent / "configs"


def presets() -> dict[str, Path]:
    """Every preset by name, in name order."""
    return {str(p.relative_to(ROOT).with_suffix("")): p for p in sorted(ROOT.rglob("*.yaml"))}


def describe_preset(path: Path, width: int = 90) -> str:
    """The first sentence of the preset's leading comment, cut to `width` characters."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    text = " ".join(lines)
    end = text.find(". ")
    text = text if end < 0 else text[:end + 1]
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def resolve(arg: str | None) -> str | None:
    """A config argument as given: an existing file stays itself; otherwise a preset's name
    (with or without `.yaml`, with or without a leading `configs/`) becomes the preset's path;
    anything else is returned unchanged (its own error follows)."""
    if arg is None or Path(arg).exists():
        return arg
    name = arg.removeprefix("configs/").removesuffix(".yaml")
    found = presets().get(name)
    return str(found) if found is not None else arg


def copy_preset(name: str, dest: str | None) -> Path:
    """Write a preset to `dest` (default: ./<basename>.yaml); an existing file is not replaced."""
    found = presets().get(name.removeprefix("configs/").removesuffix(".yaml"))
    if found is None:
        raise ConfigError(f"--copy {name}: no such preset (forgetless config --list shows them)")
    target = Path(dest) if dest else Path(found.name)
    if target.is_dir():
        target = target / found.name
    if target.exists():
        raise ConfigError(f"--copy: {target} exists; not replaced (give another destination)")
    shutil.copyfile(found, target)
    return target
