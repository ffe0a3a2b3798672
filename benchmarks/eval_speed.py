"""Teacher-forced exact match vs batched greedy generate() on the same examples.

Fine-tunes the embedded model briefly on the first experience so that some answers are right
and some wrong, then scores every train and test question of the stream both ways.
Prints the speed ratio and whether both scorers mark exactly the same examples correct.

    .venv/bin/python benchmarks/eval_speed.py [--concepts 10] [--batch 32]
"""

from __future__ import annotations

import argparse

from forgetless.engine.loop import train_experience
from forgetless.eval.scoring import score_generate, score_teacher_forced

from common import device_note, encoded, precision_flag, precision_override, setup, timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--concepts", type=int, default=10, help="concepts per experience")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3,
                    help="fine-tuning epochs on experience 0 first (0: score the base model)")
    precision_flag(ap)
    args = ap.parse_args()
    cfg, ctx = setup([f"model.name={args.model}", f"data.concepts_per_experience={args.concepts}",
                      f"train.epochs={max(args.epochs, 1)}",
                      precision_override(args)])
    if args.epochs > 0:
        train_experience(ctx, [], None, encoded(ctx, ctx.stream.experiences[0].train))
    model = ctx.unwrapped_model.eval()
    examples = [ex for e in ctx.stream.experiences for ex in (*e.train, *e.test)]
    items = encoded(ctx, examples)
    answers = [ex.answer for ex in examples]
    tok = ctx.tokenizer
    n_new = cfg.eval.max_new_tokens
    score_teacher_forced(model, tok, items[: args.batch], args.batch, n_new)  # warm-up
    tf, t_tf = timed(lambda: score_teacher_forced(model, tok, items, args.batch, n_new))
    gen, t_gen = timed(lambda: score_generate(model, tok, items, answers, args.batch, n_new))
    same = sum(a.correct == b.correct for a, b in zip(tf, gen, strict=True))
    print(f"model {args.model} after {args.epochs} epochs on experience 0, {len(items)} examples, "
          f"batch {args.batch} ({device_note(ctx)})")
    print(f"teacher-forced: {t_tf:.2f} s, accuracy {sum(s.correct for s in tf) / len(tf):.3f}")
    print(f"generate():     {t_gen:.2f} s, accuracy {sum(s.correct for s in gen) / len(gen):.3f}")
    print(f"speed-up {t_gen / t_tf:.2f}x; identical verdicts on {same}/{len(items)} examples")


if __name__ == "__main__":
    main()
