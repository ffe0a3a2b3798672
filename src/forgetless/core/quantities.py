"""Every reported quantity, once: its key, label, meaning, better direction and format.

Markdown and HTML reports, `compare`, `sweep` and plots read this table; adding a metric is one
entry here (plus the code that computes it). Accuracies and forgetting are stored as fractions
and shown in percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Quantity:
    key: str
    label: str
    """Short name for table headers and axes."""
    meaning: str
    better: Literal["higher", "lower", None]
    unit: Literal["%", "nats", "s", "MiB", ""]
    """"%": stored as a fraction, shown ×100."""
    digits: int

    @property
    def scale(self) -> float:
        return 100.0 if self.unit == "%" else 1.0

    @property
    def arrow(self) -> str:
        return {"higher": " ↑", "lower": " ↓", None: ""}[self.better]

    def format(self, value: float | None) -> str:
        return "-" if value is None else f"{self.scale * value:.{self.digits}f}"


def _q(key, label, meaning, better=None, unit="%", digits=1) -> Quantity:
    return Quantity(key, label, meaning, better, unit, digits)


QUANTITIES: dict[str, Quantity] = {q.key: q for q in [
    # Headline: the final matrices' summaries (train = memorization, test = generalization).
    _q("MA", "MA", "final average accuracy on the training examples (memorization)", "higher"),
    _q("GA", "GA", "final average accuracy on the test examples (generalization)", "higher"),
    _q("MF", "MF", "forgetting of the training examples", "lower"),
    _q("GF", "GF", "forgetting of the test examples", "lower"),
    # Per split, from the accuracy matrix (core/metrics.py).
    _q("AA", "AA", "average accuracy at the end", "higher"),
    _q("AIA", "AIA", "average incremental accuracy", "higher"),
    _q("LA", "LA", "learning accuracy (each experience right after it)", "higher"),
    _q("F", "F", "forgetting (lower is better)", "lower"),
    _q("BWT", "BWT", "backward transfer", "higher"),
    _q("FWT", "FWT", "forward transfer", "higher"),
    # Rows of compare and sweep.
    _q("LA_train", "learned", "learning accuracy on the training examples", "higher"),
    _q("MF_relative", "MF (share)", "forgetting of the training examples, each experience's drop "
       "as a share of its best score (an arm that learns less has less to lose)", "lower"),
    _q("BWT_test", "BWT (test)", "backward transfer on the test examples", "higher"),
    _q("FWT_test", "FWT (test)", "forward transfer on the test examples", "higher"),
    _q("sample_nll_rise", "held-out NLL rise", "rise of the next-token loss on held-out base "
       "samples", "lower", "nats", 3),
    _q("corpus_nll_rise", "held-out text NLL rise", "rise of the next-token loss on held-out "
       "documents of `probe.corpus`", "lower", "nats", 3),
    _q("qa_retention", "QA retention", "share of country questions the base model chose right "
       "still chosen right", "higher"),
    _q("sharpness_mean", "sharpness (mean)", "mean ρ-sharpness after each experience", "lower",
       "", 4),
    _q("top_eigenvalue_mean", "top eigenvalue (mean)",
       "mean top Hessian eigenvalue after each experience", "lower", "", 2),
    _q("train_s", "train s", "training seconds", "lower", "s", 0),
    _q("wall_s", "wall s", "training and evaluation seconds (flatness measurements left out)",
       "lower", "s", 0),
    _q("peak_memory_mb", "peak MB", "peak memory", "lower", "MiB", 0),
    _q("recovery_gain", "won back", "recovery probe: accuracy on early experiences' training "
       "questions regained by a brief re-alignment on other concepts (recovered − final, "
       "pooled): forgetting that was lost alignment, not lost knowledge"),
    # Pretraining studies (a model from scratch on domain A, then fine-tuned on B).
    _q("loss_a_before", "A loss before", "domain-A loss after pretraining", "lower", "nats", 3),
    _q("loss_a_after", "A loss after", "domain-A loss after fine-tuning on B", "lower", "nats", 3),
    _q("loss_a_rise", "A loss rise", "rise of the domain-A loss (forgetting)", "lower", "nats", 3),
    _q("loss_b_after", "B loss after", "domain-B loss after fine-tuning", "lower", "nats", 3),
]}

METRICS_PER_SPLIT = ("AA", "AIA", "LA", "F", "BWT", "FWT")
"""The per-split metrics reports list, in order."""

SCORE_NAMES = {"teacher_forced": "exact-match accuracy", "generate": "exact-match accuracy",
               "choice": "log-likelihood choice accuracy", "rouge": "ROUGE-L F1"}
"""What an accuracy means under each `eval.scorer`."""


def quantity(key: str) -> Quantity:
    return QUANTITIES[key]
