"""analysis/stats.py against textbook values: Student-t intervals, Wilson intervals, the smallest
Wilcoxon p, paired tests (Student's sleep data), Holm's step-down correction by hand, McNemar against
scipy's binomial test and the textbook chi-square, and the bootstrap on simulated data."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats

from cnnlab.analysis.stats import (
    EXACT_BELOW,
    MeanCI,
    bootstrap_difference,
    check_alpha,
    holm,
    mcnemar,
    mean_ci,
    paired_test,
    wilcoxon_min_p,
    wilson_interval,
)
from cnnlab.errors import ConfigError

# Student (1908) / Cushny & Peebles: extra hours of sleep with two drugs, the same ten patients
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


# ---- mean and t interval --------------------------------------------------------------------------------


def test_mean_ci_of_one_two_three():
    ci = mean_ci([1, 2, 3])
    assert ci.n == 3
    assert ci.mean == pytest.approx(2.0)
    # sd = 1, t(0.975, 2) = 4.3027 (the tables' 4.303): 4.3027 / sqrt(3)
    assert ci.half_width == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)
    assert ci.half_width == pytest.approx(2.4841, abs=1e-4)


def test_mean_ci_uses_the_t_factor_not_1_96():
    values = [0.91, 0.93, 0.92, 0.95, 0.90]
    mean = sum(values) / 5
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)
    ci = mean_ci(values)
    assert ci.mean == pytest.approx(mean)
    assert ci.half_width == pytest.approx(2.7764451051977987 * sd / math.sqrt(5))  # t(0.975, 4)
    assert mean_ci(values, level=0.99).half_width == pytest.approx(4.604094871415897 * sd / math.sqrt(5))


def test_mean_ci_of_two_values():
    ci = mean_ci([1.0, 3.0])
    assert ci.mean == 2.0
    assert ci.half_width == pytest.approx(12.706204736174694 * math.sqrt(2) / math.sqrt(2))  # sd = sqrt(2)


def test_mean_ci_skips_missing_values():
    ci = mean_ci([1, None, float("nan"), 2, 3])
    assert (ci.n, ci.mean) == (3, pytest.approx(2.0))
    assert ci.half_width == pytest.approx(2.4841, abs=1e-4)


def test_mean_ci_of_one_value_and_of_none():
    one = mean_ci([0.5])
    assert (one.mean, one.n) == (0.5, 1) and math.isnan(one.half_width)
    none = mean_ci([])
    assert none.n == 0 and math.isnan(none.mean) and math.isnan(none.half_width)
    assert mean_ci([float("nan"), None]).n == 0


def test_mean_ci_of_equal_values_has_zero_width():
    ci = mean_ci([0.25, 0.25, 0.25])
    assert ci.mean == 0.25 and ci.half_width == 0.0


def test_mean_ci_format():
    ci = MeanCI(0.92361, 0.01234, 3)
    assert ci.format(100, 2) == "92.36 ± 1.23"
    assert ci.format(100, 2, sep="±") == "92.36±1.23"
    assert ci.format() == "0.92 ± 0.01"
    assert ci.format(1.0, 3) == "0.924 ± 0.012"
    assert MeanCI(0.5, math.nan, 1).format(100, 1) == "50.0"
    assert MeanCI(math.nan, math.nan, 0).format() == "—"
    assert mean_ci([]).format() == "—"


# ---- Wilson interval --------------------------------------------------------------------------------------


def wilson_by_formula(correct: int, total: int, level: float = 0.95) -> tuple[float, float]:
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


@pytest.mark.parametrize(("correct", "total"), [(81, 263), (9, 10), (1, 2), (9500, 10000), (0, 10), (10, 10)])
def test_wilson_interval_matches_the_formula(correct, total):
    low, high = wilson_interval(correct, total)
    expected = wilson_by_formula(correct, total)
    assert low == pytest.approx(expected[0], abs=1e-9)
    assert high == pytest.approx(expected[1], abs=1e-9)
    assert -1e-12 <= low <= correct / total + 1e-12
    assert correct / total - 1e-12 <= high <= 1.0 + 1e-12


def test_wilson_interval_of_81_in_263():
    low, high = wilson_interval(81, 263)
    assert (low, high) == (pytest.approx(0.2553, abs=5e-5), pytest.approx(0.3662, abs=5e-5))


def test_wilson_interval_widens_with_the_level():
    low95, high95 = wilson_interval(81, 263)
    low99, high99 = wilson_interval(81, 263, level=0.99)
    assert (low99, high99) == pytest.approx(wilson_by_formula(81, 263, 0.99))
    assert low99 < low95 and high99 > high95


# ---- Wilcoxon's floor ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "p"), [(1, 1.0), (2, 0.5), (5, 0.0625), (6, 0.03125), (10, 2 / 1024), (0, 1.0)])
def test_wilcoxon_min_p(n, p):
    assert wilcoxon_min_p(n) == pytest.approx(p)


@pytest.mark.parametrize("n", [3, 5, 6, 8])
def test_wilcoxon_min_p_is_what_scipy_gives_for_differences_of_one_sign(n):
    assert stats.wilcoxon(list(range(1, n + 1))).pvalue == pytest.approx(wilcoxon_min_p(n))


# ---- paired tests ---------------------------------------------------------------------------------------


def test_paired_test_on_students_sleep_data():
    test = paired_test(SLEEP_1, SLEEP_2)
    assert test.n == 10
    assert test.mean_difference == pytest.approx(-1.58)
    assert test.t_p == pytest.approx(stats.ttest_rel(SLEEP_1, SLEEP_2).pvalue)
    assert test.t_p == pytest.approx(0.002833, abs=5e-6)  # R: t = -4.0621, df = 9, p-value = 0.002833
    # by hand: t = mean(d) / (sd(d) / sqrt(n)), two-sided
    d = [a - b for a, b in zip(SLEEP_1, SLEEP_2)]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    t = mean / (sd / math.sqrt(len(d)))
    assert t == pytest.approx(-4.0621, abs=1e-4)
    assert test.t_p == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1))
    assert 0 < test.wilcoxon_p < 0.05
    assert test.note == ""  # ten pairs: both tests can reach 0.05


def test_paired_test_p_is_symmetric():
    forward, backward = paired_test(SLEEP_1, SLEEP_2), paired_test(SLEEP_2, SLEEP_1)
    assert forward.t_p == pytest.approx(backward.t_p)
    assert forward.wilcoxon_p == pytest.approx(backward.wilcoxon_p)
    assert forward.mean_difference == pytest.approx(-backward.mean_difference)


def test_paired_test_with_five_pairs_notes_the_wilcoxon_floor():
    a, b = [0.91, 0.92, 0.95, 0.90, 0.93], [0.90, 0.90, 0.92, 0.86, 0.88]
    test = paired_test(a, b)
    assert test.n == 5
    assert test.t_p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert test.wilcoxon_p == pytest.approx(0.0625)  # all five differences positive: the floor
    assert test.note == "Wilcoxon cannot reach p < 0.05 with 5 seeds (needs ≥ 6)"


def test_paired_test_with_six_pairs_has_no_note():
    a, b = [1, 2, 3, 4, 5, 6.5], [0, 0, 0, 0, 0, 0]
    test = paired_test(a, b)
    assert test.wilcoxon_p == pytest.approx(0.03125)
    assert test.note == ""


def test_the_note_follows_alpha():
    a, b = [1, 2, 3, 4, 5, 6, 7.5], [0] * 7
    assert paired_test(a, b).note == ""
    assert paired_test(a, b, alpha=0.01).note == "Wilcoxon cannot reach p < 0.01 with 7 seeds (needs ≥ 8)"


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_pairs_cannot_be_tested(n):
    test = paired_test([0.9] * n, [0.8] * n)
    assert test.n == n
    assert math.isnan(test.t_p) and math.isnan(test.wilcoxon_p)
    assert "no test possible" in test.note and "run more seeds" in test.note
    if n == 1:
        assert test.mean_difference == pytest.approx(0.1)


def test_identical_samples_give_p_one():
    test = paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert test.mean_difference == 0.0
    assert test.t_p == 1.0 and test.wilcoxon_p == 1.0


def test_paired_samples_must_match():
    with pytest.raises(ValueError, match="paired samples must match: 3 vs 2"):
        paired_test([1, 2, 3], [1, 2])


# ---- Holm ---------------------------------------------------------------------------------------------


def test_holm_by_hand():
    # sorted: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> raised to the running max 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_holm_caps_at_one_and_keeps_nan():
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    adjusted = holm([math.nan, 0.01, 0.04])
    assert math.isnan(adjusted[0])
    assert adjusted[1:] == pytest.approx([0.02, 0.04])  # two tests, not three
    assert all(math.isnan(p) for p in holm([math.nan, math.nan]))
    assert holm([]) == []


def test_holm_of_one_p_is_that_p():
    assert holm([0.013]) == pytest.approx([0.013])


def test_holm_is_never_below_the_raw_p_and_keeps_the_order():
    p = [0.001, 0.2, 0.04, 0.03, 0.5, 0.011]
    adjusted = holm(p)
    assert all(a >= raw for a, raw in zip(adjusted, p))
    order = sorted(range(len(p)), key=p.__getitem__)
    assert [adjusted[i] for i in order] == sorted(adjusted)


# ---- McNemar ----------------------------------------------------------------------------------------------


def paired(both: int, only_a: int, only_b: int, neither: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of two classifiers on the same images with the given 2x2 counts, shuffled."""
    a = np.array([1] * both + [1] * only_a + [0] * only_b + [0] * neither, bool)
    b = np.array([1] * both + [0] * only_a + [1] * only_b + [0] * neither, bool)
    order = np.random.default_rng(seed).permutation(len(a))
    return a[order], b[order]


@pytest.mark.parametrize("only_a, only_b", [(1, 0), (0, 3), (5, 5), (7, 2), (10, 3), (0, 12), (20, 4), (2, 21)])
def test_mcnemar_exact_is_the_two_sided_binomial_test_on_the_discordant_pairs(only_a, only_b):
    a, b = paired(40, only_a, only_b, 9)
    p, details = mcnemar(a, b)
    assert details["exact"] is True
    assert details["table"] == [[40, only_a], [only_b, 9]]
    assert (details["only_a_right"], details["only_b_right"]) == (only_a, only_b)
    expected = stats.binomtest(only_a, only_a + only_b, 0.5, alternative="two-sided").pvalue
    assert p == pytest.approx(expected, rel=1e-9)
    # the concordant pairs do not matter
    assert mcnemar(*paired(3, only_a, only_b, 100, seed=1))[0] == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize("only_a, only_b", [(15, 10), (12, 13), (30, 5), (0, 40), (60, 45)])
def test_mcnemar_chi_square_with_continuity_correction_for_many_discordant_pairs(only_a, only_b):
    a, b = paired(100, only_a, only_b, 20)
    p, details = mcnemar(a, b)
    assert details["exact"] is False
    statistic = (abs(only_a - only_b) - 1) ** 2 / (only_a + only_b)
    assert details["statistic"] == pytest.approx(statistic)
    assert p == pytest.approx(stats.chi2.sf(statistic, df=1), rel=1e-9)


def test_mcnemar_switches_to_chi_square_at_exact_below():
    assert mcnemar(*paired(10, EXACT_BELOW - 1, 0, 10))[1]["exact"] is True
    assert mcnemar(*paired(10, EXACT_BELOW, 0, 10))[1]["exact"] is False
    assert mcnemar(*paired(10, 12, EXACT_BELOW - 12, 10))[1]["exact"] is False


def test_mcnemar_without_discordant_pairs_is_p_one():
    a = np.array([1, 1, 0, 1], bool)
    p, details = mcnemar(a, a.copy())
    assert p == 1.0
    assert details["only_a_right"] == details["only_b_right"] == 0


def test_mcnemar_is_symmetric():
    a, b = paired(50, 9, 3, 5)
    assert mcnemar(a, b)[0] == pytest.approx(mcnemar(b, a)[0])
    assert mcnemar(b, a)[1]["only_a_right"] == 3


# ---- bootstrap -------------------------------------------------------------------------------------------


def simulated(n: int, seed: int = 0, p_a: float = 0.8, p_b: float = 0.7):
    rng = np.random.default_rng(seed)
    return rng.random(n) < p_a, rng.random(n) < p_b


def test_bootstrap_contains_the_true_and_the_observed_difference():
    a, b = simulated(2000)
    low, high = bootstrap_difference(a, b)
    assert low < 0.1 < high  # the true difference 0.8 - 0.7
    observed = a.mean() - b.mean()
    assert low < observed < high
    # about the normal approximation's width: 1.96 standard errors of the mean difference either side
    se = (a.astype(int) - b.astype(int)).std(ddof=1) / math.sqrt(len(a))
    assert (high - low) / 2 == pytest.approx(1.96 * se, rel=0.1)


def test_bootstrap_is_reproducible_with_the_same_seed():
    a, b = simulated(500)
    assert bootstrap_difference(a, b, 2000, seed=3) == bootstrap_difference(a, b, 2000, seed=3)
    assert bootstrap_difference(a, b, 2000, seed=3) != bootstrap_difference(a, b, 2000, seed=4)


def test_bootstrap_is_narrower_with_more_examples_and_a_lower_level():
    small, large = simulated(200, seed=1), simulated(5000, seed=1)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(bootstrap_difference(*large, 2000)) < width(bootstrap_difference(*small, 2000)) / 3
    a, b = small
    assert width(bootstrap_difference(a, b, 2000, level=0.8)) < width(bootstrap_difference(a, b, 2000, level=0.99))


def test_bootstrap_of_identical_classifiers_is_zero():
    a, _ = simulated(300)
    assert bootstrap_difference(a, a, 1000) == (0.0, 0.0)


# ---- the significance level ------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.05, 0.001, 0.5])
def test_check_alpha_takes_a_level_between_0_and_1(alpha):
    check_alpha(alpha, "compare")


@pytest.mark.parametrize("alpha", [0, 1, 1.5, -0.1, True, "0.05", None])
def test_check_alpha_refuses_anything_else_in_the_one_template(alpha):
    with pytest.raises(ConfigError) as caught:
        check_alpha(alpha, "compare")
    assert str(caught.value) == (f"The '--alpha' parameter of compare must be a significance level between 0 and 1 "
                                 f"(e.g. 0.05). Got {alpha!r} instead.")
