"""Paired by seed, a fusion against a baseline: paired t-test, Wilcoxon signed-rank test, Cohen's d_z and the
matched-pairs rank-biserial correlation (:func:`paired_comparison`).

Oriented quantities (t statistic, d_z, rank-biserial) are positive when the fusion is better than the baseline;
``mean_diff`` keeps the metric's own units and sign. Differences equal up to rounding are made equal first
(:func:`~analysis.stats.values.snap_to_ties`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .values import as_pair, as_vector, snap_to_ties

__all__ = ["PairedComparison", "cohens_dz", "paired_comparison", "rank_biserial"]

# Wilcoxon p-values: exact null distribution without ties/zeros up to this many pairs (scipy's own limit) ...
_WILCOXON_EXACT_MAX_N = 50
# ... and, with ties or zero differences, enumeration of all 2**n sign flips up to this many non-zero differences
# (scipy's method="auto" makes the same switch at 13).
_WILCOXON_PERMUTATION_MAX_N = 13

def cohens_dz(differences) -> float:
    """Cohen's d_z of paired differences: ``mean(d) / std(d, ddof=1)``.

    Args:
        differences: ``[n_pairs]`` paired differences, oriented by the caller (positive = better).

    Returns:
        d_z; NaN when n < 2 or all differences are zero (0/0); ``±inf`` when all differences are equal and non-zero.
        Equality is exact here: :func:`paired_comparison` passes differences through :func:`snap_to_ties` first.
    """
    d = as_vector(differences, "differences")
    if d.size < 2 or np.all(d == 0):
        return np.nan
    sd = d.std(ddof=1)
    if sd == 0:
        return float(np.copysign(np.inf, d[0]))
    return float(d.mean() / sd)


def rank_biserial(differences) -> float:
    """Matched-pairs rank-biserial correlation (Kerby 2014, the simple difference formula).

    ``r = (R+ - R-) / (R+ + R-)``, where ``R+`` (``R-``) is the sum of the ranks of ``|d|`` over the positive
    (negative) differences. Zero differences are dropped before ranking (``zero_method="wilcox"``, as in
    :func:`paired_comparison`); tied ``|d|`` get the average rank. r lies in [-1, 1]: +1 when every non-zero
    difference is positive.

    Args:
        differences: ``[n_pairs]`` paired differences, oriented by the caller (positive = better).

    Returns:
        r; NaN when there is no non-zero difference.
    """
    d = as_vector(differences, "differences")
    d = d[d != 0]
    if d.size == 0:
        return np.nan
    ranks = stats.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


@dataclass(frozen=True)
class PairedComparison:
    """A fusion against a baseline, paired by seed.

    Fields:
        n: number of pairs.
        mean_diff: ``mean(fusion - baseline)``, raw metric units and sign (for MAE, negative = fusion better).
        t_statistic: paired t statistic, oriented (positive = fusion better).
        t_pvalue: two-sided p-value of the paired t-test.
        wilcoxon_statistic: ``min(R+, R-)`` (scipy's two-sided statistic); zero differences dropped.
        wilcoxon_pvalue: two-sided p-value of the Wilcoxon signed-rank test.
        wilcoxon_method: how that p-value was computed: ``"exact"``, ``"exact permutation"`` (ties or zeros),
            ``"normal approximation"``, ``"no non-zero difference"``, or ``"no pair"`` (:func:`comparison_table`).
        d_z: Cohen's d_z, oriented (:func:`cohens_dz`).
        rank_biserial: matched-pairs rank-biserial correlation, oriented (:func:`rank_biserial`).
        t_note: why the t-test's p-value is undefined (NaN) or set by convention (1.0 for identical results);
            empty when the test ran.
    """

    n: int
    mean_diff: float
    t_statistic: float
    t_pvalue: float
    wilcoxon_statistic: float
    wilcoxon_pvalue: float
    wilcoxon_method: str
    d_z: float
    rank_biserial: float
    t_note: str = ""


def _paired_t(d: np.ndarray) -> tuple[float, float, str]:
    """One-sample t statistic and two-sided p-value of oriented, snapped differences ``d`` (the paired t-test of
    the two fusions), and a note for the degenerate cases."""
    if d.size < 2:
        return np.nan, np.nan, f"{d.size} paired seed: a t-test needs at least 2"
    if np.all(d == 0):
        return np.nan, 1.0, f"all {d.size} paired differences are zero (identical results): p set to 1"
    if np.all(d == d[0]):
        return (float(np.copysign(np.inf, d[0])), np.nan,
                f"all {d.size} paired differences equal {d[0]:.4g} (no variance): the t-test is undefined")
    result = stats.ttest_1samp(d, 0.0)
    return float(result.statistic), float(result.pvalue), ""


def _positive_rank_sum(d: np.ndarray, axis: int = -1) -> np.ndarray:
    """``R+``: the sum of the ranks of ``|d|`` over the positive ``d`` (vectorized over sign-flipped copies)."""
    return np.sum(stats.rankdata(np.abs(d), axis=axis) * (d > 0), axis=axis)


def _wilcoxon(d: np.ndarray) -> tuple[float, float, str]:
    """Wilcoxon signed-rank statistic ``min(R+, R-)``, two-sided p-value and p-value method of differences ``d``."""
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return 0.0, 1.0, "no non-zero difference"
    ties_or_zeros = nonzero.size < d.size or np.unique(np.abs(nonzero)).size < nonzero.size
    if not ties_or_zeros and d.size <= _WILCOXON_EXACT_MAX_N:
        result = stats.wilcoxon(d, method="exact")
        return float(result.statistic), float(result.pvalue), "exact"
    if nonzero.size == 1:  # both sign flips of a single difference are equally extreme
        return 0.0, 1.0, "exact permutation"
    if nonzero.size <= _WILCOXON_PERMUTATION_MAX_N:
        # The exact conditional test: all 2**n sign flips of the non-zero differences with their tied ranks (the
        # same p-value as scipy.stats.wilcoxon with a PermutationMethod, which enumerates them ~100x slower).
        result = stats.permutation_test(
            (nonzero,), _positive_rank_sum, permutation_type="samples", vectorized=True, n_resamples=np.inf
        )
        r_plus = float(result.statistic)
        return min(r_plus, nonzero.size * (nonzero.size + 1) / 2 - r_plus), float(result.pvalue), "exact permutation"
    result = stats.wilcoxon(d, zero_method="wilcox", method="asymptotic")
    return float(result.statistic), float(result.pvalue), "normal approximation"


def paired_comparison(fusion, baseline, *, higher_is_better: bool) -> PairedComparison:
    """Paired tests and effect sizes of a fusion against a baseline, paired by seed.

    Args:
        fusion: ``[n_seeds]`` metric values of the fusion.
        baseline: ``[n_seeds]`` metric values of the baseline, same seeds in the same order.
        higher_is_better: the metric's direction; orients t, d_z and rank-biserial (positive = fusion better).

    Returns:
        :class:`PairedComparison`.

    Tests (both two-sided, on ``d = fusion - baseline``; orientation does not change a two-sided p-value):

    Differences equal up to rounding (to each other or to 0) are made equal first (:func:`snap_to_ties`, scale: the
    largest absolute value of ``fusion`` and ``baseline``); every statistic, ``mean_diff`` included, reads them.

    * paired t-test (the one-sample t-test of the differences, as ``scipy.stats.ttest_rel``). n < 2: t and p NaN.
      All differences zero: t NaN, p = 1.0. All differences equal and non-zero (no variance, e.g. 2 seeds whose
      accuracies both differ by one test sample): t = ±inf, p NaN, so no significance marker; ``t_note`` says
      which case it is.
    * Wilcoxon signed-rank (``scipy.stats.wilcoxon``, ``zero_method="wilcox"``: zero differences are dropped, so
      the effective n is the number of non-zero differences). p-value: exact null distribution when there are no
      ties and no zeros (n <= 50); with ties or zeros, enumeration of all 2**n sign flips of the non-zero
      differences (the exact conditional test, ``scipy.stats.permutation_test``) when there are at most 13 of
      them; normal approximation (tie-corrected variance, no continuity correction) otherwise. The smallest
      attainable two-sided p-value is ``2 / 2**n_nonzero`` (ties or not): 0.25 for 3 seeds, 0.125 for 4, 0.0625
      for 5, so p < 0.05 needs at least 6 non-zero paired differences.
    """
    fusion, baseline = as_pair(fusion, baseline, ("fusion", "baseline"))
    sign = 1.0 if higher_is_better else -1.0
    d = snap_to_ties(sign * (fusion - baseline), scale=float(np.abs(np.concatenate([fusion, baseline])).max()))
    t_statistic, t_pvalue, t_note = _paired_t(d)
    w_statistic, w_pvalue, w_method = _wilcoxon(d)
    return PairedComparison(
        n=int(d.size),
        mean_diff=float(sign * d.mean()),
        t_statistic=t_statistic,
        t_pvalue=t_pvalue,
        wilcoxon_statistic=w_statistic,
        wilcoxon_pvalue=w_pvalue,
        wilcoxon_method=w_method,
        d_z=cohens_dz(d),
        rank_biserial=rank_biserial(d),
        t_note=t_note,
    )
