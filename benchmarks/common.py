"""Shared set-up for benchmarks: the embedded model, the built-in stream, a Context."""

from __future__ import annotations

import time

import torch
from accelerate import Accelerator

from forgetless.core.config import load_config
from forgetless.data.collate import encode_all
from forgetless.data.stream import build_stream
from forgetless.methods.hooks import Context
from forgetless.models.load import load_model, load_tokenizer


def setup(overrides: list[str]):
    cfg = load_config(None, overrides)
    torch.manual_seed(0)
    tok = load_tokenizer(cfg.model)
    model = load_model(cfg.model, tok, seed=0)
    stream = build_stream(cfg.data)
    # The GPU when there is one (CUDA timings), else the CPU; train.mixed_precision as configured.
    acc = Accelerator(cpu=not torch.cuda.is_available(),
                      mixed_precision=cfg.train.accelerate_precision)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr,
                            weight_decay=cfg.train.weight_decay)
    model, opt = acc.prepare(model, opt)
    ctx = Context(cfg, acc, model, tok, stream, 0, opt, experience_index=0)
    return cfg, ctx


def encoded(ctx, examples):
    cfg = ctx.config
    return encode_all(examples, ctx.tokenizer, cfg.data.prompt_template, cfg.train.max_length)


def _sync() -> None:
    if torch.cuda.is_available():  # kernels run asynchronously: wait for them before reading a clock
        torch.cuda.synchronize()


def timed(fn):
    _sync()
    t0 = time.perf_counter()
    out = fn()
    _sync()
    return out, time.perf_counter() - t0


def precision_flag(ap) -> None:
    ap.add_argument("--bf16", action="store_true", help="train.mixed_precision=bf16 (GPUs)")


def precision_override(args) -> str:
    return f"train.mixed_precision={'bf16' if args.bf16 else 'fp32'}"


def device_note(ctx) -> str:
    dev = ctx.accelerator.device
    name = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads")
    return f"{name}, {ctx.config.train.mixed_precision}"
