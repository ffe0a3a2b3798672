import pytest

from forgetless.core.diagnostics import comparison_notes, diagnose
from forgetless.core.errors import ConfigError
from forgetless.data.concepts import concept_stream
from forgetless.data.types import Example, Experience, Stream
from forgetless.eval.controls import derangement, name_swapped


def test_derangement_moves_every_name_and_is_seeded():
    names = [f"n{i}" for i in range(7)]
    d = derangement(names, 3)
    assert sorted(d) == sorted(d.values()) == names
    assert all(a != b for a, b in d.items())
    assert d == derangement(names, 3) and d != derangement(names, 4)


def test_name_swap_asks_about_another_concept_of_the_same_experience():
    stream = concept_stream(2, 8, 2, seed=0)
    swapped = name_swapped(stream, seed=0)
    for exp in stream.experiences:
        for split in ("train", "test"):
            got = swapped[(exp.index, split)]
            assert len(got) == len(exp.split(split))
            for orig, new in zip(exp.split(split), got, strict=True):
                assert orig.concept not in new.question and new.answer == orig.answer
                other = next(c for c in exp.concepts if c in new.question)
                assert other != orig.concept


def test_name_swap_needs_questions_that_name_their_concept():
    ex = Example("u", "Is this spam?", "yes", "yes", "")
    with pytest.raises(ConfigError, match="name_swap needs questions that name their concept"):
        name_swapped(Stream("s", [Experience(0, [ex], [ex])]), seed=0)


def results(la=0.9, losses=(2.0, 1.0), oracle=0.1, mf=0.3):
    return {"metrics": {"train": {"LA": la}}, "headline": {"MF": mf}, "audit":
            {"relation_majority_experience": oracle},
            "experiences": [{"experience": 0, "epoch_losses": list(losses)}]}


def test_diagnostics_name_the_weakness_and_the_setting():
    assert diagnose(results()) == []
    (low,) = diagnose(results(la=0.239, mf=0.108))
    assert "learning accuracy (train) is 23.9 %" in low and "MF 10.8" in low
    assert "train.epochs" in low
    (rise,) = diagnose(results(losses=(1.0, 1.5)))
    assert "loss rose (1.000 → 1.500); lower train.lr" in rise
    (nan,) = diagnose(results(losses=(1.0, float("nan"))))
    assert "not finite" in nan
    (oracle,) = diagnose(results(oracle=0.81))
    assert "right on 81.0 % of the test questions (forgetless" in oracle
    both = results(oracle=0.1)
    both["audit"]["train_relation_majority_experience"] = 0.2  # the memorisation metrics' floor
    (oracle,) = diagnose(both)
    assert "right on 10.0 % of the test questions and 20.0 % of the training questions" in oracle
    assert "anecdote" in comparison_notes(2, None, None, "x")[0]
    assert "includes 0" in comparison_notes(3, -0.1, 0.2, "x")[0]
    assert comparison_notes(3, 0.1, 0.2, "x") == []
    # a mean difference of 0.01 with a pair sd of 0.01 (shown as points: 1.0 and 1.0): an
    # interval of ±1.0 points needs 7 seeds (t(0.975, 6)/√7 = 0.925, t(0.975, 5)/√6 = 1.049)
    (plan,) = comparison_notes(3, -0.02, 0.01, "x", mean=-0.01, sd=0.01, scale=100)
    assert plan.endswith("add seeds: at this spread (sd 1.0 a pair, taken as measured), an "
                         "interval of ±1.0, the size of the mean difference, needs about 7 seeds")
    # no difference to size, or no spread: the plain advice
    assert comparison_notes(3, -0.1, 0.1, "x", mean=0.0, sd=0.1, scale=100)[0].endswith(
        "add seeds")
    assert comparison_notes(3, -0.1, 0.1, "x", mean=0.05, sd=None)[0].endswith("add seeds")
