"""The callbacks the CLI, the Python API and studies install on a run: reports on disk,
progress lines on the console, experiment trackers."""

from __future__ import annotations

import time

from forgetless.core.events import Callback, ExperienceDone, RunStarted
from forgetless.core.progress import duration
from forgetless.core.store import RunStore
from forgetless.report.summary import render


class ReportWriter(Callback):
    """The matrix CSVs and summary.md after every experience; report.html (the figures) after
    the first experience that ends `every_s` seconds or more after the run started or after the
    last drawing (so a partial run can be read); all of it at the end, with the console table
    unless quiet. A run shorter than `every_s` draws its figures once, at the end."""

    def __init__(self, quiet: bool = False, every_s: float = 30.0):
        self.quiet = quiet
        self.every_s = every_s
        self.store: RunStore | None = None
        self.drawn_at = 0.0

    def on_run_start(self, event: RunStarted) -> None:
        self.store = RunStore(event.run_dir)
        self.drawn_at = time.monotonic()

    def on_experience_done(self, event: ExperienceDone) -> None:
        # The figures take a fraction of a second per render (a 10-step run's matrices about
        # 0.4 s): nothing beside a real experience, but most of a short run's time when
        # repeated after each of its many small steps.
        now = time.monotonic()
        figures = now - self.drawn_at >= self.every_s
        render(self.store, event.results, quiet=True, figures=figures)
        if figures:
            self.drawn_at = now

    def on_run_end(self, results: dict) -> None:
        render(self.store, results, quiet=self.quiet)


class ConsoleProgress(Callback):
    """One line per experience: its final epoch loss and the mean accuracy over seen ones. With a
    `label` (a study's runs, whose output is a log file), the line starts with it and ends with
    the time this session has run and an estimate of what is left of the run."""

    def __init__(self, label: str | None = None, clock=time.monotonic,
                 profile: list[float] | None = None):
        self.label = label
        self.clock = clock
        self.profile = profile
        """Seconds each experience took in finished runs like this one (a study's other seeds of
        the same arm): with it, what is left is their time for the experiences still to come,
        scaled to this session's pace — right for streams whose work grows (replay)."""
        self.started = 0.0
        self.first = 0

    def on_run_start(self, event: RunStarted) -> None:
        self.started, self.first = self.clock(), event.resumed_after + 1
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
        if self.label is not None:
            parts.insert(0, self.label)
            parts.append(self._timing(e, event.n_experiences))
        print(" | ".join(parts), flush=True)

    def _timing(self, e: int, n: int) -> str:
        """Time so far and the time left: from the profile where there is one, else at this
        session's pace per experience (which errs short: later experiences score more, and
        replay trains more)."""
        elapsed = self.clock() - self.started
        done = e + 1 - self.first
        left = n - e - 1
        text = f"{duration(elapsed)} so far"
        if done > 0 and left > 0:
            if self.profile is not None and len(self.profile) == n \
                    and (expected := sum(self.profile[self.first:e + 1])) > 0:
                text += f", about {duration(elapsed / expected * sum(self.profile[e + 1:]))} left"
            else:
                text += f", about {duration(elapsed / done * left)} left"
        return text


def run_callbacks(config, quiet: bool = False, label: str | None = None,
                  profile: list[float] | None = None) -> list[Callback]:
    """What a run started by a person gets: reports, trackers (as configured), progress lines.
    A `label` (a study's run) gets its progress lines even when quiet — the run's own report
    table stays out of the study's output."""
    from forgetless.report.tracking import TrackerLog

    callbacks: list[Callback] = [ReportWriter(quiet)]
    if config.tracking.trackers:
        callbacks.append(TrackerLog(list(config.tracking.trackers)))
    if not quiet or label is not None:
        callbacks.append(ConsoleProgress(label, profile=profile))
    return callbacks
