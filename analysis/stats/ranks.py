"""Across all fusions, seeds as blocks: average ranks, Friedman's test, the Nemenyi post-hoc p-values and Demšar's
(2006) critical difference (:func:`friedman_test`, :func:`nemenyi_test`, :func:`critical_difference`).

Rank 1 is the best fusion; ties, after values equal up to rounding are made equal, share the average rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .values import snap_to_ties

__all__ = [
    "FriedmanResult",
    "NemenyiResult",
    "average_ranks",
    "critical_difference",
    "friedman_test",
    "nemenyi_q_alpha",
    "nemenyi_test",
]


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
