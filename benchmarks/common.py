"""Shared set-up for benchmarks: the embedded model, the built-in stream, a Context."""

from __future__ import annotations

import time

import torch
from accelerate import Accelerator

from forgetless.config import load_config
from forgetless.data.collate import encode_all
from forgetless.data.stream import build_stream
from forgetless.engine.hooks import Context
from forgetless.models.load import load_model, load_tokenizer


def setup(overrides: list[str]):
    cfg = load_config(None, overrides)
    torch.manual_seed(0)
    tok = load_tokenizer(cfg.model)
    model = load_model(cfg.model, tok, seed=0)
    stream = build_stream(cfg.data)
    acc = Accelerator(cpu=True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr,
                            weight_decay=cfg.train.weight_decay)
    model, opt = acc.prepare(model, opt)
    ctx = Context(cfg, acc, model, tok, stream, 0, opt, experience_index=0)
    return cfg, ctx


def encoded(ctx, examples):
    cfg = ctx.config
    return encode_all(examples, ctx.tokenizer, cfg.data.prompt_template, cfg.train.max_length)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0
