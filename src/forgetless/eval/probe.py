"""What the base model knew, and how much of it survives: measured after every evaluation.

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
  model was (pre)trained on, held out — the forgetting measure of the pretraining study.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import gather_object

from forgetless.core.seeding import derive_seed
from forgetless.core.store import atomic_write_text
from forgetless.data.collate import Encoded, encode_all
from forgetless.data.corpora import check_domain, held_out_documents
from forgetless.data.sources.corpus import examples as text_examples
from forgetless.data.worldfacts import country_questions
from forgetless.eval.evaluator import evaluate
from forgetless.eval.scoring import score_teacher_forced
from forgetless.models.sampling import sample_shared, start_tokens

QA_KEY = ("probe", "qa")
CORPUS_KEY = ("probe", "corpus")


class Probe:
    def __init__(self, ctx, run_dir: Path):
        cfg = ctx.config.probe
        self.ctx = ctx
        self.samples: list[list[int]] = []
        if cfg.samples:
            path = run_dir / "probe_samples.json"
            if path.is_file():  # resume: the same texts the run started with
                self.samples = json.loads(path.read_text())
            else:
                self.samples = sample_shared(
                    ctx.accelerator, ctx.base_model(), start_tokens(ctx.tokenizer), cfg.samples,
                    cfg.sample_length, derive_seed(ctx.seed, "probe-samples"))
                if ctx.accelerator.is_main_process:
                    atomic_write_text(path, json.dumps(self.samples))
        self.qa = country_questions(cfg.qa_questions) if cfg.qa and cfg.qa_questions else []
        data = ctx.config.data
        self.qa_encoded = encode_all(self.qa, ctx.tokenizer, data.prompt_template,
                                     ctx.config.train.max_length)
        self.choices, self.correct_choice = self._choices(ctx.tokenizer, data.prompt_template)
        self.corpus: list = []
        if cfg.corpus:
            check_domain(cfg.corpus, "probe.corpus")
            docs = held_out_documents(cfg.corpus, cfg.corpus_documents, cfg.corpus_seed)
            self.corpus = text_examples(docs, cfg.corpus_join, "probe")
            self.corpus_encoded = encode_all(self.corpus, ctx.tokenizer, data.prompt_template,
                                             ctx.config.train.max_length)

    def _choices(self, tokenizer, template: str) -> tuple[list[list[Encoded]], list[int]]:
        """Per question: the answer and 3 distractors of the same relation (seeded), encoded
        without EOS so only the answer's own tokens are compared."""
        pool: dict[str, list[str]] = {}
        for ex in country_questions():
            pool.setdefault(ex.relation, [])
            if ex.answer not in pool[ex.relation]:
                pool[ex.relation].append(ex.answer)
        rng = random.Random(0)
        choices, correct = [], []
        for ex in self.qa:
            options = [ex.answer, *rng.sample([a for a in pool[ex.relation] if a != ex.answer], 3)]
            rng.shuffle(options)
            correct.append(options.index(ex.answer))
            prompt = tokenizer(template.format(question=ex.question))["input_ids"]
            encoded = []
            for option in options:
                answer = tokenizer(" " + option, add_special_tokens=False)["input_ids"]
                encoded.append(Encoded([*prompt, *answer], len(answer)))
            choices.append(encoded)
        return choices, correct

    def measure(self, after: int, base_correct: list[bool] | None) -> tuple[dict, list[bool]]:
        """One probe row, and the per-question verdicts (the baseline for later retention)."""
        row: dict = {"after": after}
        if self.samples:
            row["sample_nll"], row["sample_kl"] = self._sample_losses()
        if self.corpus:
            scores = evaluate(self.ctx, [CORPUS_KEY], {CORPUS_KEY: self.corpus},
                              {CORPUS_KEY: self.corpus_encoded}, after, "teacher_forced")
            weights = [it.n_answer for it in self.corpus_encoded]
            row["corpus_nll"] = sum(s.nll * w for s, w in zip(scores[CORPUS_KEY], weights,
                                                               strict=True)) / sum(weights)
        correct: list[bool] = []
        if self.qa:
            # Exact match like the stream's own scorer; choice/ROUGE streams get the matching
            # exact-match flavour (the choice measure below is this probe's own).
            scorer = {"choice": "teacher_forced", "rouge": "generate"}.get(
                self.ctx.config.eval.scorer)
            scores = evaluate(self.ctx, [QA_KEY], {QA_KEY: self.qa}, {QA_KEY: self.qa_encoded},
                              after, scorer)
            row["qa_n"] = len(self.qa)
            row["qa_accuracy"] = sum(s.correct for s in scores[QA_KEY]) / len(self.qa)
            correct = self._choose()
            row["qa_choice_accuracy"] = sum(correct) / len(correct)
            base = base_correct if base_correct is not None else correct
            known = [i for i, ok in enumerate(base) if ok]
            row["qa_known"] = len(known)
            row["qa_retention"] = (sum(correct[i] for i in known) / len(known)) if known else None
        return row, correct

    def _choose(self) -> list[bool]:
        """Log-likelihood choice: the option with the lowest mean NLL per token wins."""
        acc = self.ctx.accelerator
        flat = [(q, k) for q, options in enumerate(self.choices) for k in range(len(options))]
        mine = list(range(acc.process_index, len(flat), acc.num_processes))
        model = self.ctx.unwrapped_model
        was_training = model.training
        model.eval()
        scores = score_teacher_forced(model, self.ctx.tokenizer,
                                      [self.choices[flat[i][0]][flat[i][1]] for i in mine],
                                      self.ctx.config.eval.batch_size, 1)
        model.train(was_training)
        pairs = [(i, s.nll) for i, s in zip(mine, scores, strict=True)]
        if acc.num_processes > 1:
            pairs = gather_object(pairs)
        nll = dict(pairs)
        index = {key: i for i, key in enumerate(flat)}
        out = []
        for q, options in enumerate(self.choices):
            losses = [nll[index[(q, k)]] for k in range(len(options))]
            out.append(min(range(len(losses)), key=losses.__getitem__) == self.correct_choice[q])
        return out

    @torch.no_grad()
    def _sample_losses(self, batch_size: int = 8) -> tuple[float, float]:
        acc = self.ctx.accelerator
        model = self.ctx.unwrapped_model
        base = self.ctx.base_model()
        was_training = model.training
        model.eval()
        nll_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
        kl_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
        mine = self.samples[acc.process_index::acc.num_processes]
        for i in range(0, len(mine), batch_size):
            ids = torch.tensor(mine[i:i + batch_size], device=acc.device)
            logp = F.log_softmax(model(input_ids=ids, use_cache=False).logits[:, :-1].float(), -1)
            base_logp = F.log_softmax(base(input_ids=ids, use_cache=False).logits[:, :-1].float(),
                                      -1)
            nll_sum += -logp.gather(-1, ids[:, 1:, None]).sum().double()
            kl_sum += (base_logp.exp() * (base_logp - logp)).sum().double()
        model.train(was_training)
        n_tokens = len(self.samples) * (len(self.samples[0]) - 1)
        totals = acc.reduce(torch.stack([nll_sum, kl_sum]), reduction="sum")
        return float(totals[0]) / n_tokens, float(totals[1]) / n_tokens
