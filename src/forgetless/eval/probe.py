"""What the base model knew, and how much of it survives: measured after every evaluation.

Two probes, both fixed before training starts and never trained on:
- held-out samples: `probe.samples` texts sampled from the base model (seeded, saved in the run
  directory); the current model's next-token loss on them and KL(base ‖ current) per token. The
  rise of this loss is the forgetting measure of the self-replay paper (PAPERS.md §3).
- world-knowledge QA: capitals and regions of countries, asked with the stream's template and
  scored by the stream's scorer; `qa_retention` is the share of the questions the base model
  answered right that the current model still answers right.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from forgetless.data.collate import encode_all
from forgetless.data.worldfacts import country_questions
from forgetless.engine.loop import derive_seed
from forgetless.eval.evaluator import evaluate
from forgetless.sampling import sample_shared, start_tokens
from forgetless.store import atomic_write_text

QA_KEY = ("probe", "qa")


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

    def measure(self, after: int, base_correct: list[bool] | None) -> tuple[dict, list[bool]]:
        """One probe row, and the per-question verdicts (the baseline for later retention)."""
        row: dict = {"after": after}
        if self.samples:
            row["sample_nll"], row["sample_kl"] = self._sample_losses()
        correct: list[bool] = []
        if self.qa:
            scores = evaluate(self.ctx, [QA_KEY], {QA_KEY: self.qa}, {QA_KEY: self.qa_encoded})
            correct = [s.correct for s in scores[QA_KEY]]
            row["qa_n"] = len(correct)
            row["qa_accuracy"] = sum(correct) / len(correct)
            base = base_correct if base_correct is not None else correct
            known = [i for i, ok in enumerate(base) if ok]
            row["qa_known"] = len(known)
            row["qa_retention"] = (sum(correct[i] for i in known) / len(known)) if known else None
        return row, correct

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
