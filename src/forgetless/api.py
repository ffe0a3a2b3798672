"""The Python entry point: `forgetless.run(config)` → Result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgetless.core.config import RunConfig, load_config
from forgetless.core.results import Result


def run(
    config: str | Path | dict[str, Any] | RunConfig | None = None,
    overrides: list[str] | None = None,
    run_dir: str | Path | None = None,
    fresh: bool = False,
    quiet: bool = True,
) -> Result:
    """Run (or resume) a continual-learning experiment.

    `config` is a YAML path, a dict, a RunConfig or None (the embedded default);
    `overrides` are "dotted.key=value" strings as on the command line.
    """
    from forgetless.engine.experiment import run_experiment
    from forgetless.report.callbacks import run_callbacks

    cfg = load_config(config, overrides)
    return run_experiment(cfg, run_dir=run_dir, fresh=fresh,
                          callbacks=run_callbacks(cfg, quiet=quiet))


def load(run_dir: str | Path) -> Result:
    """A Result from an existing run directory."""
    from forgetless.core.store import RunStore

    return Result(RunStore(run_dir).read_results(), run_dir)
