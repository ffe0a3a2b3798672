"""`forgetless pretrain` at a toy size, on the engine's loop: phase A learns domain A, phase B
raises its loss, self-replay keeps it lower, phase A is shared between runs that differ only in
phase B, and the same config gives the same numbers."""

import json

import pytest
from transformers import AutoModelForCausalLM

from forgetless.core.errors import ConfigError
from forgetless.studies.pretraining import load_pretrain_config, run_pretrain

pytestmark = pytest.mark.integration

TOY = ["size=0.3m", "vocab_size=300", "seq_len=16", "join=1", "batch_size=8",
       "tokens_per_param=0.1", "finetune_tokens=4096", "eval_documents=32", "eval_points=2",
       "lr=3e-3", "finetune_lr=1e-3"]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    root = tmp_path_factory.mktemp("pt")
    return root, run_pretrain(load_pretrain_config(None, TOY), root / "plain", quiet=True)


def test_phase_a_learns_and_phase_b_forgets(plain):
    _, r = plain
    a = r["phase_a"]
    print({k: r[k] for k in ("loss_a_before", "loss_a_after", "loss_b_before", "loss_b_after")})
    # the token budget is met within one batch of the estimate
    assert abs(a["tokens"] - 0.1 * a["parameters"]) < 8 * 16
    assert r["loss_a_before"] < 2.5  # far below uniform over 300 tokens (ln 300 = 5.70)
    assert r["loss_b_after"] < r["loss_b_before"] - 2.0  # domain B is being learned ...
    assert r["loss_a_rise"] > 1.0  # ... and domain A forgotten
    curve = r["phase_b"]["curve"]
    assert len(curve) == 4 and curve[0]["step"] == 0 and curve[-1]["step"] == r["phase_b"]["steps"]
    assert [p["loss_a"] for p in curve] == sorted(p["loss_a"] for p in curve)  # monotone here


def test_phases_are_engine_runs_and_phase_a_is_a_model(plain):
    root, r = plain
    phase_b = json.loads((root / "plain" / "phase_b" / "results.json").read_text())
    assert phase_b["method"] == "seqft" and len(phase_b["matrices"]["test"]) == 3
    # the probe's held-out domain-A text before phase B is phase A's own held-out test split
    assert phase_b["probe"][0]["corpus_nll"] == pytest.approx(r["phase_a"]["loss_a"], abs=0.05)
    model = AutoModelForCausalLM.from_pretrained(r["model_a"])
    assert sum(p.numel() for p in model.parameters()) == r["phase_a"]["parameters"]


def test_self_replay_shares_phase_a_and_forgets_less(plain, capsys):
    root, r = plain
    cfg = load_pretrain_config(None, [*TOY, "self_replay=0.5"])
    replay = run_pretrain(cfg, root / "replay")
    assert "(done before)" in capsys.readouterr().out
    assert replay["model_a"] == r["model_a"] and replay["loss_a_before"] == r["loss_a_before"]
    # replaced rows: the same steps as the plain arm, half of them domain B
    assert replay["phase_b"]["steps"] == pytest.approx(r["phase_b"]["steps"], abs=3)
    print("rise", r["loss_a_rise"], "with self-replay", replay["loss_a_rise"])
    assert replay["loss_a_rise"] < r["loss_a_rise"] / 3
    phase_b = json.loads((root / "replay" / "phase_b" / "results.json").read_text())
    assert phase_b["method"] == "self_replay"
    assert phase_b["experiences"][0]["methods"]["self_replay"]["samples"] > 0


def test_same_config_same_numbers(plain, tmp_path):
    _, r = plain
    again = run_pretrain(load_pretrain_config(None, TOY), tmp_path / "again", quiet=True)
    assert again["phase_b"]["curve"] == r["phase_b"]["curve"]
    assert again["phase_a"]["loss_a"] == r["phase_a"]["loss_a"]


def test_bad_domain_is_one_line():
    with pytest.raises(ConfigError, match=r"domain_b: 'nowhere.txt' is neither a built-in domain"):
        load_pretrain_config(None, ["domain_b=nowhere.txt"])
