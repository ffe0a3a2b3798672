"""A study file and its plan: which runs a study makes (arm × seed, each config validated
before anything runs), where each lives, and how one is run. `forgetless sweep` (sweep.py) and
the processes it launches (launch.py) both start from here."""

from __future__ import annotations

import fnmatch
import itertools
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from forgetless.core.config import _format_validation_error, load_config, read_yaml_mapping
from forgetless.core.errors import ConfigError


class StudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str
    """Study name (the default output directory is runs/studies/<name>)."""
    kind: Literal["run", "pretrain"] = "run"
    """"run": continual-learning runs (`forgetless run` configs); "pretrain": `forgetless
    pretrain` runs (phase A from scratch, phase B fine-tuning)."""
    base: str | None = None
    """Run config every run starts from (a path relative to the study file); none: defaults."""
    set: dict[str, Any] = {}
    """Overrides every run shares (dotted keys)."""
    variants: list[dict[str, Any]] = [{}]
    """Arms of the study, each a set of overrides; crossed with `grid`."""
    grid: dict[str, list[Any]] = {}
    """Cartesian product of these values (dotted keys → lists)."""
    seeds: list[int] = [0, 1, 2]
    """Every arm is run once per seed; the summary reports mean, CI (t, at `level`) and n over
    seeds."""
    level: float = Field(0.95, gt=0, lt=1)
    """Confidence level of the summary's intervals and paired tests, fixed with the study before
    it runs: 1 − 0.05 / k corrects for k arms compared with the reference (Bonferroni; 0.995
    for ten). `forgetless compare --level` reads the runs at another level afterwards."""
    vary_data_seed: bool = True
    """Each seed also sets `data.seed` (another invented world, sample caps, splits), so seeds
    vary data as well as initialisation; false keeps the base config's data.seed."""
    reference: str | None = None
    """The arm (its label, as in the table) every other arm is compared with, paired by seed;
    default: the first arm."""
    smoke: dict[str, Any] = {}
    """Overrides added under `--smoke`: the reduced size CI runs (with the first seed only)."""
    smoke_grid: dict[str, list[Any]] = {}
    """Under `--smoke`, these grid keys take these (fewer) values instead."""


def load_study(path: str | Path) -> tuple[StudyConfig, Path]:
    path = Path(path)
    data = read_yaml_mapping(path, "study file")
    try:
        study = StudyConfig(**data)
    except ValidationError as e:
        raise ConfigError(f"{path}: {_format_validation_error(e)}") from None
    if not study.seeds:
        raise ConfigError(f"{path}: seeds: give at least one seed")
    for key, values in [*study.grid.items(), *study.smoke_grid.items()]:
        if not values:
            raise ConfigError(f"{path}: grid.{key}: give at least one value")
    unknown = set(study.smoke_grid) - set(study.grid)
    if unknown:
        raise ConfigError(f"{path}: smoke_grid.{sorted(unknown)[0]}: not a key of grid")
    return study, path


def _yaml_value(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def arm_label(overrides: dict[str, Any]) -> str:
    if not overrides:
        return "base"
    text = ",".join(f"{k.split('.')[-1]}={_yaml_value(v)}" for k, v in overrides.items())
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text)


def arms(study: StudyConfig, base_method: str) -> list[dict[str, Any]]:
    """Every distinct arm: a variant crossed with the grid values that apply to it."""
    from forgetless.methods import registry

    out: list[dict[str, Any]] = []
    keys = list(study.grid)
    for variant in study.variants:
        if study.kind == "run":
            method = str({**study.set, **variant}.get("method", base_method))
            used = set(registry.parse_method_list(method))
            applicable = [k for k in keys
                          if k.split(".")[0] not in registry.names() or k.split(".")[0] in used]
        else:
            applicable = keys
        for values in itertools.product(*(study.grid[k] for k in applicable)):
            arm = {**variant, **dict(zip(applicable, values, strict=True))}
            if arm not in out:
                out.append(arm)
    return out


def _overrides(d: dict[str, Any]) -> list[str]:
    return [f"{k}={_yaml_value(v)}" for k, v in d.items()]


def plan(study: StudyConfig, study_path: Path, smoke: bool,
         seeds: list[int] | None = None) -> list[dict]:
    """The runs of a study: (arm, seed, config), every config validated before anything runs.
    `seeds` replaces the study's seeds (e.g. one seed first; the rest later adds to the same
    study directory, since finished runs are skipped)."""
    from forgetless.studies.pretraining import load_pretrain_config

    base = (study_path.parent / study.base) if study.base else None
    loader = load_config if study.kind == "run" else load_pretrain_config
    base_method = load_config(base).method if study.kind == "run" else ""
    if smoke:
        study = study.model_copy(update={"grid": {**study.grid, **study.smoke_grid},
                                         "seeds": study.seeds[:1]})
    if seeds is not None:
        study = study.model_copy(update={"seeds": list(seeds)})
    runs = []
    for arm in arms(study, base_method):
        for seed in study.seeds:
            extra = {**study.set, **arm, **(study.smoke if smoke else {}), "seed": seed}
            if study.kind == "run" and study.vary_data_seed:
                extra["data.seed"] = seed
            try:
                cfg = loader(base, _overrides(extra))
            except ConfigError as e:
                raise ConfigError(f"{study_path}: arm {arm_label(arm)}, seed {seed}: {e}") from None
            runs.append({"arm": arm_label(arm), "overrides": arm, "seed": seed, "config": cfg})
    if study.kind == "run" and not smoke:
        # two arms that read as one config would both run, then be compared as two arms (a smoke
        # run may make them one on purpose: its overrides replace what tells them apart)
        seen: dict[str, str] = {}
        for r in runs:
            if (first := seen.setdefault(r["config"].fingerprint(), r["arm"])) != r["arm"]:
                raise ConfigError(f"{study_path}: arms {first} and {r['arm']} give the same config "
                                  f"(seed {r['seed']}); remove one, or set what tells them apart")
    return runs


def finished(run_dir: Path, cfg) -> bool:
    return run_state(run_dir, cfg)["state"] == "done"


def run_state(run_dir: Path, cfg) -> dict:
    """Where one run of a study stands, read from its directory without touching it: `state` is
    done, running (another process holds its lock), stopped (partial: the next sweep resumes it),
    other config (its directory holds a different config: the sweep refuses it) or pending;
    `experiences` (done, of how many) for a continual-learning run that has begun, `work_s` the
    seconds it has trained, scored and probed, `left_s` an estimate of the seconds still to
    come for a partial one (its own pace times the work planned, as its progress lines
    estimate), `results` for a finished run."""
    import json

    from forgetless.core.results import work_seconds
    from forgetless.core.store import lock_holder

    state: dict[str, Any] = {"state": "pending", "holder": lock_holder(run_dir)}
    results_path, config_path = run_dir / "results.json", run_dir / "config.yaml"
    if config_path.is_file() and not cfg.matches_saved(yaml.safe_load(config_path.read_text())):
        state["state"] = "other config"
        return state
    results = json.loads(results_path.read_text()) if results_path.is_file() else None
    if results is not None and "timings" in results:
        total = len(results.get("stream", {}).get("experiences", [])) or None
        state["experiences"] = (results.get("completed_experiences", 0), total)
        state["work_s"] = work_seconds(results)
    if results is not None and results.get("complete"):
        state.update(state="done", results=results)
    elif state["holder"]:
        state["state"] = "running"
    elif results is not None or config_path.is_file():
        state["state"] = "stopped"
    if state["state"] != "done" and results and results.get("completed_experiences") \
            and "stream" in results:
        from forgetless.engine.experiment import planned_from_results
        from forgetless.report.callbacks import planned_left

        left = planned_left(planned_from_results(cfg, results), results,
                            results["completed_experiences"] - 1)
        if left is not None:
            state["left_s"] = left
    return state


def experience_seconds(run_dir: Path) -> list[float] | None:
    """Seconds each experience took (training and scoring), averaged over the finished runs of
    the same arm beside `run_dir` (its study's other seeds); None when there are none, or they
    disagree on the number of experiences."""
    import json

    arm = arm_of(run_dir.name)
    rows = []
    siblings = sorted(run_dir.parent.iterdir()) if run_dir.parent.is_dir() else []
    for other in siblings:
        if other == run_dir or not other.is_dir() or arm_of(other.name) != arm:
            continue
        try:
            results = json.loads((other / "results.json").read_text())
        except (OSError, ValueError):
            continue
        if results.get("complete"):
            rows.append([(x.get("train_s") or 0) + (x.get("eval_s") or 0)
                         for x in results.get("experiences", [])])
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    return [sum(col) / len(rows) for col in zip(*rows, strict=True)]


def selected(runs: list[dict], patterns: list[str] | None, study_path: Path | str) -> list[int]:
    """The positions in a plan of the runs whose arm matches one of `patterns` (shell globs, as
    `forgetless sweep --arms` takes them; every run without patterns). The plan itself is not
    cut: a run keeps its position, which is how `--jobs` processes find it again."""
    if not patterns:
        return list(range(len(runs)))
    names = list(dict.fromkeys(r["arm"] for r in runs))
    for p in patterns:
        if not any(fnmatch.fnmatchcase(a, p) for a in names):
            raise ConfigError(f"--arms {p}: matches no arm of {study_path} (its arms: "
                              f"{', '.join(names)})")
    return [k for k, r in enumerate(runs)
            if any(fnmatch.fnmatchcase(r["arm"], p) for p in patterns)]


def run_name(run: dict) -> str:
    """`<arm>-seed<k>`: the name of a planned run's directory, log and progress lines."""
    return f"{run['arm']}-seed{run['seed']}"


def arm_of(name: str) -> str:
    """The arm of a run directory named by `run_name`."""
    return re.sub(r"-seed\d+$", "", name)


def run_directory(out: Path, run: dict) -> Path:
    return out / "runs" / run_name(run)


def execute_when_free(kind: str, config, run_dir: Path, progress: bool = False,
                      on_wait=None) -> bool:
    """`execute`, unless another process (a second sweep into the same --out) holds `run_dir`:
    then wait for it (`on_wait` hears whom) and run only what it left unfinished. True when this
    process ran it. A note from another host, or a dead process's, is waited for once, not
    looped on: the wait returns when the lock is free, whatever the note says."""
    from forgetless.core.store import lock_holder, wait_until_free

    if holder := lock_holder(run_dir):
        if on_wait is not None:
            on_wait(holder)
        wait_until_free(run_dir)
        if finished(run_dir, config):
            return False
    execute(kind, config, run_dir, progress=progress)
    return True


def execute(kind: str, config, run_dir: Path, progress: bool = False) -> dict:
    """Run (or resume) one run of a study in its directory, quietly (with `progress`, a line per
    experience naming the run, with the time left); return its results."""
    from forgetless.engine.experiment import run_experiment
    from forgetless.report.callbacks import run_callbacks
    from forgetless.studies.pretraining import run_pretrain

    if kind == "run":
        label = run_dir.name if progress else None
        profile = experience_seconds(run_dir) if progress else None
        return run_experiment(config, run_dir=run_dir,
                              callbacks=run_callbacks(config, quiet=True, label=label,
                                                      profile=profile)).results
    return run_pretrain(config, run_dir, quiet=True)
