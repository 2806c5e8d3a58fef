"""Classification: one logit per class, int64 class-index labels, cross-entropy loss, the model selected on the
validation loss; predictions are the arg-max class; a "class" (embeddings, McNemar) is the label itself.

* ``multiclass`` (K >= 2 classes, K from the dataset): ``accuracy`` (main) and ``f1_macro``, the unweighted mean
  of the F1 of the classes that occur in the labels or the predictions (scikit-learn's default).
* ``binary`` (2 classes, 1 the positive class), as MultiBench reports binary tasks: ``accuracy`` (main), ``f1``
  (the positive class's F1, ``2 TP / (2 TP + FP + FN)``; NaN when no label and no prediction is positive) and
  ``f1_weighted`` (the support-weighted mean of both classes' F1).

Every metric is a fraction in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from sklearn.metrics import f1_score

from .registry import Classes, Task, register_metric, register_task
from .scores import accuracy as _accuracy
from .scores import macro_f1, weighted_f1


def _correct(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return y == p


register_metric("accuracy", higher_is_better=True, unit="fraction",
                definition="fraction of samples whose predicted class is the label", per_sample=_correct)(_accuracy)
register_metric("f1_macro", higher_is_better=True, unit="fraction",
                definition="macro F1: unweighted mean of the F1 of the classes in the labels or predictions")(macro_f1)


@register_metric(higher_is_better=True, unit="fraction", definition="F1 of the positive class (label 1)",
                 undefined_when="no test label and no prediction is the positive class")
def f1(y: np.ndarray, p: np.ndarray) -> float:
    return float(f1_score(y, p, pos_label=1, average="binary", zero_division=np.nan))


register_metric("f1_weighted", higher_is_better=True, unit="fraction",
                definition="support-weighted mean of the classes' F1")(weighted_f1)


def cross_entropy(outputs, labels):
    """Cross-entropy of the logits ``outputs`` ``[batch, K]`` against class indices ``labels`` ``[batch]``."""
    return F.cross_entropy(outputs.float(), labels)


LABEL_CLASSES = Classes(of=lambda values: np.asarray(values).astype(int), description="class")

register_task(Task(
    name="multiclass", description="multiclass classification: one logit per class, the arg-max predicted",
    kind="classification", loss=cross_entropy, metrics=("accuracy", "f1_macro"), classes=LABEL_CLASSES,
    sample_tests=("accuracy",),
))
register_task(Task(
    name="binary", description="binary classification: two logits, class 1 the positive class",
    kind="classification", loss=cross_entropy, metrics=("accuracy", "f1", "f1_weighted"), num_classes=2,
    classes=LABEL_CLASSES, sample_tests=("accuracy",),
))
