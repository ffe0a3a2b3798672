"""results.json as a dict, and `Result`, the object `forgetless.run()` returns."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.core.errors import RunDirError
from forgetless.core.metrics import all_metrics, forgetting_per_experience

SPLITS = ("train", "test")
HEADLINE = {"MA": ("train", "AA"), "GA": ("test", "AA"), "MF": ("train", "F"),
            "GF": ("test", "F")}


def machine_words(m: dict) -> str:
    """A results.json `run.machine` in words: "Intel Xeon (AVX512, 1 thread)", GPU appended."""
    threads = f"{m['threads']} thread" + ("" if m["threads"] == 1 else "s")
    return (f"{m['cpu']} ({m['cpu_capability']}, {threads}"
            + (f", {m['gpu']}" if m.get("gpu") else "") + ")")


# What `report` and `compare` read from a results.json: key path → (type, what is expected).
REQUIRED: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "the run name"), "method": (str, "the method"), "seed": (int, "the seed"),
    "complete": (bool, "true or false"), "config": (dict, "the run's config"),
    "matrices.train": (list, "a list of rows of accuracies"),
    "matrices.test": (list, "a list of rows of accuracies"),
    "metrics.train": (dict, "the per-split metrics"), "metrics.test": (dict, "the per-split metrics"),
    "headline": (dict, "MA, GA, MF, GF"), "experiences": (list, "one row per experience"),
    "timings.train_s": ((int, float), "seconds"), "timings.eval_s": ((int, float), "seconds"),
    "run.peak_memory_mb": ((int, float), "MiB"),
}


def check_results(data: object, where: str) -> dict[str, Any]:
    """`data` if it has what reports read, else a one-line RunDirError naming the first key that
    is missing or of the wrong type (before anything is written from it)."""
    if not isinstance(data, dict):
        raise RunDirError(f"{where}: expected a JSON object at the top level")
    for key, (kind, expected) in REQUIRED.items():
        node: object = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            raise RunDirError(f"{where}: key '{key}' is missing (expected {expected})")
        if not isinstance(node, kind) or (kind is int and isinstance(node, bool)):
            raise RunDirError(f"{where}: key '{key}' is a {type(node).__name__} (expected "
                              f"{expected})")
    T = len(data["matrices"]["train"])
    for split in SPLITS:
        rows = data["matrices"][split]
        if len(rows) != T or any(not isinstance(r, list) or len(r) != T for r in rows):
            raise RunDirError(f"{where}: key 'matrices.{split}' is not a {T}×{T} matrix")
    return data


@functools.cache
def versions() -> dict[str, str]:
    """Python's and the packages' versions, and `git`: the commit of forgetless's own source
    where it runs from a git checkout ("+dirty" with uncommitted changes to tracked files) — so
    a number can be traced to the code that made it."""
    out = {"python": platform.python_version()}
    for pkg in ("forgetless", "torch", "transformers", "peft", "accelerate", "datasets"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "?"
    commit = _git("rev-parse", "HEAD")
    if commit:
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        out["git"] = commit + ("+dirty" if dirty else "")
    return out


def _git(*args: str) -> str | None:
    """A git command's output in the folder of forgetless's source (None: not a checkout)."""
    try:
        done = subprocess.run(["git", "-C", str(Path(__file__).parent), *args],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def matrices_from(evaluations: list[dict], T: int) -> tuple[dict, dict]:
    """(R per split as nested lists with NaN, initial scores per split or None)."""
    R = {s: np.full((T, T), np.nan) for s in SPLITS}
    initial = {s: np.full(T, np.nan) for s in SPLITS}
    has_initial = False
    for ev in evaluations:
        if ev["after"] < 0:
            initial[ev["split"]][ev["experience"]] = ev["accuracy"]
            has_initial = True
        else:
            R[ev["split"]][ev["after"], ev["experience"]] = ev["accuracy"]
    return R, (initial if has_initial else None)


def build_results(cfg, stream, state: dict, info: dict) -> dict[str, Any]:
    T = len(stream)
    R, initial = matrices_from(state["evaluations"], T)
    metrics = {s: all_metrics(R[s], None if initial is None else initial[s]) for s in SPLITS}
    if trained_jointly(state["experiences"]):
        for s in SPLITS:  # the diagonal is the last experience only: not how each was learned
            metrics[s]["LA"] = None
    complete = state["completed"] == T - 1
    return {
        "name": cfg.name,
        "method": cfg.method,
        "seed": cfg.seed,
        "complete": complete,
        "completed_experiences": state["completed"] + 1,
        "config": cfg.to_dict(),
        "stream": {"name": stream.name, "scenario": stream.scenario,
                   "experiences": stream.summary()},
        "matrices": {s: _nested(R[s]) for s in SPLITS},
        "initial": None if initial is None else {s: _nested(initial[s]) for s in SPLITS},
        "metrics": metrics,
        "headline": {k: metrics[s][m] for k, (s, m) in HEADLINE.items()},
        "forgetting_per_experience": {s: forgetting_per_experience(R[s]) for s in SPLITS},
        "probe": state.get("probes", []),
        "controls": state.get("controls", []),
        "control_matrices": control_matrices(state.get("controls", []), T),
        "flatness": state.get("flatness", []),
        "recovery": state.get("recovery"),
        "probe_summary": probe_summary(state.get("probes", [])),
        "evaluations": state["evaluations"],
        "experiences": state["experiences"],
        "timings": {
            "train_s": sum(x["train_s"] for x in state["experiences"]),
            "eval_s": sum(x["eval_s"] for x in state["experiences"]),
            # the base-knowledge probe: sampling its texts, measuring the base model (both
            # before training) and its measurements inside the evaluations
            "probe_s": sum(r.get("seconds", 0.0) + r.get("sampling_s", 0.0)
                           for r in state.get("probes", [])),
            # flatness after each step (`landscape.record`), inside the evaluations too
            "landscape_s": sum(r.get("seconds", 0.0) for r in state.get("flatness", [])),
            **train_throughput(state["experiences"]),
        },
        "run": info,
        "versions": versions(),
    }


def work_seconds(results: dict) -> float:
    """The seconds a run has trained, scored and probed, summed over every session of a resumed
    run (results.json; 0 before any). The probe's measurements after training steps happen
    inside the evaluations and are in `eval_s` already; only the base model's (before any
    training, `after` < 0) are added."""
    timings = results.get("timings") or {}
    before_training = sum((r.get("seconds") or 0) + (r.get("sampling_s") or 0)
                          for r in results.get("probe") or [] if r.get("after", 0) < 0)
    return float((timings.get("train_s") or 0) + (timings.get("eval_s") or 0) + before_training)


def trained_jointly(experiences: list[dict]) -> bool:
    """Whether the experiences were trained together at the end (multitask): then no experience
    was scored right after it was learned, so learning accuracy and forgetting are undefined."""
    return any(x.get("joint") for x in experiences)


def train_throughput(experiences: list[dict]) -> dict:
    """Real (non-pad) tokens the training loop fed per second, and the share of its batch
    positions that were padding (the loop's own batches; a method's extra forwards are not
    counted). Empty for runs recorded before these counts existed."""
    tokens = sum(x.get("input_tokens", 0) for x in experiences)
    positions = sum(x.get("padded_positions", 0) for x in experiences)
    seconds = sum(x["train_s"] for x in experiences if x.get("input_tokens"))
    if not tokens or not seconds:
        return {}
    return {"train_tokens": tokens, "train_tokens_per_s": tokens / seconds,
            "train_padding_share": 1 - tokens / positions}


def control_matrices(rows: list[dict], T: int) -> dict:
    """Per control and split, its accuracy matrix (as `matrices`, NaN → None)."""
    out: dict = {}
    for name in dict.fromkeys(r["control"] for r in rows):
        mine = [r for r in rows if r["control"] == name]
        R, _ = matrices_from(mine, T)
        out[name] = {s: _nested(R[s]) for s in SPLITS}
    return out


def probe_summary(rows: list[dict]) -> dict[str, float | None]:
    """Base-model values and their change by the last probe (None where not measured)."""
    base = next((r for r in rows if r["after"] < 0), None)
    last = rows[-1] if rows and rows[-1]["after"] >= 0 else None
    out: dict[str, float | None] = {}
    for key in ("sample_nll", "sample_kl", "qa_accuracy", "qa_choice_accuracy", "qa_retention",
                "corpus_nll"):
        out[f"{key}_base"] = base.get(key) if base else None
        out[f"{key}_final"] = last.get(key) if last else None
    for key in ("sample_nll", "corpus_nll"):
        nll = out[f"{key}_base"], out[f"{key}_final"]
        out[f"{key}_rise"] = None if None in nll else nll[1] - nll[0]
    return out


def _nested(a: np.ndarray) -> list:
    return [None if np.isnan(x) else float(x) for x in a] if a.ndim == 1 else [
        _nested(row) for row in a]


class Result:
    """A finished (or partial) run: matrices, metrics and where its files are."""

    def __init__(self, results: dict[str, Any], run_dir: str | Path):
        self.results = results
        self.run_dir = Path(run_dir)

    def matrix(self, split: str = "test") -> np.ndarray:
        """R[i][j] accuracy (0–1) on experience j after training through i; NaN = not scored."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.array([[np.nan if x is None else x for x in row]
                         for row in self.results["matrices"][split]])

    @property
    def metrics(self) -> dict[str, dict[str, float | None]]:
        return self.results["metrics"]

    @property
    def headline(self) -> dict[str, float | None]:
        """MA, GA (final average accuracy on train / test) and MF, GF (their forgetting)."""
        return self.results["headline"]

    def to_pandas(self):
        """One row per evaluation (after, experience, split, n, accuracy, nll)."""
        import pandas as pd

        return pd.DataFrame(self.results["evaluations"])

    def __repr__(self) -> str:
        h = ", ".join(f"{k}={'-' if v is None else f'{100 * v:.1f}'}"
                      for k, v in self.headline.items())
        return f"Result({self.run_dir}, {h})"
