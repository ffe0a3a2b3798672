import json

import pytest
import torch

from forgetless.engine.loop import check_batch_layout, derive_seed, epoch_batches
from forgetless.errors import ConfigError
from forgetless.store import RunStore, atomic_write_json, flatten_state, unflatten_state


def test_flatten_round_trip():
    state = {"buffer": {"ids": torch.arange(4), "meta": [1, "a"]}, "scores": [torch.ones(2, 2)],
             "step": 3}
    tensors, skeleton = flatten_state(state)
    json.dumps(skeleton)  # JSON-serialisable
    back = unflatten_state(skeleton, tensors)
    assert torch.equal(back["buffer"]["ids"], state["buffer"]["ids"])
    assert torch.equal(back["scores"][0], state["scores"][0])
    assert back["buffer"]["meta"] == [1, "a"] and back["step"] == 3


def test_checkpoints_are_whole_or_absent(tmp_path):
    store = RunStore(tmp_path)
    store.save_checkpoint(0, {"w": torch.zeros(2)}, {"m": {"x": torch.ones(1)}},
                          {"completed": 0}, keep_all=False)
    # an interrupted write leaves only a hidden temporary directory, which is ignored
    (tmp_path / "checkpoints" / ".exp-001.abc").mkdir()
    store.save_checkpoint(1, {"w": torch.ones(2)}, {}, {"completed": 1}, keep_all=False)
    found = store.checkpoints()
    assert [i for i, _ in found] == [1]  # the older one was pruned
    weights, _methods, state = store.load_checkpoint(found[0][1])
    assert torch.equal(weights["w"], torch.ones(2)) and state["completed"] == 1


def test_atomic_json(tmp_path):
    atomic_write_json(tmp_path / "r.json", {"a": 1})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_epoch_batches_cover_every_example_in_full_batches():
    batches = epoch_batches(10, 4, seed=1)
    assert [len(b) for b in batches] == [4, 4, 4]
    assert {i for b in batches for i in b} == set(range(10))
    assert batches == epoch_batches(10, 4, seed=1) != epoch_batches(10, 4, seed=2)
    assert len(epoch_batches(3, 8, seed=0)[0]) == 8  # fewer examples than a batch: cycled


def test_batch_layout():
    assert check_batch_layout(8, 2, 2) == 2
    with pytest.raises(ConfigError, match="train.batch_size=6 must be divisible"):
        check_batch_layout(6, 2, 2)


def test_derive_seed_is_stable():
    assert derive_seed(0, "order", 1, 2) == derive_seed(0, "order", 1, 2)
    assert derive_seed(0, "order", 1, 2) != derive_seed(0, "order", 2, 1)
