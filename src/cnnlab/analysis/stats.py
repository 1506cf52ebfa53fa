"""Uncertainty and significance with scipy / statsmodels: t intervals over seeds, paired tests over
seeds, McNemar's test and a bootstrap interval on paired predictions, Holm correction, Wilson intervals,
and what a test can reach with so few samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import bad_value

EXACT_BELOW = 25  # discordant pairs: below this McNemar's exact binomial version is used


def check_alpha(alpha: float, owner: str) -> None:
    """A significance level strictly between 0 and 1, or the one bad-value message."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise bad_value("--alpha", owner, "a significance level between 0 and 1 (e.g. 0.05)", alpha)


@dataclass(frozen=True)
class MeanCI:
    mean: float
    half_width: float  # the 95 % interval is mean ± half_width (nan with one value)
    n: int

    def format(self, scale: float = 1.0, digits: int = 2, sep: str = " ± ") -> str:
        if self.n == 0 or not math.isfinite(self.mean):
            return "—"
        if self.n == 1 or not math.isfinite(self.half_width):
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f}{sep}{self.half_width * scale:.{digits}f}"


def mean_ci(values: Sequence[float], level: float = 0.95) -> MeanCI:
    """Mean and Student-t interval half-width (with 3 values the factor is 4.30, not 1.96)."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return MeanCI(math.nan, math.nan, 0)
    if len(x) == 1:
        return MeanCI(float(x[0]), math.nan, 1)
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return MeanCI(float(x.mean()), float(half), len(x))


def wilson_interval(correct: int, total: int, level: float = 0.95) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(correct, total, alpha=1 - level, method="wilson")
    return float(low), float(high)


def wilcoxon_min_p(n: int) -> float:
    """The smallest two-sided p the Wilcoxon signed-rank test can give with n pairs (all of one sign)."""
    return 2.0 / 2**n if n > 0 else 1.0


@dataclass(frozen=True)
class PairedTest:
    n: int
    mean_difference: float
    t_p: float  # paired t-test, two-sided (nan when it cannot be computed)
    wilcoxon_p: float  # Wilcoxon signed-rank, two-sided, exact for small n
    note: str  # why a test cannot reach significance, when it cannot


def paired_test(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> PairedTest:
    """a - b over matched pairs (the same seeds): paired t and Wilcoxon, with what they can reach."""
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples must match: {len(x)} vs {len(y)}")
    n = len(x)
    d = x - y
    notes = []
    t_p = w_p = math.nan
    if n < 2:
        notes.append(f"{n} pair: no test possible (run more seeds)")
    else:
        if np.allclose(d, d[0]):
            t_p = 0.0 if d[0] != 0 else 1.0  # identical differences: no variance to test against
        else:
            t_p = float(stats.ttest_rel(x, y).pvalue)
        if np.any(d != 0):
            w_p = float(stats.wilcoxon(x, y).pvalue)
        else:
            w_p = 1.0
        if wilcoxon_min_p(n) >= alpha:
            notes.append(f"Wilcoxon cannot reach p < {alpha:g} with {n} seeds (needs ≥ {_wilcoxon_min_n(alpha)})")
    return PairedTest(n, float(d.mean()) if n else math.nan, t_p, w_p, "; ".join(notes))


def _wilcoxon_min_n(alpha: float) -> int:
    n = 1
    while wilcoxon_min_p(n) >= alpha:
        n += 1
    return n


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (nan stays nan)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), math.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = multipletests(p[finite], method="holm")[1]
    return out.tolist()


def mcnemar(correct_a, correct_b) -> tuple[float, dict]:
    """p of McNemar's test on paired correctness; exact (binomial) when b + c < EXACT_BELOW."""
    from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    discordant = table[0][1] + table[1][0]
    exact = discordant < EXACT_BELOW
    result = statsmodels_mcnemar(table, exact=exact, correction=True)
    return float(result.pvalue), {"table": table, "only_a_right": table[0][1], "only_b_right": table[1][0],
                                  "exact": exact, "statistic": float(result.statistic)}


def bootstrap_difference(correct_a, correct_b, resamples: int = 10_000, seed: int = 0,
                         level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of accuracy(a) - accuracy(b), resampling test examples (pairs kept together)."""
    diff = np.asarray(correct_a, np.int8) - np.asarray(correct_b, np.int8)
    rng = np.random.default_rng(seed)
    n = len(diff)
    means = np.empty(resamples)
    for start in range(0, resamples, 1000):  # in blocks: 10,000 x n indices at once would be large
        stop = min(resamples, start + 1000)
        means[start:stop] = diff[rng.integers(0, n, (stop - start, n))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
