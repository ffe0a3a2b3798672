"""Experiment trackers through accelerate: TensorBoard, MLflow, W&B (offline), all opt-in.

What is logged, all on one step axis = epochs trained so far (W&B drops any log whose step is
lower than one already logged, so eval cannot use its own axis): each epoch's mean training
loss, and after each evaluation every experience's score per split, the mean over the
experiences seen so far, the base-knowledge probe's numbers, and `experience` (the one just
trained: plot eval against it). At the end: the headline, metrics and matrices (`final/…`) and
the run's report — report.html, summary.md and results.json as MLflow artifacts and as a W&B
artifact, summary.md as TensorBoard text.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from forgetless.core.errors import ConfigError
from forgetless.core.events import Callback, EvaluationDone, ExperienceTrained, RunStarted

PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def check_trackers(trackers: list[str]) -> None:
    for name in trackers:
        if importlib.util.find_spec(PACKAGES[name]) is None:
            hint = ' (pip install "forgetless[track]")' if name == "tensorboard" else ""
            raise ConfigError(f"tracking.trackers: '{name}' is not installed{hint}")


def prepare_environment(trackers: list[str], logging_dir: Path) -> None:
    """Keep every tracker local unless the user configured it otherwise."""
    if "wandb" in trackers:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(logging_dir))
    if "mlflow" in trackers and "MLFLOW_TRACKING_URI" not in os.environ:
        # A file store in the run directory: no server and no database driver needed (mlflow-
        # skinny has no SQLAlchemy). MLflow ≥ 3.x refuses file stores unless this is set.
        os.environ["MLFLOW_TRACKING_URI"] = (logging_dir / "mlruns").resolve().as_uri()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def flat_config(data: dict, prefix: str = "") -> dict:
    """Nested config → {dotted key: scalar} (lists as text), what hparams views accept."""
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, f"{name}."))
        elif isinstance(value, bool | int | float | str) or value is None:
            out[name] = "null" if value is None else value
        else:
            out[name] = str(value)
    return out


def evaluation_scalars(evaluations: list[dict], after: int, probe: dict | None) -> dict:
    out: dict = {"experience": after}
    for split in ("train", "test"):
        rows = [ev for ev in evaluations if ev["after"] == after and ev["split"] == split]
        for ev in rows:
            out[f"eval/{split}/experience_{ev['experience']}"] = ev["accuracy"]
        seen = [ev["accuracy"] for ev in rows if ev["experience"] <= after]
        if seen:
            out[f"eval/{split}/seen_mean"] = sum(seen) / len(seen)
    for key, value in (probe or {}).items():
        if (key not in ("after", "seconds", "sampling_s") and isinstance(value, int | float)
                and value is not None):
            out[f"probe/{key}"] = value
    return out


def final_scalars(results: dict) -> dict:
    """What a finished run ends with: the headline (MA, GA, MF, GF), every per-split metric,
    both accuracy matrices entry by entry (`final/<split>/R/<after>/<experience>`) and the
    probe's base and final values. Quantities a run could not measure (None) are left out."""
    out: dict = {}
    for key, value in (results.get("headline") or {}).items():
        out[f"final/{key}"] = value
    for split, metrics in (results.get("metrics") or {}).items():
        for key, value in metrics.items():
            out[f"final/{split}/{key}"] = value
    for split, rows in (results.get("matrices") or {}).items():
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                out[f"final/{split}/R/{i}/{j}"] = value
    for key, value in (results.get("probe_summary") or {}).items():
        out[f"final/probe/{key}"] = value
    return {k: float(v) for k, v in out.items() if isinstance(v, int | float)}


REPORT_FILES = ("report.html", "summary.md", "results.json")
"""What a finished run hands its trackers besides scalars (where they keep files)."""


def log_report(name: str, tracker, run_dir: Path, step: int) -> list[str]:
    """The run's report files to one tracker: MLflow artifacts under `report/`, one W&B artifact
    of type "report", and summary.md as TensorBoard text (its Text tab renders Markdown; it
    keeps no files). Returns the names of the files handed over."""
    files = [run_dir / n for n in REPORT_FILES if (run_dir / n).is_file()]
    if name == "mlflow":
        import mlflow

        for path in files:
            mlflow.log_artifact(str(path), artifact_path="report",
                                run_id=tracker.tracker.info.run_id)
    elif name == "wandb":
        import wandb

        artifact = wandb.Artifact(re.sub(r"[^\w.-]", "_", f"{run_dir.name}-report"), type="report")
        for path in files:
            artifact.add_file(str(path))
        tracker.tracker.log_artifact(artifact)
    elif name == "tensorboard":
        files = [p for p in files if p.name == "summary.md"]
        for path in files:
            tracker.tracker.add_text("report/summary", path.read_text(), global_step=step)
            tracker.tracker.flush()
    return [p.name for p in files]


class TrackerLog(Callback):
    """Feeds accelerate's tracker classes (main process): the run's flat config at the start,
    each epoch's loss, each evaluation's scalars, the final metrics and matrices at the end
    (`final/…`, on the last step) with the report files (`log_report`), then `finish()`. The
    trackers are checked to be installed when this callback is made, before the run starts.
    It must come after the ReportWriter (run_callbacks orders them so), which writes the report
    it hands over."""

    def __init__(self, trackers: list[str]):
        check_trackers(trackers)
        self.names = trackers
        self.trackers: list = []
        self.run_dir: Path | None = None

    def on_run_start(self, event: RunStarted) -> None:
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        self.run_dir = event.run_dir
        logging_dir = event.run_dir / "tracking"
        prepare_environment(self.names, logging_dir)
        for name in self.names:
            cls = LOGGER_TYPE_TO_CLASS[name]
            tracker = (cls(event.run_dir.name, logging_dir) if cls.requires_logging_directory
                       else cls(event.run_dir.name))
            tracker.start()
            tracker.store_init_configuration(flat_config(event.config.to_dict()))
            self.trackers.append(tracker)

    def _log(self, values: dict, step: int) -> None:
        for tracker in self.trackers:
            tracker.log(values, step=step)

    def on_experience_trained(self, event: ExperienceTrained) -> None:
        for k, loss in enumerate(event.epoch_losses):
            self._log({"train/epoch_loss": loss}, event.epochs_before + k + 1)

    def on_evaluation(self, event: EvaluationDone) -> None:
        if event.after >= 0:
            self._log(evaluation_scalars(event.evaluations, event.after, event.probe),
                      event.epochs)

    def on_run_end(self, results: dict) -> None:
        epochs = sum(len(x.get("epoch_losses") or []) for x in results.get("experiences") or [])
        self._log(final_scalars(results), epochs)
        for name, tracker in zip(self.names, self.trackers, strict=True):
            log_report(name, tracker, self.run_dir, epochs)
            tracker.finish()
        self.trackers = []
