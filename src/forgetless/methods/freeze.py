"""Freeze the bottom of the model: the input embeddings and the lowest k decoder layers never
change (PAPERS.md's follow-up, "Spurious Forgetting in Continual Learning of Language Models",
Zheng et al., ICLR 2025).

That work finds that much of what sequential fine-tuning loses is task alignment, not knowledge,
and that the alignment shifts come from updates of the bottom layers; keeping them fixed leaves
the features the old tasks were read from in place. Freezing is decided once, before the
optimizer is built, so frozen weights get no gradient, no optimizer state and no weight decay.
With LoRA the adapters of the frozen layers are frozen. With tied input/output embeddings (the
embedded SmolLM2), freezing the embeddings freezes the output head too.

Cost: none; it saves the frozen weights' gradients and optimizer state. Composes with every
other method (they see only the parameters that still train).
"""

from __future__ import annotations

import torch
from pydantic import NonNegativeInt, model_validator

from forgetless.core.config import Section
from forgetless.core.errors import ConfigError
from forgetless.methods.hooks import Method
from forgetless.methods.registry import register


class FreezeConfig(Section):
    layers: NonNegativeInt = 2
    """How many decoder layers to freeze, counted from the input (our default; the paper's
    ablation freezes the bottom layers and the embeddings, with the count chosen per model)."""
    embeddings: bool = True
    """Also freeze the input embeddings (and with them a tied output head)."""

    @model_validator(mode="after")
    def _freezes_something(self) -> FreezeConfig:
        if self.layers == 0 and not self.embeddings:
            raise ValueError("freeze.layers=0 with freeze.embeddings=false freezes nothing; "
                             "set one of them")
        return self


def decoder_layers(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """(qualified name, the list of decoder layers): the ModuleList whose length is the config's
    number of hidden layers (llama `model.layers`, GPT-2 `transformer.h`, under peft too)."""
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return name, module
    raise ConfigError(f"method 'freeze': found no list of {n} decoder layers in "
                      f"{type(model).__name__}")


def frozen_names(model: torch.nn.Module, config: FreezeConfig) -> list[str]:
    """Names of the parameters `config` freezes (whether or not they train now)."""
    prefix, layers = decoder_layers(model)
    if config.layers > len(layers):
        raise ConfigError(f"freeze.layers={config.layers}, but the model has {len(layers)} "
                          f"decoder layers")
    bottom = tuple(f"{prefix}.{i}." for i in range(config.layers))
    embedding = {id(p) for p in model.get_input_embeddings().parameters()}
    return [n for n, p in model.named_parameters()
            if n.startswith(bottom) or (config.embeddings and id(p) in embedding)]


@register("freeze", FreezeConfig,
          summary="freeze the embeddings and the bottom k decoder layers (spurious forgetting)")
class Freeze(Method):
    config: FreezeConfig

    def configure_model(self, model: torch.nn.Module) -> None:
        names = set(frozen_names(model, self.config))
        for name, p in model.named_parameters():
            if name in names:
                p.requires_grad_(False)
        if not any(p.requires_grad for p in model.parameters()):
            raise ConfigError(f"method 'freeze' (layers={self.config.layers}, embeddings="
                              f"{str(self.config.embeddings).lower()}) leaves nothing to train")
