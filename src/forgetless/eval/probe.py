"""What the base model knew, and how much of it survives: measured on the base model and after
the last experience (after every evaluation with `probe.every_evaluation`).

Probes fixed before training starts and never trained on:
- held-out samples: `probe.samples` texts sampled from the base model (seeded, saved in the run
  directory); the current model's next-token loss on them and KL(base ‖ current) per token. The
  rise of this loss is the forgetting measure of the self-replay paper (PAPERS.md §3).
- world-knowledge QA: capitals and regions of countries, asked with the stream's template, scored
  two ways: exact match by the stream's scorer (`qa_accuracy`; a base model that does not stop
  after the answer scores ~0 here, so it mostly shows the task format taking over), and
  log-likelihood choice among the answer and 3 distractors of the same relation
  (`qa_choice_accuracy`, chance 25 %; this measures what the model knows whatever its output
  format). `qa_retention` is the share of the questions the base model chose right that the
  current model still chooses right.
- held-out text (`probe.corpus`): the next-token loss per token on documents of a corpus the
  model was (pre)trained on, held out — the forgetting measure of the pretraining study — or of
  human-written text no model wrote (`python_docs`).
- lm-evaluation-harness tasks (`probe.lm_eval`, eval/harness.py).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import broadcast_object_list, gather_object

from forgetless.core.seeding import derive_seed
from forgetless.core.store import atomic_write_text
from forgetless.data.collate import answer_separator, encode_all
from forgetless.data.corpora import check_domain, held_out_documents
from forgetless.data.sources.corpus import examples as text_examples
from forgetless.data.worldfacts import country_questions
from forgetless.eval.evaluator import evaluate, with_fitting_batch
from forgetless.eval.harness import Harness
from forgetless.eval.scoring import greedy_reproduces, score_continuations
from forgetless.models.sampling import sample_shared, start_tokens

QA_KEY = ("probe", "qa")
CORPUS_KEY = ("probe", "corpus")


class Probe:
    def __init__(self, ctx, run_dir: Path, harness: Harness | None = None):
        cfg = ctx.config.probe
        self.ctx = ctx
        self.samples: list[list[int]] = []
        self.sampling_s = 0.0
        """Seconds spent sampling the held-out texts (0 when a resumed run reads them back)."""
        self.base_logp: list[torch.Tensor] | None = None
        """The base model's log-probabilities over this process's samples, by batch (kept from
        its measurement: samples × (sample_length - 1) × vocabulary floats)."""
        if cfg.samples:
            path = run_dir / "probe_samples.json"
            if path.is_file():  # resume: the same texts the run started with
                self.samples = json.loads(path.read_text())
            else:
                started = time.perf_counter()
                self.samples = sample_shared(
                    ctx.accelerator, ctx.base_model(), start_tokens(ctx.tokenizer), cfg.samples,
                    cfg.sample_length, derive_seed(ctx.seed, "probe-samples"))
                self.sampling_s = time.perf_counter() - started
                if ctx.accelerator.is_main_process:
                    atomic_write_text(path, json.dumps(self.samples))
        self.qa = country_questions(cfg.qa_questions) if cfg.qa and cfg.qa_questions else []
        data = ctx.config.data
        self.qa_encoded = encode_all(self.qa, ctx.tokenizer, data.prompt_template,
                                     ctx.config.train.max_length)
        self.prompts, self.options, self.correct_choice = self._choices(ctx.tokenizer)
        self.harness = harness
        self.corpus: list = []
        if cfg.corpus:
            check_domain(cfg.corpus, "probe.corpus")
            docs = held_out_documents(cfg.corpus, cfg.corpus_documents, cfg.corpus_seed)
            self.corpus = text_examples(docs, cfg.corpus_join, "probe")
            self.corpus_encoded = encode_all(self.corpus, ctx.tokenizer, data.prompt_template,
                                             ctx.config.train.max_length)

    def _choices(self, tokenizer) -> tuple[list[list[int]], list[list[list[int]]], list[int]]:
        """Per question: its prompt (as the exact-match scorer encodes it) and its options — the
        answer followed by EOS (so the same pass gives the teacher-forced exact match) and 3
        distractors of the same relation (seeded); the choice compares only the answer's own
        tokens."""
        pool: dict[str, list[str]] = {}
        for ex in country_questions():
            pool.setdefault(ex.relation, [])
            if ex.answer not in pool[ex.relation]:
                pool[ex.relation].append(ex.answer)
        rng = random.Random(0)
        separator = answer_separator(self.ctx.config.data.prompt_template)
        prompts, options, correct = [], [], []
        for ex, enc in zip(self.qa, self.qa_encoded, strict=True):
            names = [ex.answer, *rng.sample([a for a in pool[ex.relation] if a != ex.answer], 3)]
            rng.shuffle(names)
            correct.append(names.index(ex.answer))
            prompts.append(enc.input_ids[:len(enc.input_ids) - enc.n_answer])
            options.append([enc.input_ids[len(enc.input_ids) - enc.n_answer:] if name == ex.answer
                            else tokenizer(separator + name, add_special_tokens=False)["input_ids"]
                            for name in names])
        return prompts, options, correct

    def parts(self, after: int) -> int:
        """How many rows a measurement scores (the progress bar's total)."""
        exact_apart = bool(self.qa) and self._qa_scorer() != "teacher_forced"
        return len(self.samples) + len(self.corpus) + len(self.qa) * (1 + exact_apart)

    def _qa_scorer(self) -> str:
        # Exact match like the stream's own scorer; choice/ROUGE streams get the matching
        # exact-match flavour (the choice measure is this probe's own).
        scorer = self.ctx.config.eval.scorer
        return {"choice": "teacher_forced", "rouge": "generate"}.get(scorer, scorer)

    def measure(self, after: int, base_correct: list[bool] | None,
                tick: Callable[[int], None] | None = None) -> tuple[dict, list[bool]]:
        """One probe row, and the per-question verdicts (the baseline for later retention).
        `after` < 0: the model is the base model (its KL to itself is 0, not measured)."""
        row: dict = {"after": after}
        if self.samples:
            row["sample_nll"], row["sample_kl"] = self._sample_losses(after < 0, tick)
        if self.corpus:
            scores = evaluate(self.ctx, [CORPUS_KEY], {CORPUS_KEY: self.corpus},
                              {CORPUS_KEY: self.corpus_encoded}, after, "teacher_forced", tick)
            weights = [it.n_answer for it in self.corpus_encoded]
            row["corpus_nll"] = sum(s.nll * w for s, w in zip(scores[CORPUS_KEY], weights,
                                                               strict=True)) / sum(weights)
        if self.harness is not None:
            row["lm_eval"] = self._harness()
        correct: list[bool] = []
        if self.qa:
            exact, correct = self._choose(tick)
            if self._qa_scorer() != "teacher_forced":
                scores = evaluate(self.ctx, [QA_KEY], {QA_KEY: self.qa}, {QA_KEY: self.qa_encoded},
                                  after, self._qa_scorer(), tick)
                exact = [s.correct for s in scores[QA_KEY]]
            row["qa_n"] = len(self.qa)
            row["qa_accuracy"] = sum(exact) / len(self.qa)
            row["qa_choice_accuracy"] = sum(correct) / len(correct)
            base = base_correct if base_correct is not None else correct
            known = [i for i, ok in enumerate(base) if ok]
            row["qa_known"] = len(known)
            row["qa_retention"] = (sum(correct[i] for i in known) / len(known)) if known else None
        return row, correct

    def _harness(self) -> dict[str, dict[str, float]]:
        """The harness runs on the main process (it takes the model as one piece); the others
        wait for its numbers."""
        acc = self.ctx.accelerator
        model = self.ctx.unwrapped_model
        out = [None]
        if acc.is_main_process:
            was_training = model.training
            model.eval()
            out = [self.harness.measure(model, self.ctx.tokenizer, acc.device)]
            model.train(was_training)
        if acc.num_processes > 1:
            out = broadcast_object_list(out)
        return out[0]

    def _choose(self, tick) -> tuple[list[bool], list[bool]]:
        """Per question: teacher-forced exact match of the answer, and whether log-likelihood
        choice is right (the option with the lowest mean NLL per answer token wins; ties: the
        earlier option). One pass, each prompt run once for its 4 options."""
        acc = self.ctx.accelerator
        mine = list(range(acc.process_index, len(self.prompts), acc.num_processes))
        model = self.ctx.unwrapped_model
        was_training = model.training
        model.eval()
        scored = with_fitting_batch(
            self.ctx, lambda batch_size, tick: score_continuations(
                model, [self.prompts[q] for q in mine], [self.options[q] for q in mine],
                batch_size, self.ctx.tokenizer.pad_token_id, tick), tick)
        model.train(was_training)
        max_new = self.ctx.config.eval.max_new_tokens
        verdicts = []
        for q, options in zip(mine, scored, strict=True):
            right = self.correct_choice[q]
            truth = self.options[q][right]  # answer tokens, then EOS
            exact = greedy_reproduces(options[right].argmax, truth, max_new)
            losses = [sum(o.nll[:len(o.nll) - (k == right)]) / (len(o.nll) - (k == right))
                      for k, o in enumerate(options)]
            chosen = min(range(len(losses)), key=losses.__getitem__)
            verdicts.append((q, exact, chosen == right))
        if acc.num_processes > 1:
            verdicts = gather_object(verdicts)
        verdicts.sort()
        return [v[1] for v in verdicts], [v[2] for v in verdicts]

    @torch.no_grad()
    def _sample_losses(self, base_itself: bool, tick, batch_size: int = 8) -> tuple[float, float]:
        """Mean NLL per token of the held-out samples, and KL(base ‖ current) per token. The base
        model's log-probabilities are kept from its own measurement (or, after a resume, from
        one forward of the base model), so later measurements cost one forward, not two."""
        acc = self.ctx.accelerator
        model = self.ctx.unwrapped_model
        if base_itself:
            self.base_logp = []
        elif self.base_logp is None:
            self.base_logp = self._log_probs(self.ctx.base_model(), batch_size)
        was_training = model.training
        model.eval()
        nll_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
        kl_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
        for b, ids in enumerate(self._sample_batches(batch_size)):
            logp = _next_token_log_probs(model, ids)
            nll_sum += -logp.gather(-1, ids[:, 1:, None]).sum().double()
            if base_itself:
                self.base_logp.append(logp)
            else:
                base_logp = self.base_logp[b]
                kl_sum += (base_logp.exp() * (base_logp - logp)).sum().double()
            if tick is not None:
                tick(len(ids))
        model.train(was_training)
        n_tokens = len(self.samples) * (len(self.samples[0]) - 1)
        totals = acc.reduce(torch.stack([nll_sum, kl_sum]), reduction="sum")
        return float(totals[0]) / n_tokens, float(totals[1]) / n_tokens

    def _sample_batches(self, batch_size: int) -> list[torch.Tensor]:
        acc = self.ctx.accelerator
        mine = self.samples[acc.process_index::acc.num_processes]
        return [torch.tensor(mine[i:i + batch_size], device=acc.device)
                for i in range(0, len(mine), batch_size)]

    @torch.no_grad()
    def _log_probs(self, model, batch_size: int) -> list[torch.Tensor]:
        return [_next_token_log_probs(model, ids) for ids in self._sample_batches(batch_size)]


def _next_token_log_probs(model, ids: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of every next token after each position but the last (fp32)."""
    return F.log_softmax(model(input_ids=ids, use_cache=False).logits[:, :-1].float(), -1)
