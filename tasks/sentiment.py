"""MOSI-style sentiment regression: one real output per sample, labels in [-3, 3], scored as published MOSI
tables score it (MulT / MMSA).

* ``mae``: mean absolute error; ``corr``: Pearson correlation, NaN (undefined) when the labels or the
  predictions are constant, as they are for a test split of one sample, labels that are all 0, or a model that
  collapsed to one output. "Constant" allows for rounding (``scores.nearly_constant``): a vector whose range
  (max - min) is at most ``NOISE_RTOL`` = 1e-5 times the largest absolute label or prediction counts as
  constant, so float noise on a constant output (e.g. a spread of 1e-8) gets NaN, not the correlation of its
  noise. Both are plain regression's too (``tasks.regression``);
* ``acc2_has0`` / ``f1_has0``: negative (< 0) against non-negative (>= 0), all samples;
* ``acc2_non0`` / ``f1_non0``: negative against positive, samples whose label is exactly 0 dropped;
* ``f1_*`` is the class-weighted F1 (MulT's and MMSA's ``f1_score(..., average="weighted")``);
  ``f1_macro_has0`` / ``f1_macro_non0`` the unweighted mean of the two classes' F1 on the same classes (the GRF
  authors' evaluation: ``f1_score(label >= 0, pred >= 0, average="macro")``), so both published conventions
  are in every table;
* ``acc5`` / ``acc7``: prediction and label clipped to [-2, 2] / [-3, 3], then both rounded half-to-even as
  ``np.round`` does (MOSI has labels at x.5; rounding half up would move 29 of its 52 such labels).

Every metric is a fraction in [0, 1] except ``mae`` (label units) and ``corr``. Loss: L1 (so the validation loss
is the validation MAE); the model is selected on the validation MAE. Classes (embeddings): the sign of the
label, negative (< 0) against non-negative (>= 0), the Acc-2 "has0" split.

Undefined cases: ``corr`` as above; ``acc2_non0`` / ``f1_non0`` / ``f1_macro_non0`` are NaN when every label is
exactly 0 (no sample left). The others are defined for any non-empty test split: an F1 score with one class in
the labels is that class's F1 (``2 TP / (2 TP + FP + FN)``, never 0/0 for a class that occurs), and the macro F1
averages over the classes that occur in the labels or the predictions (scikit-learn's default). Analysis shows
NaN as "n/a" and leaves it out of every test.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from .registry import Classes, Task, register_metric, register_task
from .scores import accuracy, either_constant, macro_f1, weighted_f1

SENTIMENT_RANGE = (-3.0, 3.0)
"""The label range of MOSI-style sentiment (``Task.label_range``); Acc-7 clips to it."""

NON0_UNDEFINED = "every test label is 0"


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


def _absolute_errors(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.abs(p - y)


@register_metric(higher_is_better=False, unit="label units", definition="mean absolute error |prediction - label|",
                 per_sample=_absolute_errors)
def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.abs(y - p).mean())


@register_metric(higher_is_better=True, unit="dimensionless, in [-1, 1]",
                 definition="Pearson correlation of predictions and labels",
                 undefined_when="the test labels or the predictions are constant, up to rounding")
def corr(y: np.ndarray, p: np.ndarray) -> float:
    return float("nan") if either_constant(y, p) else float(np.corrcoef(y, p)[0, 1])


def _acc2_metrics(convention: str, words: str, undefined_when: str = "") -> None:
    """Register ``acc2_<convention>``, ``f1_<convention>`` and ``f1_macro_<convention>`` on the Acc-2 classes."""

    def correct(y: np.ndarray, p: np.ndarray) -> np.ndarray:
        truth, predicted = acc2_classes(y, p, convention)
        return truth == predicted

    for name, score, what in (
        (f"acc2_{convention}", accuracy, "binary accuracy"),
        (f"f1_{convention}", weighted_f1, "class-weighted F1"),
        (f"f1_macro_{convention}", macro_f1, "macro F1 (unweighted mean of the two classes' F1)"),
    ):
        register_metric(name, higher_is_better=True, unit="fraction", definition=f"{what}, {words}",
                        undefined_when=undefined_when, per_sample=correct if score is accuracy else None)(
            lambda y, p, score=score: score(*acc2_classes(y, p, convention)))


_acc2_metrics("has0", "negative (< 0) against non-negative (>= 0), every sample")
_acc2_metrics("non0", "negative against positive, samples whose label is exactly 0 dropped", NON0_UNDEFINED)


def _rounded_accuracy(bound: float):
    return lambda y, p: accuracy(np.round(np.clip(y, -bound, bound)), np.round(np.clip(p, -bound, bound)))


register_metric("acc5", higher_is_better=True, unit="fraction",
                definition="5-class accuracy: label and prediction clipped to [-2, 2], rounded half-to-even")(
    _rounded_accuracy(2))
register_metric("acc7", higher_is_better=True, unit="fraction",
                definition="7-class accuracy: label and prediction clipped to [-3, 3], rounded half-to-even")(
    _rounded_accuracy(SENTIMENT_RANGE[1]))


def l1_loss(outputs, labels):
    """Mean absolute error of ``outputs`` ``[batch, 1]`` against ``labels`` ``[batch]``."""
    return F.l1_loss(outputs.squeeze(-1).float(), labels)


register_task(Task(
    name="sentiment",
    description="MOSI-style sentiment regression: one output per sample, labels in [-3, 3]",
    kind="regression",
    loss=l1_loss,
    metrics=("mae", "corr", "acc2_has0", "f1_has0", "f1_macro_has0", "acc2_non0", "f1_non0", "f1_macro_non0",
             "acc5", "acc7"),
    selection="mae",
    label_range=SENTIMENT_RANGE,
    classes=Classes(of=lambda values: (np.asarray(values) >= 0).astype(int),
                    description="sentiment sign (negative < 0 vs non-negative >= 0)",
                    names=("negative (< 0)", "non-negative (>= 0)")),
    sample_tests=("mae", "acc2_has0", "acc2_non0"),
    summary_metrics=("mae", "corr", "acc2_has0", "acc2_non0", "f1_macro_has0", "f1_non0", "acc7"),
    curve_metric="corr",
))
