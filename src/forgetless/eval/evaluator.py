"""Score a set of (experience, split) pairs, sharded over processes, gathered on every rank."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from accelerate.utils import gather_object

from forgetless.core.errors import ConfigError
from forgetless.data.collate import Encoded, answer_separator
from forgetless.data.types import Example, Stream
from forgetless.eval.scoring import (
    Score,
    score_choice,
    score_generate,
    score_rouge,
    score_teacher_forced,
)


def seen_labels(stream: Stream, upto: int) -> list[str]:
    """Label words of experiences 0..upto, in order of first appearance (shared labels once)."""
    return list(dict.fromkeys(w for e in stream.experiences[: upto + 1] for w in e.labels))


def candidates_for(stream: Stream, after: int, experience: int, example: Example) -> list[str]:
    """What `choice` picks from: class-incremental streams offer every label seen so far (the
    scored experience's own included, e.g. for the FWT row); otherwise the example's choices."""
    if stream.scenario == "class":
        return seen_labels(stream, max(after, experience))
    return list(example.choices)


def check_scorer(scorer: str, stream: Stream) -> None:
    """`choice` needs candidates for every example: fail before anything runs, not mid-run."""
    if scorer != "choice" or stream.scenario == "class":
        return
    for exp in stream.experiences:
        for ex in exp.train + exp.test:
            if ex.answer not in ex.choices:
                what = "has no choices" if not ex.choices else "lists choices without its answer"
                raise ConfigError(
                    f"eval.scorer: 'choice' needs candidate answers, but example {ex.uid!r} of "
                    f"experience {exp.index} {what} (use a source with choices or labels)")


CPU_AUTO_BATCH = 32
"""`eval.batch_size: auto` on a CPU: memory there is not a device's, and running out of it ends
the process (the kernel's OOM killer) rather than raising, so there is nothing to probe."""


def with_fitting_batch(ctx, score: Callable, tick: Callable[[int], None] | None):
    """`score(batch_size, tick)` at `eval.batch_size`; where that is "auto", at the size that
    last fitted (first `eval.max_batch_size` on a GPU, CPU_AUTO_BATCH on a CPU) and again at
    half of it whenever it runs out of device memory (accelerate's test of the error), the
    progress it showed taken back. The size that fitted is kept on `ctx`."""
    from accelerate.utils.memory import clear_device_cache, should_reduce_batch_size

    cfg = ctx.config.eval
    if cfg.batch_size != "auto":
        return score(cfg.batch_size, tick)
    if ctx.eval_batch_size is None:
        on_gpu = ctx.accelerator.device.type != "cpu"
        ctx.eval_batch_size = cfg.max_batch_size if on_gpu else CPU_AUTO_BATCH
    size = ctx.eval_batch_size
    while True:
        shown = 0

        def counted(n: int) -> None:
            nonlocal shown
            shown += n
            if tick is not None:
                tick(n)

        try:
            return score(size, counted)
        except Exception as e:
            if size == 1 or not should_reduce_batch_size(e):
                raise
        if tick is not None and shown:
            tick(-shown)
        clear_device_cache(garbage_collection=True)
        size //= 2
        ctx.eval_batch_size = size


def evaluate(
    ctx, tasks: list[tuple[int, str]], examples: dict[tuple[int, str], list[Example]],
    encoded: dict[tuple[int, str], list[Encoded]], after: int = -1, scorer: str | None = None,
    tick: Callable[[int], None] | None = None,
) -> dict[tuple[int, str], list[Score]]:
    """Scores for every example of every (experience index, split) in `tasks`, evaluated after
    training through experience `after` (-1: untrained), by `scorer` (default: eval.scorer).
    `tick(n)` is called as this process finishes n more examples (a progress bar)."""
    cfg = ctx.config.eval
    scorer = scorer or cfg.scorer
    acc = ctx.accelerator
    flat = [(key, i) for key in tasks for i in range(len(encoded[key]))]
    # Deal examples out by length so every process gets a similar share of tokens.
    order = sorted(range(len(flat)), key=lambda k: -len(encoded[flat[k][0]][flat[k][1]].input_ids))
    mine = order[acc.process_index::acc.num_processes]
    items = [encoded[flat[k][0]][flat[k][1]] for k in mine]
    model = ctx.unwrapped_model
    was_training = model.training
    model.eval()
    mine_examples = [examples[flat[k][0]][flat[k][1]] for k in mine]
    answers = [ex.answer for ex in mine_examples]
    if scorer == "teacher_forced":
        def score(batch_size, tick):
            return score_teacher_forced(model, ctx.tokenizer, items, batch_size,
                                        cfg.max_new_tokens, tick)
    elif scorer == "generate":
        def score(batch_size, tick):
            return score_generate(model, ctx.tokenizer, items, answers, batch_size,
                                  cfg.max_new_tokens, tick)
    elif scorer == "choice":
        candidates = [candidates_for(ctx.stream, after, flat[k][0][0], ex)
                      for k, ex in zip(mine, mine_examples, strict=True)]
        separator = answer_separator(ctx.config.data.prompt_template)

        def score(batch_size, tick):
            return score_choice(model, ctx.tokenizer, items, answers, candidates, batch_size,
                                tick, separator)
    else:
        references = [list(ex.references) or [ex.answer] for ex in mine_examples]

        def score(batch_size, tick):
            return score_rouge(model, ctx.tokenizer, items, answers, references, batch_size,
                               cfg.max_new_tokens, tick)
    scores = with_fitting_batch(ctx, score, tick)
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
