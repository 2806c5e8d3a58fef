"""analysis.stats against known values: textbook examples, closed forms by hand, and scipy on the same data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import stats
from tasks import get_task

# Student's sleep data (Cushny & Peebles 1905), R's `sleep`: extra hours of sleep under two drugs, same 10 patients.
# R: t.test(extra ~ group, data = sleep, paired = TRUE) -> t = -4.0621, df = 9, p-value = 0.002833.
SLEEP_1 = np.array([0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0])
SLEEP_2 = np.array([1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4])

# Hollander & Wolfe (1973), "rounding first base" times: 22 players (blocks) x 3 methods, ties inside blocks.
# R's ?friedman.test example: friedman.test(RoundingTimes) -> Friedman chi-squared = 11.143, df = 2, p = 0.003805.
ROUNDING_TIMES = np.array([
    [5.40, 5.50, 5.55], [5.85, 5.70, 5.75], [5.20, 5.60, 5.50], [5.55, 5.50, 5.40], [5.90, 5.85, 5.70],
    [5.45, 5.55, 5.60], [5.40, 5.40, 5.35], [5.45, 5.50, 5.35], [5.25, 5.15, 5.00], [5.85, 5.80, 5.70],
    [5.25, 5.20, 5.10], [5.65, 5.55, 5.45], [5.60, 5.35, 5.45], [5.05, 5.00, 4.95], [5.50, 5.50, 5.40],
    [5.45, 5.55, 5.50], [5.55, 5.55, 5.35], [5.45, 5.50, 5.55], [5.50, 5.45, 5.25], [5.65, 5.60, 5.40],
    [5.70, 5.65, 5.55], [6.30, 6.30, 6.25],
])

# Demšar (2006), Table 6: AUC of four C4.5 variants on 14 data sets (blocks). The printed table rounds the voting
# row; the paper's average ranks (3.143, 2.000, 2.893, 1.964) and chi2_F = 9.28 rank C4.5+cf above C4.5+m+cf
# there, so that entry is 0.97501 here (with 0.975 the ranks come out 2.929 and 1.929).
DEMSAR_NAMES = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
DEMSAR_AUC = pd.DataFrame(
    [
        [0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
        [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
        [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
        [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
        [0.972, 0.981, 0.97501, 0.975], [0.957, 0.978, 0.946, 0.970],
    ],
    columns=DEMSAR_NAMES,
)


def test_higher_is_better_covers_every_metric_and_only_the_errors_are_lower():
    sentiment = ["mae", "corr", "acc2_has0", "f1_has0", "f1_macro_has0", "acc2_non0", "f1_non0", "f1_macro_non0",
                 "acc5", "acc7"]
    regression, classification = ["rmse", "r2"], ["accuracy", "f1_macro", "f1", "f1_weighted"]
    multilabel = get_task("emotions").metrics  # the generic multi-label metrics, then WA and F1 per emotion
    assert {*sentiment, *regression, *classification, *multilabel} <= set(stats.HIGHER_IS_BETTER)
    assert [m for m, higher in stats.HIGHER_IS_BETTER.items() if not higher] == ["mae", "rmse"]


# ---------------------------------------------------------------------------------------------------------- seeds


def test_summarize_seeds_mean_std_and_t_interval_by_hand():
    values = np.array([0.71, 0.74, 0.69, 0.75, 0.72])
    summary = stats.summarize_seeds(values)
    assert summary.n == 5
    assert summary.mean == pytest.approx(0.722)
    assert summary.std == pytest.approx(math.sqrt(((values - 0.722) ** 2).sum() / 4))
    half = 2.776445105 * summary.std / math.sqrt(5)  # t_{0.975, 4}
    assert (summary.t_ci_low, summary.t_ci_high) == pytest.approx((0.722 - half, 0.722 + half))
    assert summary.t_ci_low < summary.ci_low < summary.mean < summary.ci_high < summary.t_ci_high


def test_summarize_seeds_bootstrap_is_seeded():
    values = np.random.default_rng(3).normal(size=10)
    first, again = stats.summarize_seeds(values, seed=7), stats.summarize_seeds(values, seed=7)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    other = stats.summarize_seeds(values, seed=8)
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)
    bca = stats.summarize_seeds(values, method="BCa")
    assert bca.ci_low < bca.mean < bca.ci_high


def test_summarize_seeds_percentile_interval_approaches_the_normal_one():
    values = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    summary = stats.summarize_seeds(values, n_resamples=4000)
    half = 1.959964 * values.std(ddof=1) / math.sqrt(400)
    assert summary.ci_high - summary.ci_low == pytest.approx(2 * half, rel=0.1)
    assert (summary.ci_low + summary.ci_high) / 2 == pytest.approx(summary.mean, abs=0.1 * half)


@pytest.mark.parametrize("values", [[0.70, 0.74], [0.70, 0.74, 0.71]])
def test_summarize_seeds_two_or_three_seeds_give_min_max(values):
    # each extreme resample has probability 1/n**n (1/4, 1/27) > 2.5%: the 95% percentile interval is (min, max)
    summary = stats.summarize_seeds(values)
    assert (summary.ci_low, summary.ci_high) == pytest.approx((min(values), max(values)))
    assert summary.t_ci_high - summary.t_ci_low > summary.ci_high - summary.ci_low


def test_summarize_seeds_one_seed_and_constant_values():
    one = stats.summarize_seeds([0.8])
    assert one.n == 1 and one.mean == 0.8
    assert all(math.isnan(x) for x in (one.std, one.ci_low, one.ci_high, one.t_ci_low, one.t_ci_high))
    constant = stats.summarize_seeds([0.8, 0.8, 0.8], method="BCa")
    assert (constant.mean, constant.std) == (0.8, 0.0)
    assert (constant.ci_low, constant.ci_high, constant.t_ci_low, constant.t_ci_high) == (0.8, 0.8, 0.8, 0.8)


@pytest.mark.parametrize("values", [[], [0.1, np.nan], [[0.1, 0.2]]])
def test_summarize_seeds_rejects_bad_input(values):
    with pytest.raises(ValueError):
        stats.summarize_seeds(values)


# ---------------------------------------------------------------------------------------------------------- paired


def test_paired_t_test_on_student_sleep_data_matches_r():
    result = stats.paired_comparison(SLEEP_1, SLEEP_2, higher_is_better=True)
    assert result.n == 10
    assert result.mean_diff == pytest.approx(-1.58)
    assert result.t_statistic == pytest.approx(-4.0621, abs=1e-4)
    assert result.t_pvalue == pytest.approx(0.002833, abs=1e-6)
    # d_z by hand: sd of the differences = sqrt(13.616 / 9); also d_z = t / sqrt(n)
    assert result.d_z == pytest.approx(-1.58 / math.sqrt(13.616 / 9))
    assert result.d_z == pytest.approx(result.t_statistic / math.sqrt(10))


def test_wilcoxon_on_sleep_data_is_the_exact_conditional_test():
    # one zero difference (dropped) and one tie among 9 non-zero differences, all negative: R+ = 0 is reached by
    # one sign pattern of 2**9, so the exact two-sided p is 2 / 512
    result = stats.paired_comparison(SLEEP_1, SLEEP_2, higher_is_better=True)
    assert result.wilcoxon_method == "exact permutation"
    assert result.wilcoxon_statistic == 0
    assert result.wilcoxon_pvalue == pytest.approx(2 / 512)
    assert result.rank_biserial == -1


def test_orientation_flips_signs_but_not_p_values():
    higher = stats.paired_comparison(SLEEP_1, SLEEP_2, higher_is_better=True)
    lower = stats.paired_comparison(SLEEP_1, SLEEP_2, higher_is_better=False)
    assert lower.mean_diff == higher.mean_diff  # raw units keep their sign
    assert lower.t_statistic == -higher.t_statistic
    assert lower.d_z == -higher.d_z and lower.rank_biserial == -higher.rank_biserial
    assert (lower.t_pvalue, lower.wilcoxon_pvalue) == (higher.t_pvalue, higher.wilcoxon_pvalue)
    # a lower MAE for the fusion is an improvement: positive oriented effect
    mae = stats.paired_comparison([0.70, 0.72, 0.69], [0.75, 0.74, 0.76], higher_is_better=False)
    assert mae.mean_diff < 0 and mae.t_statistic > 0 and mae.d_z > 0 and mae.rank_biserial == 1


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_wilcoxon_smallest_exact_p_value_is_two_over_two_to_the_n(n):
    fusion = np.arange(1, n + 1) * 0.01 + 0.7  # distinct positive differences
    result = stats.paired_comparison(fusion, np.full(n, 0.7), higher_is_better=True)
    assert result.wilcoxon_method == "exact"
    assert result.wilcoxon_pvalue == pytest.approx(2 / 2**n)
    assert (result.wilcoxon_pvalue < 0.05) == (n >= 6)


def test_wilcoxon_exact_p_value_by_hand():
    # d = (1, 2, 3, 4, -5, 6): R- = 5. Subsets of {1..6} with rank sum <= 5: {}, 1, 2, 3, 12, 4, 13, 5, 14, 23
    # (10 of 64), so two-sided p = 20/64.
    d = np.array([1.0, 2.0, 3.0, 4.0, -5.0, 6.0])
    result = stats.paired_comparison(d, np.zeros(6), higher_is_better=True)
    assert result.wilcoxon_statistic == 5
    assert result.wilcoxon_pvalue == pytest.approx(20 / 64)
    assert result.rank_biserial == pytest.approx((16 - 5) / 21)


def test_wilcoxon_ties_and_zeros_small_and_large_n():
    tied = stats.paired_comparison([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], higher_is_better=True)
    assert tied.wilcoxon_method == "exact permutation" and tied.wilcoxon_pvalue == pytest.approx(2 / 8)
    zeros = stats.paired_comparison([0.0, 0.0, 2.0, 3.0], np.zeros(4), higher_is_better=True)
    assert zeros.wilcoxon_method == "exact permutation"
    assert zeros.wilcoxon_pvalue == pytest.approx(2 / 4)  # zeros dropped: 2 non-zero differences
    d = np.round(np.random.default_rng(1).normal(0.3, 1.0, size=20), 1)  # rounding makes ties
    large = stats.paired_comparison(d, np.zeros(20), higher_is_better=True)
    assert large.wilcoxon_method == "normal approximation"
    assert large.wilcoxon_pvalue == pytest.approx(sps.wilcoxon(d, method="asymptotic").pvalue)
    distinct = np.random.default_rng(2).normal(0.3, 1.0, size=20)
    assert stats.paired_comparison(distinct, np.zeros(20), higher_is_better=True).wilcoxon_method == "exact"


def test_wilcoxon_exact_permutation_matches_scipy_permutation_method():
    d = np.array([1.0, 1.0, -2.0, 3.0, 3.0, -0.5, 0.0])  # ties and a zero
    result = stats.paired_comparison(d, np.zeros(7), higher_is_better=True)
    reference = sps.wilcoxon(d, method=sps.PermutationMethod())
    assert result.wilcoxon_method == "exact permutation"
    assert result.wilcoxon_statistic == reference.statistic
    assert result.wilcoxon_pvalue == pytest.approx(reference.pvalue)


def test_all_differences_zero():
    result = stats.paired_comparison([0.7, 0.8, 0.75], [0.7, 0.8, 0.75], higher_is_better=True)
    assert result.mean_diff == 0
    assert math.isnan(result.t_statistic) and result.t_pvalue == 1.0
    assert result.wilcoxon_pvalue == 1.0 and result.wilcoxon_method == "no non-zero difference"
    assert math.isnan(result.d_z) and math.isnan(result.rank_biserial)


def test_constant_non_zero_differences_and_tiny_n():
    constant = stats.paired_comparison([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], higher_is_better=True)
    assert constant.t_statistic == math.inf and math.isnan(constant.t_pvalue) and constant.d_z == math.inf
    one = stats.paired_comparison([0.8], [0.7], higher_is_better=True)
    assert math.isnan(one.t_pvalue) and math.isnan(one.d_z) and one.wilcoxon_pvalue == 1.0
    two = stats.paired_comparison([0.8, 0.9], [0.7, 0.7], higher_is_better=True)
    assert two.t_pvalue == pytest.approx(sps.ttest_rel([0.8, 0.9], [0.7, 0.7]).pvalue)
    assert two.wilcoxon_pvalue == pytest.approx(0.5)


@pytest.mark.parametrize(("fusion", "baseline"), [([0.1, 0.2], [0.1]), ([], []), ([0.1, np.nan], [0.1, 0.2])])
def test_paired_comparison_rejects_bad_input(fusion, baseline):
    with pytest.raises(ValueError):
        stats.paired_comparison(fusion, baseline, higher_is_better=True)


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        ([1, -2, 3, 4, -5], (8 - 7) / 15),  # ranks 1..5: R+ = 1+3+4, R- = 2+5
        ([1, 1, -2, 3], (1.5 + 1.5 + 4 - 3) / 10),  # tied |d| share rank 1.5
        ([0, 1, -2], (1 - 2) / 3),  # the zero is dropped before ranking
        ([2, 3], 1.0),
    ],
)
def test_rank_biserial_by_hand(d, expected):
    assert stats.rank_biserial(d) == pytest.approx(expected)


def test_rank_biserial_agrees_with_the_wilcoxon_statistic():
    # without zeros, T = n(n+1)/2 and |r| = (T - 2 min(R+, R-)) / T
    d = np.random.default_rng(5).normal(0.2, 1.0, size=12)
    total = 12 * 13 / 2
    w = sps.wilcoxon(d).statistic
    assert abs(stats.rank_biserial(d)) == pytest.approx((total - 2 * w) / total)
    assert math.isnan(stats.rank_biserial([0.0, 0.0]))


def test_cohens_dz_by_hand():
    assert stats.cohens_dz([1.0, 2.0, 3.0]) == pytest.approx(2.0)  # mean 2, sd 1
    assert stats.cohens_dz([-1.0, -2.0, -3.0]) == pytest.approx(-2.0)
    assert math.isnan(stats.cohens_dz([1.0]))
    assert math.isnan(stats.cohens_dz([0.0, 0.0]))
    assert stats.cohens_dz([-0.5, -0.5]) == -math.inf


# ---------------------------------------------------------------------------------------------------------- Holm


@pytest.mark.parametrize(
    ("pvalues", "expected"),
    [
        # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(1*0.04, 0.06): the step-down is monotone
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        ([0.6, 0.9], [1.0, 1.0]),  # capped at 1
        ([0.02, 0.02, 0.02], [0.06, 0.06, 0.06]),  # ties
        ([0.01, np.nan, 0.04], [0.02, np.nan, 0.04]),  # NaN is not counted in the family
        ([0.03], [0.03]),
        ([], []),
    ],
)
def test_holm_by_hand(pvalues, expected):
    np.testing.assert_allclose(stats.holm_adjust(pvalues), expected)


def test_holm_matches_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    pvalues = np.random.default_rng(0).uniform(0, 0.2, size=17)
    np.testing.assert_allclose(stats.holm_adjust(pvalues), multitest.multipletests(pvalues, method="holm")[1])


def test_holm_rejects_values_outside_zero_one():
    with pytest.raises(ValueError):
        stats.holm_adjust([0.1, 1.2])


@pytest.mark.parametrize(
    ("p", "marker"), [(0.0002, "***"), (0.001, "**"), (0.0099, "**"), (0.049, "*"), (0.05, ""), (np.nan, "")]
)
def test_significance_marker(p, marker):
    assert stats.significance_marker(p) == marker


# ---------------------------------------------------------------------------------------------------------- ranks


def test_average_ranks_of_demsar_example():
    ranks = stats.average_ranks(DEMSAR_AUC, higher_is_better=True)
    assert list(ranks.index) == DEMSAR_NAMES
    np.testing.assert_allclose(ranks, [3.143, 2.000, 2.893, 1.964], atol=5e-4)
    flipped = stats.average_ranks(DEMSAR_AUC, higher_is_better=False)
    np.testing.assert_allclose(flipped, 5 - ranks)


def test_average_ranks_ties_share_the_mean_rank():
    ranks = stats.average_ranks(np.array([[0.9, 0.9, 0.1], [0.9, 0.8, 0.7]]), higher_is_better=True)
    np.testing.assert_allclose(ranks, [(1.5 + 1) / 2, (1.5 + 2) / 2, 3])


def test_friedman_matches_r_rounding_times():
    result = stats.friedman_test(ROUNDING_TIMES, higher_is_better=False)
    assert result.statistic == pytest.approx(11.143, abs=5e-4)
    assert result.pvalue == pytest.approx(0.003805, abs=5e-7)
    assert (result.n_blocks, result.k) == (22, 3)


def test_friedman_on_demsar_example():
    # Demšar's chi2_F = 12N/(k(k+1)) [sum R_j^2 - k(k+1)^2/4] = 9.28 has no tie correction; scipy divides it by
    # 1 - sum(t^3 - t)/(N(k^3 - k)) with ties: one 4-way (60) and three 2-way (6 each) -> 1 - 78/840.
    result = stats.friedman_test(DEMSAR_AUC, higher_is_better=True)
    assert result.statistic * (1 - 78 / 840) == pytest.approx(9.28, abs=5e-3)
    ranks = result.average_ranks.to_numpy()
    by_formula = 12 * 14 / (4 * 5) * ((ranks**2).sum() - 4 * 25 / 4)
    assert result.statistic * (1 - 78 / 840) == pytest.approx(by_formula)
    assert result.pvalue == pytest.approx(sps.chi2.sf(result.statistic, 3))


def test_friedman_perfect_agreement_closed_form():
    # no ties, every block ranks alike: chi2 = N(k - 1) = 6; chi2 with 2 df has sf(x) = exp(-x/2)
    result = stats.friedman_test(np.array([[3.0, 2.0, 1.0]] * 3), higher_is_better=True)
    assert result.statistic == pytest.approx(6.0)
    assert result.pvalue == pytest.approx(math.exp(-3))
    np.testing.assert_allclose(result.average_ranks, [1, 2, 3])


def test_friedman_all_blocks_tied():
    result = stats.friedman_test(np.ones((3, 4)), higher_is_better=True)
    assert math.isnan(result.statistic) and result.pvalue == 1.0
    np.testing.assert_allclose(result.average_ranks, 2.5)


@pytest.mark.parametrize("scores", [np.ones((5, 2)), np.ones((1, 3)), np.array([[1.0, np.nan, 2.0]] * 3)])
def test_friedman_and_nemenyi_reject_too_little(scores):
    with pytest.raises(ValueError):
        stats.friedman_test(scores, higher_is_better=True)
    with pytest.raises(ValueError):
        stats.nemenyi_test(scores, higher_is_better=True)


# Demšar (2006), Table 5(a): critical values of the two-tailed Nemenyi test (its last digit is off by up to 1 from
# the rounded studentized range, e.g. 2.343 for 2.3437, hence the tolerance of 1e-3)
DEMSAR_Q = {
    0.05: [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164],
    0.10: [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920],
}


@pytest.mark.parametrize("alpha", [0.05, 0.10])
def test_q_alpha_matches_demsar_table(alpha):
    computed = [stats.nemenyi_q_alpha(k, alpha) for k in range(2, 11)]
    np.testing.assert_allclose(computed, DEMSAR_Q[alpha], atol=1e-3)


def test_critical_difference_of_demsar_example():
    # Demšar: CD = 2.569 sqrt(4*5/(6*14)) = 1.25 at alpha 0.05, 1.12 at alpha 0.10
    assert stats.critical_difference(4, 14, 0.05) == pytest.approx(1.25, abs=5e-3)
    assert stats.critical_difference(4, 14, 0.10) == pytest.approx(1.12, abs=5e-3)
    with pytest.raises(ValueError):
        stats.nemenyi_q_alpha(1)


def test_nemenyi_on_demsar_example():
    result = stats.nemenyi_test(DEMSAR_AUC, higher_is_better=True, alpha=0.10)
    p = result.pvalues
    assert list(p.index) == DEMSAR_NAMES and list(p.columns) == DEMSAR_NAMES
    np.testing.assert_allclose(np.diag(p), 1.0)
    np.testing.assert_allclose(p, p.T)
    # closed form: p = P(studentized range_{k, inf} >= sqrt(2) |R_i - R_j| / sqrt(k(k+1)/(6N)))
    ranks = result.average_ranks
    gap = abs(ranks["C4.5"] - ranks["C4.5+m+cf"])
    expected = sps.studentized_range.sf(math.sqrt(2) * gap / math.sqrt(4 * 5 / (6 * 14)), 4, np.inf)
    assert p.loc["C4.5", "C4.5+m+cf"] == pytest.approx(expected)
    # Demšar's conclusion: C4.5+m+cf beats C4.5 at alpha 0.10 (1.179 > CD 1.12) but not at 0.05 (CD 1.25)
    assert 0.05 < p.loc["C4.5", "C4.5+m+cf"] < 0.10
    assert result.critical_difference == pytest.approx(stats.critical_difference(4, 14, 0.10))
    # significance <=> the rank gap reaches the CD
    for a in DEMSAR_NAMES:
        for b in DEMSAR_NAMES:
            if a != b:
                assert (p.loc[a, b] < 0.10) == (abs(ranks[a] - ranks[b]) >= result.critical_difference)


# ---------------------------------------------------------------------------------------------------------- samples


def _regression_pair(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.uniform(-3, 3, size=n)
    return y, y + rng.normal(0, 0.8, size=n), y + rng.normal(0, 0.9, size=n)


def test_paired_bootstrap_mae_observed_and_reproducible():
    y, a, b = _regression_pair()
    result = stats.paired_bootstrap_mae(y, a, b, n_resamples=2000, seed=4)
    assert result.observed == pytest.approx(np.abs(a - y).mean() - np.abs(b - y).mean())
    assert result.ci_low < result.observed < result.ci_high
    assert result == stats.paired_bootstrap_mae(y, a, b, n_resamples=2000, seed=4)
    assert result != stats.paired_bootstrap_mae(y, a, b, n_resamples=2000, seed=5)
    assert (result.n, result.n_resamples) == (600, 2000)


def test_paired_bootstrap_agrees_with_normal_theory_for_a_mean():
    # the bootstrap of a mean of paired differences: CI ~ mean ± 1.96 se, p ~ 2 (1 - Phi(|mean| / se))
    d = np.random.default_rng(2).normal(0.08, 1.0, size=1000)
    result = stats.paired_bootstrap(d, np.zeros_like(d), n_resamples=4999, seed=0)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert result.ci_high - result.ci_low == pytest.approx(2 * 1.959964 * se, rel=0.08)
    assert result.pvalue == pytest.approx(2 * sps.norm.sf(abs(d.mean()) / se), abs=0.02)


def test_paired_bootstrap_degenerate_cases():
    y, a, _ = _regression_pair(n=50)
    same = stats.paired_bootstrap_mae(y, a, a, n_resamples=999)
    assert (same.observed, same.ci_low, same.ci_high, same.pvalue) == (0.0, 0.0, 0.0, 1.0)
    # a far better everywhere: no resample comes near zero, p is the floor 1 / (B + 1)
    better = stats.paired_bootstrap(np.zeros(50), np.linspace(1.0, 2.0, 50), n_resamples=999)
    assert better.pvalue == pytest.approx(1 / 1000) and better.ci_high < 0
    assert math.isnan(stats.paired_bootstrap([1.0], [0.0]).pvalue)  # one sample: undefined (test_degenerate_results)
    with pytest.raises(ValueError):
        stats.paired_bootstrap_mae(y[:10], a, a)


def test_paired_bootstrap_accuracy_and_mcnemar_on_acc2():
    y, a, b = _regression_pair()
    correct_a = stats.acc2_correct(y, a, convention="non0")
    correct_b = stats.acc2_correct(y, b, convention="non0")
    result = stats.paired_bootstrap_accuracy(correct_a, correct_b, n_resamples=1000)
    assert result.observed == pytest.approx(correct_a.mean() - correct_b.mean())
    mcnemar = stats.mcnemar_exact(correct_a, correct_b)
    assert mcnemar.b - mcnemar.c == int(correct_a.sum() - correct_b.sum())
    assert mcnemar.pvalue == pytest.approx(sps.binomtest(mcnemar.b, mcnemar.b + mcnemar.c).pvalue)


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (1, 7, 2 * (1 + 8) / 2**8),  # two-sided binomial(8, 1/2) tail P(X <= 1), doubled
        (2, 8, 2 * (1 + 10 + 45) / 2**10),
        (5, 5, 1.0),
        (0, 0, 1.0),  # no discordant pair
    ],
)
def test_mcnemar_exact_by_hand(b, c, expected):
    # b pairs only a gets right, c only b, plus concordant pairs that must not matter
    correct_a = np.array([True] * b + [False] * c + [True] * 4 + [False] * 3)
    correct_b = np.array([False] * b + [True] * c + [True] * 4 + [False] * 3)
    result = stats.mcnemar_exact(correct_a, correct_b)
    assert (result.b, result.c, result.n) == (b, c, b + c + 7)
    assert result.pvalue == pytest.approx(expected)
    assert stats.mcnemar_exact(correct_b, correct_a).pvalue == pytest.approx(expected)


def test_acc2_correct_both_conventions_with_zero_labels():
    y = np.array([-1.0, 0.0, 0.5, 2.0, -0.3])
    p = np.array([-0.2, 0.1, -0.1, 0.0, 0.4])
    # has0: (y >= 0) == (p >= 0); a prediction of exactly 0 counts as non-negative
    np.testing.assert_array_equal(stats.acc2_correct(y, p, convention="has0"), [True, True, False, True, False])
    # non0: the zero label is dropped; a prediction of exactly 0 is not positive
    np.testing.assert_array_equal(stats.acc2_correct(y, p, convention="non0"), [True, False, False, False])
    with pytest.raises(ValueError):
        stats.acc2_correct(y, p, convention="both")


def _predictions() -> pd.DataFrame:
    rows = []
    for fusion, offset in (("grf", 0.0), ("late", 0.3)):
        for seed in (0, 1, 2):
            for sample in (12, 10, 11):
                rows.append({"fusion": fusion, "seed": seed, "id": sample, "label": sample - 11.0,
                             "prediction": sample - 11.0 + offset + 0.1 * seed})
    return pd.DataFrame(rows)


def test_average_over_seeds_and_align_pair():
    averaged = stats.average_over_seeds(_predictions())
    assert list(averaged.columns) == ["fusion", "id", "label", "prediction", "n_seeds"]
    assert len(averaged) == 6 and (averaged["n_seeds"] == 3).all()
    grf = averaged[averaged["fusion"] == "grf"].set_index("id")["prediction"]
    assert grf[10] == pytest.approx(-1.0 + 0.1)  # mean of the seed offsets 0, 0.1, 0.2
    pair = stats.align_pair(averaged, "grf", "late")
    np.testing.assert_array_equal(pair.ids, [10, 11, 12])
    np.testing.assert_array_equal(pair.labels, [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(pair.pred_b - pair.pred_a, 0.3)


def test_average_over_seeds_vote_breaks_ties_to_the_smallest_class():
    frame = pd.DataFrame({"fusion": "a", "seed": [0, 1, 2, 0, 1, 2], "id": [1, 1, 1, 2, 2, 2],
                          "label": [3, 3, 3, 4, 4, 4], "prediction": [3, 5, 5, 6, 2, 4]})
    voted = stats.average_over_seeds(frame, how="vote")
    assert list(voted["prediction"]) == [5, 2]


def test_prediction_helpers_reject_inconsistent_input():
    frame = _predictions()
    with pytest.raises(ValueError, match="repeat"):
        stats.average_over_seeds(pd.concat([frame, frame.iloc[:1]]))
    wrong_label = frame.copy()
    wrong_label.loc[0, "label"] = 5.0
    with pytest.raises(ValueError, match="differs"):
        stats.average_over_seeds(wrong_label)
    with pytest.raises(ValueError, match="seed"):
        stats.align_pair(frame, "grf", "late")  # three seeds per id: not one row per sample
    one_seed = frame[frame["seed"] == 0]
    with pytest.raises(ValueError, match="different samples"):
        stats.align_pair(one_seed.drop(index=one_seed.index[0]), "grf", "late")
    with pytest.raises(ValueError, match="no predictions"):
        stats.align_pair(one_seed, "grf", "tfn")


# ---------------------------------------------------------------------------------------------------------- tables


def _records() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i, fusion in enumerate(["grf", "pairwise", "late", "concat"]):
        for seed in range(5):
            mae, acc = 0.80 + 0.03 * i + rng.normal(0, 0.02), 0.75 - 0.01 * i + rng.normal(0, 0.01)
            rows.append({"fusion": fusion, "seed": seed, "dataset": "synthetic", "params": 1000 + i,
                         "mae": mae, "acc2_non0": acc})
    return pd.DataFrame(rows)


def test_seed_matrix_pairs_by_seed_and_keeps_complete_blocks():
    records = _records().sample(frac=1.0, random_state=1)  # row order must not matter
    matrix = stats.seed_matrix(records, "mae", fusions=["grf", "late"])
    assert list(matrix.columns) == ["grf", "late"] and list(matrix.index) == [0, 1, 2, 3, 4]
    expected = records[(records["fusion"] == "late") & (records["seed"] == 3)]["mae"].item()
    assert matrix.loc[3, "late"] == expected
    incomplete = records[~((records["fusion"] == "late") & (records["seed"] == 3))]
    assert list(stats.seed_matrix(incomplete, "mae").index) == [0, 1, 2, 4]
    assert stats.seed_matrix(incomplete, "mae", complete=False)["late"].isna().sum() == 1
    with pytest.raises(ValueError, match="repeat"):
        stats.seed_matrix(pd.concat([records, records.iloc[:1]]), "mae")


def test_summary_table_rows_are_summarize_seeds():
    records = _records()
    table = stats.summary_table(records, n_resamples=500)
    assert list(table["metric"].unique()) == ["mae", "acc2_non0"]  # only known metric columns, mapping order
    assert len(table) == 8
    row = table[(table["metric"] == "mae") & (table["fusion"] == "late")].iloc[0]
    expected = stats.summarize_seeds(records.loc[records["fusion"] == "late", "mae"], n_resamples=500)
    assert (row["mean"], row["std"], row["ci_low"], row["ci_high"]) == (
        expected.mean, expected.std, expected.ci_low, expected.ci_high)
    assert not row["higher_is_better"]
    with pytest.raises(ValueError, match="direction unknown"):
        stats.summary_table(records, ["params"])


def test_comparison_table_tests_and_holm_family():
    records = _records().sample(frac=1.0, random_state=2)
    table = stats.comparison_table(records, "grf")
    assert len(table) == 2 * 3  # metrics x fusions other than the baseline
    assert set(table["baseline"]) == {"grf"} and "grf" not in set(table["fusion"])
    row = table[(table["metric"] == "mae") & (table["fusion"] == "concat")].iloc[0]
    matrix = stats.seed_matrix(records, "mae")
    expected = stats.paired_comparison(matrix["concat"], matrix["grf"], higher_is_better=False)
    assert row["t_pvalue"] == pytest.approx(expected.t_pvalue)
    assert row["d_z"] == pytest.approx(expected.d_z)
    # concat has the higher MAE: raw difference positive, oriented statistics negative (worse than the baseline)
    assert row["mean_diff"] > 0 and row["t_statistic"] < 0 and row["d_z"] < 0 and row["rank_biserial"] < 0
    np.testing.assert_allclose(table["t_pvalue_holm"], stats.holm_adjust(table["t_pvalue"]))
    np.testing.assert_allclose(table["wilcoxon_pvalue_holm"], stats.holm_adjust(table["wilcoxon_pvalue"]))
    # 5 seeds: the exact Wilcoxon p-value cannot go below 2/32, and Holm over 6 comparisons lifts it further
    assert table["wilcoxon_pvalue"].min() >= 2 / 32 - 1e-12


def test_comparison_table_pairs_only_shared_seeds_and_checks_input():
    records = _records()
    dropped = records[~((records["fusion"] == "late") & (records["seed"] == 0))]
    table = stats.comparison_table(dropped, "grf", ["mae"])
    assert dict(zip(table["fusion"], table["n"])) == {"pairwise": 5, "late": 4, "concat": 5}
    with pytest.raises(ValueError, match="baseline"):
        stats.comparison_table(records, "tfn")
    with pytest.raises(ValueError, match="only the baseline"):
        stats.comparison_table(records[records["fusion"] == "grf"], "grf")
    with pytest.raises(ValueError, match="no column"):
        stats.comparison_table(records, "grf", ["acc7"])


def test_wilcoxon_with_one_nonzero_difference_among_zeros():
    """A single non-zero difference: both sign flips are equally extreme, so p = 1 (no crash)."""
    result = stats.paired_comparison([0.5, 0.6, 0.7], [0.5, 0.6, 0.8], higher_is_better=True)
    assert result.wilcoxon_pvalue == 1.0 and result.wilcoxon_method == "exact permutation"
