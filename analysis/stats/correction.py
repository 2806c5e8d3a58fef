"""Multiple-testing correction and significance markers: Holm's step-down adjustment of a family of p-values
(``statsmodels``' ``multipletests``), with undefined tests (NaN) kept out of the family, and the stars read from
an adjusted p-value."""

from __future__ import annotations

import numpy as np
from statsmodels.stats.multitest import multipletests

__all__ = ["SIGNIFICANCE_LEVELS", "holm_adjust", "significance_marker"]

SIGNIFICANCE_LEVELS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
"""Marker thresholds: an adjusted p-value below a threshold gets its stars (the first that applies)."""


def holm_adjust(pvalues) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (Holm 1979), in the input order.

    ``statsmodels.stats.multitest.multipletests(p, method="holm")`` on the finite p-values: with the m of them
    sorted ascending, ``p_adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``, monotone in the sorted order and capped
    at 1. Reject at level alpha where ``p_adj <= alpha``.

    Args:
        pvalues: ``[m]`` p-values in [0, 1] (array-like); NaN entries (an undefined test) stay NaN and are not
            counted in the family size m.

    Returns:
        ``[m]`` adjusted p-values (float), NaN where the input is NaN.

    Raises:
        ValueError: ``pvalues`` is not 1-D, or a p-value lies outside [0, 1].
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got shape {p.shape}")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    adjusted = np.full_like(p, np.nan)
    if finite.any():
        adjusted[finite] = multipletests(p[finite], method="holm")[1]
    return adjusted


def significance_marker(p_adjusted: float) -> str:
    """Stars for an (adjusted) p-value: ``"***"`` p < 0.001, ``"**"`` p < 0.01, ``"*"`` p < 0.05, else ``""``.

    NaN (an undefined test) gives ``""``.
    """
    if np.isnan(p_adjusted):
        return ""
    for threshold, marker in SIGNIFICANCE_LEVELS:
        if p_adjusted < threshold:
            return marker
    return ""
