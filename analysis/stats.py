"""Statistics for comparing fusions: pure functions on numpy arrays and pandas frames (no I/O, no plotting).

Four levels, each with its own inputs:

* **Per fusion and metric, over seeds** (:func:`summarize_seeds`, :func:`summary_table`): mean, standard deviation
  (ddof=1), percentile-bootstrap and Student-t 95% confidence intervals of the mean.
* **Paired by seed, a fusion against a baseline** (:func:`paired_comparison`, :func:`comparison_table`): paired
  t-test, Wilcoxon signed-rank test, Cohen's d_z and the matched-pairs rank-biserial correlation; Holm-Bonferroni
  correction across a table (:func:`holm_adjust`).
* **Across all fusions, seeds as blocks** (:func:`friedman_test`, :func:`nemenyi_test`, :func:`critical_difference`):
  Friedman test, average ranks, Nemenyi post-hoc p-values and Demšar's (2006) critical difference.
* **Per sample on the test set, two fusions** (:func:`paired_bootstrap_mae`, :func:`paired_bootstrap_accuracy`,
  :func:`mcnemar_exact`): paired bootstrap of the MAE and accuracy differences, McNemar's exact test; with
  :func:`average_over_seeds` and :func:`align_pair` to prepare per-sample predictions.

Direction conventions (the one thing to read before using the numbers):

* Raw differences (``mean_diff``, :class:`BootstrapDifference` ``observed``) are in metric units and keep the
  metric's own sign: ``fusion - baseline`` or ``a - b``.
* Oriented quantities (t statistic, d_z, rank-biserial of :class:`PairedComparison`) are positive when the fusion is
  *better* than the baseline, whatever the metric's direction (``higher_is_better``; see :data:`HIGHER_IS_BETTER`).
* Ranks: rank 1 is the best fusion; ties share the average rank.
* Degenerate data do not raise. A test that is undefined (no variance: every paired difference the same
  non-zero value; too few pairs or samples) has p = ``NaN``, so it gets no significance marker and is left out of
  Holm's family, and its result says why in a ``note`` field (``PairedComparison.t_note``,
  ``BootstrapDifference.note``, ``McNemarResult.note``, ``FriedmanResult.note``). Identical results (every
  difference zero, every block tied) give p = 1.0, no evidence of a difference, with a note saying so. Each
  function's docstring says what it returns in those cases. Input no test can take (empty or misaligned arrays,
  NaN values, fewer than 3 fusions for Friedman/Nemenyi) raises ``ValueError``.
* Rounding: values that differ by at most ``benchmarks.metrics.NOISE_RTOL`` (1e-5) times their magnitude are
  equal for every test (:func:`snap_to_ties`): zero differences, ties in ranks and zero variance are read after
  merging them, so accuracies of 2 seeds that differ from the baseline's by the same count of samples (equal but
  for the last bit of the subtraction) are "no variance", not t = 7.5e14 with p ~ 1e-15.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
from scipy import stats

from benchmarks.metrics import NOISE_RTOL

__all__ = [
    "HIGHER_IS_BETTER",
    "AlignedPredictions",
    "BootstrapDifference",
    "FriedmanResult",
    "McNemarResult",
    "NemenyiResult",
    "PairedComparison",
    "SeedSummary",
    "acc2_correct",
    "align_pair",
    "average_over_seeds",
    "average_ranks",
    "cohens_dz",
    "comparison_table",
    "critical_difference",
    "friedman_test",
    "holm_adjust",
    "mcnemar_exact",
    "nemenyi_q_alpha",
    "nemenyi_test",
    "paired_bootstrap",
    "paired_bootstrap_accuracy",
    "paired_bootstrap_mae",
    "paired_comparison",
    "rank_biserial",
    "seed_matrix",
    "significance_marker",
    "snap_to_ties",
    "summarize_seeds",
    "summary_table",
]

HIGHER_IS_BETTER: Mapping[str, bool] = MappingProxyType(
    {
        "mae": False,
        "corr": True,
        "acc2_has0": True,
        "f1_has0": True,
        "acc2_non0": True,
        "f1_non0": True,
        "acc5": True,
        "acc7": True,
        "accuracy": True,
        "f1_macro": True,
    }
)
"""Direction of every metric column of the records: ``True`` when a higher value is better (only ``mae`` is not)."""

# Wilcoxon p-values: exact null distribution without ties/zeros up to this many pairs (scipy's own limit) ...
_WILCOXON_EXACT_MAX_N = 50
# ... and, with ties or zero differences, enumeration of all 2**n sign flips up to this many non-zero differences
# (scipy's method="auto" makes the same switch at 13).
_WILCOXON_PERMUTATION_MAX_N = 13


def _as_vector(values, name: str) -> np.ndarray:
    """``values`` as a finite 1-D float array, or a ValueError naming ``name``."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


def snap_to_ties(values, scale: float) -> np.ndarray:
    """``values`` ``[n]`` with the values that are equal up to rounding made exactly equal.

    Magnitudes at most ``tol = NOISE_RTOL * scale`` become 0; the other magnitudes, sorted, are grouped where
    neighbours lie within ``tol`` of each other, and each takes its group's smallest magnitude; signs are kept.
    ``scale`` is in the values' units: the magnitude of the quantities they were computed from (e.g. the largest
    absolute metric value behind a set of paired differences). Exact ties, zeros and zero variance can then be
    read with ``==``.
    """
    values = np.asarray(values, dtype=float)
    tolerance = NOISE_RTOL * scale
    magnitude = np.abs(values)
    magnitude[magnitude <= tolerance] = 0.0
    order = np.argsort(magnitude, kind="stable")
    ordered = magnitude[order]
    group = np.concatenate([[0], np.cumsum(np.diff(ordered) > tolerance)])
    snapped = np.empty_like(magnitude)
    snapped[order] = ordered[np.searchsorted(group, group)]  # each group's first (smallest) member
    return np.sign(values) * snapped


def _as_pair(a, b, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Two finite 1-D float arrays of the same, non-zero length."""
    a, b = _as_vector(a, names[0]), _as_vector(b, names[1])
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same length, got {a.size} and {b.size}")
    if a.size == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty")
    return a, b


# ----------------------------------------------------------------------------------------------------------------------
# Per fusion and metric, over seeds
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSummary:
    """Summary of one fusion's metric over seeds.

    ``ci_low``/``ci_high``: bootstrap confidence interval of the mean (see :func:`summarize_seeds`);
    ``t_ci_low``/``t_ci_high``: Student-t interval ``mean ± t_{(1+c)/2, n-1} · std / sqrt(n)``.
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    t_ci_low: float
    t_ci_high: float


def summarize_seeds(
    values, *, confidence: float = 0.95, n_resamples: int = 9999, method: str = "percentile", seed: int = 0
) -> SeedSummary:
    """Mean, standard deviation and confidence intervals of one metric over seeds.

    Args:
        values: ``[n_seeds]`` metric values of one fusion, one per seed (finite).
        confidence: confidence level of both intervals.
        n_resamples: bootstrap resamples.
        method: ``scipy.stats.bootstrap`` interval method: ``"percentile"`` (default), ``"basic"`` or ``"BCa"``.
        seed: seed of the bootstrap generator; the same seed gives the same interval.

    Returns:
        :class:`SeedSummary`. ``std`` uses ddof=1. Small samples, by design never an exception:

        * n = 1: ``std`` and both intervals are NaN.
        * all values equal: both intervals are ``(value, value)``.
        * n = 2 or 3: the percentile bootstrap interval is exactly ``(min, max)`` of the values (each extreme
          resample has probability 1/n**n > 2.5%); it is a description of the seeds, not a 95% interval with
          95% coverage. The t interval is the honest one at these n (and it is wide: t_{0.975,2} = 4.30).
    """
    values = _as_vector(values, "values")
    n = values.size
    if n == 0:
        raise ValueError("values is empty")
    mean = float(values.mean())
    if n == 1:
        return SeedSummary(1, mean, np.nan, np.nan, np.nan, np.nan, np.nan)
    if np.all(values == values[0]):
        value = float(values[0])  # exactly, where the floating-point mean may be off in the last digit
        return SeedSummary(n, value, 0.0, value, value, value, value)
    std = float(values.std(ddof=1))
    result = stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method=method,
        rng=np.random.default_rng(seed),
    )
    half_width = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / float(np.sqrt(n))
    return SeedSummary(
        n,
        mean,
        std,
        float(result.confidence_interval.low),
        float(result.confidence_interval.high),
        mean - half_width,
        mean + half_width,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Paired by seed: a fusion against a baseline
# ----------------------------------------------------------------------------------------------------------------------


def cohens_dz(differences) -> float:
    """Cohen's d_z of paired differences: ``mean(d) / std(d, ddof=1)``.

    Args:
        differences: ``[n_pairs]`` paired differences, oriented by the caller (positive = better).

    Returns:
        d_z; NaN when n < 2 or all differences are zero (0/0); ``±inf`` when all differences are equal and non-zero.
        Equality is exact here: :func:`paired_comparison` passes differences through :func:`snap_to_ties` first.
    """
    d = _as_vector(differences, "differences")
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
    d = _as_vector(differences, "differences")
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
    fusion, baseline = _as_pair(fusion, baseline, ("fusion", "baseline"))
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


def holm_adjust(pvalues) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (Holm 1979), in the input order.

    With the m finite p-values sorted ascending, ``p_adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``: monotone
    in the sorted order and capped at 1. Equal to ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]``.
    Reject at level alpha where ``p_adj <= alpha``.

    Args:
        pvalues: ``[m]`` p-values in [0, 1] (array-like); NaN entries (an undefined test) stay NaN and are not
            counted in the family size m.

    Returns:
        ``[m]`` adjusted p-values.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got shape {p.shape}")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    adjusted = np.full_like(p, np.nan)
    values = p[finite]
    order = np.argsort(values, kind="stable")
    m = values.size
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * values[order]))
    result = np.empty(m)
    result[order] = stepped
    adjusted[finite] = result
    return adjusted


def significance_marker(p_adjusted: float) -> str:
    """Stars for an (adjusted) p-value: ``"***"`` p < 0.001, ``"**"`` p < 0.01, ``"*"`` p < 0.05, else ``""``.

    NaN (an undefined test) gives ``""``.
    """
    if np.isnan(p_adjusted):
        return ""
    for threshold, marker in ((0.001, "***"), (0.01, "**"), (0.05, "*")):
        if p_adjusted < threshold:
            return marker
    return ""


# ----------------------------------------------------------------------------------------------------------------------
# Across all fusions, seeds as blocks
# ----------------------------------------------------------------------------------------------------------------------


def _block_matrix(scores, minimum_groups: int = 3) -> tuple[np.ndarray, list]:
    """``scores`` as a finite ``[n_blocks, k]`` array with its column names, each block's values that are equal up
    to rounding made equal (:func:`snap_to_ties`, scale: the block's largest absolute value); ValueError when too
    small."""
    names = list(scores.columns) if isinstance(scores, pd.DataFrame) else None
    matrix = np.asarray(scores, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"scores must be a [n_seeds, n_fusions] matrix, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("scores holds NaN or infinite values: use complete blocks (seed_matrix drops the others)")
    n_blocks, k = matrix.shape
    if k < minimum_groups:
        raise ValueError(
            f"a comparison of all fusions needs at least {minimum_groups} fusions, got {k}; "
            "for two fusions use paired_comparison"
        )
    if n_blocks < 2:
        raise ValueError(f"a comparison of all fusions needs at least 2 seeds (blocks), got {n_blocks}")
    snapped = np.stack([snap_to_ties(block, scale=float(np.abs(block).max())) for block in matrix])
    return snapped, names if names is not None else list(range(k))


def average_ranks(scores, *, higher_is_better: bool) -> pd.Series:
    """Average rank of each fusion over blocks (rank 1 = best in a block, ties share the average rank).

    Args:
        scores: ``[n_seeds, n_fusions]`` metric values (ndarray, or DataFrame with fusion names as columns).
        higher_is_better: the metric's direction.

    Returns:
        ``[n_fusions]`` Series of average ranks, indexed by fusion name (column position for an ndarray); the mean
        of the ranks is always ``(k + 1) / 2``.
    """
    matrix, names = _block_matrix(scores, minimum_groups=2)
    ranks = stats.rankdata(-matrix if higher_is_better else matrix, axis=1, method="average")
    return pd.Series(ranks.mean(axis=0), index=names, name="average_rank")


@dataclass(frozen=True, eq=False)
class FriedmanResult:
    """Friedman test over blocks (seeds).

    Fields: ``statistic`` (chi-square, tie-corrected as scipy computes it), ``pvalue`` (chi-square with k - 1
    degrees of freedom), ``n_blocks``, ``k``, ``average_ranks`` (Series, rank 1 = best), ``note`` (why p is set by
    convention; empty when the test ran).
    """

    statistic: float
    pvalue: float
    n_blocks: int
    k: int
    average_ranks: pd.Series
    note: str = ""


def friedman_test(scores, *, higher_is_better: bool) -> FriedmanResult:
    """Friedman's test that all fusions perform alike, seeds as blocks (``scipy.stats.friedmanchisquare``).

    Args:
        scores: ``[n_seeds, n_fusions]`` metric values, complete blocks (ndarray, or DataFrame with fusion names).
        higher_is_better: the metric's direction (for the ranks only; the test itself is direction-free).

    Returns:
        :class:`FriedmanResult`. Values equal up to rounding tie (see :func:`_block_matrix`). With ties inside
        blocks the statistic is Demšar's (2006) chi-square divided by the tie correction
        ``1 - sum(t^3 - t) / (N (k^3 - k))``. When every block is entirely tied (identical results) the statistic
        is 0/0: NaN, with p = 1.0 and a note. The chi-square p-value is approximate; with 3 seeds it is rough.

    Raises:
        ValueError: fewer than 3 fusions, fewer than 2 seeds, or missing values.
    """
    matrix, _ = _block_matrix(scores)
    ranks = average_ranks(scores, higher_is_better=higher_is_better)
    n_blocks, k = matrix.shape
    if np.all(matrix == matrix[:, :1]):
        note = f"every one of the {n_blocks} seeds ties all {k} fusions (identical results): p set to 1"
        return FriedmanResult(np.nan, 1.0, n_blocks, k, ranks, note)
    result = stats.friedmanchisquare(*matrix.T)
    return FriedmanResult(float(result.statistic), float(result.pvalue), n_blocks, k, ranks)


def nemenyi_q_alpha(k: int, alpha: float = 0.05) -> float:
    """Demšar's (2006) q_alpha for the Nemenyi test: ``studentized_range.ppf(1 - alpha, k, inf) / sqrt(2)``.

    Args:
        k: number of fusions compared (>= 2).
        alpha: significance level.

    Returns:
        q_alpha (e.g. 2.343 for k = 3, 2.569 for k = 4, 2.728 for k = 5 at alpha = 0.05).
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2))


def critical_difference(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks: ``CD = q_alpha sqrt(k (k + 1) / (6 N))`` (Demšar 2006).

    Two fusions differ significantly (all-pairs, family-wise level alpha) when their average ranks differ by at
    least CD.

    Args:
        k: number of fusions.
        n_blocks: number of blocks N (seeds).
        alpha: significance level.
    """
    if n_blocks < 1:
        raise ValueError(f"n_blocks must be at least 1, got {n_blocks}")
    return nemenyi_q_alpha(k, alpha) * float(np.sqrt(k * (k + 1) / (6 * n_blocks)))


@dataclass(frozen=True, eq=False)
class NemenyiResult:
    """Nemenyi all-pairs post-hoc test after Friedman.

    Fields: ``pvalues`` (``[k, k]`` DataFrame of family-wise p-values, 1 on the diagonal, symmetric),
    ``average_ranks`` (Series, rank 1 = best), ``critical_difference`` and ``q_alpha`` at ``alpha``, ``n_blocks``.
    """

    pvalues: pd.DataFrame
    average_ranks: pd.Series
    critical_difference: float
    q_alpha: float
    alpha: float
    n_blocks: int


def nemenyi_test(scores, *, higher_is_better: bool, alpha: float = 0.05) -> NemenyiResult:
    """Nemenyi post-hoc test (``scikit_posthocs.posthoc_nemenyi_friedman``) and the critical difference.

    The p-values are already family-wise over all k(k-1)/2 pairs (studentized range): do not Holm-adjust them.
    ``pvalues[i, j] < alpha`` exactly when ``|R_i - R_j| > CD``. Ranks are taken after values equal up to rounding
    are tied (as in :func:`friedman_test`); with every block tied all p-values are 1.

    Args:
        scores: ``[n_seeds, n_fusions]`` metric values, complete blocks (ndarray, or DataFrame with fusion names).
        higher_is_better: the metric's direction (for the average ranks; p-values are direction-free).
        alpha: level of the critical difference.

    Raises:
        ValueError: fewer than 3 fusions, fewer than 2 seeds, or missing values.
    """
    matrix, names = _block_matrix(scores)
    n_blocks, k = matrix.shape
    import scikit_posthocs  # on use: it imports matplotlib, seaborn and statsmodels, seconds at start-up

    pvalues = scikit_posthocs.posthoc_nemenyi_friedman(matrix).to_numpy()  # the snapped matrix: ties as ranked
    return NemenyiResult(
        pvalues=pd.DataFrame(pvalues, index=names, columns=names),
        average_ranks=average_ranks(scores, higher_is_better=higher_is_better),
        critical_difference=critical_difference(k, n_blocks, alpha),
        q_alpha=nemenyi_q_alpha(k, alpha),
        alpha=alpha,
        n_blocks=n_blocks,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Per sample on the test set: two fusions on the same samples
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapDifference:
    """Paired bootstrap of a difference of means over samples.

    Fields: ``observed`` (``mean(a) - mean(b)`` on the full test set), ``ci_low``/``ci_high`` (bootstrap
    confidence interval of that difference), ``pvalue`` (two-sided, see :func:`paired_bootstrap`), ``n`` (samples),
    ``n_resamples``, ``note`` (why the p-value is undefined or set by convention; empty when the test ran).
    """

    observed: float
    ci_low: float
    ci_high: float
    pvalue: float
    n: int
    n_resamples: int
    note: str = ""


def paired_bootstrap(
    scores_a,
    scores_b,
    *,
    n_resamples: int = 9999,
    confidence: float = 0.95,
    method: str = "percentile",
    seed: int = 0,
) -> BootstrapDifference:
    """Paired bootstrap over samples of ``mean(scores_a) - mean(scores_b)``.

    Sample indices are resampled with replacement, the same indices for a and b (``scipy.stats.bootstrap`` on the
    per-sample differences). The two-sided p-value tests "no difference" by centring the bootstrap distribution on
    the null (Hall & Wilson 1991): ``p = (1 + #{|θ*_b - θ̂| >= |θ̂|}) / (B + 1)``; never below ``1 / (B + 1)``.

    Degenerate cases (per-sample differences equal up to rounding, :func:`snap_to_ties` with the scores' largest
    absolute value as scale), each with a ``note``:

    * every difference zero (identical scores): interval ``(observed, observed)``, p = 1.0;
    * every difference the same non-zero value: the bootstrap distribution is one point, so there is no p-value:
      interval ``(observed, observed)``, p NaN (for accuracies McNemar's test still applies);
    * fewer than 2 samples (e.g. a one-sample test split, or Acc-2 non0 where every label is 0): interval and p
      NaN, ``observed`` NaN when there is no sample.

    Args:
        scores_a: ``[n_samples]`` per-sample scores of fusion a (absolute error, or 0/1 correctness).
        scores_b: ``[n_samples]`` the same for fusion b, same samples in the same order.
        n_resamples: bootstrap resamples B.
        confidence: level of the interval.
        method: ``scipy.stats.bootstrap`` interval method (``"percentile"``, ``"basic"`` or ``"BCa"``).
        seed: seed of the generator; the same seed gives the same interval and p-value.

    Returns:
        :class:`BootstrapDifference`.

    Raises:
        ValueError: different lengths, not 1-D, or non-finite values.
    """
    a, b = _as_vector(scores_a, "scores_a"), _as_vector(scores_b, "scores_b")
    if a.shape != b.shape:
        raise ValueError(f"scores_a and scores_b must have the same length, got {a.size} and {b.size}")
    if a.size < 2:
        observed = float((a - b).mean()) if a.size else np.nan
        note = f"{a.size} test sample{'' if a.size == 1 else 's'}: a bootstrap needs at least 2"
        return BootstrapDifference(observed, np.nan, np.nan, np.nan, int(a.size), n_resamples, note)
    d = a - b
    observed = float(d.mean())
    snapped = snap_to_ties(d, scale=float(np.abs(np.concatenate([a, b])).max()))
    if np.all(snapped == snapped[0]):  # no spread: every resample gives the observed difference
        if snapped[0] == 0:
            note, pvalue = "every per-sample difference is zero (identical scores): p set to 1", 1.0
        else:
            note, pvalue = (f"every one of the {d.size} per-sample differences is {d[0]:.4g}: the bootstrap "
                            "distribution is one point, so it gives no p-value"), np.nan
        return BootstrapDifference(observed, observed, observed, pvalue, int(d.size), n_resamples, note)
    result = stats.bootstrap(
        (d,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method=method,
        rng=np.random.default_rng(seed),
    )
    extreme = np.count_nonzero(np.abs(result.bootstrap_distribution - observed) >= abs(observed))
    return BootstrapDifference(
        observed=observed,
        ci_low=float(result.confidence_interval.low),
        ci_high=float(result.confidence_interval.high),
        pvalue=float((1 + extreme) / (n_resamples + 1)),
        n=int(d.size),
        n_resamples=n_resamples,
    )


def paired_bootstrap_mae(y_true, pred_a, pred_b, **kwargs) -> BootstrapDifference:
    """Paired bootstrap of ``MAE(a) - MAE(b)`` on the same samples (negative = a better).

    Args:
        y_true: ``[n_samples]`` labels.
        pred_a: ``[n_samples]`` predictions of fusion a.
        pred_b: ``[n_samples]`` predictions of fusion b.
        **kwargs: ``n_resamples``, ``confidence``, ``method``, ``seed`` of :func:`paired_bootstrap`.
    """
    y_true = _as_vector(y_true, "y_true")
    pred_a, pred_b = _as_pair(pred_a, pred_b, ("pred_a", "pred_b"))
    if y_true.shape != pred_a.shape:
        raise ValueError(f"y_true has {y_true.size} samples, the predictions {pred_a.size}")
    return paired_bootstrap(np.abs(pred_a - y_true), np.abs(pred_b - y_true), **kwargs)


def paired_bootstrap_accuracy(correct_a, correct_b, **kwargs) -> BootstrapDifference:
    """Paired bootstrap of ``accuracy(a) - accuracy(b)`` on the same samples (positive = a better).

    Args:
        correct_a: ``[n_samples]`` booleans, whether fusion a is right on each sample (see :func:`acc2_correct`).
        correct_b: ``[n_samples]`` the same for fusion b.
        **kwargs: ``n_resamples``, ``confidence``, ``method``, ``seed`` of :func:`paired_bootstrap`.
    """
    return paired_bootstrap(np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool), **kwargs)


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test: ``b`` = samples only fusion a gets right, ``c`` = only fusion b, ``n`` = all samples,
    ``note``: why the p-value is undefined or set by convention (empty when the test ran)."""

    b: int
    c: int
    pvalue: float
    n: int
    note: str = ""


def mcnemar_exact(correct_a, correct_b) -> McNemarResult:
    """McNemar's exact (conditional binomial) test on paired correctness.

    Under the null both kinds of discordant pair are equally likely: ``p = binomtest(b, b + c, 0.5)`` two-sided
    (``scipy.stats.binomtest``). Concordant pairs carry no information.

    Args:
        correct_a: ``[n_samples]`` booleans, whether fusion a is right on each sample.
        correct_b: ``[n_samples]`` the same for fusion b, same samples in the same order.

    Returns:
        :class:`McNemarResult`; p = 1.0 when there is no discordant pair (b = c = 0: identical correctness), p NaN
        when there is no sample at all (e.g. Acc-2 non0 where every label is 0); both with a note.
    """
    a = np.asarray(correct_a, dtype=bool)
    c_b = np.asarray(correct_b, dtype=bool)
    if a.ndim != 1 or a.shape != c_b.shape:
        raise ValueError(f"correct_a and correct_b must be 1-D of the same length, got {a.shape} and {c_b.shape}")
    b = int(np.count_nonzero(a & ~c_b))
    c = int(np.count_nonzero(~a & c_b))
    if a.size == 0:
        return McNemarResult(0, 0, np.nan, 0, "no test sample: McNemar's test is undefined")
    if b + c == 0:
        return McNemarResult(0, 0, 1.0, int(a.size), "no discordant sample (identical correctness): p set to 1")
    return McNemarResult(b, c, float(stats.binomtest(b, b + c, 0.5).pvalue), int(a.size))


def acc2_correct(y_true, y_pred, *, convention: str) -> np.ndarray:
    """Per-sample correctness of the binary sentiment (Acc-2) of regression predictions.

    Args:
        y_true: ``[n_samples]`` sentiment labels.
        y_pred: ``[n_samples]`` predictions.
        convention: ``"has0"``: negative (< 0) against non-negative (>= 0), every sample kept;
            ``"non0"``: samples with label exactly 0 dropped, negative against positive (> 0).

    Returns:
        Boolean correctness over the kept samples, in input order (``[n_samples]`` for has0, fewer for non0).
        Two fusions on the same labels keep the same samples, so their vectors stay paired.
    """
    y_true, y_pred = _as_pair(y_true, y_pred, ("y_true", "y_pred"))
    if convention == "has0":
        return (y_true >= 0) == (y_pred >= 0)
    if convention == "non0":
        keep = y_true != 0
        return (y_true[keep] > 0) == (y_pred[keep] > 0)
    raise ValueError(f"convention must be 'has0' or 'non0', got {convention!r}")


def average_over_seeds(
    predictions: pd.DataFrame,
    *,
    how: str = "mean",
    fusion_col: str = "fusion",
    seed_col: str = "seed",
    id_col: str = "id",
    label_col: str = "label",
    pred_col: str = "prediction",
) -> pd.DataFrame:
    """Per-sample predictions averaged over seeds, per fusion.

    Args:
        predictions: long-form test predictions, one row per (fusion, seed, sample id) with columns
            ``fusion_col, seed_col, id_col, label_col, pred_col``.
        how: ``"mean"`` (regression: mean prediction) or ``"vote"`` (classification: most frequent predicted
            class, ties to the smallest class).
        fusion_col, seed_col, id_col, label_col, pred_col: column names.

    Returns:
        One row per (fusion, sample id), sorted by fusion then id, with columns
        ``fusion_col, id_col, label_col, pred_col, "n_seeds"``. Each fusion averages over the seeds it has; compare
        fusions whose ``n_seeds`` agree.

    Raises:
        ValueError: a sample's label differs between rows, or a (fusion, seed, id) appears twice.
    """
    if how not in ("mean", "vote"):
        raise ValueError(f"how must be 'mean' or 'vote', got {how!r}")
    if predictions.duplicated([fusion_col, seed_col, id_col]).any():
        raise ValueError(f"predictions repeat a ({fusion_col}, {seed_col}, {id_col}) row")
    grouped = predictions.groupby([fusion_col, id_col], sort=True)
    if (grouped[label_col].nunique() > 1).any():
        raise ValueError(f"a sample's {label_col} differs between seeds")

    def vote(values: pd.Series):
        counts = values.value_counts()
        return counts[counts == counts.max()].index.min()

    averaged = grouped.agg(
        **{
            label_col: (label_col, "first"),
            pred_col: (pred_col, "mean" if how == "mean" else vote),
            "n_seeds": (seed_col, "nunique"),
        }
    )
    return averaged.reset_index()


@dataclass(frozen=True, eq=False)
class AlignedPredictions:
    """Two fusions' predictions on the same samples: ``[n_samples]`` arrays ``ids``, ``labels``, ``pred_a``,
    ``pred_b``, sorted by id."""

    ids: np.ndarray
    labels: np.ndarray
    pred_a: np.ndarray
    pred_b: np.ndarray


def align_pair(
    predictions: pd.DataFrame,
    fusion_a: str,
    fusion_b: str,
    *,
    fusion_col: str = "fusion",
    id_col: str = "id",
    label_col: str = "label",
    pred_col: str = "prediction",
) -> AlignedPredictions:
    """Pair two fusions' per-sample predictions by sample id.

    Args:
        predictions: one row per (fusion, sample id): one seed's predictions (filter the seed first), or the output
            of :func:`average_over_seeds`.
        fusion_a, fusion_b: the two fusions.
        fusion_col, id_col, label_col, pred_col: column names.

    Raises:
        ValueError: a fusion is missing, an id repeats within a fusion, the two id sets differ, or labels disagree.
    """
    frames = []
    for fusion in (fusion_a, fusion_b):
        frame = predictions.loc[predictions[fusion_col] == fusion, [id_col, label_col, pred_col]]
        if frame.empty:
            raise ValueError(f"no predictions for fusion {fusion!r}")
        if frame[id_col].duplicated().any():
            raise ValueError(f"fusion {fusion!r} repeats sample ids: select one seed or average over seeds first")
        frames.append(frame.set_index(id_col).sort_index())
    a, b = frames
    if not a.index.equals(b.index):
        raise ValueError(f"{fusion_a!r} and {fusion_b!r} were evaluated on different samples")
    if not np.array_equal(a[label_col].to_numpy(), b[label_col].to_numpy()):
        raise ValueError(f"{fusion_a!r} and {fusion_b!r} disagree on the labels of the same samples")
    return AlignedPredictions(a.index.to_numpy(), a[label_col].to_numpy(), a[pred_col].to_numpy(),
                              b[pred_col].to_numpy())


# ----------------------------------------------------------------------------------------------------------------------
# Tables from long-form records (one row per fusion and seed, one column per metric)
# ----------------------------------------------------------------------------------------------------------------------


def _metric_directions(
    records: pd.DataFrame, metrics: Sequence[str] | None, higher_is_better: Mapping[str, bool]
) -> dict[str, bool]:
    """The metrics to use (default: every known metric column present) with their directions."""
    if metrics is None:
        metrics = [m for m in higher_is_better if m in records.columns]
    missing = [m for m in metrics if m not in records.columns]
    if missing:
        raise ValueError(f"records have no column {missing}; columns are {list(records.columns)}")
    unknown = [m for m in metrics if m not in higher_is_better]
    if unknown:
        raise ValueError(f"direction unknown for metric {unknown}: pass higher_is_better with it")
    if not metrics:
        raise ValueError("no metric column found in the records")
    return {m: higher_is_better[m] for m in metrics}


def _fusion_order(records: pd.DataFrame, fusion_col: str) -> list:
    """The fusions of the records in order of first appearance."""
    return list(dict.fromkeys(records[fusion_col]))


def seed_matrix(
    records: pd.DataFrame,
    metric: str,
    *,
    fusions: Iterable[str] | None = None,
    complete: bool = True,
    fusion_col: str = "fusion",
    seed_col: str = "seed",
) -> pd.DataFrame:
    """One metric as a ``[seeds, fusions]`` block matrix, the input of :func:`friedman_test` and :func:`nemenyi_test`.

    Args:
        records: long-form records, one row per (fusion, seed), with the metric as a column.
        metric: the metric column.
        fusions: the fusions (columns) in order; default all, in order of first appearance.
        complete: keep only seeds present for every fusion (complete blocks); otherwise missing cells are NaN.
        fusion_col, seed_col: column names.

    Raises:
        ValueError: a (fusion, seed) pair appears twice, or a requested fusion is absent.
    """
    if records.duplicated([fusion_col, seed_col]).any():
        raise ValueError(f"records repeat a ({fusion_col}, {seed_col}) row")
    fusions = _fusion_order(records, fusion_col) if fusions is None else list(fusions)
    absent = [f for f in fusions if f not in set(records[fusion_col])]
    if absent:
        raise ValueError(f"no records for fusion {absent}")
    matrix = records.pivot(index=seed_col, columns=fusion_col, values=metric).reindex(columns=fusions).sort_index()
    matrix.columns.name = None
    return matrix.dropna() if complete else matrix


def summary_table(
    records: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    higher_is_better: Mapping[str, bool] = HIGHER_IS_BETTER,
    fusion_col: str = "fusion",
    **summary_kwargs,
) -> pd.DataFrame:
    """Per fusion and metric: :func:`summarize_seeds` over the seeds of the records.

    Args:
        records: long-form records, one row per (fusion, seed), metric columns.
        metrics: metric columns; default every column named in ``higher_is_better``.
        higher_is_better: metric directions (also reported, for "best in bold").
        fusion_col: column name of the fusion.
        **summary_kwargs: ``confidence``, ``n_resamples``, ``method``, ``seed`` of :func:`summarize_seeds`.

    Returns:
        Long-form DataFrame, one row per (metric, fusion) in metric then first-appearance order, with columns
        ``metric, fusion, higher_is_better, n, mean, std, ci_low, ci_high, t_ci_low, t_ci_high``. NaN metric
        values (a failed cell) are left out of n.
    """
    directions = _metric_directions(records, metrics, higher_is_better)
    rows = []
    for metric, direction in directions.items():
        for fusion in _fusion_order(records, fusion_col):
            values = records.loc[records[fusion_col] == fusion, metric].dropna().to_numpy()
            if values.size == 0:
                continue
            summary = summarize_seeds(values, **summary_kwargs)
            rows.append({"metric": metric, "fusion": fusion, "higher_is_better": direction, **asdict(summary)})
    return pd.DataFrame(rows)


def comparison_table(
    records: pd.DataFrame,
    baseline: str,
    metrics: Sequence[str] | None = None,
    *,
    higher_is_better: Mapping[str, bool] = HIGHER_IS_BETTER,
    fusion_col: str = "fusion",
    seed_col: str = "seed",
) -> pd.DataFrame:
    """Every fusion against the baseline, for every metric: :func:`paired_comparison`, Holm-adjusted.

    Pairs are matched by seed; a seed missing (or NaN: an undefined metric, a failed cell) for either of the two
    fusions is left out of that pair. A pair with no such seed left gets a row with ``n`` 0, NaN statistics and a
    ``t_note`` saying so.
    Family for the Holm correction: all rows of this table (every metric × every fusion other than the baseline)
    whose test is defined (an undefined p-value, NaN, is left out), separately for the t-test and for the Wilcoxon
    p-values.

    Args:
        records: long-form records, one row per (fusion, seed), metric columns.
        baseline: the baseline fusion (e.g. ``"grf"``).
        metrics: metric columns; default every column named in ``higher_is_better``.
        higher_is_better: metric directions.
        fusion_col, seed_col: column names.

    Returns:
        Long-form DataFrame, one row per (metric, fusion), with columns ``metric, fusion, baseline,
        higher_is_better, fusion_mean, baseline_mean``, every :class:`PairedComparison` field, and
        ``t_pvalue_holm, wilcoxon_pvalue_holm``. Means are over the paired seeds.

    Raises:
        ValueError: the baseline is absent or there is no other fusion.
    """
    directions = _metric_directions(records, metrics, higher_is_better)
    fusions = _fusion_order(records, fusion_col)
    if baseline not in fusions:
        raise ValueError(f"baseline {baseline!r} not in the records; fusions are {fusions}")
    others = [f for f in fusions if f != baseline]
    if not others:
        raise ValueError("the records hold only the baseline")
    rows = []
    for metric, direction in directions.items():
        matrix = seed_matrix(records, metric, complete=False, fusion_col=fusion_col, seed_col=seed_col)
        for fusion in others:
            pair = matrix[[fusion, baseline]].dropna()
            if pair.empty:
                comparison = PairedComparison(
                    0, np.nan, np.nan, np.nan, np.nan, np.nan, "no pair", np.nan, np.nan,
                    t_note=f"no seed where both {fusion} and {baseline} have a value of {metric}")
            else:
                comparison = paired_comparison(pair[fusion], pair[baseline], higher_is_better=direction)
            rows.append(
                {
                    "metric": metric,
                    "fusion": fusion,
                    "baseline": baseline,
                    "higher_is_better": direction,
                    "fusion_mean": float(pair[fusion].mean()),
                    "baseline_mean": float(pair[baseline].mean()),
                    **asdict(comparison),
                }
            )
    table = pd.DataFrame(rows)
    table["t_pvalue_holm"] = holm_adjust(table["t_pvalue"])
    table["wilcoxon_pvalue_holm"] = holm_adjust(table["wilcoxon_pvalue"])
    return table
