"""`forgetless pretrain`: a small Llama from scratch on domain A, then fine-tuning on domain B.

The capacity and pretraining-saturation questions of PAPERS.md §1 and §3: how much of domain A
does a model lose while it learns domain B, as a function of its size and of how long it was
pretrained (tokens per parameter), and does replaying its own samples help?

Phase A: a byte-level BPE tokenizer with a small vocabulary (`vocab_size`) is trained on both
domains; a Llama of the chosen `size` (random init, seeded) is trained on freshly generated
domain-A text (no repeats for the built-in domains) for `tokens_per_param` × parameters tokens:
AdamW, linear warm-up then cosine decay to 10 %. The result is saved as a Hugging Face model
directory (`<output_dir>/_phase_a/<size>-<hash>/model_a/`, usable as `model.name` of a
`forgetless run`), shared by every run whose phase A is the same, and is the resume point.
Phase B: `finetune_tokens` of domain B at a constant `finetune_lr`, measuring the held-out loss
on both domains at `eval_points` points. With `self_replay` > 0, that share of every batch's
rows is replaced by sequences the phase-A model sampled from BOS before phase B (temperature 1)
— self-generated replay with the next-token loss.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Literal

import torch
import yaml
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, ValidationError

from forgetless.core.config import (
    Section,
    Seed,
    _format_validation_error,
    apply_overrides,
    read_yaml_mapping,
)
from forgetless.core.errors import ConfigError, RunDirError
from forgetless.core.store import atomic_write_json, atomic_write_text
from forgetless.data.corpora import BUILTIN, corpus

SIZES = {  # hidden, layers, heads, ffn
    "0.3m": (64, 4, 4, 192),
    "1m": (128, 4, 4, 384),
    "5m": (256, 6, 4, 768),
    "20m": (384, 10, 6, 1152),
    "50m": (512, 14, 8, 1536),
}


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
    """Tokens per training sequence (documents are packed, separated by EOS)."""
    domain_a: str = "world"
    """Pretraining text: "world", "arithmetic", or a .txt file / directory of them."""
    domain_b: str = "arithmetic"
    """Fine-tuning text, the same choices."""
    tokens_per_param: PositiveFloat = 20.0
    """Phase A budget: this many training tokens per model parameter."""
    batch_size: PositiveInt = 32
    """Sequences per optimizer step (both phases)."""
    lr: PositiveFloat = 1e-3
    """Phase A peak learning rate (AdamW, weight decay 0.1)."""
    warmup: float = Field(0.05, ge=0.0, lt=1.0)
    """Phase A share of steps with linear warm-up."""
    finetune_tokens: PositiveInt = 200_000
    """Phase B budget in tokens."""
    finetune_lr: PositiveFloat = 3e-4
    """Phase B learning rate (constant, fresh AdamW)."""
    self_replay: float = Field(0.0, ge=0.0, lt=1.0)
    """Share of every phase-B batch replaced by the phase-A model's own samples (0: off)."""
    replay_samples: PositiveInt = 256
    """Sequences the phase-A model samples for replay (reused in turn)."""
    eval_sequences: PositiveInt = 64
    """Held-out sequences per domain for the loss measurements."""
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
        """Hash of what changes results; with `phase_a_only`, of what changes phase A alone
        (runs that differ only in phase B share one pretrained model)."""
        import hashlib

        # Only what differs from the defaults: a key added later keeps existing names.
        defaults = PretrainConfig().model_dump(mode="json")
        data = {k: v for k, v in self.model_dump(mode="json").items() if v != defaults[k]}
        data.pop("output_dir", None)
        data.pop("name", None)
        if phase_a_only:
            for key in ("finetune_tokens", "finetune_lr", "self_replay", "replay_samples",
                        "eval_points"):
                data.pop(key, None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]


def load_pretrain_config(source: str | Path | dict | None = None,
                         overrides: list[str] | None = None) -> PretrainConfig:
    origin, data = "pretrain config", {}
    if isinstance(source, dict):
        data = json.loads(json.dumps(source))
    elif source is not None:
        origin = str(source)
        data = read_yaml_mapping(source, "config file")
    apply_overrides(data, overrides)
    try:
        cfg = PretrainConfig(**data)
    except ValidationError as e:
        raise ConfigError(f"{origin}: {_format_validation_error(e)}") from None
    for key in ("domain_a", "domain_b"):
        value = getattr(cfg, key)
        if value not in BUILTIN and not Path(value).exists():
            raise ConfigError(f"{origin}: {key}: '{value}' is neither a built-in domain "
                              f"({', '.join(BUILTIN)}) nor an existing path")
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


def packed(tokenizer, domain: str, n_sequences: int, seq_len: int, seed: str | int) -> torch.Tensor:
    """[n_sequences, seq_len] token ids: documents joined by EOS, generated until there are
    enough (built-in domains: fresh text; user text: repeated in seeded shuffles)."""
    import random

    need = n_sequences * seq_len
    ids: list[int] = []
    round_ = 0
    while len(ids) < need:
        if domain in BUILTIN:
            docs = BUILTIN[domain](max(1000, (need - len(ids)) // 8), f"{seed}/{round_}")
        else:
            docs = corpus(domain, 0, 0)
            random.Random(f"{seed}/{round_}").shuffle(docs)
        for row in tokenizer(docs, add_special_tokens=False)["input_ids"]:
            ids += [*row, tokenizer.eos_token_id]
        round_ += 1
    return torch.tensor(ids[:need]).view(n_sequences, seq_len)


@torch.no_grad()
def heldout_loss(model, data: torch.Tensor, batch_size: int) -> float:
    was = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(data), batch_size):
        x = data[i:i + batch_size].to(model.device)
        out = model(input_ids=x, labels=x)
        n = x.numel() - len(x)
        total += float(out.loss) * n
        count += n
    model.train(was)
    return total / count


def _lr_at(step: int, steps: int, cfg: PretrainConfig) -> float:
    warm = max(1, int(cfg.warmup * steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def run_pretrain(cfg: PretrainConfig, out_dir: str | Path | None = None,
                 quiet: bool = False) -> dict:
    from transformers import AutoTokenizer, LlamaForCausalLM

    from forgetless.models.sampling import sample_chunk

    started = time.perf_counter()
    out = Path(out_dir or Path(cfg.output_dir) / f"{cfg.name}-{cfg.size}-{cfg.fingerprint()}")
    saved = out / "config.yaml"
    if saved.is_file() and not cfg.matches_saved(yaml.safe_load(saved.read_text())):
        raise RunDirError(f"{out}: holds a pretraining run of a different config")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def say(text: str) -> None:
        if not quiet:
            print(text, flush=True)

    # Phase A lives beside the run directories, keyed by what it depends on, so runs that differ
    # only in phase B (self-replay on/off, fine-tuning budget) pretrain once.
    shared = out.parent / "_phase_a" / f"{cfg.size}-{cfg.fingerprint(phase_a_only=True)}"
    phase_a_path = shared / "phase_a.json"
    if phase_a_path.is_file() and (shared / "model_a").is_dir():
        tokenizer = AutoTokenizer.from_pretrained(shared / "model_a")
        model = LlamaForCausalLM.from_pretrained(shared / "model_a").to(device)
        phase_a = json.loads(phase_a_path.read_text())
        say(f"phase A done before: {phase_a['steps']} steps, loss A {phase_a['loss_a']:.3f}")
    else:
        tokenizer = train_tokenizer(cfg)
        model = build_model(cfg, tokenizer).to(device)
        n_params = sum(p.numel() for p in model.parameters())
        steps = math.ceil(cfg.tokens_per_param * n_params / (cfg.batch_size * cfg.seq_len))
        say(f"phase A: {n_params:,} parameters, {steps} steps × {cfg.batch_size} × {cfg.seq_len} "
            f"tokens of {cfg.domain_a}")
        data = packed(tokenizer, cfg.domain_a, steps * cfg.batch_size, cfg.seq_len,
                      f"{cfg.seed}/train-a")
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.1,
                                betas=(0.9, 0.95))
        t0 = time.perf_counter()
        model.train()
        losses = []
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, steps, cfg)
            x = data[step * cfg.batch_size:(step + 1) * cfg.batch_size].to(device)
            loss = model(input_ids=x, labels=x).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        held_a = packed(tokenizer, cfg.domain_a, cfg.eval_sequences, cfg.seq_len, f"{cfg.seed}/held")
        held_b = packed(tokenizer, cfg.domain_b, cfg.eval_sequences, cfg.seq_len, f"{cfg.seed}/held")
        phase_a = {"parameters": n_params, "steps": steps,
                   "tokens": steps * cfg.batch_size * cfg.seq_len,
                   "final_train_loss": sum(losses[-20:]) / len(losses[-20:]),
                   "loss_a": heldout_loss(model, held_a, cfg.batch_size),
                   "loss_b": heldout_loss(model, held_b, cfg.batch_size),
                   "seconds": time.perf_counter() - t0}
        shared.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(shared / "model_a")
        tokenizer.save_pretrained(shared / "model_a")
        atomic_write_json(phase_a_path, phase_a)  # the resume point
        say(f"phase A: loss A {phase_a['loss_a']:.3f} (held out), {phase_a['seconds']:.0f} s")

    held_a = packed(tokenizer, cfg.domain_a, cfg.eval_sequences, cfg.seq_len, f"{cfg.seed}/held")
    held_b = packed(tokenizer, cfg.domain_b, cfg.eval_sequences, cfg.seq_len, f"{cfg.seed}/held")
    steps_b = max(1, cfg.finetune_tokens // (cfg.batch_size * cfg.seq_len))
    data_b = packed(tokenizer, cfg.domain_b, steps_b * cfg.batch_size, cfg.seq_len,
                    f"{cfg.seed}/train-b")
    replay_rows = round(cfg.self_replay * cfg.batch_size)
    replay = None
    t0 = time.perf_counter()
    if replay_rows:
        model.eval()
        replay = torch.tensor(sample_chunk(model, [tokenizer.bos_token_id], cfg.replay_samples,
                                           cfg.seq_len, seed=cfg.seed + 7919))
    sample_s = time.perf_counter() - t0
    torch.manual_seed(cfg.seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.finetune_lr, weight_decay=0.1,
                            betas=(0.9, 0.95))
    points = sorted({0, steps_b, *(round(steps_b * (k + 1) / (cfg.eval_points + 1))
                                   for k in range(cfg.eval_points))})
    curve = []
    model.train()
    t0 = time.perf_counter()
    new_rows = cfg.batch_size - replay_rows
    for step in range(steps_b + 1):
        if step in points:
            curve.append({"step": step, "loss_a": heldout_loss(model, held_a, cfg.batch_size),
                          "loss_b": heldout_loss(model, held_b, cfg.batch_size)})
        if step == steps_b:
            break
        x = data_b[step * cfg.batch_size:step * cfg.batch_size + new_rows]
        if replay is not None:
            idx = [(step * replay_rows + k) % len(replay) for k in range(replay_rows)]
            x = torch.cat([x, replay[idx]])
        x = x.to(device)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    results = {
        "kind": "pretrain", "name": cfg.name, "seed": cfg.seed, "complete": True,
        "config": cfg.model_dump(mode="json"), "phase_a": phase_a,
        "model_a": str(shared / "model_a"),
        "phase_b": {"steps": steps_b, "tokens": steps_b * cfg.batch_size * cfg.seq_len,
                    "replay_rows": replay_rows, "sample_s": sample_s,
                    "seconds": time.perf_counter() - t0, "curve": curve},
        "loss_a_before": curve[0]["loss_a"], "loss_a_after": curve[-1]["loss_a"],
        "loss_a_rise": curve[-1]["loss_a"] - curve[0]["loss_a"],
        "loss_b_before": curve[0]["loss_b"], "loss_b_after": curve[-1]["loss_b"],
        "session_s": time.perf_counter() - started,
    }
    atomic_write_json(out / "results.json", results)
    _write_report(out, results)
    say(f"phase B: domain-A loss {results['loss_a_before']:.3f} → {results['loss_a_after']:.3f} "
        f"(rise {results['loss_a_rise']:+.3f}); domain-B loss {results['loss_b_before']:.3f} → "
        f"{results['loss_b_after']:.3f}\nrun directory: {out}")
    results["run_dir"] = str(out)
    return results


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
