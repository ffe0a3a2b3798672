"""End-to-end runs on a tiny random-init Llama (seconds each)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import forgetless
from tests.conftest import FORGETLESS, REPO

pytestmark = pytest.mark.integration


def cli(*args, check=True, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run([FORGETLESS, *args], capture_output=True, text=True, env=env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def test_three_experiences_forget_and_write_a_complete_run_dir(tiny_overrides, tmp_path):
    result = forgetless.run(None, tiny_overrides, run_dir=tmp_path / "a")
    R = result.matrix("train")
    assert R.shape == (3, 3)
    assert R[0, 0] >= 0.75, "the tiny model should memorise its first experience"
    assert result.headline["MF"] > 0.25, "sequential fine-tuning must forget"
    for name in ("config.yaml", "results.json", "matrix_train.csv", "matrix_test.csv",
                 "summary.md", "predictions/after-000.jsonl", "predictions/after-002.jsonl"):
        assert (result.run_dir / name).is_file(), name
    rows = [json.loads(x) for x in (result.run_dir / "predictions/after-002.jsonl").open()]
    assert len(rows) == 3 * 2 * 8 and {"uid", "prediction", "correct", "nll"} <= set(rows[0])
    res = result.results
    assert res["complete"] and res["versions"]["torch"].startswith("2.13")
    assert "| MA ↑ | GA ↑ | MF ↓ | GF ↓ |" in (result.run_dir / "summary.md").read_text()

    # same config and seed → the same numbers
    again = forgetless.run(None, tiny_overrides, run_dir=tmp_path / "b")
    assert again.results["matrices"] == res["matrices"]
    assert [x["epoch_losses"] for x in again.results["experiences"]] == \
        [x["epoch_losses"] for x in res["experiences"]]


def test_killed_run_resumes_to_the_same_results(tiny_overrides, tmp_path):
    overrides = [*tiny_overrides, "train.epochs=30"]
    reference = forgetless.run(None, overrides, run_dir=tmp_path / "ref").results

    out = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([FORGETLESS, "run", *sets(overrides), "--out", str(out), "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    results_path = out / "results.json"  # written right after the first checkpoint
    while not results_path.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # in the middle of experience 1
    proc.wait()
    partial = json.loads((out / "results.json").read_text())
    assert not partial["complete"] and partial["completed_experiences"] < 3

    resumed = cli("run", *sets(overrides), "--out", str(out))
    assert "resuming" in resumed.stdout
    final = json.loads((out / "results.json").read_text())
    assert final["complete"]
    assert final["matrices"] == reference["matrices"]
    assert [x["epoch_losses"] for x in final["experiences"]] == \
        [x["epoch_losses"] for x in reference["experiences"]]

    # a finished run re-run: nothing to do, same results
    cli("run", *sets(overrides), "--out", str(out), "--quiet")
    assert json.loads((out / "results.json").read_text())["matrices"] == reference["matrices"]


def test_teacher_forced_scorer_agrees_with_generate(tiny_overrides, tmp_path):
    tf = forgetless.run(None, [*tiny_overrides, "eval.scorer=teacher_forced"],
                        run_dir=tmp_path / "tf")
    gen = forgetless.run(None, [*tiny_overrides, "eval.scorer=generate"], run_dir=tmp_path / "gen")

    def flags(result):
        rows = []
        for f in sorted((result.run_dir / "predictions").iterdir()):
            rows += [json.loads(x) for x in f.open()]
        return {(r["after"], r["uid"]): r["correct"] for r in rows}

    a, b = flags(tf), flags(gen)
    assert a.keys() == b.keys() and len(a) == 2 * 8 * (1 + 2 + 3)
    assert 0 < sum(a.values()) < len(a), "need both right and wrong answers to compare"
    assert a == b


def test_two_processes_compute_the_same_training(tiny_overrides, tmp_path):
    one = forgetless.run(None, tiny_overrides, run_dir=tmp_path / "one").results
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "-m", "forgetless", "run", *sets(tiny_overrides), "--out", str(tmp_path / "two"),
           "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["run"]["processes"] == 2 and one["run"]["processes"] == 1
    # Same global batches, same loss normalisation: the first experience's loss curve matches
    # to float tolerance (later ones drift apart only by summation order).
    for a, b in zip(one["experiences"][0]["epoch_losses"], two["experiences"][0]["epoch_losses"],
                    strict=True):
        assert a == pytest.approx(b, rel=1e-3)
    assert two["matrices"]["train"][0][0] == one["matrices"]["train"][0][0]
    assert len(two["evaluations"]) == len(one["evaluations"])


def test_lora_trains_only_adapters_and_resumes(tiny_overrides, tmp_path):
    overrides = [*tiny_overrides, "model.lora.enabled=true", "model.lora.r=4", "train.epochs=2"]
    result = forgetless.run(None, overrides, run_dir=tmp_path / "lora")
    params = result.results["run"]["parameters"]
    assert 0 < params["trainable"] < params["total"] / 10
    assert result.results["complete"]
    # re-running loads the adapter checkpoint (names must match the peft-wrapped model)
    again = forgetless.run(None, overrides, run_dir=tmp_path / "lora")
    assert again.results["matrices"] == result.results["matrices"]


def test_local_model_directory(tmp_path, tiny_overrides):
    from forgetless.config import ModelConfig
    from forgetless.models.load import load_model, load_tokenizer

    cfg = ModelConfig(name="tiny-llama-2m")
    tok = load_tokenizer(cfg)
    load_model(cfg, tok, seed=0).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    overrides = [o for o in tiny_overrides if not o.startswith("model.name")]
    result = forgetless.run(None, [*overrides, f"model.name={tmp_path / 'm'}", "train.epochs=1"],
                            run_dir=tmp_path / "run")
    assert result.results["run"]["parameters"]["total"] < 3_000_000


def test_initial_next_and_every_k_evaluation(tiny_overrides, tmp_path):
    overrides = [*tiny_overrides, "eval.initial=true", "eval.next=true", "eval.every=2",
                 "train.epochs=5"]
    result = forgetless.run(None, overrides, run_dir=tmp_path / "r")
    R = result.matrix("test")
    assert np.isnan(R[0]).all()  # row 0 skipped (every 2nd experience)
    assert not np.isnan(R[1, 2])  # the next, untrained experience was scored after experience 1
    assert result.results["initial"] is not None
    assert result.metrics["train"]["FWT"] is not None
    assert (result.run_dir / "predictions" / "initial.jsonl").is_file()
    assert not (result.run_dir / "predictions" / "after-000.jsonl").exists()
