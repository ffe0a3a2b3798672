"""`forgetless pretrain`: a small Llama from scratch on domain A, then fine-tuning on domain B.

The capacity and pretraining-saturation questions of PAPERS.md §1 and §3: how much of domain A
does a model lose while it learns domain B, as a function of its size and of how long it was
pretrained (tokens per parameter), and does replaying its own samples help?

Both phases are ordinary runs of the engine (one training loop) on `corpus` streams:
- phase A: a byte-level BPE tokenizer (`vocab_size`) trained on both domains and a seeded
  random-init Llama of `size`, saved as a Hugging Face directory, are trained for one pass over
  `tokens_per_param` × parameters tokens of fresh domain-A text (AdamW β = (0.9, 0.95), weight
  decay 0.1, warm-up then cosine to 10 % of `lr`). The run saves its model
  (`_phase_a/<size>-<hash>/phase_a/model`, beside the run directory): shared by every run whose
  phase A is the same, and usable as `model.name` of any `forgetless run`.
- phase B: that model fine-tuned on `finetune_tokens` of domain B at a constant `finetune_lr`, cut
  into `eval_points` + 1 experiences so the held-out losses are measured along the way: domain A
  by the probe (`probe.corpus`, the documents phase A held out), domain B by each experience's
  held-out test split. `self_replay` > 0 runs the `self_replay` method (loss "replace"): that share
  of every batch's rows are sequences the phase-A model samples from BOS.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import yaml
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, ValidationError

from forgetless.core.config import RunConfig, Section, Seed, load_typed
from forgetless.core.errors import ConfigError, DataError, RunDirError
from forgetless.core.store import RunStore, atomic_write_json, atomic_write_text, taking_turns
from forgetless.data.corpora import check_domain, corpus, training_documents
from forgetless.engine.experiment import run_experiment
from forgetless.models.load import quiet_hub

SIZES = {  # hidden, layers, heads, ffn
    "0.3m": (64, 4, 4, 192),
    "1m": (128, 4, 4, 384),
    "5m": (256, 6, 4, 768),
    "20m": (384, 10, 6, 1152),
    "50m": (512, 14, 8, 1536),
}
PHASE_B_KEYS = ("finetune_tokens", "finetune_lr", "self_replay", "eval_points")
"""What only phase B depends on: runs that differ only here share one pretrained model."""


class PretrainConfig(Section):
    name: str = "pretrain"
    """Run name; the default directory is <output_dir>/<name>-<size>-<config hash>."""
    seed: Seed = 0
    """Seed of the corpora, the initialisation, data order and replay samples."""
    output_dir: str = "runs"
    """Directory that holds run directories."""
    size: Literal["0.3m", "1m", "5m", "20m", "50m"] = "1m"
    """Llama shape: 0.3m (hidden 64, 4 layers), 1m (128, 4), 5m (256, 6), 20m (384, 10),
    50m (512, 14); parameters counted with the embeddings at the chosen vocabulary."""
    vocab_size: int = Field(512, ge=300, le=32000)
    """Byte-level BPE vocabulary trained on both domains (256 bytes + 3 special tokens + merges)."""
    seq_len: int = Field(64, ge=8)
    """Most tokens per training example (an example is `join` documents; longer ones are cut at
    the end); also the length of self-replay samples."""
    join: int | None = Field(None, ge=1)
    """Documents per example, joined by a space. null: as many as fit in `seq_len` on average
    (per domain), so that examples are about as long as packed sequences."""
    domain_a: str = "world"
    """Pretraining text: "world", "arithmetic", "python_docs", or a .txt file / directory of
    them."""
    domain_b: str = "arithmetic"
    """Fine-tuning text, the same choices."""
    tokens_per_param: PositiveFloat = 20.0
    """Phase A budget: this many training tokens per model parameter (targets, estimated from
    the mean document length; results.json has the count trained)."""
    batch_size: PositiveInt = 32
    """Examples per optimizer step (both phases)."""
    lr: PositiveFloat = 1e-3
    """Phase A peak learning rate (AdamW, weight decay 0.1)."""
    warmup: float = Field(0.05, ge=0.0, lt=1.0)
    """Phase A share of steps with linear warm-up."""
    finetune_tokens: PositiveInt = 200_000
    """Phase B budget in tokens (estimated as for phase A); with `self_replay` f, phase B takes
    the same number of steps and (1 − f) of their rows are domain B."""
    finetune_lr: PositiveFloat = 3e-4
    """Phase B learning rate (constant, fresh AdamW)."""
    self_replay: float = Field(0.0, ge=0.0, lt=1.0)
    """Share of every phase-B batch replaced by the phase-A model's own samples (0: off)."""
    eval_documents: PositiveInt = 256
    """Held-out documents per domain for the loss measurements (never trained on)."""
    eval_points: NonNegativeInt = 8
    """Loss measurements along phase B (besides its start and end)."""

    def matches_saved(self, saved: dict) -> bool:
        """Whether a saved config.yaml, read with today's defaults, describes this config."""
        try:
            return PretrainConfig.model_validate(saved).model_dump(mode="json") == self.model_dump(
                mode="json")
        except ValidationError:
            return False

    def fingerprint(self, phase_a_only: bool = False) -> str:
        """Hash of what changes results; with `phase_a_only`, of what changes phase A alone."""
        import hashlib

        # Only what differs from the defaults: a key added later keeps existing names.
        defaults = PretrainConfig().model_dump(mode="json")
        data = {k: v for k, v in self.model_dump(mode="json").items() if v != defaults[k]}
        for key in ("output_dir", "name", *(PHASE_B_KEYS if phase_a_only else ())):
            data.pop(key, None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]


def load_pretrain_config(source: str | Path | dict | None = None,
                         overrides: list[str] | None = None) -> PretrainConfig:
    cfg = load_typed(PretrainConfig, source, overrides)
    for key in ("domain_a", "domain_b"):
        try:
            check_domain(getattr(cfg, key), key)
        except DataError as e:
            raise ConfigError(f"{source or 'pretrain config'}: {e}") from None
    return cfg


def train_tokenizer(cfg: PretrainConfig):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    docs = corpus(cfg.domain_a, 20000, cfg.seed) + corpus(cfg.domain_b, 20000, cfg.seed)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, show_progress=False,
                                  special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")


def build_model(cfg: PretrainConfig, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, heads, ffn = SIZES[cfg.size]
    conf = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=ffn,
                       num_hidden_layers=layers, num_attention_heads=heads,
                       num_key_value_heads=heads, max_position_embeddings=cfg.seq_len,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(conf)


@dataclass(frozen=True)
class Packing:
    """How a domain's documents become examples: `join` documents per example (as many as fit in
    `seq_len` on average, so examples are about as long as packed sequences would be) and the
    mean trained tokens of an example (EOS included), which turns token budgets into documents."""

    join: int
    tokens_per_example: float

    def documents(self, tokens: float) -> int:
        return max(self.join, self.join * math.ceil(tokens / self.tokens_per_example))


def packing(tokenizer, domain: str, cfg: PretrainConfig) -> Packing:
    """Measured on 2000 training documents of the domain."""
    docs = training_documents(domain, 2000, f"{cfg.seed}/length")
    per_doc = sum(len(tokenizer(" " + d, add_special_tokens=False)["input_ids"])
                  for d in docs) / len(docs)
    join = cfg.join or max(1, int((cfg.seq_len - 1) // per_doc))
    lengths = [len(tokenizer(" ".join(docs[i:i + join]), add_special_tokens=False)
                   ["input_ids"]) + 1 for i in range(0, len(docs), join)]
    return Packing(join, sum(min(n, cfg.seq_len - 1) for n in lengths) / len(lengths))


def phase_a_config(cfg: PretrainConfig, init_dir: Path, pack: Packing, tokens: float) -> RunConfig:
    return RunConfig(**{
        "name": f"{cfg.name}-phase-a", "seed": cfg.seed, "method": "seqft", "save_model": True,
        "model": {"name": str(init_dir)},
        "data": {"source": "corpus", "seed": cfg.seed, "domain": cfg.domain_a, "experiences": 1,
                 "documents": pack.documents(tokens), "test_documents": cfg.eval_documents,
                 "join": pack.join},
        "train": _train(cfg, cfg.lr, "cosine", cfg.warmup),
        "eval": {"max_train_examples": 64, "batch_size": 64},
        "probe": {"samples": 0, "qa": False}})


def phase_b_config(cfg: PretrainConfig, model_a: Path, pack_a: Packing, pack_b: Packing,
                   tokens: float) -> RunConfig:
    chunks = cfg.eval_points + 1
    documents = pack_b.documents(tokens)
    replay = {"method": "self_replay", "self_replay": {
        "loss": "replace", "weight": cfg.self_replay, "source": "base", "prompt": "bos",
        "length": cfg.seq_len}} if cfg.self_replay else {"method": "seqft"}
    return RunConfig(**{
        "name": cfg.name, "seed": cfg.seed, **replay, "model": {"name": str(model_a)},
        "data": {"source": "corpus", "seed": cfg.seed, "domain": cfg.domain_b,
                 "experiences": chunks, "documents": max(pack_b.join, documents // chunks),
                 "test_documents": max(1, cfg.eval_documents // chunks), "join": pack_b.join},
        # One fine-tuning cut into chunks for measuring: the optimizer state carries over.
        "train": {**_train(cfg, cfg.finetune_lr, "constant", 0.0), "reset_optimizer": False},
        "eval": {"initial": True, "max_train_examples": 16, "batch_size": 64},
        # domain A's loss after every chunk: the forgetting curve
        "probe": {"samples": 0, "qa": False, "every_evaluation": True, "corpus": cfg.domain_a,
                  "corpus_documents": cfg.eval_documents, "corpus_seed": cfg.seed,
                  "corpus_join": pack_a.join}})


def _train(cfg: PretrainConfig, lr: float, schedule: str, warmup: float) -> dict:
    return {"epochs": 1, "batch_size": cfg.batch_size, "lr": lr, "schedule": schedule,
            "warmup": warmup, "min_lr": 0.1, "betas": (0.9, 0.95), "weight_decay": 0.1,
            "max_length": cfg.seq_len, "max_grad_norm": 1.0}


def run_pretrain(cfg: PretrainConfig, out_dir: str | Path | None = None,
                 quiet: bool = False) -> dict:
    started = time.perf_counter()
    out = Path(out_dir or Path(cfg.output_dir) / f"{cfg.name}-{cfg.size}-{cfg.fingerprint()}")
    saved = out / "config.yaml"
    if saved.is_file() and not cfg.matches_saved(yaml.safe_load(saved.read_text())):
        raise RunDirError(f"{out}: holds a pretraining run of a different config")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))

    def say(text: str) -> None:
        if not quiet:
            print(text, flush=True)

    # Phase A lives beside the run directories, keyed by what it depends on. Runs of a parallel
    # sweep that share it take turns: the first trains it, the others wait and find it done.
    shared = out.parent / "_phase_a" / f"{cfg.size}-{cfg.fingerprint(phase_a_only=True)}"
    with taking_turns(shared.parent / f".{shared.name}.lock",
                      lambda holder: say(f"phase A: waiting for {holder}, which is training it")):
        model_a, phase_a, tokenizer, pack_a = _phase_a(cfg, shared, say)
    # Replay replaces rows (the paper's setting): at the plain arm's number of steps, phase B
    # sees (1 − self_replay) of its tokens, so arms compare at equal compute.
    cfg_b = phase_b_config(cfg, model_a, pack_a, packing(tokenizer, cfg.domain_b, cfg),
                           cfg.finetune_tokens * (1 - cfg.self_replay))
    t0 = time.perf_counter()
    result_b = run_experiment(cfg_b, run_dir=out / "phase_b").results
    chunks = len(result_b["experiences"])
    probes = {r["after"]: r["corpus_nll"] for r in result_b["probe"]}
    curve, step = [], 0
    for after in range(-1, chunks):
        if after >= 0:
            step += result_b["experiences"][after]["steps"]
        curve.append({"step": step, "loss_a": probes[after],
                      "loss_b": _mean_nll(result_b, after, list(range(chunks)) if after < 0
                                          else list(range(after + 1)))})
    replay_rows = math.floor(cfg.self_replay * cfg.batch_size)
    results = {
        "kind": "pretrain", "name": cfg.name, "seed": cfg.seed, "complete": result_b["complete"],
        "config": cfg.model_dump(mode="json"), "phase_a": phase_a, "model_a": str(model_a),
        "phase_b": {"steps": step,
                    "tokens": sum(e["target_tokens"] for e in result_b["experiences"]),
                    "replay_rows": replay_rows,
                    "seconds": result_b["timings"]["train_s"] + result_b["timings"]["eval_s"],
                    "curve": curve, "join": cfg_b.data.join, "run_dir": str(out / "phase_b")},
        "loss_a_before": curve[0]["loss_a"], "loss_a_after": curve[-1]["loss_a"],
        "loss_a_rise": curve[-1]["loss_a"] - curve[0]["loss_a"],
        "loss_b_before": curve[0]["loss_b"], "loss_b_after": curve[-1]["loss_b"],
        "session_s": time.perf_counter() - started,
    }
    atomic_write_json(out / "results.json", results)
    _write_report(out, results)
    say(f"phase B: domain-A loss {results['loss_a_before']:.3f} → {results['loss_a_after']:.3f} "
        f"(rise {results['loss_a_rise']:+.3f}); domain-B loss {results['loss_b_before']:.3f} → "
        f"{results['loss_b_after']:.3f} ({time.perf_counter() - t0:.0f} s)\nrun directory: {out}")
    results["run_dir"] = str(out)
    return results


def _phase_a(cfg: PretrainConfig, shared: Path, say: Callable[[str], None]):
    """Phase A in `shared` (initialised, then trained), or what an earlier run left there:
    (the trained model's directory, its summary, the tokenizer, domain A's packing)."""
    init_dir = shared / "init"
    if not (init_dir / "config.json").is_file():
        tokenizer = train_tokenizer(cfg)
        model = build_model(cfg, tokenizer)
        with quiet_hub():
            model.save_pretrained(shared / "init.partial", safe_serialization=True)
        tokenizer.save_pretrained(shared / "init.partial")
        (shared / "init.partial").rename(init_dir)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(init_dir)
    pack_a = packing(tokenizer, cfg.domain_a, cfg)
    n_params = _parameters(init_dir)
    cfg_a = phase_a_config(cfg, init_dir, pack_a, cfg.tokens_per_param * n_params)
    phase_a_dir = shared / "phase_a"
    t0 = time.perf_counter()
    done_before = (phase_a_dir / "model" / "config.json").is_file()
    say(f"phase A: {n_params:,} parameters, {cfg_a.data.documents:,} documents of "
        f"{cfg.domain_a}" + (" (done before)" if done_before else ""))
    if done_before:  # nothing to train: skip building a stream of its size
        result_a = RunStore(phase_a_dir).read_results()
    else:
        result_a = run_experiment(cfg_a, run_dir=phase_a_dir).results
    exp_a = result_a["experiences"][0]
    phase_a = {"parameters": n_params, "steps": exp_a["steps"], "tokens": exp_a["target_tokens"],
               "final_train_loss": exp_a["epoch_losses"][-1],
               "loss_a": _mean_nll(result_a, after=0, experiences=[0]),
               "seconds": result_a["timings"]["train_s"] + result_a["timings"]["eval_s"],
               "join": pack_a.join, "run_dir": str(phase_a_dir)}
    if not done_before:
        say(f"phase A: held-out loss {phase_a['loss_a']:.3f} ({time.perf_counter() - t0:.0f} s)")

    model_a = phase_a_dir / "model"
    return model_a, phase_a, tokenizer, pack_a


def _parameters(model_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (not iterable)


def _mean_nll(results: dict, after: int, experiences: list[int]) -> float:
    """Held-out (test split) loss per example after `after`, over `experiences`, weighted by
    their sizes."""
    rows = [r for r in results["evaluations"] if r["after"] == after and r["split"] == "test"
            and r["experience"] in experiences]
    return sum(r["nll"] * r["n"] for r in rows) / sum(r["n"] for r in rows)


def _write_report(out: Path, r: dict) -> None:
    from forgetless.report import html as H
    from forgetless.report import plots

    fig, (ax,) = plots.figure(6, 3.6)
    steps = [p["step"] for p in r["phase_b"]["curve"]]
    ax.plot(steps, [p["loss_a"] for p in r["phase_b"]["curve"]], marker="o",
            label=f"domain A ({r['config']['domain_a']}), held out")
    ax.plot(steps, [p["loss_b"] for p in r["phase_b"]["curve"]], marker="o",
            label=f"domain B ({r['config']['domain_b']}), held out")
    ax.set_xlabel("fine-tuning step on domain B")
    ax.set_ylabel("loss per token")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    png = H.figure_png(fig)
    plots.close(fig)
    (out / "curve.png").write_bytes(png)
    a, c = r["phase_a"], r["config"]
    lines = [f"# {r['name']}: {c['size']} Llama, {a['parameters']:,} parameters", "",
             f"Phase A: {a['tokens']:,} tokens of {c['domain_a']} ({c['tokens_per_param']} per "
             f"parameter), {a['steps']} steps, held-out loss {a['loss_a']:.3f}.",
             f"Phase B: {r['phase_b']['tokens']:,} tokens of {c['domain_b']}"
             + (f", {r['phase_b']['replay_rows']} of {c['batch_size']} rows self-replay"
                if r["phase_b"]["replay_rows"] else "") + ".", "",
             "| | before phase B | after | rise |", "|---|---|---|---|",
             f"| domain A loss | {r['loss_a_before']:.3f} | {r['loss_a_after']:.3f} | "
             f"{r['loss_a_rise']:+.3f} |",
             f"| domain B loss | {r['loss_b_before']:.3f} | {r['loss_b_after']:.3f} | "
             f"{r['loss_b_after'] - r['loss_b_before']:+.3f} |", "", "![curve](curve.png)"]
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
