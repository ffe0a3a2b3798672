"""What a run tells the outside while it goes: events, and the callbacks that receive them.

The engine trains, scores and checkpoints; everything that shows results (summary.md,
report.html, console lines, experiment trackers) is a callback installed by whoever starts the
run (the CLI, the Python API, a study). Callbacks run on the main process only, in the order
given, after the state they describe is saved: a callback that fails cannot lose results.

Per run:   on_run_start → for each experience: on_experience_trained → on_evaluation (when the
experience is evaluated) → on_experience_done → … → on_run_end.
An initial evaluation (`eval.initial`) is an on_evaluation with after = -1 before the first one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunStarted:
    run_dir: Path
    config: Any
    """The run's RunConfig."""
    n_experiences: int
    resumed_after: int
    """The last experience completed before this session (-1: a new run)."""
    resumed_steps: int = 0
    """Optimizer steps of the next experience restored from a mid-experience checkpoint."""
    planned_train: list[int] | None = None
    """Per experience, the training examples it is expected to train on (the stream's, with
    what the methods add: replay's buffer, multitask's everything), for estimates of the time
    left (`Method.expected_train_examples`)."""
    planned_scored: list[int] | None = None
    """Per experience, the examples scored after it (0 where it is not evaluated)."""


@dataclass(frozen=True)
class ExperienceTrained:
    experience: int
    n_experiences: int
    steps: int
    epoch_losses: list[float]
    epochs_before: int
    """Epochs trained in earlier experiences: trackers put every value on one epoch axis."""


@dataclass(frozen=True)
class EvaluationDone:
    after: int
    """The experience trained last (-1: the untrained model)."""
    evaluations: list[dict]
    """This pass's rows: experience, split, n, accuracy, nll."""
    probe: dict | None
    """The base-knowledge probe's row of this pass, if the probe ran."""
    epochs: int
    """Epochs trained so far (the tracker step)."""


@dataclass(frozen=True)
class ExperienceDone:
    experience: int
    n_experiences: int
    epoch_losses: list[float]
    results: dict
    """results.json as just written (the checkpoint is saved)."""


class Callback:
    """No-op base: override the events you need."""

    def on_run_start(self, event: RunStarted) -> None:
        pass

    def on_experience_trained(self, event: ExperienceTrained) -> None:
        pass

    def on_evaluation(self, event: EvaluationDone) -> None:
        pass

    def on_experience_done(self, event: ExperienceDone) -> None:
        pass

    def on_run_end(self, results: dict) -> None:
        pass


def emit(callbacks: list[Callback], name: str, event: Any) -> None:
    for cb in callbacks:
        getattr(cb, name)(event)
