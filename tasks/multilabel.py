"""Multi-label classification: K labels per sample, each present (1) or absent (0); one logit per label, a label
predicted present where its logit is > 0; loss: binary cross-entropy with logits, the mean over samples and
labels; the model is selected on the validation loss; seeds are averaged by a majority vote per label (a tie:
absent). Labels are float32 ``[N, K]`` of 0 and 1; every metric here reads ``[N, K]`` arrays (sample x label, int
0/1, ``Task.vectors``) and is a fraction in [0, 1].

Metrics, as published multi-label tables and CMU-MOSEI's emotion tables report them:

* ``wacc_avg`` (main): the mean over labels of each label's weighted accuracy
  ``WA = (TP * N/P + TN) / (2 N)`` (P: samples where the label is present, N: where it is absent), the measure of
  Tong et al. (ACL 2017, "Combating Human Trafficking with Multimodal Deep Models") that Zadeh et al. (ACL 2018,
  "Multimodal Language Analysis in the Wild: CMU-MOSEI and Interpretable Dynamic Fusion Graph") report for
  MOSEI's emotions, and the ``weighted_accuracy`` of MulT's and MultiBench's evaluation code. It equals
  ``(TP/P + TN/N) / 2``, the mean of the recalls of "present" and "absent", so a constant guess scores 0.5
  however rare the label. A label that is present in every test sample or in none has no WA (N/P or TP·N/P is
  0/0): its WA is NaN and the mean is over the other labels (NaN when no label has one).
* ``f1_avg``: the mean over labels of each label's binary F1 of "present", ``2 TP / (2 TP + FP + FN)``
  (scikit-learn's ``f1_score(average="macro", zero_division=nan)`` on label-indicator arrays). A label with no
  positive label and no positive prediction has no F1 (0/0, NaN) and is left out of the mean (NaN when every
  label is); with no positive label but a positive prediction its F1 is 0.
* ``f1_micro``: F1 of every (sample, label) pair pooled, ``2 ΣTP / (2 ΣTP + ΣFP + ΣFN)``; NaN when no label and
  no prediction is present at all.
* ``acc_avg``: the mean over labels of each label's accuracy, which is also the mean over samples of the fraction
  of a sample's labels predicted right (the Hamming accuracy): that per-sample fraction is its per-sample score,
  the one the per-sample tests compare (a paired bootstrap; McNemar's test needs right/wrong per sample and is
  not run on fractions).

Tasks: ``multilabel`` (K from the dataset, ``num_classes`` = K; the labels' names from the dataset's
``info["label_names"]``, else ``0..K-1``) and ``emotions``: CMU-MOSEI's six emotions in the order of the SDK's
``All Labels`` columns 1..6 (:data:`MOSEI_EMOTIONS`; column 0 is sentiment), an emotion present where its
intensity (0 to 3) is > 0 (the SDK README's binary emotions), with ``wacc_<emotion>`` and ``f1_<emotion>`` for
each emotion after the four above. No "class" is defined (a sample can hold several labels): the embedding
figures show the samples in one colour and the silhouettes are undefined.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from .registry import Task, register_metric, register_task

MOSEI_EMOTIONS = ("happy", "sad", "anger", "surprise", "disgust", "fear")
"""CMU-MOSEI's emotions in the order of the SDK's ``All Labels`` columns 1..6 (column 0: sentiment)."""

WA_UNDEFINED = "the label is present in every test sample or in none"


def label_counts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per label, from labels and predictions ``[N, K]`` of 0/1: true positives, false positives, false negatives
    and true negatives, float64 ``[K]`` each. (Counted here rather than by scikit-learn, whose multi-label
    functions read a one-label ``[N, 1]`` array as binary classes 0 and 1.)"""
    y, p = y.astype(bool), p.astype(bool)
    return ((y & p).sum(0).astype(np.float64), (~y & p).sum(0).astype(np.float64),
            (y & ~p).sum(0).astype(np.float64), (~y & ~p).sum(0).astype(np.float64))


def weighted_accuracies(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Each label's weighted accuracy ``(TP * N/P + TN) / (2 N)`` ``[K]`` from labels and predictions ``[N, K]``
    of 0/1; NaN for a label present in every sample or in none (P or N is 0)."""
    tp, fp, fn, tn = label_counts(y, p)
    positives, negatives = tp + fn, tn + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        wa = (tp * negatives / positives + tn) / (2 * negatives)
    return np.where((positives > 0) & (negatives > 0), wa, np.nan)


def label_f1(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Each label's binary F1 of "present" ``2 TP / (2 TP + FP + FN)`` ``[K]`` from labels and predictions
    ``[N, K]`` of 0/1; NaN for a label with no positive label and no positive prediction (0/0)."""
    tp, fp, fn, _ = label_counts(y, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2 * tp / (2 * tp + fp + fn)


def _mean_defined(values: np.ndarray) -> float:
    """The mean of the values that are not NaN; NaN when none is."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


@register_metric(higher_is_better=True, unit="fraction", undefined_when="every label is present in every test "
                 "sample or in none",
                 definition="mean over labels of the weighted accuracy (TP·N/P + TN)/(2N) (Tong et al. 2017), "
                            "labels without one left out")
def wacc_avg(y: np.ndarray, p: np.ndarray) -> float:
    return _mean_defined(weighted_accuracies(y, p))


@register_metric(higher_is_better=True, unit="fraction",
                 undefined_when="no label has a positive test label or prediction",
                 definition="mean over labels of each label's binary F1 of 'present', labels without one "
                            "(no positive label or prediction) left out")
def f1_avg(y: np.ndarray, p: np.ndarray) -> float:
    return _mean_defined(label_f1(y, p))


@register_metric(higher_is_better=True, unit="fraction", undefined_when="no test label and no prediction is present",
                 definition="F1 of 'present' over every (sample, label) pair pooled: 2ΣTP / (2ΣTP + ΣFP + ΣFN)")
def f1_micro(y: np.ndarray, p: np.ndarray) -> float:
    return float(label_f1(y.reshape(-1, 1), p.reshape(-1, 1))[0])


def _labels_right(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per sample, the fraction of its labels predicted right ``[N]``."""
    return (y == p).mean(axis=1)


@register_metric(higher_is_better=True, unit="fraction", per_sample=_labels_right,
                 definition="mean over labels of each label's accuracy (= mean over samples of the fraction of "
                            "their labels predicted right)")
def acc_avg(y: np.ndarray, p: np.ndarray) -> float:
    return float((y == p).mean())


def bce_with_logits(outputs, labels):
    """Binary cross-entropy of the logits ``outputs`` ``[batch, K]`` against 0/1 ``labels`` ``[batch, K]``, the
    mean over samples and labels."""
    return F.binary_cross_entropy_with_logits(outputs.float(), labels)


GENERIC_METRICS = ("wacc_avg", "f1_avg", "f1_micro", "acc_avg")

for _k, _emotion in enumerate(MOSEI_EMOTIONS):
    register_metric(f"wacc_{_emotion}", higher_is_better=True, unit="fraction", undefined_when=WA_UNDEFINED,
                    definition=f"weighted accuracy (TP·N/P + TN)/(2N) of '{_emotion}' (MOSEI emotion {_k + 1})")(
        lambda y, p, k=_k: float(weighted_accuracies(y[:, [k]], p[:, [k]])[0]))
    register_metric(f"f1_{_emotion}", higher_is_better=True, unit="fraction",
                    undefined_when=f"no test label and no prediction is '{_emotion}'",
                    definition=f"binary F1 of '{_emotion}' present (MOSEI emotion {_k + 1})")(
        lambda y, p, k=_k: float(label_f1(y[:, [k]], p[:, [k]])[0]))

register_task(Task(
    name="multilabel",
    description="multi-label classification: K labels per sample, each present or absent; one logit per label",
    kind="multilabel", loss=bce_with_logits, metrics=GENERIC_METRICS, sample_tests=("acc_avg",),
))
register_task(Task(
    name="emotions",
    description="CMU-MOSEI's six emotions as multi-label presence (intensity > 0): happy, sad, anger, surprise, "
                "disgust, fear",
    kind="multilabel", loss=bce_with_logits,
    metrics=(*GENERIC_METRICS, *(f"{m}_{e}" for e in MOSEI_EMOTIONS for m in ("wacc", "f1"))),
    num_classes=len(MOSEI_EMOTIONS), label_names=MOSEI_EMOTIONS, sample_tests=("acc_avg",),
    summary_metrics=GENERIC_METRICS,
))
