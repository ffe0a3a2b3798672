import json

import pytest
import torch

from forgetless.core.errors import ConfigError
from forgetless.core.seeding import derive_seed
from forgetless.core.store import RunStore, atomic_write_json, flatten_state, unflatten_state
from forgetless.engine.loop import check_batch_layout, epoch_batches


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


def test_a_resume_finishes_the_removals_a_kill_cut_off(tmp_path):
    """Killed after a checkpoint was written but before the older ones were removed: the next
    resume removes them (a run killed there after its last experience writes none again)."""
    for keep_all in (False, True):
        store = RunStore(tmp_path / str(keep_all))
        w = {"w": torch.zeros(1)}
        store.save_step_checkpoint(0, 3, w, {}, {"completed": -1})
        store._write("exp-000", w, {}, {"completed": 0})   # saved, the step one not yet removed
        store._write("exp-001", w, {}, {"completed": 1})   # saved, exp-000 not yet removed
        store.save_step_checkpoint(2, 5, w, {}, {"completed": 1})  # into the next experience
        (store.dir / "checkpoints" / ".exp-002.cut").mkdir()
        store.finish_interrupted_writes(keep_all=keep_all)
        assert [i for i, _ in store.checkpoints()] == ([0, 1] if keep_all else [1])
        assert store.step_checkpoint()[:2] == (2, 5)
        assert sorted(p.name for p in (store.dir / "checkpoints").iterdir()) == \
            (["exp-000"] if keep_all else []) + ["exp-001", "step-002-0000005"]


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


def test_run_lock_refuses_a_live_holder_and_takes_over_a_dead_ones(tmp_path):
    import os

    from forgetless.core.errors import RunDirError
    from forgetless.core.store import RunLock

    held = RunLock(tmp_path).acquire()
    with pytest.raises(RunDirError, match=rf"in use by pid {os.getpid()} on "):
        RunLock(tmp_path).acquire()
    held.release()
    again = RunLock(tmp_path).acquire()  # free once released
    again.release()
    # A holder that died leaves its note but no flock: the next run takes over and says whose.
    (tmp_path / ".lock").write_text("pid 999999 on elsewhere")
    taken = RunLock(tmp_path).acquire()
    assert taken.previous == "pid 999999 on elsewhere"
    taken.release()



def test_wait_until_free_blocks_while_the_lock_is_held_and_leaves_the_holders_note(tmp_path):
    import threading

    from forgetless.core.store import RunLock, lock_holder, wait_until_free

    wait_until_free(tmp_path)  # no lock file: nothing to wait for
    held = RunLock(tmp_path).acquire()
    note = lock_holder(tmp_path)
    waiter = threading.Thread(target=wait_until_free, args=(tmp_path,))
    waiter.start()
    waiter.join(timeout=0.5)
    assert waiter.is_alive()  # still waiting: the holder has not let go
    assert lock_holder(tmp_path) == note  # and waiting signed nothing
    held.release()
    waiter.join(timeout=30)
    assert not waiter.is_alive() and lock_holder(tmp_path) == ""


def test_clear_refuses_a_directory_forgetless_did_not_make(tmp_path):
    from forgetless.core.errors import RunDirError
    from forgetless.core.store import RunStore

    (tmp_path / "thesis.tex").write_text("years of work")
    store = RunStore(tmp_path)
    with pytest.raises(RunDirError, match="--fresh empties only run directories forgetless made"):
        store.clear()
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
    store.mark()
    (tmp_path / "sub").mkdir()
    (tmp_path / ".lock").write_text("")
    store.clear()
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]


def test_length_grouping_pairs_similar_lengths_and_keeps_every_example():
    lengths = [5, 1, 8, 3, 7, 2, 6, 4]
    plain = epoch_batches(8, 2, seed=3)
    grouped = epoch_batches(8, 2, seed=3, lengths=lengths, group=4)  # one pool of all 4 batches
    assert sorted(i for b in grouped for i in b) == sorted(i for b in plain for i in b)
    by_length = sorted(tuple(sorted(lengths[i] for i in b)) for b in grouped)
    assert by_length == [(1, 2), (3, 4), (5, 6), (7, 8)]

    def padding(batches):
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(grouped) == 4 < padding(plain)
    assert grouped == epoch_batches(8, 2, seed=3, lengths=lengths, group=4)  # seeded
    # pools of 2 batches: each pool's 4 examples are re-cut, nothing crosses pools
    pools = epoch_batches(8, 2, seed=3, lengths=lengths, group=2)
    for k in (0, 2):
        assert sorted(i for b in pools[k:k + 2] for i in b) == sorted(i for b in plain[k:k + 2]
                                                                     for i in b)
    assert epoch_batches(8, 2, seed=3, lengths=lengths, group=0) == plain


def test_fused_adamw_is_the_default_and_agrees_with_the_tensor_loop_to_rounding():
    from forgetless.core.config import TrainConfig
    from forgetless.engine.loop import new_optimizer

    assert TrainConfig().fused_optimizer is True

    def trained(fused: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
        opt = new_optimizer(model, TrainConfig(lr=1e-2, weight_decay=0.1, fused_optimizer=fused))
        assert opt.defaults["fused"] is (True if fused else None)
        x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
        for _ in range(20):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
        return [p.detach().clone() for p in model.parameters()]

    loop, fused = trained(False), trained(True)
    assert any(not torch.equal(p, torch.zeros_like(p)) for p in loop)
    for a, b in zip(loop, fused, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_mfu_peaks_follow_the_precision(monkeypatch):
    from forgetless.models.device import peak_tflops

    monkeypatch.delenv("FORGETLESS_PEAK_TFLOPS", raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    gpu = torch.device("cuda", 0)
    assert peak_tflops(gpu, "bf16") == 989.0
    assert peak_tflops(gpu, "fp32") == 67.0 and peak_tflops(gpu, "fp32", tf32=True) == 494.7
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA L40S")
    assert peak_tflops(gpu, "fp32", tf32=True) == 183.0  # L40S, not L4
    assert peak_tflops(torch.device("cpu"), "fp32") is None
    monkeypatch.setenv("FORGETLESS_PEAK_TFLOPS", "2.5")
    assert peak_tflops(torch.device("cpu"), "fp32") == 2.5


def test_taking_turns_waits_for_the_holder_and_hears_who(tmp_path):
    import threading
    import time

    from forgetless.core.store import taking_turns

    lock, events, heard = tmp_path / "shared" / ".work.lock", [], []
    inside = threading.Event()

    def first():
        with taking_turns(lock):
            events.append("first in")
            inside.set()
            time.sleep(0.3)
            events.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait()
    with taking_turns(lock, heard.append):
        events.append("second in")
    thread.join()
    assert events == ["first in", "first out", "second in"]
    assert len(heard) == 1 and heard[0].startswith("pid ")


def test_work_seconds_counts_the_probe_inside_evaluations_once():
    """eval_s already holds the probe's measurements after each step; only the base model's
    probe (before any training) and its sampling are work outside it: 10 + 5 + (2 + 1)."""
    from forgetless.core.results import work_seconds

    results = {"timings": {"train_s": 10.0, "eval_s": 5.0, "probe_s": 2.0 + 1.0 + 4.0},
               "probe": [{"after": -1, "seconds": 2.0, "sampling_s": 1.0},
                         {"after": 0, "seconds": 4.0}]}
    assert work_seconds(results) == 18.0
    assert work_seconds({"timings": {"train_s": 3.0, "eval_s": 1.5}}) == 4.5
    assert work_seconds({}) == 0.0
