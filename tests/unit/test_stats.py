import math

import pytest

from forgetless.core.errors import ConfigError
from forgetless.core.stats import (
    describe,
    interval_level,
    interval_text,
    level_text,
    paired,
    seeds_for,
    welch,
)


def test_describe_against_a_hand_computed_interval():
    d = describe([1.0, 2.0, 3.0, None])
    # mean 2, sd (ddof 1) = 1, t(0.975, 2) = 4.302653, half-width = 4.302653 / sqrt(3)
    assert d["n"] == 3 and d["mean"] == 2.0 and d["sd"] == pytest.approx(1.0)
    half = 4.302652729911275 / math.sqrt(3)
    assert d["ci_low"] == pytest.approx(2 - half) and d["ci_high"] == pytest.approx(2 + half)
    assert interval_text(d) == "2.0 [-0.5, 4.5] (n=3)"
    one = describe([0.5])
    assert one["sd"] is None and one["ci_low"] is None
    assert interval_text(one, 100) == "50.0 (n=1)"


def test_paired_difference_and_t_test_by_hand():
    base = {0: 0.50, 1: 0.60, 2: 0.40}
    other = {0: 0.30, 1: 0.45, 2: 0.30, 3: 0.9}  # seed 3 has no partner
    d = paired(base, other)
    # diffs −0.20, −0.15, −0.10: mean −0.15, sd 0.05, t = −0.15 / (0.05/√3) = −5.196, df 2
    assert d["n"] == 3 and d["pairs"] == [0, 1, 2]
    assert d["mean"] == pytest.approx(-0.15) and d["sd"] == pytest.approx(0.05)
    # two-sided p for |t| = 5.196 with 2 degrees of freedom: 0.035098
    assert d["p"] == pytest.approx(0.035098, abs=1e-5)
    assert d["ci_high"] == pytest.approx(-0.15 + 4.302652729911275 * 0.05 / math.sqrt(3))


def test_welch_by_hand():
    d = welch([1.0, 2.0, 3.0], [4.0, 6.0, 8.0])
    # means 2 and 6, variances 1 and 4: se = sqrt(1/3 + 4/3), df = (5/3)^2 / ((1/3)^2/2 + (4/3)^2/2)
    se = math.sqrt(5 / 3)
    df = (5 / 3) ** 2 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2)
    assert d["mean"] == 4.0 and df == pytest.approx(2.9411764, rel=1e-6)
    from scipy import stats

    assert d["ci_high"] - d["mean"] == pytest.approx(stats.t.ppf(0.975, df) * se)
    assert d["p"] == pytest.approx(2 * stats.t.sf(4.0 / se, df))
    assert d["test"] == "Welch t"


def test_seeds_for_is_the_first_n_whose_interval_fits():
    # sd 1, half-width 1: t(0.975, 5)/√6 = 2.5706/2.4495 = 1.049 > 1 and
    # t(0.975, 6)/√7 = 2.4469/2.6458 = 0.925 ≤ 1, so 7 seeds
    assert seeds_for(1.0, 1.0) == 7
    # the n = 2 interval is t(0.975, 1)·sd/√2 = 12.706/1.414 · sd: a width that wide needs 2
    assert seeds_for(1.0, 12.71 / math.sqrt(2)) == 2
    assert seeds_for(1.0, 12.70 / math.sqrt(2)) == 3
    assert seeds_for(2.0, 2.0) == 7  # only the ratio matters
    assert seeds_for(0.0, 1.0) is None  # no spread measured: nothing to plan from
    assert seeds_for(1.0, 1e-3) is None  # past 10,000 seeds


def test_another_level_widens_every_interval_inside_its_block_only():
    """At 97.5 % (α split over two looks), diffs −0.20, −0.15, −0.10 (mean −0.15, sd 0.05):
    half-width t(0.9875, 2)·0.05/√3 = 6.2053·0.028868 = 0.17914; the p-value does not change.
    Outside the block, 95 % again."""
    base, other = {0: 0.50, 1: 0.60, 2: 0.40}, {0: 0.30, 1: 0.45, 2: 0.30}
    with interval_level(0.975):
        assert level_text() == "97.5 %"
        d = paired(base, other)
        assert d["ci_high"] == pytest.approx(-0.15 + 6.205346816 * 0.05 / math.sqrt(3))
        assert d["p"] == pytest.approx(0.035098, abs=1e-5)
        # a seed plan at this level: t(0.9875, n−1)/√n ≤ 1 first at n = 9 (2.8412/2.8284 = 1.0045
        # at n = 8, 2.7515/3 = 0.9172 at n = 9), where 95 % needs 7
        assert seeds_for(1.0, 1.0) == 9
    assert level_text() == "95 %"
    assert paired(base, other)["ci_high"] == pytest.approx(-0.15 + 4.302652729911275 * 0.05
                                                            / math.sqrt(3))
    for bad in (0.0, 1.0, 95):
        with pytest.raises(ConfigError, match=rf"--level {bad}: expected a confidence level "
                                              r"between 0 and 1"), interval_level(bad, "--level"):
            pass
