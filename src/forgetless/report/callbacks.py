"""The callbacks the CLI, the Python API and studies install on a run: reports on disk,
progress lines on the console, experiment trackers."""

from __future__ import annotations

import time

from forgetless.core.events import Callback, ExperienceDone, RunStarted
from forgetless.core.store import RunStore
from forgetless.report.summary import render


class ReportWriter(Callback):
    """The matrix CSVs and summary.md after every experience, and report.html (the figures)
    after the first, then at most every `every_s` seconds (so a partial run can be read); all of
    it at the end, with the console table unless quiet."""

    def __init__(self, quiet: bool = False, every_s: float = 30.0):
        self.quiet = quiet
        self.every_s = every_s
        self.store: RunStore | None = None
        self.drawn_at: float | None = None

    def on_run_start(self, event: RunStarted) -> None:
        self.store = RunStore(event.run_dir)

    def on_experience_done(self, event: ExperienceDone) -> None:
        # The figures take a fraction of a second per render: nothing beside a real experience,
        # but most of a short run's time when repeated after each of its many small steps.
        now = time.monotonic()
        figures = self.drawn_at is None or now - self.drawn_at >= self.every_s
        render(self.store, event.results, quiet=True, figures=figures)
        if figures:
            self.drawn_at = now

    def on_run_end(self, results: dict) -> None:
        render(self.store, results, quiet=self.quiet)


class ConsoleProgress(Callback):
    """One line per experience: its final epoch loss and the mean accuracy over seen ones."""

    def on_run_start(self, event: RunStarted) -> None:
        if event.resumed_steps:
            print(f"resuming {event.run_dir} inside experience {event.resumed_after + 2} of "
                  f"{event.n_experiences}, after its optimizer step {event.resumed_steps}")
        elif event.resumed_after == event.n_experiences - 1:
            print(f"{event.run_dir}: already complete; nothing to train (results re-written)")
        elif event.resumed_after >= 0:
            print(f"resuming {event.run_dir} after experience {event.resumed_after + 1} of "
                  f"{event.n_experiences}")

    def on_experience_done(self, event: ExperienceDone) -> None:
        e = event.experience
        losses = event.epoch_losses
        parts = [f"experience {e + 1}/{event.n_experiences}: loss "
                 + (f"{losses[-1]:.3f}" if losses else "- (joint)")]
        evals = [ev for ev in event.results["evaluations"] if ev["after"] == e]
        for split in ("train", "test"):
            accs = [ev["accuracy"] for ev in evals if ev["split"] == split and ev["experience"] <= e]
            if accs:
                parts.append(f"{split} acc (seen) {100 * sum(accs) / len(accs):.1f}")
        print(" | ".join(parts), flush=True)


def run_callbacks(config, quiet: bool = False) -> list[Callback]:
    """What a run started by a person gets: reports, trackers (as configured), progress lines."""
    from forgetless.report.tracking import TrackerLog

    callbacks: list[Callback] = [ReportWriter(quiet)]
    if config.tracking.trackers:
        callbacks.append(TrackerLog(list(config.tracking.trackers)))
    if not quiet:
        callbacks.append(ConsoleProgress())
    return callbacks
