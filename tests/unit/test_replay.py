from types import SimpleNamespace

import pytest

from forgetless.core.config import load_config
from forgetless.core.errors import ConfigError
from forgetless.data.types import Example, Experience
from forgetless.methods.replay import Replay, ReplayConfig


def fake_ctx(seed):
    return SimpleNamespace(seed=seed, agreed_digest=lambda what, value: str(hash(str(value))))


def experience(index, concepts, per_concept):
    train = [Example(f"{c}/{k}", f"q {c} {k}", "a", c) for c in concepts for k in range(per_concept)]
    return Experience(index, train, [], list(concepts))


def fill(selection, size, experiences):
    method = Replay(ReplayConfig(buffer_size=size, selection=selection))
    ctx = fake_ctx(0)
    for exp in experiences:
        method.after_experience(ctx, exp)
    return method


def test_balanced_gives_every_concept_an_equal_share():
    m = fill("balanced", 6, [experience(0, "ab", 5), experience(1, "cde", 5)])
    counts = {c: sum(ex.concept == c for ex in m.buffer) for c in "abcde"}
    assert sorted(counts.values()) == [1, 1, 1, 1, 2]  # 6 = 5 × 1 + 1 to a random concept


def test_balanced_budget_below_concepts_still_admits_new_concepts():
    # 4 slots, 3 concepts per experience: after 3 experiences 9 concepts compete for 4 slots
    m = fill("balanced", 4, [experience(i, [f"c{i}{k}" for k in range(3)], 2) for i in range(3)])
    assert len(m.buffer) == 4 and len({ex.concept for ex in m.buffer}) == 4
    admitted = set()
    for seed in range(10):
        method = Replay(ReplayConfig(buffer_size=4))
        for i in range(3):
            method.after_experience(fake_ctx(seed), experience(i, [f"c{i}{k}" for k in range(3)], 2))
        admitted |= {ex.concept[1] for ex in method.buffer}
    assert admitted == {"0", "1", "2"}  # the newest experience is not locked out


def test_balanced_shrinks_old_concepts_to_a_prefix():
    m = fill("balanced", 4, [experience(0, "ab", 4)])
    before = [ex.uid for ex in m.buffer if ex.concept == "a"]
    m.after_experience(fake_ctx(0), experience(1, "cd", 4))
    after = [ex.uid for ex in m.buffer if ex.concept == "a"]
    assert after == before[: len(after)] and len(after) == 1


def test_reservoir_is_a_uniform_sample_of_everything_seen():
    exps = [experience(i, [f"c{i}"], 50) for i in range(4)]
    shares = [0] * 4
    for seed in range(40):
        m = Replay(ReplayConfig(buffer_size=20, selection="reservoir"))
        for exp in exps:
            m.after_experience(fake_ctx(seed), exp)
        assert len(m.buffer) == 20 and m.seen == 200
        for ex in m.buffer:
            shares[int(ex.concept[1:])] += 1
    assert all(150 <= s <= 250 for s in shares), shares  # 200 expected for each experience


def test_random_and_resume_state():
    m = fill("random", 5, [experience(0, "ab", 3), experience(1, "c", 3)])
    assert len(m.buffer) == 5
    again = Replay(ReplayConfig(buffer_size=5, selection="random"))
    again.load_state_dict(m.state_dict())
    assert again.buffer == m.buffer


def test_merge_into_training_set():
    m = fill("balanced", 2, [experience(0, "a", 3)])
    new = experience(1, "b", 2)
    merged = m.train_examples(fake_ctx(0), new, new.train)
    assert len(merged) == 4 and merged[:2] == new.train


@pytest.mark.parametrize("method, override, needle", [
    ("replay", "replay.buffer_size=-1",
     "replay.buffer_size: Input should be greater than or equal to 0"),
    ("replay", "replay.selection=fifo", "replay.selection"),
    ("replay", "replay.size=3", "replay.size: unknown key"),
    ("lwf", "lwf.temperature=0", "lwf.temperature: Input should be greater than 0"),
    ("lwf", "lwf.alpha=-1", "lwf.alpha: Input should be greater than or equal to 0"),
    ("ewc", "ewc.lam=-1", "ewc.lam: Input should be greater than or equal to 0"),
    ("replay", "replay.mixing=interleave", "replay.mixing"),
    ("replay", "replay.batch_share=1", "replay.batch_share: Input should be less than 1"),
    ("self_replay", "self_replay.weight=-1",
     "self_replay.weight: Input should be greater than or equal to 0"),
    ("self_replay", "self_replay.loss=mse", "self_replay.loss"),
    ("self_replay", "self_replay.length=1", "self_replay.length"),
    ("self_replay", "self_replay.rows=0", "self_replay.rows"),
    ("lamol", "lamol.sampling_ratio=-0.1", "lamol.sampling_ratio"),
    ("lamol", "lamol.top_k=-1", "lamol.top_k"),
])
def test_bad_method_options(method, override, needle):
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"method={method}", override])
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_ewc_options_and_composition():
    cfg = load_config(None, ["method=replay+ewc", "ewc.lam=10", "replay.buffer_size=4"])
    assert cfg.method_names == ["replay", "ewc"] and cfg.method_config("ewc").lam == 10


def test_self_replay_replace_weight_is_a_share():
    with pytest.raises(ConfigError, match="self_replay: weight is the share of rows replaced"):
        load_config(None, ["method=self_replay", "self_replay.loss=replace"])


def test_probe_options_are_checked():
    with pytest.raises(ConfigError, match="probe.sample_length"):
        load_config(None, ["probe.sample_length=1"])
    with pytest.raises(ConfigError, match="probe.samples"):
        load_config(None, ["probe.samples=-2"])
