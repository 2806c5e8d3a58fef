"""Evaluation metrics, named as the records' columns.

Regression (MOSI sentiment in [-3, 3]), as published MOSI tables compute them (MulT / MMSA):

* ``mae``: mean absolute error; ``corr``: Pearson correlation (NaN when the predictions are constant);
* ``acc2_has0`` / ``f1_has0``: negative (< 0) against non-negative (>= 0), all samples;
* ``acc2_non0`` / ``f1_non0``: negative against positive, samples whose label is exactly 0 dropped;
* ``acc5`` / ``acc7``: prediction and label clipped to [-2, 2] / [-3, 3], then both rounded half-to-even as
  ``np.round`` does (MOSI has labels at x.5; rounding half up would move 29 of its 52 such labels);
* F1 scores are support-weighted over the two classes (``sklearn.metrics.f1_score(average="weighted")``).

Classification: ``accuracy`` and ``f1_macro``. Every metric is a fraction in [0, 1] except ``mae`` (label
units) and ``corr``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

REGRESSION_METRICS = ("mae", "corr", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc5", "acc7")
CLASSIFICATION_METRICS = ("accuracy", "f1_macro")
LOWER_IS_BETTER = frozenset({"mae"})


def metric_names(task: str) -> tuple[str, ...]:
    """The metric columns of a task: ``"regression"`` or ``"classification"``."""
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS


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


def regression_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """All regression metrics for ``labels`` and ``predictions``, both ``[N]`` in label units."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"expected equal, non-empty label and prediction vectors, got {y.shape} and {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{int((~np.isfinite(p)).sum())} predictions are not finite")
    corr = float(np.corrcoef(y, p)[0, 1]) if p.std() > 0 and y.std() > 0 else float("nan")
    nonzero = y != 0
    return {
        "mae": float(np.abs(y - p).mean()),
        "corr": corr,
        "acc2_has0": _accuracy(y >= 0, p >= 0),
        "f1_has0": _weighted_f1(y >= 0, p >= 0),
        "acc2_non0": _accuracy(y[nonzero] > 0, p[nonzero] > 0),
        "f1_non0": _weighted_f1(y[nonzero] > 0, p[nonzero] > 0),
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
