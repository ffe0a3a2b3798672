"""lm-evaluation-harness tasks as a part of the base-knowledge probe (`probe.lm_eval`).

The field's common yardstick, measured wherever the probe measures (the base model, the final
one, and after every evaluation with `probe.every_evaluation`), offline: a task is a name the
harness knows and can load from local files, or a task YAML of one's own whose relative
`data_files` resolve against the YAML's folder. `example` is the task forgetless ships
(harness_tasks/arithmetic.yaml). The harness is optional: `pip install "forgetless[lmeval]"`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import yaml

from forgetless.core.errors import ConfigError
from forgetless.core.seeding import rng_state, set_rng_state
from forgetless.eval.evaluator import CPU_AUTO_BATCH

EXAMPLE = Path(__file__).parent / "harness_tasks" / "arithmetic.yaml"
"""What `probe.lm_eval: [example]` runs."""
INSTALL = 'pip install "forgetless[lmeval]"'


def _is_file(task: str) -> bool:
    return task == "example" or task.endswith((".yaml", ".yml")) or "/" in task


def task_spec(task: str) -> str | dict:
    """A harness task name as is; a task YAML as its config with relative `data_files` made
    absolute (the harness would resolve them against the working directory)."""
    if not _is_file(task):
        return task
    path = EXAMPLE if task == "example" else Path(task)
    if not path.is_file():
        raise ConfigError(f"probe.lm_eval: task file '{task}' not found")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(config, dict) or "task" not in config:
        raise ConfigError(f"{path}: a harness task YAML needs a 'task' name")
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    if isinstance(files, dict):
        config["dataset_kwargs"]["data_files"] = {
            split: str(path.parent / f) if not Path(f).is_absolute() else f
            for split, f in files.items()}
    elif isinstance(files, str) and not Path(files).is_absolute():
        config["dataset_kwargs"]["data_files"] = str(path.parent / files)
    return config


class Harness:
    """The tasks, loaded once before training (a bad task fails then, not after hours)."""

    def __init__(self, tasks: list[str], limit: int | None, batch_size: int | str):
        try:
            from lm_eval.tasks import TaskManager, get_task_dict
        except ImportError:
            raise ConfigError(f"probe.lm_eval needs lm-evaluation-harness: {INSTALL}") from None
        specs = [task_spec(t) for t in tasks]
        # the harness's own task index takes seconds to build: only when a task is named
        manager = TaskManager(include_defaults=any(isinstance(s, str) for s in specs))
        try:
            self.task_dict = get_task_dict(specs, manager)
        except (KeyError, ValueError, FileNotFoundError) as e:
            raise ConfigError(f"probe.lm_eval: the harness cannot load {tasks} offline "
                              f"({type(e).__name__}: {str(e)[:200]})") from None
        self.limit = limit
        self.batch_size = batch_size

    def measure(self, model, tokenizer, device) -> dict[str, dict[str, float]]:
        """Per task: its metrics, their standard errors (`<metric>_stderr`) and `n`, the
        examples scored."""
        from lm_eval.evaluator import evaluate
        from lm_eval.models.huggingface import HFLM

        # "auto" is lm-eval's own search on a GPU; on a CPU it would try batches of 64 at the
        # model's full context length, minutes of work to learn nothing
        batch_size = (CPU_AUTO_BATCH if self.batch_size == "auto" and device.type == "cpu"
                      else self.batch_size)
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                  device=str(device))
        state = rng_state()  # the harness seeds what it samples; training must not notice
        try:
            with warnings.catch_warnings():  # transformers' deprecation notes on its model calls
                warnings.simplefilter("ignore", FutureWarning)
                out = evaluate(lm=lm, task_dict=self.task_dict, limit=self.limit,
                               log_samples=False, bootstrap_iters=1000, verbosity="ERROR")
        finally:
            set_rng_state(*state)
        results: dict[str, dict[str, float]] = {}
        for task, values in out["results"].items():
            metrics = {}
            for key, value in values.items():
                name, _, filter_name = key.partition(",")  # "acc,none": metric, filter
                if filter_name and isinstance(value, int | float) and not isinstance(value, bool):
                    metrics[name] = float(value)
            if isinstance(values.get("sample_len"), int):
                metrics["n"] = values["sample_len"]
            results[task] = metrics
        return results
