"""Inputs as every test reads them: finite 1-D vectors, and values equal up to rounding made exactly equal.

* :func:`as_vector`, :func:`as_pair`: one or two finite 1-D float arrays, or one ``ValueError`` naming the input.
* :func:`snap_to_ties`: values that differ by at most ``tasks.NOISE_RTOL`` times their magnitude made
  equal, so zero differences, rank ties and zero variance can be read with ``==``.
"""

from __future__ import annotations

import numpy as np

from tasks import NOISE_RTOL

__all__ = ["as_pair", "as_vector", "snap_to_ties"]


def as_vector(values, name: str) -> np.ndarray:
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


def as_pair(a, b, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Two finite 1-D float arrays of the same, non-zero length."""
    a, b = as_vector(a, names[0]), as_vector(b, names[1])
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same length, got {a.size} and {b.size}")
    if a.size == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty")
    return a, b
