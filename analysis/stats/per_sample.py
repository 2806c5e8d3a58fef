"""Per sample on the test set, two fusions on the same samples: paired bootstrap of the MAE and accuracy
differences (:func:`paired_bootstrap_mae`, :func:`paired_bootstrap_accuracy`) and McNemar's exact test
(:func:`mcnemar_exact`); :func:`average_over_seeds`, :func:`align_pair` and :func:`acc2_correct` prepare the
per-sample predictions they read.

Differences (``BootstrapDifference.observed``) are ``a - b`` in the scores' units and sign: for MAE negative means a
is better, for accuracies positive. These tests hold each trained model fixed: they measure test-set sampling error,
not seed-to-seed variation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from tasks import acc2_classes

from .values import as_pair, as_vector, snap_to_ties

__all__ = [
    "AlignedPredictions",
    "BootstrapDifference",
    "McNemarResult",
    "acc2_correct",
    "align_pair",
    "average_over_seeds",
    "mcnemar_exact",
    "paired_bootstrap",
    "paired_bootstrap_accuracy",
    "paired_bootstrap_mae",
]


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
    a, b = as_vector(scores_a, "scores_a"), as_vector(scores_b, "scores_b")
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
    y_true = as_vector(y_true, "y_true")
    pred_a, pred_b = as_pair(pred_a, pred_b, ("pred_a", "pred_b"))
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
    """Per-sample correctness of the binary sentiment (Acc-2) of regression predictions, with the classes of the
    Acc-2 metric itself (``tasks.acc2_classes``).

    Args:
        y_true: ``[n_samples]`` sentiment labels.
        y_pred: ``[n_samples]`` predictions.
        convention: ``"has0"``: negative (< 0) against non-negative (>= 0), every sample kept;
            ``"non0"``: samples with label exactly 0 dropped, negative against positive (> 0).

    Returns:
        Boolean correctness over the kept samples, in input order (``[n_samples]`` for has0, fewer for non0).
        Two fusions on the same labels keep the same samples, so their vectors stay paired.

    Raises:
        ValueError: empty, non-finite or misaligned inputs, or another convention.
    """
    truth, predicted = acc2_classes(*as_pair(y_true, y_pred, ("y_true", "y_pred")), convention)
    return truth == predicted


def _columns(names: str | Sequence[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def average_over_seeds(
    predictions: pd.DataFrame,
    *,
    how: str = "mean",
    fusion_col: str = "fusion",
    seed_col: str = "seed",
    id_col: str = "id",
    label_col: str | Sequence[str] = "label",
    pred_col: str | Sequence[str] = "prediction",
) -> pd.DataFrame:
    """Per-sample predictions averaged over seeds, per fusion.

    Args:
        predictions: long-form test predictions, one row per (fusion, seed, sample id) with columns
            ``fusion_col, seed_col, id_col``, the label column(s) and the prediction column(s).
        how: ``"mean"`` (regression: mean prediction) or ``"vote"`` (classification: most frequent predicted
            class, ties to the smallest class; with several prediction columns, a multi-label task's, each column
            votes on its own: a label is present where most seeds predict it, absent on a tie).
        fusion_col, seed_col, id_col: column names.
        label_col, pred_col: the label and prediction column, or a list of them (a multi-label task's
            ``label_<name>`` and ``prediction_<name>``, ``tasks.Task.result_columns``).

    Returns:
        One row per (fusion, sample id), sorted by fusion then id, with columns
        ``fusion_col, id_col``, the label and prediction columns, ``"n_seeds"``. Each fusion averages over the seeds
        it has; compare fusions whose ``n_seeds`` agree.

    Raises:
        ValueError: a sample's label differs between rows, or a (fusion, seed, id) appears twice.
    """
    if how not in ("mean", "vote"):
        raise ValueError(f"how must be 'mean' or 'vote', got {how!r}")
    if predictions.duplicated([fusion_col, seed_col, id_col]).any():
        raise ValueError(f"predictions repeat a ({fusion_col}, {seed_col}, {id_col}) row")
    labels, preds = _columns(label_col), _columns(pred_col)
    grouped = predictions.groupby([fusion_col, id_col], sort=True)
    differ = [c for c in labels if (grouped[c].nunique() > 1).any()]
    if differ:
        raise ValueError(f"a sample's {differ[0]} differs between seeds")

    def vote(values: pd.Series):
        counts = values.value_counts()
        return counts[counts == counts.max()].index.min()

    averaged = grouped.agg(
        **{c: (c, "first") for c in labels},
        **{c: (c, "mean" if how == "mean" else vote) for c in preds},
        n_seeds=(seed_col, "nunique"),
    )
    return averaged.reset_index()


@dataclass(frozen=True, eq=False)
class AlignedPredictions:
    """Two fusions' predictions on the same samples, sorted by id: ``ids`` ``[n_samples]``; ``labels``, ``pred_a``,
    ``pred_b`` ``[n_samples]``, or ``[n_samples, K]`` when aligned on K label and prediction columns (a
    multi-label task)."""

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
    label_col: str | Sequence[str] = "label",
    pred_col: str | Sequence[str] = "prediction",
) -> AlignedPredictions:
    """Pair two fusions' per-sample predictions by sample id.

    Args:
        predictions: one row per (fusion, sample id): one seed's predictions (filter the seed first), or the output
            of :func:`average_over_seeds`.
        fusion_a, fusion_b: the two fusions.
        fusion_col, id_col: column names.
        label_col, pred_col: the label and prediction column (arrays ``[n_samples]``), or lists of K columns each
            (arrays ``[n_samples, K]``: a multi-label task's, ``tasks.Task.result_columns``).

    Raises:
        ValueError: a fusion is missing, an id repeats within a fusion, the two id sets differ, or labels disagree.
    """
    labels, preds = _columns(label_col), _columns(pred_col)
    frames = []
    for fusion in (fusion_a, fusion_b):
        frame = predictions.loc[predictions[fusion_col] == fusion, [id_col, *labels, *preds]]
        if frame.empty:
            raise ValueError(f"no predictions for fusion {fusion!r}")
        if frame[id_col].duplicated().any():
            raise ValueError(f"fusion {fusion!r} repeats sample ids: select one seed or average over seeds first")
        frames.append(frame.set_index(id_col).sort_index())
    a, b = frames
    if not a.index.equals(b.index):
        raise ValueError(f"{fusion_a!r} and {fusion_b!r} were evaluated on different samples")
    if not np.array_equal(a[labels].to_numpy(), b[labels].to_numpy()):
        raise ValueError(f"{fusion_a!r} and {fusion_b!r} disagree on the labels of the same samples")
    label = label_col if isinstance(label_col, str) else labels  # one column: [n_samples]; a list: [n_samples, K]
    pred = pred_col if isinstance(pred_col, str) else preds
    return AlignedPredictions(a.index.to_numpy(), a[label].to_numpy(), a[pred].to_numpy(), b[pred].to_numpy())
