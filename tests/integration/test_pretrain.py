"""`forgetless pretrain` at a toy size: phase A learns domain A, phase B raises its loss, phase A
is shared between runs that differ only in phase B, and the same config gives the same numbers."""

import pytest

from forgetless.core.errors import ConfigError
from forgetless.studies.pretraining import load_pretrain_config, run_pretrain

pytestmark = pytest.mark.integration

TOY = ["size=0.3m", "vocab_size=300", "seq_len=16", "batch_size=8", "tokens_per_param=0.1",
       "finetune_tokens=4096", "eval_sequences=8", "eval_points=2", "replay_samples=32",
       "lr=3e-3", "finetune_lr=1e-3"]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    root = tmp_path_factory.mktemp("pt")
    return root, run_pretrain(load_pretrain_config(None, TOY), root / "plain", quiet=True)


def test_phase_a_learns_and_phase_b_forgets(plain):
    _, r = plain
    a = r["phase_a"]
    print({k: r[k] for k in ("loss_a_before", "loss_a_after", "loss_b_before", "loss_b_after")})
    assert a["steps"] == -(-int(0.1 * a["parameters"]) // (8 * 16))
    assert r["loss_a_before"] < 4.0  # well below uniform over 300 tokens (ln 300 = 5.70)
    assert r["loss_b_after"] < r["loss_b_before"] - 0.5  # domain B is being learned ...
    assert r["loss_a_rise"] > 0.2  # ... and domain A forgotten
    assert [p["step"] for p in r["phase_b"]["curve"]] == [0, 11, 21, 32]


def test_self_replay_shares_phase_a_and_forgets_less(plain, capsys):
    root, r = plain
    cfg = load_pretrain_config(None, [*TOY, "self_replay=0.5"])
    replay = run_pretrain(cfg, root / "replay")
    assert "phase A done before" in capsys.readouterr().out
    assert replay["model_a"] == r["model_a"] and replay["loss_a_before"] == r["loss_a_before"]
    print("rise", r["loss_a_rise"], "with self-replay", replay["loss_a_rise"])
    assert replay["loss_a_rise"] < r["loss_a_rise"]


def test_same_config_same_numbers(plain, tmp_path):
    _, r = plain
    again = run_pretrain(load_pretrain_config(None, TOY), tmp_path / "again", quiet=True)
    assert again["phase_b"]["curve"] == r["phase_b"]["curve"]
    assert again["phase_a"]["loss_a"] == r["phase_a"]["loss_a"]


def test_bad_domain_is_one_line():
    with pytest.raises(ConfigError, match=r"domain_b: 'nowhere.txt' is neither a built-in domain"):
        load_pretrain_config(None, ["domain_b=nowhere.txt"])
