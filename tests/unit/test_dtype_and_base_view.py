"""`model.dtype` (frozen weights in bf16/fp16, adapters fp32) and the base model of a LoRA run
seen through its own weights with adapters off (`WithoutAdapters`): equal to a reloaded base."""

from copy import deepcopy

import pytest
import torch

from forgetless.core.config import LoraConfig, ModelConfig, load_config
from forgetless.core.errors import ConfigError
from forgetless.methods.hooks import WithoutAdapters
from forgetless.models.load import load_model, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(ModelConfig(name="tiny-llama-2m-v4k"))


@pytest.mark.parametrize("dtype,torch_dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_frozen_weights_in_dtype_adapters_fp32(tokenizer, dtype, torch_dtype):
    cfg = ModelConfig(name="tiny-llama-2m-v4k", dtype=dtype, lora=LoraConfig(enabled=True))
    model = load_model(cfg, tokenizer, seed=0)
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
    trainable = {p.dtype for p in model.parameters() if p.requires_grad}
    assert frozen == {torch_dtype} and trainable == {torch.float32}
    fp32 = load_model(ModelConfig(name="tiny-llama-2m-v4k"), tokenizer, seed=0)
    # the same random init, cast: a tiny model is the same model in every dtype
    assert torch.equal(model.get_input_embeddings().weight,
                       fp32.get_input_embeddings().weight.to(torch_dtype))
    ids = torch.tensor([[1, 5, 9, 13]])
    logits = model(input_ids=ids).logits
    assert logits.dtype == torch_dtype and torch.isfinite(logits.float()).all()


def test_dtype_needs_lora():
    with pytest.raises(ConfigError, match=r"model.dtype=bf16 needs model.lora.enabled=true"):
        load_config(None, ["model.dtype=bf16"])


def test_base_view_is_the_base_model_and_leaves_training_alone(tokenizer):
    cfg = ModelConfig(name="tiny-llama-2m-v4k", lora=LoraConfig(enabled=True))
    model = load_model(cfg, tokenizer, seed=0)
    with torch.no_grad():  # trained adapters: the model now differs from its base
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    model.train()
    view = WithoutAdapters(model)
    base = load_model(ModelConfig(name="tiny-llama-2m-v4k"), tokenizer, seed=0).eval()
    ids = torch.tensor([[1, 5, 9, 13, 2, 7]])
    got = view(input_ids=ids).logits
    assert torch.allclose(got, base(input_ids=ids).logits, atol=1e-6)
    assert not got.requires_grad
    assert model.training  # the training model's mode is its own
    view.eval()
    assert model.training and not view.training
    assert not torch.allclose(model.eval()(input_ids=ids).logits, got, atol=1e-3)  # adapters on
    assert list(view.named_parameters()) == []  # no copy of any weight
    assert next(view.parameters()).device == ids.device


def test_snapshot_view_is_the_model_as_it_was_and_copies_only_the_adapters(tokenizer):
    from forgetless.methods.hooks import WithSnapshot

    cfg = ModelConfig(name="tiny-llama-2m-v4k", lora=LoraConfig(enabled=True))
    model = load_model(cfg, tokenizer, seed=0)
    with torch.no_grad():  # adapters trained on an earlier experience
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    copy = deepcopy(model).eval()  # what the teacher was before: a full copy
    view = WithSnapshot(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(t.numel() for t in view.snapshot.values()) == trainable < sum(
        p.numel() for p in model.parameters()) / 10
    ids = torch.tensor([[1, 5, 9, 13, 2, 7]])
    assert torch.equal(view(input_ids=ids).logits, copy(input_ids=ids).logits)
    # training goes on: a student forward, the teacher between it and its backward, a step
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    student = model(input_ids=ids).logits
    teacher = view(input_ids=ids).logits
    assert not teacher.requires_grad and model.training
    (student - teacher).pow(2).mean().backward()  # the live graph is intact
    optimizer.step()
    assert torch.equal(view(input_ids=ids).logits, copy(input_ids=ids).logits)  # still as it was
    assert not torch.allclose(model.eval()(input_ids=ids).logits, teacher, atol=1e-4)
