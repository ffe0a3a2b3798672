"""When the evidence of a run is weak, say so in words, with the setting to change.

Read by summary.md, report.html, the console table and `compare`; computed from results.json
alone, so old run directories get them too.
"""

from __future__ import annotations

import math

from forgetless.core.stats import level_text, seeds_for

LOW_LEARNING = 0.5
"""Below this learning accuracy (train), forgetting is measured on facts barely learned."""
HIGH_ORACLE = 0.15
"""Above this, a guess that ignores the concept explains much of an accuracy."""


def diagnose(results: dict) -> list[str]:
    notes = []
    la = (results.get("metrics") or {}).get("train", {}).get("LA")
    mf = (results.get("headline") or {}).get("MF")
    if la is not None and la < LOW_LEARNING:
        notes.append(
            f"learning accuracy (train) is {100 * la:.1f} %: the model barely learned the "
            f"experiences, so its forgetting (MF {'-' if mf is None else f'{100 * mf:.1f}'}) "
            f"says little; train longer (train.epochs), raise train.lr, or fine-tune all weights "
            f"(model.lora.enabled=false)")
    for x in results.get("experiences") or []:
        losses = x.get("epoch_losses") or []
        if any(v is None or not math.isfinite(v) for v in losses):
            notes.append(f"experience {x['experience']}: the training loss was not finite; "
                         f"lower train.lr")
        elif len(losses) >= 2 and losses[-1] > losses[0]:
            notes.append(f"experience {x['experience']}: the training loss rose "
                         f"({losses[0]:.3f} → {losses[-1]:.3f}); lower train.lr")
    audit = results.get("audit") or {}
    shares = {"test": audit.get("relation_majority_experience"),
              "training": audit.get("train_relation_majority_experience")}  # absent before 2026-12-07
    shares = {split: share for split, share in shares.items() if share is not None}
    if any(share > HIGH_ORACLE for share in shares.values()):
        where = " and ".join(f"{100 * share:.1f} % of the {split} questions"
                             for split, share in shares.items())
        notes.append(
            f"a guess that ignores the concept (the majority training answer of the question's "
            f"relation in its experience) is right on {where} (forgetless data --audit): "
            f"accuracy up to there may not need memory of the concept; use more concepts per "
            f"experience ({_more_concepts(results)})")
    return notes


def comparison_notes(n: int, low: float | None, high: float | None, what: str,
                     mean: float | None = None, sd: float | None = None, scale: float = 1.0,
                     digits: int = 1) -> list[str]:
    """For a difference between two groups of runs: too few seeds, or an interval that
    includes no difference — then, given the pairs' `mean` and `sd`, how many seeds would
    resolve a difference of the size seen (shown × `scale`, to `digits`)."""
    notes = []
    if n < 3:
        notes.append(f"{what}: n = {n} seed{'s' if n != 1 else ''} — an anecdote, not a finding; "
                     f"run at least 3 seeds (forgetless sweep --seeds)")
    elif low is not None and high is not None and low <= 0 <= high:
        notes.append(f"{what}: the {level_text()} interval of the difference includes 0 — not established; "
                     f"add seeds{_seeds_plan(mean, sd, scale, digits)}")
    return notes


def _seeds_plan(mean: float | None, sd: float | None, scale: float, digits: int) -> str:
    """": at this spread (sd 3.6 a pair), a difference of ±1.4, the size of the mean one,
    needs about 28 seeds" — or nothing where there is no spread or no difference to size."""
    if mean is None or sd is None or round(abs(mean) * scale, digits) == 0:
        return ""
    needed = seeds_for(sd, abs(mean))
    size = f"{abs(mean) * scale:.{digits}f}"
    plan = (f"about {needed} seeds" if needed is not None else "more than 10,000 seeds")
    return (f": at this spread (sd {sd * scale:.{digits}f} a pair, taken as measured), an "
            f"interval of ±{size}, the size of the mean difference, needs {plan}")


def _more_concepts(results: dict) -> str:
    """The option that puts more concepts in each experience, for the run's source."""
    source = ((results.get("config") or {}).get("data") or {}).get("source", "concepts")
    return {"concepts": "data.concepts_per_experience ≥ 7",
            "concept1k": "data.concepts_per_step; the full published steps: 19.8 %"}.get(
        source, "more distinct concepts per relation")
