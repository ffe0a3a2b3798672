"""Is the forgetting real? The recovery probe (`eval.recovery`), run once after the stream.

"Spurious Forgetting in Continual Learning of Language Models" (Zheng et al., ICLR 2025) finds
that much of the accuracy an old task loses comes back after a short re-alignment on a little of
its data: the knowledge was still there, the way it is read out was not. Per chosen experience j:

    split j's concepts (seeded): a `fraction` tunes, the rest is scored
    learned   — the model right after experience j, on the scored questions (predictions file)
    final     — the final model on them
    recovered — a copy of the final model tuned on the tuning concepts' training questions
    control   — the untrained model tuned the same way: what the tuning teaches by itself

Forgetting that `recovered` wins back beyond `control` was stored all along. The tuning is the
run's own training loop (`train_experience`, no method hooks) on a copy; the run's model is left
as it was. Concepts whose facts are independent (Concept-1K, the built-in stream) cannot teach
each other, which is what makes the split a fair test.
"""

from __future__ import annotations

import copy
import json
import random
from collections import defaultdict
from typing import TYPE_CHECKING

import torch
from accelerate.utils import set_seed

from forgetless.core.errors import ConfigError
from forgetless.core.metrics import pooled_recovery
from forgetless.core.seeding import derive_seed
from forgetless.engine.loop import new_optimizer, train_experience
from forgetless.eval.evaluator import evaluate
from forgetless.methods.hooks import Context
from forgetless.models.load import load_model

if TYPE_CHECKING:
    from forgetless.data.types import Experience

SPLITS = ("train", "test")


def check_recovery(cfg, n_experiences: int, processes: int) -> None:
    """Before anything runs: the experiences exist, and the run is one process."""
    rc = cfg.eval.recovery
    if not rc.enabled:
        return
    bad = [j for j in rc.experiences if j >= n_experiences]
    if bad:
        raise ConfigError(f"eval.recovery.experiences: {bad[0]} is not an experience of this "
                          f"{n_experiences}-experience stream (0 … {n_experiences - 1})")
    if processes > 1:
        raise ConfigError("eval.recovery runs in one process: finish the run, then run the same "
                          "config again in one process with eval.recovery.enabled=true (nothing "
                          "is retrained)")


def settings(cfg) -> dict:
    """What a recovery result depends on beyond the run itself (reused when unchanged)."""
    return {**cfg.eval.recovery.model_dump(mode="json"), "lr": recovery_lr(cfg)}


def recovery_lr(cfg) -> float:
    return cfg.eval.recovery.lr or cfg.train.lr


def group_key(exp: Experience):
    """What the split keeps together: the concept, or the example itself where an experience
    has fewer than two concepts (a task stream's experience is one task)."""
    if len({ex.concept for ex in exp.train}) >= 2:
        return lambda ex: ex.concept or ex.uid
    return lambda ex: ex.uid


def concept_split(exp: Experience, fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """(tuning groups, scored groups) of an experience (see `group_key`); at least one of each."""
    key = group_key(exp)
    groups = sorted({key(ex) for ex in exp.train})
    if len(groups) < 2:
        raise ConfigError(f"eval.recovery: experience {exp.index} has {len(groups)} training "
                          f"example(s); recovery needs at least 2 (one to tune on, one to score)")
    random.Random(derive_seed(seed, "recovery-split", exp.index)).shuffle(groups)
    k = min(max(1, round(fraction * len(groups))), len(groups) - 1)
    return set(groups[:k]), set(groups[k:])


def learned_scores(run_dir, after: int, uids: dict[str, set[str]]) -> dict[str, float | None]:
    """Accuracy per split on `uids` right after experience `after`, from the predictions the run
    wrote then (None where that evaluation did not happen)."""
    path = run_dir / "predictions" / f"after-{after:03d}.jsonl"
    if not path.is_file():
        return dict.fromkeys(SPLITS)
    points: dict[str, list[float]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["experience"] == after and row["uid"] in uids.get(row["split"], ()):
            points[row["split"]].append(float(row["correct"]))
    return {s: sum(points[s]) / len(points[s]) if points[s] else None for s in SPLITS}


def _scores(ctx: Context, j: int, held: dict, held_encoded: dict, after: int) -> dict[str, float]:
    """Accuracy per split of `ctx`'s model on the scored questions of experience j."""
    tasks = [(j, s) for s in SPLITS if held[(j, s)]]
    scores = evaluate(ctx, tasks, held, held_encoded, after=after)
    return {s: sum(x.points for x in sc) / len(sc) for (_, s), sc in scores.items()}


def _tuned_scores(run, model: torch.nn.Module, j: int, tune: list, held: dict,
                  held_encoded: dict) -> dict[str, float]:
    """Tune `model` in place on `tune` (encoded) with the run's loop, then score `held`."""
    cfg = run.cfg
    rc = cfg.eval.recovery
    train = cfg.train.model_copy(update={
        "epochs": rc.epochs, "lr": recovery_lr(cfg), "schedule": "constant", "warmup": 0.0,
        "reset_optimizer": True, "checkpoint_every": None,
        "batch_size": min(cfg.train.batch_size, len(tune)), "grad_accum": 1})
    optimizer = new_optimizer(model, train)
    ctx = Context(cfg.model_copy(update={"train": train}), run.accelerator, model,
                  run.ctx.tokenizer, run.stream, derive_seed(cfg.seed, "recovery", j), optimizer,
                  experience_index=j, pristine=False)
    set_seed(ctx.seed)
    train_experience(ctx, [], None, tune, desc=f"recovery of experience {j}")
    return _scores(ctx, j, held, held_encoded, after=len(run.stream) - 1)


def measure_recovery(run) -> dict:
    """The recovery rows of a finished run (results.json `recovery`)."""
    cfg, rc = run.cfg, run.cfg.eval.recovery
    rows = []
    for j in rc.experiences:
        exp = run.stream.experiences[j]
        tune_concepts, held_concepts = concept_split(exp, rc.fraction, cfg.seed)
        key = group_key(exp)
        tune = [ex for ex in exp.train if key(ex) in tune_concepts]
        # the scored questions, with the encodings the run already made for its evaluations
        kept = {(j, s): [i for i, ex in enumerate(run.examples[(j, s)])
                         if key(ex) not in tune_concepts] for s in SPLITS}
        held = {k: [run.examples[k][i] for i in idx] for k, idx in kept.items()}
        held_encoded = {k: [run.encoded[k][i] for i in idx] for k, idx in kept.items()}
        tune_encoded = run.encode(tune, history=True)  # tuned as the run trained
        learned = learned_scores(run.store.dir, j, {s: {ex.uid for ex in held[(j, s)]}
                                                    for s in SPLITS})
        final = _scores(run.ctx, j, held, held_encoded, after=len(run.stream) - 1)
        recovered = _tuned_scores(run, copy.deepcopy(run.ctx.unwrapped_model), j, tune_encoded,
                                  held, held_encoded)
        control = dict.fromkeys(SPLITS)
        if rc.control:
            untrained = load_model(cfg.model, run.ctx.tokenizer, cfg.seed)
            for m in run.methods:
                m.configure_model(untrained)
            control = _tuned_scores(run, untrained.to(run.accelerator.device), j, tune_encoded,
                                    held, held_encoded)
            del untrained
        for s in SPLITS:
            if held[(j, s)]:
                rows.append({"experience": j, "split": s, "n": len(held[(j, s)]),
                             "tuned_on": len(tune), "tuned_concepts": len(tune_concepts),
                             "scored_concepts": len(held_concepts), "learned": learned[s],
                             "final": final[s], "recovered": recovered[s],
                             "control": control[s]})
    return {"settings": settings(cfg), "rows": rows, "pooled": pooled_recovery(rows)}
