"""Continual-learning metrics on an accuracy matrix.

R[i][j] = score on experience j after training through experience i; T×T, NaN where not
evaluated (j > i, or rows skipped by `eval.every`). Definitions (PAPERS.md §1 and last section):

    AA   = mean_j R[T-1][j]                                   average accuracy at the end
    AIA  = mean_i mean_{j<=i} R[i][j]                         over evaluated rows i
    LA   = mean_j R[j][j]                                     learning accuracy: each experience
                                                              right after training on it
    F    = mean_{j<T-1} ( max_{j<=i<T-1} R[i][j] - R[T-1][j] )  forgetting (≥ 0 per j)
    RF   = mean_{j<T-1} ( F_j / max_{j<=i<T-1} R[i][j] )         relative forgetting: the share of
                                                              its best score each experience lost
    BWT  = mean_{j<T-1} ( R[T-1][j] - R[j][j] )                backward transfer
    FWT  = mean_{i>=1} ( R[i-1][i] - b_i )                     forward transfer; b = untrained

Entries a definition needs but that were not evaluated are skipped; a metric with no usable
entry is None (e.g. F and BWT for a single experience, FWT without `eval.initial`/`eval.next`).
"""

from __future__ import annotations

import math

import numpy as np


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def average_accuracy(R: np.ndarray) -> float | None:
    last = R[-1]
    if np.isnan(last).any():
        return None
    return float(last.mean())


def average_incremental_accuracy(R: np.ndarray) -> float | None:
    rows = []
    for i in range(R.shape[0]):
        seen = R[i, : i + 1]
        if not np.isnan(seen).any():
            rows.append(float(seen.mean()))
    return _mean(rows)


def learning_accuracy(R: np.ndarray) -> float | None:
    """How well each experience was learned when it was trained: forgetting is read against it
    (a model that learns nothing forgets nothing)."""
    return _mean([float(R[j, j]) for j in range(R.shape[0]) if not math.isnan(R[j, j])])


def forgetting(R: np.ndarray) -> float | None:
    T = R.shape[0]
    per = forgetting_per_experience(R)
    return _mean([per[j] for j in range(T - 1) if per[j] is not None])


def relative_forgetting(R: np.ndarray) -> float | None:
    """F with each experience's drop taken as a share of its best score: an arm that learns less
    has fewer points to lose, so F alone rewards learning less; RF does not. Experiences whose
    best score is 0 have nothing to lose and are skipped."""
    T = R.shape[0]
    per = forgetting_per_experience(R)
    return _mean([per[j] / best for j in range(T - 1)
                   if per[j] is not None and (best := _best_before_last(R, j)) > 0])


def _best_before_last(R: np.ndarray, j: int) -> float | None:
    """max_{j<=i<T-1} R[i][j] over the evaluated cells (None where none was)."""
    earlier = [R[i, j] for i in range(j, R.shape[0] - 1) if not math.isnan(R[i, j])]
    return float(max(earlier)) if earlier else None


def forgetting_per_experience(R: np.ndarray) -> list[float | None]:
    """max_{j<=i<T-1} R[i][j] - R[T-1][j] for each j < T-1 (None where undefined), and None for
    the last experience."""
    T = R.shape[0]
    out: list[float | None] = []
    for j in range(T):
        best = _best_before_last(R, j)
        if j == T - 1 or best is None or math.isnan(R[T - 1, j]):
            out.append(None)
        else:
            out.append(float(best - R[T - 1, j]))
    return out


def backward_transfer(R: np.ndarray) -> float | None:
    T = R.shape[0]
    diffs = [float(R[T - 1, j] - R[j, j]) for j in range(T - 1)
             if not (math.isnan(R[T - 1, j]) or math.isnan(R[j, j]))]
    return _mean(diffs)


def forward_transfer(R: np.ndarray, initial: np.ndarray | None) -> float | None:
    if initial is None:
        return None
    T = R.shape[0]
    diffs = [float(R[i - 1, i] - initial[i]) for i in range(1, T)
             if not (math.isnan(R[i - 1, i]) or math.isnan(initial[i]))]
    return _mean(diffs)


def all_metrics(R: np.ndarray, initial: np.ndarray | None = None) -> dict[str, float | None]:
    return {
        "AA": average_accuracy(R),
        "AIA": average_incremental_accuracy(R),
        "LA": learning_accuracy(R),
        "F": forgetting(R),
        "BWT": backward_transfer(R),
        "FWT": forward_transfer(R, initial),
    }


def pooled_recovery(rows: list[dict]) -> dict[str, dict]:
    """The recovery probe's rows pooled per split over its experiences, each accuracy weighted by
    its questions: {split: {n, learned, final, recovered, control, won_back}}. `won_back` is
    (recovered − final) / (learned − final), the share of the forgetting that came back (None
    where nothing was forgotten or a value is missing)."""
    out: dict[str, dict] = {}
    for split in dict.fromkeys(r["split"] for r in rows):
        mine = [r for r in rows if r["split"] == split]
        n = sum(r["n"] for r in mine)
        pooled: dict = {"n": n}
        for key in ("learned", "final", "recovered", "control"):
            values = [r[key] for r in mine]
            pooled[key] = (None if n == 0 or any(v is None for v in values)
                           else sum(v * r["n"] for v, r in zip(values, mine, strict=True)) / n)
        lost = (None if pooled["learned"] is None or pooled["final"] is None
                else pooled["learned"] - pooled["final"])
        pooled["won_back"] = (None if lost is None or lost <= 0
                              else (pooled["recovered"] - pooled["final"]) / lost)
        out[split] = pooled
    return out
