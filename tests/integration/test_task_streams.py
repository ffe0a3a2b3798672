"""Task streams end to end on the tiny model: class-incremental forgetting, choice vs exact match,
multitask as the joint upper bound."""

import json

import pytest

import forgetless
from forgetless.report.compare import run_row
from tests.conftest import TINY_MODEL
from tests.datafiles import write_classification

pytestmark = pytest.mark.integration

CLASS_IL = [
    f"model.name={TINY_MODEL}", "train.epochs=15", "train.lr=3e-3", "train.batch_size=8",
    "train.max_length=48", "probe.samples=0", "probe.qa=false",
    "data.source=classification", "data.tasks=[ag_news, yelp]", "data.scenario=class",
]


@pytest.fixture(scope="module")
def csv_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("csv")
    for name in ("ag_news", "yelp"):
        write_classification(root, name, n_train=4, n_test=2)
    return root


@pytest.fixture(scope="module")
def runs(csv_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {scorer: forgetless.run(None, [*CLASS_IL, f"data.path={csv_root}",
                                          f"eval.scorer={scorer}"], run_dir=out / scorer)
            for scorer in ("choice", "teacher_forced")}


def predictions(result, after):
    path = result.run_dir / "predictions" / f"after-{after:03d}.jsonl"
    return {(r["uid"]): r for r in map(json.loads, path.read_text().splitlines())}


def test_class_incremental_run_forgets_earlier_classes(runs):
    r = runs["choice"]
    R = r.results["matrices"]["train"]
    print("class-IL choice matrix (train):", R, "test:", r.results["matrices"]["test"])
    # measured on the 2-layer TINY_MODEL (2026-12-02): AG News 100 % right after learning it,
    # Yelp 100 %, then AG 0 % (the same on tiny-llama-5m-v4k; on tiny-llama-5m AG News 75 %)
    assert R[0][0] >= 0.7 and R[1][1] >= 0.9  # each data set's classes are learned
    assert R[1][0] <= R[0][0] - 0.5  # and AG News is forgotten once Yelp's labels arrive
    after1 = predictions(r, 1)
    wrong_ag = [p for p in after1.values() if p["experience"] == 0 and not p["correct"]]
    # forgotten examples are answered with the newer task's labels (the class-IL failure mode)
    review = {"terrible", "bad", "okay", "good", "great"}
    assert sum(p["prediction"] in review for p in wrong_ag) >= 0.8 * len(wrong_ag)


def test_choice_agrees_with_exact_match_where_both_apply(runs):
    for after in (0, 1):
        em, ch = predictions(runs["teacher_forced"], after), predictions(runs["choice"], after)
        assert em.keys() == ch.keys()
        both = [u for u in em if em[u]["correct"]]
        agree = sum(ch[u]["correct"] for u in both)
        print(f"after {after}: exact match right on {len(both)}, choice right on {agree} of them; "
              f"choice right overall {sum(p['correct'] for p in ch.values())}/{len(ch)}")
        # an answer greedy decoding reproduces exactly is the likeliest candidate
        assert agree == len(both) and len(both) > 0


def test_multitask_is_the_joint_upper_bound(csv_root, runs, tmp_path):
    mt = forgetless.run(None, [*CLASS_IL, f"data.path={csv_root}", "eval.scorer=choice",
                               "method=multitask"], run_dir=tmp_path / "mt")
    res = mt.results
    assert [x["n_train_examples"] for x in res["experiences"]] == [0, 16 + 20]
    R = res["matrices"]["train"]
    assert R[0] == [None, None]  # no evaluation before the last experience
    print("multitask", mt.headline, "sequential", runs["choice"].headline)
    assert mt.headline["MA"] >= runs["choice"].headline["MA"] + 0.3
    assert mt.headline["MF"] is None  # nothing to forget along
    # nor a learning accuracy: the diagonal is only the last experience
    assert res["metrics"]["train"]["LA"] is None and res["metrics"]["test"]["LA"] is None
    assert run_row("mt", res)["LA_train"] is None
    assert run_row("seq", runs["choice"].results)["LA_train"] is not None
