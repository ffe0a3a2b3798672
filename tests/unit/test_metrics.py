import math

import numpy as np
import pytest

from forgetless.core import metrics

nan = math.nan
# Hand-computed case: 3 experiences.
R = np.array([
    [0.9, nan, nan],
    [0.6, 0.8, nan],
    [0.5, 0.4, 0.7],
])


def test_average_accuracy():
    assert metrics.average_accuracy(R) == pytest.approx((0.5 + 0.4 + 0.7) / 3)


def test_average_incremental_accuracy():
    expected = (0.9 + (0.6 + 0.8) / 2 + (0.5 + 0.4 + 0.7) / 3) / 3
    assert metrics.average_incremental_accuracy(R) == pytest.approx(expected)


def test_learning_accuracy_is_the_diagonal():
    assert metrics.learning_accuracy(R) == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    R4 = np.array([[nan, nan], [0.6, 0.8]])  # row 0 skipped (eval.every): only R[1][1]
    assert metrics.learning_accuracy(R4) == pytest.approx(0.8)


def test_forgetting_uses_best_earlier_score():
    # j=0: max(0.9, 0.6) - 0.5 = 0.4 ; j=1: max(0.8) - 0.4 = 0.4
    assert metrics.forgetting(R) == pytest.approx(0.4)
    per = metrics.forgetting_per_experience(R)
    assert per[0] == pytest.approx(0.4) and per[1] == pytest.approx(0.4) and per[2] is None


def test_relative_forgetting_is_each_drop_over_its_best_score():
    # j=0: 0.4 / 0.9 ; j=1: 0.4 / 0.8 — the same F, a larger share where less was learned
    assert metrics.relative_forgetting(R) == pytest.approx((0.4 / 0.9 + 0.4 / 0.8) / 2)
    # an experience never learned (best 0) has nothing to lose: skipped, not a division by 0
    R3 = np.array([[0.0, nan, nan], [0.0, 0.5, nan], [0.0, 0.25, 0.7]])
    assert metrics.relative_forgetting(R3) == pytest.approx(0.5)
    assert metrics.relative_forgetting(np.array([[0.9]])) is None


def test_forgetting_when_a_later_score_beats_the_diagonal():
    R2 = np.array([[0.2, nan], [0.5, 0.9]])
    # improved on experience 0: forgetting is negative (backward transfer positive)
    assert metrics.forgetting(R2) == pytest.approx(-0.3)
    assert metrics.backward_transfer(R2) == pytest.approx(0.3)


def test_backward_transfer():
    # (0.5 - 0.9 + 0.4 - 0.8) / 2
    assert metrics.backward_transfer(R) == pytest.approx(-0.4)


def test_forward_transfer_needs_initial_and_next():
    assert metrics.forward_transfer(R, None) is None
    full = np.array([
        [0.9, 0.3, 0.2],
        [0.6, 0.8, 0.25],
        [0.5, 0.4, 0.7],
    ])
    b = np.array([0.1, 0.1, 0.2])
    # ((0.3 - 0.1) + (0.25 - 0.2)) / 2
    assert metrics.forward_transfer(full, b) == pytest.approx(0.125)


def test_skipped_rows_with_eval_every():
    # eval.every=2 over 3 experiences: row 0 not evaluated.
    R3 = np.array([
        [nan, nan, nan],
        [0.6, 0.8, nan],
        [0.5, 0.4, 0.7],
    ])
    assert metrics.average_incremental_accuracy(R3) == pytest.approx(
        ((0.6 + 0.8) / 2 + (0.5 + 0.4 + 0.7) / 3) / 2)
    # j=0: only row 1 is earlier → 0.6 - 0.5 ; j=1: 0.8 - 0.4
    assert metrics.forgetting(R3) == pytest.approx((0.1 + 0.4) / 2)
    # BWT needs R[0][0], which was not evaluated: only j=1 counts
    assert metrics.backward_transfer(R3) == pytest.approx(-0.4)


def test_single_experience_has_no_forgetting():
    R1 = np.array([[0.7]])
    m = metrics.all_metrics(R1)
    assert m["AA"] == pytest.approx(0.7) and m["F"] is None and m["BWT"] is None


def test_result_to_pandas_has_one_row_per_evaluation():
    from forgetless.core.results import Result

    evaluations = [{"after": 0, "experience": 0, "split": "train", "n": 4, "accuracy": 1.0,
                    "nll": 0.1}, {"after": 0, "experience": 0, "split": "test", "n": 4,
                                  "accuracy": 0.5, "nll": 0.9}]
    df = Result({"evaluations": evaluations}, ".").to_pandas()
    assert list(df["accuracy"]) == [1.0, 0.5] and set(df.columns) >= {"after", "split", "nll"}


def test_pooled_recovery_by_hand():
    from forgetless.core.metrics import pooled_recovery

    rows = [{"experience": 0, "split": "train", "n": 10, "learned": 1.0, "final": 0.4,
             "recovered": 0.6, "control": 0.1},
            {"experience": 1, "split": "train", "n": 30, "learned": 0.9, "final": 0.5,
             "recovered": 0.5, "control": 0.0},
            {"experience": 0, "split": "test", "n": 5, "learned": None, "final": 0.2,
             "recovered": 0.4, "control": None}]
    got = pooled_recovery(rows)
    train = got["train"]
    assert train["n"] == 40
    assert train["learned"] == pytest.approx(37 / 40) and train["final"] == pytest.approx(19 / 40)
    assert train["recovered"] == pytest.approx(21 / 40) and train["control"] == pytest.approx(1 / 40)
    assert train["won_back"] == pytest.approx((21 - 19) / (37 - 19))
    assert got["test"] == {"n": 5, "learned": None, "final": 0.2, "recovered": 0.4,
                           "control": None, "won_back": None}
    nothing_lost = pooled_recovery([{**rows[0], "final": 1.0}])["train"]
    assert nothing_lost["won_back"] is None


def test_results_name_the_code_that_made_them():
    import importlib.metadata
    import subprocess
    from pathlib import Path

    from forgetless.core.results import versions

    v = versions()
    assert v["torch"] == importlib.metadata.version("torch")
    src = Path(__import__("forgetless").__file__).parent
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode != 0:  # installed from a wheel: no commit to name
        assert "git" not in v
    else:
        assert v["git"].removesuffix("+dirty") == head.stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True).stdout
        assert v["git"].endswith("+dirty") == bool(dirty.strip())
