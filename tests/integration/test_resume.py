"""Exact resume from anywhere: a run interrupted at random optimizer steps (in-process, at
mid-experience checkpoints; or a real child process killed with SIGKILL at random moments) and
resumed ends with the uninterrupted run's numbers and weights, bit for bit."""

import json
import os
import random
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

import forgetless
from forgetless.core.store import RunStore
from tests.conftest import FORGETLESS, TINY

pytestmark = pytest.mark.integration

# Two experiences of 4 epochs × 2 steps; a checkpoint every 3 optimizer steps, so checkpoints
# fall inside epochs, at epoch ends and at an experience's end.
SMALL = [*TINY, "data.n_experiences=2", "train.epochs=4", "probe.samples=4", "probe.qa=false",
         "train.checkpoint_every=3"]

CASES = {
    "seqft, fresh optimizer per experience": ["method=seqft"],
    "kif+replay+sam, optimizer carried over": [
        "method=kif+replay+sam", "train.reset_optimizer=false", "replay.mixing=batch",
        "sam.every=2", "sam.between=reuse"],
    "ewc+self_replay, LoRA, optimizer carried over": [
        "method=ewc+self_replay", "train.reset_optimizer=false", "model.lora.enabled=true",
        "model.lora.r=4", "train.schedule=cosine", "train.warmup=0.25"],
    "lwf+lamol": ["method=lwf+lamol"],
}


class Interrupted(BaseException):
    """Stands for a kill right after a checkpoint was written (not an Exception: nothing may
    catch it on the way out)."""


def run(overrides, out, stop_at=None, monkeypatch=None):
    """Run to the end, or (stop_at=k) until the k-th mid-experience checkpoint is on disk."""
    if stop_at is not None:
        save = RunStore.save_step_checkpoint
        calls = []

        def save_then_stop(self, *args, **kwargs):
            path = save(self, *args, **kwargs)
            calls.append(path)
            if len(calls) == stop_at:
                raise Interrupted
            return path

        monkeypatch.setattr(RunStore, "save_step_checkpoint", save_then_stop)
        with pytest.raises(Interrupted):
            forgetless.run(None, overrides, run_dir=out)
        monkeypatch.undo()
        return None
    return forgetless.run(None, overrides, run_dir=out).results


def final_weights(run_dir):
    (_, path), = RunStore(run_dir).checkpoints()
    return load_file(str(path / "weights.safetensors"))


def assert_same_run(got, want, got_dir, want_dir):
    assert got["complete"]
    assert got["matrices"] == want["matrices"]
    assert [x["epoch_losses"] for x in got["experiences"]] == \
        [x["epoch_losses"] for x in want["experiences"]]
    assert [x["steps"] for x in got["experiences"]] == [x["steps"] for x in want["experiences"]]
    a, b = final_weights(got_dir), final_weights(want_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("case", list(CASES))
def test_interrupted_anywhere_resumes_bitwise(case, tmp_path, monkeypatch):
    overrides = [*SMALL, *CASES[case], f"output_dir={tmp_path / 'runs'}"]
    reference = run(overrides, tmp_path / "ref")
    n_checkpoints = -(-8 // 3) * 2  # per experience: after steps 3, 6 and the last (8)
    points = random.Random(case).sample(range(1, n_checkpoints + 1), 2)
    for k in points:
        out = tmp_path / f"stopped-{k}"
        run(overrides, out, stop_at=k, monkeypatch=monkeypatch)
        mid = RunStore(out).step_checkpoint()
        assert mid is not None, f"checkpoint {k} should be on disk"
        assert_same_run(run(overrides, out), reference, out, tmp_path / "ref")
        assert RunStore(out).step_checkpoint() is None  # removed once the experience is saved


def test_without_the_saved_optimizer_state_resume_would_differ(tmp_path, monkeypatch):
    """The control for the test above: dropping what a checkpoint restores (here the AdamW
    moments carried between experiences) changes the numbers, so equality there means something."""
    from forgetless.engine import experiment

    overrides = [*SMALL, "train.reset_optimizer=false", f"output_dir={tmp_path / 'runs'}"]
    reference = run(overrides, tmp_path / "ref")
    out = tmp_path / "stopped"
    run(overrides, out, stop_at=4, monkeypatch=monkeypatch)  # inside the second experience
    monkeypatch.setattr(experiment, "load_optimizer_state", lambda *a: None)
    resumed = run(overrides, out)
    assert [x["epoch_losses"] for x in resumed["experiences"]] != \
        [x["epoch_losses"] for x in reference["experiences"]]


def test_a_run_resumed_on_another_thread_count_says_so_and_records_both(tmp_path, monkeypatch,
                                                                        capsys):
    """Another thread count sums in another order (docs/reliability.md): resumed with it, the
    run's numbers are neither count's. The resume warns, and results.json lists both machines
    (`forgetless compare` names such a run)."""
    overrides = [*SMALL, "method=seqft", f"output_dir={tmp_path / 'runs'}"]
    out = tmp_path / "stopped"
    threads = torch.get_num_threads()
    run(overrides, out, stop_at=4, monkeypatch=monkeypatch)  # inside the second experience
    capsys.readouterr()
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads + 1)  # what the run records
    results = run(overrides, out)
    err = capsys.readouterr().err
    assert (f"forgetless: warning: {out}: resumed on " in err and f"{threads + 1} threads) after "
            "1 experience(s) and part of the next on " in err)
    # only the thread count changed: the warning says how to match it
    assert f"resume it with {threads} thread(s) (forgetless run --threads {threads}" in err
    assert [m["threads"] for m in results["run"]["machines"]] == [threads, threads + 1]
    assert results["run"]["machine"]["threads"] == threads + 1
    # resumed where it stopped, a run records one machine and says nothing
    monkeypatch.undo()
    again = tmp_path / "again"
    run(overrides, again, stop_at=4, monkeypatch=monkeypatch)
    capsys.readouterr()
    assert len(run(overrides, again)["run"]["machines"]) == 1
    assert "resumed on" not in capsys.readouterr().err


def checkpoint_names(run_dir):
    root = run_dir / "checkpoints"
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


def test_a_child_killed_at_random_moments_resumes_bitwise(tmp_path):
    """A real `forgetless run`, SIGKILLed three times at random moments (while training,
    checkpointing or evaluating), then run to the end: the uninterrupted run's numbers."""
    overrides = [*SMALL, "method=kif+replay", "train.reset_optimizer=false",
                 "train.checkpoint_every=1", "train.epochs=12", f"output_dir={tmp_path / 'runs'}"]
    reference = run(overrides, tmp_path / "ref")
    out = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    cmd = [FORGETLESS, "run", *[a for o in overrides for a in ("--set", o)], "--out", str(out),
           "--quiet"]
    rng = random.Random(0)
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        before = checkpoint_names(out)
        deadline = time.time() + 120
        # wait until this process has written a checkpoint of its own, then a random moment more
        while not checkpoint_names(out) - before and proc.poll() is None:
            assert time.time() < deadline
            time.sleep(0.02)
        # a child may reach the end before a checkpoint of its own (a small model is quick):
        # then it must have finished cleanly, and there is nothing left to kill
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
            break
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2, "the run finished before it could be killed: give it more steps"
    finished = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    got = json.loads((out / "results.json").read_text())
    assert_same_run(got, reference, out, tmp_path / "ref")
