"""Evaluation metrics, named as the records' columns.

Regression (MOSI sentiment in [-3, 3]), as published MOSI tables compute them (MulT / MMSA):

* ``mae``: mean absolute error; ``corr``: Pearson correlation, NaN (undefined) when the labels or the
  predictions are constant, as they are for a test split of one sample, labels that are all 0, or a model that
  collapsed to one output. "Constant" allows for rounding (:func:`nearly_constant`): a vector whose range
  (max - min) is at most ``NOISE_RTOL`` = 1e-5 times the largest absolute label or prediction counts as
  constant, so float noise on a constant output (e.g. a spread of 1e-8) gets NaN, not the correlation of its
  noise;
* ``acc2_has0`` / ``f1_has0``: negative (< 0) against non-negative (>= 0), all samples;
* ``acc2_non0`` / ``f1_non0``: negative against positive, samples whose label is exactly 0 dropped;
* ``f1_*`` is the class-weighted F1 (MulT's and MMSA's ``f1_score(..., average="weighted")``);
  ``f1_macro_has0`` / ``f1_macro_non0`` the unweighted mean of the two classes' F1 on the same classes (the GRF
  authors' evaluation: ``f1_score(label >= 0, pred >= 0, average="macro")``), so both published conventions
  are in every table;
* ``acc5`` / ``acc7``: prediction and label clipped to [-2, 2] / [-3, 3], then both rounded half-to-even as
  ``np.round`` does (MOSI has labels at x.5; rounding half up would move 29 of its 52 such labels);
* F1 scores are support-weighted over the two classes (``sklearn.metrics.f1_score(average="weighted")``).

Classification: ``accuracy`` and ``f1_macro``. Every metric is a fraction in [0, 1] except ``mae`` (label
units) and ``corr``.

Undefined cases: ``corr`` as above; ``acc2_non0`` / ``f1_non0`` / ``f1_macro_non0`` are NaN when every label is
exactly 0 (no sample left). The others are defined for any non-empty test split: an F1 score with one class in
the labels is that class's F1 (``2 TP / (2 TP + FP + FN)``, never 0/0 for a class that occurs), and ``f1_macro``
averages over the classes that occur in the labels or the predictions (scikit-learn's default), as do
``f1_macro_has0`` / ``f1_macro_non0``. Analysis shows NaN as "n/a" and leaves it out of every test.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

REGRESSION_METRICS = (
    "mae", "corr", "acc2_has0", "f1_has0", "f1_macro_has0", "acc2_non0", "f1_non0", "f1_macro_non0", "acc5", "acc7",
)
CLASSIFICATION_METRICS = ("accuracy", "f1_macro")
ALL_METRICS = (*REGRESSION_METRICS, *CLASSIFICATION_METRICS)
"""Every metric column a records table can hold, regression's first."""
LOWER_IS_BETTER = frozenset({"mae"})
UNDEFINED_WHEN = {
    "corr": "the test labels or the predictions are constant, up to rounding",
    "acc2_non0": "every test label is 0",
    "f1_non0": "every test label is 0",
    "f1_macro_non0": "every test label is 0",
}
"""When a metric is NaN although the cell trained: the reason, in words, for the metrics that can be undefined."""

NOISE_RTOL = 1e-5
"""Relative tolerance under which two results are one value up to rounding. Model outputs are float32 (one
rounding step is 1.2e-7 of the value), so values closer than about 80 steps cannot be told apart from noise. Used
by :func:`nearly_constant` for ``corr`` and by ``analysis.stats`` for ties and zero variance in its tests."""


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


def metric_names(task: str) -> tuple[str, ...]:
    """The metric columns of a task: ``"regression"`` or ``"classification"``."""
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS


def task_of_columns(columns) -> str:
    """The task of a records table from its column names: ``"regression"`` when a column is one of
    :data:`REGRESSION_METRICS`, else ``"classification"`` when one is of :data:`CLASSIFICATION_METRICS`.

    Raises:
        ValueError: no column is a metric.
    """
    columns = set(columns)
    for task, names in (("regression", REGRESSION_METRICS), ("classification", CLASSIFICATION_METRICS)):
        if columns & set(names):
            return task
    raise ValueError(f"no metric column (e.g. {REGRESSION_METRICS[0]} or {CLASSIFICATION_METRICS[0]}) among the "
                     f"columns {', '.join(map(str, sorted(columns)))}")


def main_metric(task: str) -> str:
    """The metric early stopping and tables lead with: ``mae`` (regression), ``accuracy`` (classification)."""
    return "mae" if task == "regression" else "accuracy"


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def _accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(truth == predicted)) if truth.size else float("nan")


def _weighted_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    if not truth.size:
        return float("nan")
    return float(f1_score(truth, predicted, average="weighted", zero_division=0))


def _macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    if not truth.size:
        return float("nan")
    return float(f1_score(truth, predicted, average="macro", zero_division=0))


def acc2_classes(labels: np.ndarray, predictions: np.ndarray, convention: str) -> tuple[np.ndarray, np.ndarray]:
    """The binary sentiment classes behind Acc-2 and its F1: ``(truth, predicted)``, booleans ``[n_kept]``.

    ``labels`` and ``predictions`` are ``[N]`` in label units. ``convention`` ``"has0"``: non-negative (>= 0)
    against negative, every sample kept; ``"non0"``: positive (> 0) against negative, the samples whose label is
    exactly 0 dropped (the same samples for any predictions of these labels). Raises ValueError for another
    convention.
    """
    if convention == "has0":
        return labels >= 0, predictions >= 0
    if convention == "non0":
        keep = labels != 0
        return labels[keep] > 0, predictions[keep] > 0
    raise ValueError(f"convention must be 'has0' or 'non0', got {convention!r}")


def regression_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """All regression metrics for ``labels`` and ``predictions``, both ``[N]`` in label units.

    Returns ``{metric: value}`` for :data:`REGRESSION_METRICS`; an undefined metric is NaN (see the module
    docstring). Raises ValueError when the vectors differ in shape, are empty, or a prediction is not finite.
    """
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"expected equal, non-empty label and prediction vectors, got {y.shape} and {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{int((~np.isfinite(p)).sum())} predictions are not finite")
    scale = max(float(np.abs(y).max()), float(np.abs(p).max()))
    constant = nearly_constant(y, scale=scale) or nearly_constant(p, scale=scale)
    corr = float("nan") if constant else float(np.corrcoef(y, p)[0, 1])
    has0, non0 = acc2_classes(y, p, "has0"), acc2_classes(y, p, "non0")
    return {
        "mae": float(np.abs(y - p).mean()),
        "corr": corr,
        "acc2_has0": _accuracy(*has0),
        "f1_has0": _weighted_f1(*has0),
        "f1_macro_has0": _macro_f1(*has0),
        "acc2_non0": _accuracy(*non0),
        "f1_non0": _weighted_f1(*non0),
        "f1_macro_non0": _macro_f1(*non0),
        "acc5": _accuracy(np.round(np.clip(y, -2, 2)), np.round(np.clip(p, -2, 2))),
        "acc7": _accuracy(np.round(np.clip(y, -3, 3)), np.round(np.clip(p, -3, 3))),
    }


def classification_metrics(labels: np.ndarray, predicted_classes: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 for class indices ``labels`` and ``predicted_classes`` (both ``[N]``)."""
    y = np.asarray(labels).reshape(-1)
    p = np.asarray(predicted_classes).reshape(-1)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"expected equal, non-empty label and prediction vectors, got {y.shape} and {p.shape}")
    return {
        "accuracy": _accuracy(y, p),
        "f1_macro": float(f1_score(y, p, average="macro", zero_division=0)),
    }


def task_metrics(task: str, labels: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """Metrics from raw model outputs: ``[N]`` predictions (regression) or ``[N, K]`` logits (classification)."""
    if task == "regression":
        return regression_metrics(labels, outputs)
    return classification_metrics(labels, np.asarray(outputs).argmax(-1))
