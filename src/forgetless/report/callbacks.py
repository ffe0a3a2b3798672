"""The callbacks the CLI, the Python API and studies install on a run: reports on disk,
progress lines on the console, experiment trackers."""

from __future__ import annotations

import time

import numpy as np

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
        self.planned: tuple[list[int], list[int]] | None = None

    def on_run_start(self, event: RunStarted) -> None:
        self.started, self.first = self.clock(), event.resumed_after + 1
        if event.planned_train is not None and event.planned_scored is not None:
            self.planned = (event.planned_train, event.planned_scored)
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
            parts.append(self._timing(e, event.n_experiences, event.results))
        print(" | ".join(parts), flush=True)

    def _timing(self, e: int, n: int, results: dict | None = None) -> str:
        """Time so far and the time left: from the profile where there is one; else from the
        run's own seconds per training example and per scored example, times the work planned
        for the experiences to come (`planned_left`); else at this session's pace per
        experience (which errs short: later experiences score more, and replay trains more)."""
        elapsed = self.clock() - self.started
        done = e + 1 - self.first
        left = n - e - 1
        text = f"{duration(elapsed)} so far"
        if done > 0 and left > 0:
            planned = planned_left(self.planned, results or {}, e)
            if self.profile is not None and len(self.profile) == n \
                    and (expected := sum(self.profile[self.first:e + 1])) > 0:
                text += f", about {duration(elapsed / expected * sum(self.profile[e + 1:]))} left"
            elif planned is not None:
                text += f", about {duration(planned)} left"
            else:
                text += f", about {duration(elapsed / done * left)} left"
        return text


def planned_left(planned: tuple[list[int], list[int]] | None, results: dict,
                 e: int) -> float | None:
    """Seconds left after experience `e`, from what results.json recorded up to it (its
    `experiences`, `flatness` and `probe` rows; later ones are ignored) and the `planned`
    (training examples, scored examples) of every experience. Training costs a time per example:
    the median over the last 3 experiences (robust to one that a pause or a neighbour slowed,
    and following the pace of the machine now). An evaluation costs a time per scored example
    plus a fixed part, fitted by least squares over the evaluations, once the parts measured
    apart are taken out: the flatness measurements (`landscape.record`, the same examples after
    every experience) and the base-knowledge probe, each expected again at their median of the
    last 3 — flatness after every evaluation, the probe after every one where it ran on one
    already (`probe.every_evaluation`), else once at the end, at what its first pass (on the base
    model) cost. benchmarks/time_left.py measures it on finished runs. None where nothing was
    trained yet or the plan does not fit the run."""
    if planned is None:
        return None
    train, scored = planned
    if len(train) != len(scored) or e + 1 >= len(train):
        return None
    rows = [x for x in results.get("experiences") or [] if x.get("experience", 0) <= e]
    apart = measured_apart(results, e)
    rates = [x["train_s"] / x["n_train_examples"] for x in rows
             if x.get("n_train_examples") and x.get("train_s") is not None]
    evals = [(scored[x["experience"]], x["eval_s"] - apart.get(x["experience"], 0.0))
             for x in rows if x.get("eval_s") is not None and x["experience"] < len(scored)
             and scored[x["experience"]] > 0]
    if not rates:
        return None
    per_example = float(np.median(rates[-3:]))
    per_scored, fixed = 0.0, 0.0
    if evals:
        xs, ys = np.array([k for k, _ in evals], float), np.array([s for _, s in evals], float)
        if len(set(xs)) >= 2:
            per_scored, fixed = np.polyfit(xs, ys, 1)
        if len(set(xs)) < 2 or fixed < 0:
            per_scored, fixed = max(ys.sum(), 0.0) / xs.sum(), 0.0  # all of it grows with the size
        elif per_scored < 0:
            per_scored, fixed = 0.0, ys.mean()  # none of it does
    flatness = [f["seconds"] for f in timed(results.get("flatness"), e) if f["after"] >= 0]
    fixed += float(np.median(flatness[-3:])) if flatness else 0.0
    probes = timed(results.get("probe"), e)
    after_steps = [p["seconds"] for p in probes if p["after"] >= 0]
    at_end = 0.0
    if after_steps:
        fixed += float(np.median(after_steps[-3:]))
    elif probes:
        # the base model's pass; its texts were sampled once at set-up (`sampling_s`, timed
        # apart from `seconds`) and are not sampled again
        at_end = probes[0]["seconds"]
    future = range(e + 1, len(train))
    return float(sum(per_example * train[k] for k in future)
                 + sum(per_scored * scored[k] + fixed for k in future if scored[k] > 0)
                 + at_end)


def measured_apart(results: dict, e: int) -> dict[int, float]:
    """Per experience up to `e`, the seconds of its `eval_s` spent on the flatness measurements
    and the base-knowledge probe after it (recorded in results.json's `flatness` and `probe`
    rows): parts of an evaluation that do not grow with the examples it scores."""
    out: dict[int, float] = {}
    for row in [*timed(results.get("flatness"), e), *timed(results.get("probe"), e)]:
        if row["after"] >= 0:
            out[row["after"]] = out.get(row["after"], 0.0) + row["seconds"]
    return out


def timed(rows: list[dict] | None, e: int) -> list[dict]:
    """The rows of results.json's `flatness` or `probe` measured up to experience `e` (the
    base model's probe, `after` −1, included) that recorded their seconds."""
    return [r for r in rows or [] if r.get("seconds") is not None and r["after"] <= e]


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
