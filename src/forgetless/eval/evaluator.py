"""Score a set of (experience, split) pairs, sharded over processes, gathered on every rank."""

from __future__ import annotations

from dataclasses import asdict

from accelerate.utils import gather_object

from forgetless.data.collate import Encoded
from forgetless.data.types import Example
from forgetless.eval.scoring import Score, score_generate, score_teacher_forced


def evaluate(
    ctx, tasks: list[tuple[int, str]], examples: dict[tuple[int, str], list[Example]],
    encoded: dict[tuple[int, str], list[Encoded]],
) -> dict[tuple[int, str], list[Score]]:
    """Scores for every example of every (experience index, split) in `tasks`."""
    cfg = ctx.config.eval
    acc = ctx.accelerator
    flat = [(key, i) for key in tasks for i in range(len(encoded[key]))]
    # Deal examples out by length so every process gets a similar share of tokens.
    order = sorted(range(len(flat)), key=lambda k: -len(encoded[flat[k][0]][flat[k][1]].input_ids))
    mine = order[acc.process_index::acc.num_processes]
    items = [encoded[flat[k][0]][flat[k][1]] for k in mine]
    model = ctx.unwrapped_model
    was_training = model.training
    model.eval()
    if cfg.scorer == "teacher_forced":
        scores = score_teacher_forced(model, ctx.tokenizer, items, cfg.batch_size,
                                      cfg.max_new_tokens)
    else:
        answers = [examples[flat[k][0]][flat[k][1]].answer for k in mine]
        scores = score_generate(model, ctx.tokenizer, items, answers, cfg.batch_size,
                                cfg.max_new_tokens)
    model.train(was_training)
    pairs = list(zip(mine, scores, strict=True))
    if acc.num_processes > 1:
        pairs = gather_object(pairs)
    by_flat = dict(pairs)
    out: dict[tuple[int, str], list[Score]] = {key: [] for key in tasks}
    for k, (key, _) in enumerate(flat):
        out[key].append(by_flat[k])
    return out


def prediction_rows(after: int, key: tuple[int, str], examples: list[Example],
                    scores: list[Score]) -> list[dict]:
    exp, split = key
    return [
        {"after": after, "experience": exp, "split": split, "uid": ex.uid,
         "question": ex.question, "answer": ex.answer, **asdict(s)}
        for ex, s in zip(examples, scores, strict=True)
    ]
