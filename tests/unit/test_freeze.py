"""What `freeze` freezes, on the tiny model's parameter names (with and without LoRA)."""

import pytest

from forgetless.core.config import LoraConfig, ModelConfig
from forgetless.core.errors import ConfigError
from forgetless.methods.freeze import Freeze, FreezeConfig, frozen_names
from forgetless.models.load import load_model, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(ModelConfig(name="tiny-llama-2m-v4k"))


def model(tokenizer, lora=False):
    cfg = ModelConfig(name="tiny-llama-2m-v4k", lora=LoraConfig(enabled=lora))
    return load_model(cfg, tokenizer, seed=0)


def test_embeddings_and_bottom_layers(tokenizer):
    m = model(tokenizer)
    names = frozen_names(m, FreezeConfig(layers=1, embeddings=True))
    assert "model.embed_tokens.weight" in names
    assert "model.layers.0.self_attn.q_proj.weight" in names
    assert "model.layers.0.input_layernorm.weight" in names
    assert not any(n.startswith(("model.layers.1.", "model.norm")) for n in names)
    Freeze(FreezeConfig(layers=1)).configure_model(m)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and not trainable & set(names)
    assert m.get_output_embeddings().weight.requires_grad is False  # tied to the input embeddings


def test_layers_only_and_lora(tokenizer):
    m = model(tokenizer, lora=True)
    Freeze(FreezeConfig(layers=1, embeddings=False)).configure_model(m)
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert not any(".layers.0." in n for n in trainable)
    assert any(".layers.1." in n for n in trainable)


def test_more_layers_than_the_model_has(tokenizer):
    with pytest.raises(ConfigError, match="freeze.layers=3, but the model has 2 decoder layers"):
        Freeze(FreezeConfig(layers=3)).configure_model(model(tokenizer))


def test_freezing_everything_is_an_error(tokenizer):
    m = model(tokenizer)
    m.model.norm.weight.requires_grad_(False)  # all that layers=2 + embeddings leave training
    with pytest.raises(ConfigError, match="leaves nothing to train"):
        Freeze(FreezeConfig(layers=2)).configure_model(m)
