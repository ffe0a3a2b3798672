"""Statistics a reviewer accepts: mean, sample standard deviation, n and a 95 % confidence
interval from the t distribution; paired differences by seed with a paired t-test, and Welch's
test where runs cannot be paired. scipy does the distributions; nothing is hand-rolled.

The level is 95 % unless `interval_level` sets another for a block (`forgetless compare
--level`): a reader correcting for several looks at the data or several arms (Bonferroni:
1 − 0.05 / k) gets every interval, note and seed plan of the comparison at that level."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
from scipy import stats as st

from forgetless.core.errors import ConfigError

LEVEL = 0.95
"""The confidence level of every interval, unless `interval_level` sets another."""

_level: ContextVar[float] = ContextVar("forgetless_interval_level", default=LEVEL)


def level() -> float:
    """The confidence level intervals are computed at now."""
    return _level.get()


def level_text() -> str:
    """The level as the notes print it: "95 %", "97.5 %"."""
    return f"{100 * level():.4g} %"


@contextmanager
def interval_level(value: float, option: str = "level") -> Iterator[None]:
    """Intervals (and the seeds a plan asks for) at confidence `value` inside the block."""
    if not 0 < value < 1:
        raise ConfigError(f"{option} {value}: expected a confidence level between 0 and 1, "
                          f"e.g. 0.975")
    token = _level.set(value)
    try:
        yield
    finally:
        _level.reset(token)


def describe(values: Sequence[float | None]) -> dict:
    """{n, mean, sd, ci_low, ci_high} of the values that are not None (sd with ddof 1; the
    interval is mean ± t(0.975, n-1)·sd/√n at the 95 % level, t(½ + level/2) at another; sd and
    interval are None with fewer than 2)."""
    x = np.array([v for v in values if v is not None], dtype=float)
    out = {"n": len(x), "mean": float(x.mean()) if len(x) else None, "sd": None,
           "ci_low": None, "ci_high": None}
    if len(x) >= 2:
        sd = float(x.std(ddof=1))
        half = float(st.t.ppf(0.5 + level() / 2, len(x) - 1)) * sd / math.sqrt(len(x))
        out.update(sd=sd, ci_low=out["mean"] - half, ci_high=out["mean"] + half)
    return out


def paired(base: Mapping[object, float | None], other: Mapping[object, float | None]) -> dict:
    """other − base over the keys (seeds) both have a value for: {n, mean, sd, ci_low, ci_high,
    p, test}. p is the two-sided paired t-test's (None with fewer than 2 pairs or no spread)."""
    keys = [k for k in base if k in other and base[k] is not None and other[k] is not None]
    diffs = [other[k] - base[k] for k in keys]
    out = {**describe(diffs), "p": None, "test": "paired t", "pairs": keys}
    spread = float(np.std(diffs)) if diffs else 0.0
    if len(diffs) >= 2 and spread > 1e-12 * max(1.0, abs(out["mean"])):
        out["p"] = float(st.ttest_rel([other[k] for k in keys], [base[k] for k in keys]).pvalue)
    elif len(diffs) >= 2:  # every pair differs by the same amount (up to rounding)
        out["p"] = 0.0 if abs(out["mean"]) > 1e-12 else 1.0
    return out


def seeds_for(sd: float, half_width: float, most: int = 10_000) -> int | None:
    """The fewest seeds n ≥ 2 whose interval (at 95 %: mean ± t(0.975, n−1)·sd/√n) is at most
    ±`half_width`, taking the spread `sd` as measured — a plan, not a promise: with few seeds
    the measured sd is itself uncertain. None where it takes more than `most`, or no spread
    was measured."""
    if not sd > 0 or not half_width > 0:
        return None

    def half(n: int) -> float:
        return float(st.t.ppf(0.5 + level() / 2, n - 1)) * sd / math.sqrt(n)

    if half(most) > half_width:
        return None
    low, high = 2, most  # half(n) falls as n grows: bisect for the first n within the width
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if half(mid) > half_width else (low, mid)
    return low


def compared_seeds(diff: Mapping[str, dict], keys: Sequence[str]) -> int:
    """How many seeds a comparison of two arms rests on: the most any of `keys` pairs (an arm
    trained jointly has no learning accuracy and no forgetting, only accuracies)."""
    return max((diff[k]["n"] for k in keys), default=0)


def welch(base: Sequence[float | None], other: Sequence[float | None]) -> dict:
    """other − base for runs that cannot be paired: difference of means, Welch's interval
    (Welch–Satterthwaite degrees of freedom) and Welch's two-sided t-test."""
    a = np.array([v for v in base if v is not None], dtype=float)
    b = np.array([v for v in other if v is not None], dtype=float)
    out = {"n": min(len(a), len(b)), "n_base": len(a), "n_other": len(b),
           "mean": float(b.mean() - a.mean()) if len(a) and len(b) else None, "sd": None,
           "ci_low": None, "ci_high": None, "p": None, "test": "Welch t"}
    if len(a) >= 2 and len(b) >= 2:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = math.sqrt(va + vb)
        if se > 1e-12 * max(1.0, abs(out["mean"])):  # no spread at all: no test
            df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
            half = float(st.t.ppf(0.5 + level() / 2, df)) * se
            out.update(ci_low=out["mean"] - half, ci_high=out["mean"] + half,
                       p=float(st.ttest_ind(b, a, equal_var=False).pvalue))
    return out


def interval_text(d: dict, scale: float = 1.0, digits: int = 1, with_n: bool = True) -> str:
    """"12.3 [8.1, 16.5] (n=3)"; without an interval "12.3 (n=1)"; "-" without a mean.
    `with_n=False` for tables whose n is a column of its own."""
    if d.get("mean") is None:
        return "-"

    def shown(x: float) -> str:
        return f"{round(scale * x, digits) + 0.0:.{digits}f}"  # + 0.0: never "-0.0"

    text = shown(d["mean"])
    if d.get("ci_low") is not None:
        text += f" [{shown(d['ci_low'])}, {shown(d['ci_high'])}]"
    return f"{text} (n={d['n']})" if with_n else text


def difference_text(d: dict, scale: float = 1.0, digits: int = 1) -> str:
    """A difference (paired or Welch) for a table with an n column: "+2.1 [0.4, 3.8], p=0.03"."""
    text = interval_text(d, scale, digits, with_n=False)
    if d.get("mean") is not None and not text.startswith("-"):
        text = "+" + text
    return text + ("" if d.get("p") is None else f", p={d['p']:.2g}")
