"""Score functions the metrics share, and the rounding tolerance of every comparison of results.

All take ``[N]`` numpy arrays and return a Python float; an empty input gives NaN.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

NOISE_RTOL = 1e-5
"""Relative tolerance under which two results are one value up to rounding. Model outputs are float32 (one
rounding step is 1.2e-7 of the value), so values closer than about 80 steps cannot be told apart from noise. Used
by :func:`nearly_constant` for ``corr`` and ``r2`` and by ``analysis.stats`` for ties and zero variance in its
tests."""


def nearly_constant(values: np.ndarray, *, scale: float | None = None, rtol: float = NOISE_RTOL) -> bool:
    """Whether ``values`` ``[N]`` are one value up to rounding: ``max - min <= rtol * scale``.

    ``scale`` (the values' units) defaults to ``max |values|``; pass the magnitude of what the values are
    compared with (e.g. the labels' and predictions' largest absolute value). Zero or one value: True.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size <= 1:
        return True
    if scale is None:
        scale = float(np.abs(values).max())
    return bool(np.ptp(values) <= rtol * scale)


def either_constant(y: np.ndarray, p: np.ndarray) -> bool:
    """Whether the labels ``y`` or the predictions ``p`` are constant up to rounding, on the scale of the
    largest absolute label or prediction (:func:`nearly_constant`)."""
    scale = max(float(np.abs(y).max()), float(np.abs(p).max()))
    return nearly_constant(y, scale=scale) or nearly_constant(p, scale=scale)


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """The fraction of samples where ``truth == predicted``."""
    return float(np.mean(truth == predicted)) if truth.size else float("nan")


def weighted_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Support-weighted mean of the classes' F1 (``f1_score(average="weighted")``)."""
    if not truth.size:
        return float("nan")
    return float(f1_score(truth, predicted, average="weighted", zero_division=0))


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Unweighted mean of the F1 of the classes that occur in ``truth`` or ``predicted``."""
    if not truth.size:
        return float("nan")
    return float(f1_score(truth, predicted, average="macro", zero_division=0))
