"""A trained model out of a run directory: the model after experience k, loaded from its
checkpoint, and written as a Hugging Face directory (`forgetless export`, `save_model`)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError

from forgetless.core.config import RunConfig, load_config
from forgetless.core.errors import ConfigError, RunDirError
from forgetless.core.store import RunStore, as_os_error
from forgetless.methods import registry
from forgetless.models.load import load_model, load_tokenizer, quiet_hub


def checkpoint_after(store: RunStore, after: int | None, option: str = "--stage") -> tuple[int, Path]:
    """(experience, path) of the checkpoint after `after` (None: the newest); a one-line error
    naming `option` and the checkpoints there are otherwise."""
    checkpoints = dict(store.checkpoints())
    if not checkpoints:
        raise RunDirError(f"{store.dir}: no checkpoint yet (no experience has finished)")
    after = max(checkpoints) if after is None else after
    if after not in checkpoints:
        raise RunDirError(
            f"{option} {after}: no checkpoint after that experience in {store.dir} (have "
            f"{sorted(checkpoints)}; keep_checkpoints: all keeps one per experience)")
    return after, checkpoints[after]


def load_trained(run_dir: str | Path, after: int | None = None,
                 option: str = "--stage") -> tuple[RunConfig, object, torch.nn.Module, int]:
    """(config, tokenizer, model in eval mode, experience) of a run's model after an experience."""
    store = RunStore(run_dir)
    config_path = store.dir / "config.yaml"
    if not config_path.is_file():
        raise RunDirError(f"{store.dir}: not a run directory (no config.yaml)")
    cfg = load_config(config_path)
    after, path = checkpoint_after(store, after, option)
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model, tokenizer, cfg.seed)
    for m in registry.build(cfg):
        m.configure_model(model)  # the checkpoint holds exactly what trained
    weights, _, _ = store.load_checkpoint(path)
    restore_weights(model, weights, path)
    return cfg, tokenizer, model.eval(), after


def restore_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """Copy a checkpoint's weights into the model: exactly its trainable parameters (all of them
    for full fine-tuning, the adapters with LoRA), or a one-line error naming the checkpoint."""
    named = dict(model.named_parameters())
    if set(weights) != {n for n, p in named.items() if p.requires_grad}:
        raise RunDirError(f"{path}: checkpoint weights do not match this model")
    with torch.no_grad():
        for name, value in weights.items():
            named[name].copy_(value)


def save_model(model, tokenizer, target: Path, adapter: bool = False) -> None:
    """A Hugging Face directory: the whole model in safetensors with LoRA adapters merged into a
    copy of the weights, or (`adapter`) the LoRA adapter alone, with the tokenizer beside it.
    Written next to `target` and renamed into place: `target` is complete or absent."""
    from peft import PeftModel

    if isinstance(model, PeftModel) and not adapter:
        model = copy.deepcopy(model).merge_and_unload()
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with quiet_hub():
            model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    except SafetensorError as e:  # a full disk: the one-line message the CLI gives for OSErrors
        raise as_os_error(e, target) from None
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(target)) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def export(run_dir: str | Path, out: str | Path, after: int | None = None,
           adapter: bool = False) -> Path:
    """`forgetless export`: the model after experience `after` (default: the newest checkpoint)
    as a Hugging Face directory at `out`."""
    from peft import PeftModel

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunDirError(f"--out {out}: exists and is not an empty directory")
    _, tokenizer, model, after = load_trained(run_dir, after)
    if adapter and not isinstance(model, PeftModel):
        raise ConfigError(f"--adapter: {run_dir} trained all weights (model.lora.enabled is "
                          f"false); there is no adapter to export")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_dir():
        out.rmdir()
    save_model(model, tokenizer, out, adapter=adapter)
    return out
