"""End-to-end runs on a tiny random-init Llama (seconds each)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import forgetless
from tests.conftest import FORGETLESS, REPO, TINY, TINY_MODEL, forgetless_cli

pytestmark = pytest.mark.integration


cli = forgetless_cli


def sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


TWO_PROCESS_EPOCHS = "train.epochs=10"
"""1 and 2 processes agree to float rounding, which grows step by step at the tiny model's lr
3e-3: the comparisons run 10 epochs (20 optimizer steps per experience), where 1e-3 holds."""


def run_two_processes(overrides, out):
    """The same run under `torchrun --nproc_per_node 2` (gloo, 1 thread each); its results.

    On CPU even where a GPU is present: two ranks need two devices, and the comparisons here
    are against the single-process CPU runs. `--standalone` picks a free port, so these tests
    may run side by side (pytest-xdist)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "forgetless", "run", *sets(overrides), "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def test_three_experiences_forget_and_write_a_complete_run_dir(finished_run, tiny_overrides,
                                                               tmp_path):
    result = finished_run(TINY)
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
    assert res["complete"] and res["versions"]["torch"] == torch.__version__
    summary = (result.run_dir / "summary.md").read_text()
    assert "| MA ↑ | GA ↑ | MF ↓ | GF ↓ |" in summary and "## What the base model knew" in summary
    # the probe: base row then one per evaluation; the base model is its own reference
    probe = res["probe"]
    assert [r["after"] for r in probe] == [-1, 0, 1, 2]
    assert probe[0]["sample_kl"] == pytest.approx(0, abs=1e-6) and probe[-1]["sample_kl"] > 0.1
    assert res["probe_summary"]["sample_nll_rise"] > 0.5  # fine-tuning moved it off its base
    # country QA by choice among 4: the base model is its own reference (retention 1)
    assert probe[0]["qa_known"] == round(40 * probe[0]["qa_choice_accuracy"])
    assert probe[0]["qa_retention"] in (None, 1.0)
    assert probe[0]["qa_n"] == 40 and len(json.loads(
        (result.run_dir / "probe_samples.json").read_text())) == 8

    # same config and seed → the same numbers (from a run trained here, the first perhaps by
    # another worker process)
    again = forgetless.run(None, tiny_overrides, run_dir=tmp_path / "b")
    assert again.results["matrices"] == res["matrices"]
    def measured(rows):
        return [{k: v for k, v in r.items() if k not in ("seconds", "sampling_s")} for r in rows]

    assert measured(again.results["probe"]) == measured(res["probe"])
    assert [x["epoch_losses"] for x in again.results["experiences"]] == \
        [x["epoch_losses"] for x in res["experiences"]]


def kill_after_first_checkpoint(overrides, out):
    """Start `forgetless run` and SIGKILL it once the first experience's checkpoint is written
    (in the middle of experience 1)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([FORGETLESS, "run", *sets(overrides), "--out", str(out), "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    results_path = out / "results.json"  # written right after the first checkpoint
    while not results_path.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = json.loads(results_path.read_text())
    assert not partial["complete"] and partial["completed_experiences"] < 3


def test_killed_run_resumes_to_the_same_results(finished_run, tiny_overrides, tmp_path):
    reference = finished_run(TINY).results

    out = tmp_path / "killed"
    kill_after_first_checkpoint(tiny_overrides, out)

    resumed = cli("run", *sets(tiny_overrides), "--out", str(out))
    assert "resuming" in resumed.stdout
    final = json.loads((out / "results.json").read_text())
    assert final["complete"]
    assert final["matrices"] == reference["matrices"]
    assert [x["epoch_losses"] for x in final["experiences"]] == \
        [x["epoch_losses"] for x in reference["experiences"]]
    # the probe after resume compares with the same base model and held-out samples
    for got, want in zip(final["probe"], reference["probe"], strict=True):
        assert got["after"] == want["after"] and got["qa_accuracy"] == want["qa_accuracy"]
        assert got["sample_nll"] == pytest.approx(want["sample_nll"], rel=1e-6)
        assert got["sample_kl"] == pytest.approx(want["sample_kl"], rel=1e-6, abs=1e-9)

    # a finished run re-run: nothing is trained again (the checkpoint is not rewritten)
    from forgetless.core.store import RunStore

    (_, last), = RunStore(out).checkpoints()
    written = (last / "weights.safetensors").stat().st_mtime_ns
    again = cli("run", *sets(tiny_overrides), "--out", str(out))
    assert "already complete; nothing to train" in again.stdout
    assert (last / "weights.safetensors").stat().st_mtime_ns == written
    assert json.loads((out / "results.json").read_text())["matrices"] == reference["matrices"]


def test_teacher_forced_scorer_agrees_with_generate(finished_run, tiny_overrides, tmp_path):
    tf = finished_run(TINY)  # teacher_forced is the default scorer
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


@pytest.fixture(scope="module")
def one_and_two_processes(tmp_path_factory):
    """One run, in one process and under torchrun with two: KIF (its importance comes from the
    step's synchronised gradients) with the probe and an lm-eval task (the main process runs
    the harness, the other receives its numbers). Shared by the tests below, each about one part
    of what must agree: the training, KIF's importance, the harness (three pairs of runs cost
    as much as this one pair three times; 2026-12-04)."""
    out = tmp_path_factory.mktemp("two-processes")
    overrides = [*TINY, f"output_dir={out / 'runs'}", TWO_PROCESS_EPOCHS, "method=kif",
                 "probe.lm_eval=[example]", "probe.lm_eval_limit=8"]
    one = forgetless.run(None, overrides, run_dir=out / "one").results
    return one, run_two_processes(overrides, out / "two")


def test_two_processes_compute_the_same_training(one_and_two_processes):
    one, two = one_and_two_processes
    assert two["run"]["processes"] == 2 and one["run"]["processes"] == 1
    # Same global batches, same loss normalisation: the first experience's loss curve matches
    # to float tolerance (later ones drift apart only by summation order; KIF's fusion comes
    # after the first experience, so it trains as seqft does).
    for a, b in zip(one["experiences"][0]["epoch_losses"], two["experiences"][0]["epoch_losses"],
                    strict=True):
        assert a == pytest.approx(b, rel=1e-3)
    assert two["matrices"]["train"][0][0] == one["matrices"]["train"][0][0]
    assert len(two["evaluations"]) == len(one["evaluations"])
    # The probe of the base model (before any training): samples split between the processes
    # and the sums reduced, QA questions split and the verdicts gathered — the same numbers.
    base_one, base_two = one["probe"][0], two["probe"][0]
    assert base_one["after"] == base_two["after"] == -1
    assert base_two["sample_nll"] == pytest.approx(base_one["sample_nll"], rel=1e-5)
    for key in ("qa_n", "qa_accuracy", "qa_choice_accuracy", "qa_known"):
        assert base_two[key] == base_one[key], key
    # every process's batches counted once: the same global batches, the same tokens
    assert [x["input_tokens"] for x in two["experiences"]] == \
        [x["input_tokens"] for x in one["experiences"]]


def test_two_processes_agree_on_kif_importance(one_and_two_processes):
    a, b = (r["experiences"][0]["methods"]["kif"]["importance"] for r in one_and_two_processes)
    assert a.keys() == b.keys()
    assert max(abs(a[k] - b[k]) for k in a) < 1e-3  # same gradients up to summation order


def test_two_processes_measure_the_harness_once_and_agree(one_and_two_processes):
    """Under torchrun the main process runs the harness and the other receives its numbers: the
    base model's are the single-process run's."""
    one, two = one_and_two_processes
    task = "forgetless_arithmetic"
    base_one, base_two = one["probe"][0]["lm_eval"][task], two["probe"][0]["lm_eval"][task]
    assert base_two["n"] == 8
    assert base_two == pytest.approx(base_one, rel=1e-6)


def test_lora_trains_only_adapters_and_resumes(tiny_overrides, tmp_path):
    overrides = [*tiny_overrides, "model.lora.enabled=true", "model.lora.r=4", "train.epochs=2",
                 "keep_checkpoints=all"]
    result = forgetless.run(None, overrides, run_dir=tmp_path / "lora")
    params = result.results["run"]["parameters"]
    assert 0 < params["trainable"] < params["total"] / 10
    assert result.results["complete"]
    # A kill during the second experience leaves the checkpoint after the first: resuming loads
    # the adapters from it (names must match the peft-wrapped model), trains the second
    # experience again and ends with the uninterrupted run's numbers.
    import shutil

    from forgetless.core.store import RunStore

    interrupted = tmp_path / "interrupted"
    shutil.copytree(tmp_path / "lora", interrupted)
    store = RunStore(interrupted)
    last, path = store.checkpoints()[-1]
    assert last == 2
    shutil.rmtree(path)  # keep_checkpoints: all left exp-000 and exp-001 beside it
    (interrupted / "results.json").unlink()
    again = forgetless.run(None, overrides, run_dir=interrupted)
    assert [x["experience"] for x in again.results["experiences"]] == [0, 1, 2]
    assert again.results["evaluations"] == result.results["evaluations"]


def test_local_model_directory(tmp_path, tiny_overrides):
    from forgetless.core.config import ModelConfig
    from forgetless.models.load import load_model, load_tokenizer

    cfg = ModelConfig(name="tiny-llama-2m-v4k")
    tok = load_tokenizer(cfg)
    load_model(cfg, tok, seed=0).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    overrides = [o for o in tiny_overrides if not o.startswith("model.name")]
    quick = [*overrides, "train.epochs=3", "data.n_experiences=2"]
    result = forgetless.run(None, [*quick, f"model.name={tmp_path / 'm'}"],
                            run_dir=tmp_path / "run").results
    # the directory holds exactly the built-in model's weights and tokenizer: the same run
    builtin = forgetless.run(None, [*quick, "model.name=tiny-llama-2m-v4k"],
                             run_dir=tmp_path / "builtin").results
    assert result["run"]["parameters"] == builtin["run"]["parameters"]
    assert result["evaluations"] == builtin["evaluations"]
    def timeless(rows):
        return [{k: v for k, v in r.items() if k not in ("seconds", "sampling_s")} for r in rows]

    assert timeless(result["probe"]) == timeless(builtin["probe"])


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


def test_two_processes_replay_the_same_data(tiny_overrides, tmp_path):
    """replay (batch mixing) + self-replay under 2 processes: every rank holds the same buffer
    and samples (the run checks digests across ranks), the same as one process would."""
    overrides = [*tiny_overrides, "method=replay+self_replay", "replay.buffer_size=8",
                 "replay.mixing=batch", "self_replay.length=16", "self_replay.buffer_steps=8",
                 "data.n_experiences=2", TWO_PROCESS_EPOCHS, "train.batch_size=8"]
    one = forgetless.run(None, overrides, run_dir=tmp_path / "one").results
    two = run_two_processes(overrides, tmp_path / "two")
    for a, b in zip(one["experiences"], two["experiences"], strict=True):
        assert a["methods"]["replay"]["digest"] == b["methods"]["replay"]["digest"]
        assert a["steps"] == b["steps"]
    # The first experience's samples come from the untrained model: the same with 1 and 2
    # processes. Later ones come from trained models that differ by rounding, so a token can
    # flip; that the 2 ranks agree with each other is checked inside the run (agreed_digest).
    first = [r["experiences"][0]["methods"]["self_replay"]["digest"] for r in (one, two)]
    assert first[0] == first[1]
    # Same gradients up to summation order: the loss curves agree to 1e-3 at first (a
    # mis-weighted term would show from the start). Rounding differences then grow step by step
    # at lr 3e-3 (up to 7 % by epoch 20 of the second experience, on main as well), so the rest
    # of the curve is held to 1e-2.
    for exp in (0, 1):
        a, b = one["experiences"][exp]["epoch_losses"], two["experiences"][exp]["epoch_losses"]
        print(exp, [round(abs(x - y) / x, 5) for x, y in zip(a, b, strict=True)])
        assert a[:5] == pytest.approx(b[:5], rel=1e-3)
        assert a == pytest.approx(b, rel=1e-2)


def test_bf16_mixed_precision_runs_the_forward_pass_under_autocast(tiny_overrides, tmp_path):
    quick = [*tiny_overrides, "data.n_experiences=1", "train.epochs=6", "probe.samples=0",
             "probe.qa=false"]
    fp32 = forgetless.run(None, quick, run_dir=tmp_path / "fp32")
    # the same process switches precision: accelerate's per-process state must not refuse it
    bf16 = forgetless.run(None, [*quick, "train.mixed_precision=bf16"], run_dir=tmp_path / "bf16")
    loss32 = np.array(fp32.results["experiences"][0]["epoch_losses"])
    loss16 = np.array(bf16.results["experiences"][0]["epoch_losses"])
    assert not np.array_equal(loss16, loss32), "bf16 autocast must change the arithmetic"
    # ...by rounding only: the same descent, epoch by epoch, to bf16's precision
    np.testing.assert_allclose(loss16, loss32, rtol=0.02)
    assert loss16[-1] < 0.85 * loss16[0]


def test_bf16_on_a_gpu_without_it_is_a_one_line_error_before_anything_is_written(
        tiny_overrides, tmp_path, monkeypatch):
    from forgetless.core.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    with pytest.raises(ConfigError, match=r"^train.mixed_precision=bf16: this GPU \(Tesla V100\)"):
        forgetless.run(None, [*tiny_overrides, "train.mixed_precision=bf16"], run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_name_swap_control_drops_a_model_that_stored_the_facts(tiny_overrides, tmp_path):
    result = forgetless.run(None, [*tiny_overrides, "data.n_experiences=1", "probe.samples=0",
                                   "probe.qa=false", "eval.controls=[name_swap]"],
                            run_dir=tmp_path / "swap")
    real = result.results["matrices"]["train"][0][0]
    swapped = result.results["control_matrices"]["name_swap"]["train"][0][0]
    print("train accuracy", real, "with names swapped", swapped)
    assert real >= 0.75  # it memorised its concepts' facts ...
    # ... so asked about another concept it mostly answers that one's facts (measured 1.0 →
    # 0.5 on the 2-layer TINY_MODEL and on tiny-llama-5m-v4k, 1.0 → 0.375 on tiny-llama-5m: the
    # tiny model also keys partly on the training wording, which names no concept)
    assert swapped <= real - 0.5
    assert {r["control"] for r in result.results["controls"]} == {"name_swap"}
    summary = (result.run_dir / "summary.md").read_text()
    assert "## Controls" in summary and "| name_swap | train |" in summary


@pytest.mark.parametrize("lora", [False, True])
def test_saved_model_scores_what_the_run_scored(tiny_overrides, tmp_path, lora):
    """`save_model`: <run dir>/model is a plain Hugging Face model (LoRA merged) that, loaded as
    another run's model, scores before any training exactly what the run scored at its end."""
    quick = [*tiny_overrides, "data.n_experiences=1", "train.epochs=6", "probe.samples=0",
             "probe.qa=false", *(["model.lora.enabled=true", "model.lora.r=4"] if lora else [])]
    first = forgetless.run(None, [*quick, "save_model=true", "eval.initial=true"],
                           run_dir=tmp_path / "a").results
    saved = tmp_path / "a" / "model"
    assert (saved / "model.safetensors").is_file() and not (saved / "adapter_config.json").exists()
    plain = [o for o in quick if not o.startswith(("model.", "train.epochs"))]
    second = forgetless.run(None, [*plain, f"model.name={saved}", "eval.initial=true",
                                   "train.epochs=1"], run_dir=tmp_path / "b").results

    def nll(results, after):
        return {(r["experience"], r["split"]): r["nll"] for r in results["evaluations"]
                if r["after"] == after}

    end, start = nll(first, 0), nll(second, -1)
    assert start == pytest.approx(end, abs=1e-5)
    assert all(end[k] < nll(first, -1)[k] - 0.1 for k in end)  # trained: not the base model


def test_probe_corpus_and_train_sample_cap(tiny_overrides, tmp_path):
    quick = [*tiny_overrides, "data.n_experiences=2", "train.epochs=3", "probe.samples=0",
             "probe.qa=false", "probe.corpus=world", "probe.corpus_documents=12",
             "eval.max_train_examples=3"]
    r = forgetless.run(None, quick, run_dir=tmp_path / "r").results
    assert {e["n"] for e in r["evaluations"] if e["split"] == "train"} == {3}
    assert {e["n"] for e in r["evaluations"] if e["split"] == "test"} == {8}
    nll = [p["corpus_nll"] for p in r["probe"]]
    assert len(nll) == 3 and all(0 < x < 20 for x in nll)
    assert r["probe_summary"]["corpus_nll_rise"] == pytest.approx(nll[-1] - nll[0])
    assert all(e["target_tokens"] > 0 for e in r["experiences"])
    from forgetless.report.summary import probe_line

    assert f"held-out text NLL {nll[0]:.3f} → {nll[-1]:.3f}" in probe_line(r)


def test_probe_by_default_measures_base_and_final_and_matches_a_hand_computation(tiny_overrides,
                                                                               tmp_path):
    """Default probe: the base model and the final one only. Its numbers are recomputed here
    from the saved final model and a fresh base model, one unpadded forward per sample or
    option: NLL, KL(base ‖ final) (the probe keeps the base log-probabilities instead of a
    second forward), exact match and 4-way choice (its prompts shared by their options)."""
    import torch.nn.functional as F

    from forgetless.data.collate import encode
    from forgetless.data.worldfacts import country_questions
    from forgetless.engine.trained import load_trained
    from forgetless.models.load import load_model

    quick = [o for o in tiny_overrides if not o.startswith("probe.every_evaluation")]
    quick += ["data.n_experiences=2", "train.epochs=8", "probe.qa_questions=12"]
    result = forgetless.run(None, quick, run_dir=tmp_path / "r")
    probe = result.results["probe"]
    assert [r["after"] for r in probe] == [-1, 1]
    cfg, tok, final, _ = load_trained(result.run_dir)
    base = load_model(cfg.model, tok, cfg.seed).eval()
    samples = torch.tensor(json.loads((result.run_dir / "probe_samples.json").read_text()))
    with torch.no_grad():
        logp = F.log_softmax(final(input_ids=samples).logits[:, :-1].float(), -1)
        base_logp = F.log_softmax(base(input_ids=samples).logits[:, :-1].float(), -1)
    nll = -logp.gather(-1, samples[:, 1:, None]).mean()
    kl = (base_logp.exp() * (base_logp - logp)).sum(-1).mean()
    assert probe[1]["sample_nll"] == pytest.approx(float(nll), rel=1e-4)
    assert probe[1]["sample_kl"] == pytest.approx(float(kl), rel=1e-3) and kl > 0.01
    # QA exact match: every answer token, then EOS, is the argmax (within the token budget)
    exact = 0
    for q in country_questions(12):
        enc = encode(q, tok, cfg.data.prompt_template, cfg.train.max_length)
        with torch.no_grad():
            lp = final(input_ids=torch.tensor([enc.input_ids])).logits[0].float()
        k = enc.n_answer
        guess = lp[len(enc.input_ids) - k - 1:-1].argmax(-1).tolist()
        exact += k - 1 < cfg.eval.max_new_tokens and guess == enc.input_ids[-k:]
    assert probe[1]["qa_accuracy"] == exact / 12, exact
    assert 0 <= probe[1]["qa_choice_accuracy"] <= 1 and probe[1]["qa_n"] == 12


def test_export_a_stage_merged_or_as_adapter(tiny_overrides, tmp_path, capsys):
    """`forgetless export --stage 0`: the model after experience 0 of a LoRA run, merged, scores
    as the run recorded; `--adapter` writes the peft adapter, which on the base model computes
    the same logits; bad requests are one line, exit 2, nothing written."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from forgetless.cli import main
    from forgetless.core.config import ModelConfig
    from forgetless.models.load import load_model, load_tokenizer

    quick = [*tiny_overrides, "data.n_experiences=2", "train.epochs=4", "probe.samples=0",
             "probe.qa=false"]
    lora = ["model.lora.enabled=true", "model.lora.r=4", "keep_checkpoints=all"]
    first = forgetless.run(None, [*quick, *lora], run_dir=tmp_path / "a").results
    assert main(["export", str(tmp_path / "a"), "--stage", "0", "--out", str(tmp_path / "m")]) == 0
    plain = [o for o in quick if not o.startswith(("model.", "train.epochs"))]
    second = forgetless.run(None, [*plain, f"model.name={tmp_path / 'm'}", "eval.initial=true",
                                   "train.epochs=1"], run_dir=tmp_path / "b").results
    recorded = {r["split"]: r["nll"] for r in first["evaluations"]
                if r["after"] == 0 and r["experience"] == 0}
    exported = {r["split"]: r["nll"] for r in second["evaluations"]
                if r["after"] == -1 and r["experience"] == 0}
    assert exported == pytest.approx(recorded, abs=1e-5)

    assert main(["export", str(tmp_path / "a"), "--stage", "0", "--adapter", "--out",
                 str(tmp_path / "ad")]) == 0
    assert (tmp_path / "ad" / "adapter_config.json").is_file()
    tok = load_tokenizer(ModelConfig(name=TINY_MODEL))
    base = load_model(ModelConfig(name=TINY_MODEL), tok, seed=0)
    with_adapter = PeftModel.from_pretrained(base, tmp_path / "ad").eval()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    ids = torch.tensor([tok("Question: what is it?")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(with_adapter(input_ids=ids).logits, merged(input_ids=ids).logits,
                              atol=1e-4)

    capsys.readouterr()
    for argv, message in [
        (["--stage", "7", "--out", str(tmp_path / "x")], "--stage 7: no checkpoint after that"),
        (["--out", str(tmp_path / "m")], "exists and is not an empty directory"),
    ]:
        assert main(["export", str(tmp_path / "a"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()
    full = forgetless.run(None, [*quick, "data.n_experiences=1", "train.epochs=1"],
                          run_dir=tmp_path / "full")
    assert full.results["complete"]
    assert main(["export", str(tmp_path / "full"), "--adapter", "--out", str(tmp_path / "y")]) == 2
    assert "there is no adapter to export" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_over_long_answers_are_warned_about_once(tiny_overrides, tmp_path, capsys):
    quick = [*tiny_overrides, "data.n_experiences=1", "train.epochs=1", "probe.samples=0",
             "probe.qa=false"]
    forgetless.run(None, [*quick, "train.max_length=4"], run_dir=tmp_path / "short")
    err = capsys.readouterr().err
    assert err.count("have an answer longer than train.max_length=4") == 1
    forgetless.run(None, quick, run_dir=tmp_path / "fine")
    assert "longer than train.max_length" not in capsys.readouterr().err


def test_bf16_base_with_fp32_adapters(tiny_overrides, tmp_path):
    """model.dtype=bf16 with LoRA: the frozen base stays bf16 through training, only the fp32
    adapters train and are checkpointed, the loss falls, and the probe's base model is the run's
    own weights with adapters off (KL 0 before training, where the adapters are still zero)."""
    from safetensors.torch import load_file

    from forgetless.engine.trained import load_trained

    result = forgetless.run(None, [*tiny_overrides, "model.name=tiny-llama-2m-v4k",
                                   "model.lora.enabled=true", "model.dtype=bf16", "train.lr=1e-2",
                                   "train.epochs=4", "probe.qa=false"], run_dir=tmp_path / "bf16")
    ckpt = next((result.run_dir / "checkpoints").iterdir())
    weights = load_file(str(ckpt / "weights.safetensors"))
    assert weights and all("lora_" in k and v.dtype == torch.float32 for k, v in weights.items())
    losses = result.results["experiences"][0]["epoch_losses"]
    assert losses[-1] < losses[0]
    base_row = next(r for r in result.results["probe"] if r["after"] < 0)
    assert base_row["sample_kl"] == pytest.approx(0.0, abs=1e-6)
    _, _, model, _ = load_trained(result.run_dir)
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.bfloat16}


def test_chat_template_run_learns_and_records_the_prompt(tiny_overrides, tmp_path, capsys):
    """data.chat_template=auto: the questions are user turns of the embedded tokenizer's template
    in training, scoring and `data --examples`; the run learns, the run directory keeps the config
    as given and results.json the rendered prompt."""
    from forgetless.cli import main

    overrides = [*tiny_overrides, "data.chat_template=auto", "probe.samples=0", "probe.qa=false"]
    result = forgetless.run(None, overrides, run_dir=tmp_path / "chat")
    # The untrained tiny model answers none of these exactly. With the template's extra tokens it
    # learns less than with the plain one (2026-11-30, this stream and seed: LA 0.46 with fused
    # AdamW, 0.54 with the per-tensor loop; plain template 0.92 and 0.79), so "learns" is > 0.25.
    assert result.metrics["train"]["LA"] > 0.25
    template = result.results["config"]["data"]["prompt_template"]
    assert template.endswith("<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
    assert "chat_template: auto" in (tmp_path / "chat" / "config.yaml").read_text()
    prediction = json.loads((tmp_path / "chat" / "predictions" / "after-000.jsonl")
                            .read_text().splitlines()[0])
    assert prediction["question"] and "<|im_start|>" not in prediction["question"]
    assert main(["data", "--examples", "--json", *(f"--set={o}" for o in overrides)]) == 0
    first = json.loads(capsys.readouterr().out)[0]
    assert first["prompt"].endswith(f"user\n{first['question']}<|im_end|>\n<|im_start|>assistant\n")
    # resumable as any run: the same config finds its directory complete
    again = forgetless.run(None, overrides, run_dir=tmp_path / "chat")
    assert again.results["matrices"] == result.results["matrices"]


def test_a_multi_turn_conversation_trains_on_its_rendered_turns(tmp_path, capsys, monkeypatch):
    """sharegpt rows with several turns: the run encodes each turn under its own role header
    (the tokens it trained are those of the rendered conversations), trains on the earlier
    assistant turn too with `data.history_loss`, and `data --examples` shows the same prompt."""
    from forgetless.cli import main
    from forgetless.core.config import load_config
    from forgetless.data.chat import conversations_rendered, prompt_template_for
    from forgetless.data.collate import encode_all
    from forgetless.data.stream import build_stream
    from forgetless.models.load import load_tokenizer

    rows = [{"conversations": [{"from": "human", "value": f"Pick a colour for box {i}."},
                               {"from": "gpt", "value": "Which shade?"},
                               {"from": "human", "value": "Any."},
                               {"from": "gpt", "value": ["red", "blue"][i % 2]}]} for i in range(6)]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = ["model.name=tiny-llama-2m-v4k", "data.source=hf", f"data.datasets=[{path}]",
                 "data.chat_template=auto", "data.history_loss=true", "train.epochs=2",
                 "train.batch_size=1", "probe.samples=0", "probe.qa=false", "eval.initial=false",
                 "landscape.record=true", "landscape.hessian_iters=0"]
    result = forgetless.run(None, overrides, run_dir=tmp_path / "run")
    cfg = load_config(None, overrides)
    tok = load_tokenizer(cfg.model)
    stream = conversations_rendered(build_stream(cfg.data), cfg.data, tok)
    train = stream.experiences[0].train
    assert all("<|im_start|>assistant\nWhich shade?<|im_end|>" in ex.prompt for ex in train)
    rendered = encode_all(train, tok, prompt_template_for(cfg.data, tok), cfg.train.max_length)
    assert result.results["experiences"][0]["input_tokens"] == 2 * sum(
        len(e.input_ids) for e in rendered)
    # targets: each answer with its end of turn, and "Which shade?<|im_end|>\n" before it
    trained = encode_all(train, tok, prompt_template_for(cfg.data, tok), cfg.train.max_length,
                         history=True)
    assert all(tok.decode([e.input_ids[j] for j in e.history]) == "Which shade?<|im_end|>\n"
               for e in trained)
    assert result.results["experiences"][0]["target_tokens"] == 2 * sum(
        e.n_targets for e in trained) > 2 * sum(e.n_answer for e in trained)
    assert main(["data", "--examples", "--json", *(f"--set={o}" for o in overrides)]) == 0
    shown = {x["uid"]: x["prompt"] for x in json.loads(capsys.readouterr().out)}
    assert all(shown[ex.uid] == ex.prompt for ex in train)
    # `forgetless landscape` encodes the conversations as the run did for its flatness record
    from forgetless.studies.landscape import run_landscape

    recorded = result.results["flatness"][0]
    row = run_landscape(result.run_dir, None, None, "train", points=3, radius=0.1, rho=0.05,
                        ascent_steps=3, hessian_iters=0, examples=32, seed=0, quiet=True)
    assert row["loss"] == pytest.approx(recorded["loss"], rel=1e-5)
    assert row["sharpness"] == pytest.approx(recorded["sharpness"], rel=1e-4, abs=1e-7)
    # the recovery probe, added to the finished run, tunes as the run trained: the earlier
    # assistant turn is a target there too
    from forgetless.engine import recovery

    tuned, real = [], recovery.train_experience

    def spy(ctx, methods, owner, encoded, **kwargs):
        tuned.append(list(encoded))
        return real(ctx, methods, owner, encoded, **kwargs)

    monkeypatch.setattr(recovery, "train_experience", spy)
    again = forgetless.run(None, [*overrides, "eval.recovery.enabled=true",
                                  "eval.recovery.control=false"], run_dir=tmp_path / "run")
    assert len(tuned) == 1 and again.results["recovery"]["rows"]
    assert tuned[0] and all(tok.decode([e.input_ids[j] for j in e.history])
                            == "Which shade?<|im_end|>\n" for e in tuned[0])


def test_training_throughput_counts_every_real_token_and_the_padding(tmp_path, monkeypatch):
    """input tokens = epochs × the training examples' lengths; one row per batch has no padding;
    MFU = 6 × parameters × tokens/s over the peak given."""
    from forgetless.core.config import load_config
    from forgetless.data.collate import encode_all
    from forgetless.data.stream import build_stream
    from forgetless.models.load import load_tokenizer

    monkeypatch.setenv("FORGETLESS_PEAK_TFLOPS", "0.5")
    base = ["model.name=tiny-llama-2m-v4k", "data.concepts_per_experience=2", "train.epochs=3",
            "probe.samples=0", "probe.qa=false", "eval.initial=false"]
    cfg = load_config(None, base)
    tok = load_tokenizer(cfg.model)
    lengths = [sum(len(e.input_ids) for e in encode_all(exp.train, tok, cfg.data.prompt_template,
                                                        cfg.train.max_length))
               for exp in build_stream(cfg.data).experiences]
    one = forgetless.run(None, [*base, "train.batch_size=1"], run_dir=tmp_path / "one")
    assert [x["input_tokens"] for x in one.results["experiences"]] == [3 * n for n in lengths]
    assert [x["padded_positions"] for x in one.results["experiences"]] == [3 * n for n in lengths]
    t = one.results["timings"]
    assert t["train_padding_share"] == 0.0
    assert t["train_tokens_per_s"] == pytest.approx(3 * sum(lengths) / t["train_s"])
    total = one.results["run"]["parameters"]["total"]
    assert t["mfu"] == pytest.approx(6 * total * t["train_tokens_per_s"] / 0.5e12)
    four = forgetless.run(None, [*base, "train.batch_size=4"], run_dir=tmp_path / "four")
    x = four.results["experiences"][0]
    assert x["input_tokens"] == 3 * lengths[0] < x["padded_positions"]
    assert "tokens/s, padding" in (four.run_dir / "summary.md").read_text()


def test_a_compiled_model_trains_and_scores_as_the_uncompiled_one(tmp_path):
    """train.compile captures the forward with torch.compile; with the "eager" backend (capture,
    the same kernels) every loss and score is bitwise the uncompiled run's, and the model keeps
    its parameter names (its checkpoints are any run's). Inductor's own kernels are
    measured in benchmarks/, not here: on a CPU they take tens of seconds to compile."""
    from torch._dynamo.utils import counters

    base = ["model.name=tiny-llama-2m-v4k", "data.n_experiences=2",
            "data.concepts_per_experience=2", "train.epochs=2", "probe.samples=0",
            "probe.qa=false"]
    plain = forgetless.run(None, base, run_dir=tmp_path / "plain").results
    captured = counters["frames"]["ok"]
    # eval.batch_size auto rides along: on a CPU it is the default 32, recorded
    compiled = forgetless.run(None, [*base, "train.compile=eager", "eval.batch_size=auto"],
                              run_dir=tmp_path / "compiled").results
    assert compiled["run"]["eval_batch_size"] == plain["run"]["eval_batch_size"] == 32
    # and the machine the numbers came from
    assert plain["run"]["machine"] == {
        "cpu": plain["run"]["machine"]["cpu"], "threads": torch.get_num_threads(), "gpu": None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    assert counters["frames"]["ok"] > captured  # dynamo did capture frames
    assert compiled["matrices"] == plain["matrices"]
    assert ([x["epoch_losses"] for x in compiled["experiences"]]
            == [x["epoch_losses"] for x in plain["experiences"]])
    from safetensors.torch import load_file

    def checkpoint(run):
        return load_file(tmp_path / run / "checkpoints" / "exp-001" / "weights.safetensors")

    names = set(checkpoint("compiled"))
    assert names == set(checkpoint("plain")) and not any("_orig_mod" in n for n in names)


def test_results_name_the_commit_the_run_started_with(tmp_path, monkeypatch):
    """A commit made while a run goes (a long study, a session editing the code) is not the code
    the run loaded: results.json names the commit checked out when the run started."""
    from forgetless.core import results
    from forgetless.core.config import load_config
    from forgetless.core.events import Callback
    from forgetless.engine.experiment import run_experiment

    head = {"rev-parse": "a" * 40}
    monkeypatch.setattr(results, "_git", lambda *args: head.get(args[0], ""))
    results.versions.cache_clear()

    class CommitMeanwhile(Callback):
        def on_run_start(self, event):
            head["rev-parse"] = "b" * 40

    try:
        cfg = load_config(None, ["model.name=tiny-llama-2m-v4k", "data.n_experiences=2",
                                 "data.concepts_per_experience=2", "train.epochs=1",
                                 "probe.samples=0", "probe.qa=false"])
        done = run_experiment(cfg, run_dir=tmp_path / "r", callbacks=[CommitMeanwhile()])
    finally:
        results.versions.cache_clear()  # the other tests see the real checkout again
    assert done.results["versions"]["git"] == "a" * 40
