"""Comparison statistics against hand computations."""

import pytest

from forgetless.core.errors import RunDirError
from forgetless.report.compare import _ranks, correlation, load_runs, pareto_front


def test_correlation_hand_computed():
    # x = 1,2,3,4; y = 2,4,5,9: means 2.5, 5; cov = Σ(dx·dy) = (-1.5)(-3)+(-.5)(-1)+(.5)(0)+(1.5)(4)
    # = 4.5+.5+0+6 = 11; Σdx² = 5; Σdy² = 9+1+0+16 = 26 → r = 11/√(5·26) = 0.96476
    c = correlation([1, 2, 3, 4], [2, 4, 5, 9])
    assert c["n"] == 4
    assert c["pearson"] == pytest.approx(11 / (5 * 26) ** 0.5)
    assert c["spearman"] == pytest.approx(1.0)  # monotone
    # a monotone but non-linear relation: Spearman 1, Pearson below 1
    c = correlation([1, 2, 3, 4, 5], [1, 2, 3, 4, 100])
    assert c["spearman"] == pytest.approx(1.0) and c["pearson"] < 0.8
    assert correlation([1, 2], [3, 4])["pearson"] is None  # too few pairs
    assert correlation([1, 1, 1], [3, 4, 5])["pearson"] is None  # no spread


def test_ties_share_their_average_rank():
    assert list(_ranks([10.0, 20.0, 20.0, 5.0])) == [1.0, 2.5, 2.5, 0.0]


def test_pareto_front():
    # (cost, forgetting): b is dominated by a (cheaper and forgets less); c is the cheapest; d
    # forgets least; e equals a (neither dominates the other)
    costs = [2.0, 3.0, 1.0, 5.0, 2.0]
    forget = [0.3, 0.4, 0.5, 0.1, 0.3]
    assert pareto_front(costs, forget) == [0, 2, 3, 4]


def test_missing_results_is_one_line_error(tmp_path):
    with pytest.raises(RunDirError, match=r"no results.json"):
        load_runs([tmp_path])
    (tmp_path / "results.json").write_text("{\n broken")
    with pytest.raises(RunDirError, match=r"results.json:2: not valid JSON"):
        load_runs([tmp_path])
