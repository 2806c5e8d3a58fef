"""Statistics tables from long-form records (one row per fusion and seed, one column per metric): the seed
summary per fusion and metric (:func:`summary_table`), every fusion against a baseline with Holm's correction
(:func:`comparison_table`), and a metric as a seeds x fusions block matrix (:func:`seed_matrix`).

A metric's direction is asked of the metric registry (``tasks``) at each look-up (:data:`HIGHER_IS_BETTER` is a view
of it, not a copy), so a metric registered there is known here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd

import tasks

from .correction import holm_adjust
from .paired import PairedComparison, paired_comparison
from .seeds import summarize_seeds

__all__ = ["HIGHER_IS_BETTER", "comparison_table", "seed_matrix", "summary_table"]


class _MetricDirections(Mapping[str, bool]):
    """Read-only view of the metric registry: each registered metric (``tasks.list_metrics()``, in registration
    order) -> ``True`` when a higher value is better (``Metric.higher_is_better``). Nothing is copied: each look-up
    asks ``tasks``."""

    def __getitem__(self, metric: str) -> bool:
        if metric not in tasks.list_metrics():
            raise KeyError(metric)
        return tasks.metric(metric).higher_is_better

    def __iter__(self) -> Iterator[str]:
        return iter(tasks.list_metrics())

    def __len__(self) -> int:
        return len(tasks.list_metrics())


HIGHER_IS_BETTER: Mapping[str, bool] = _MetricDirections()
"""Direction of every metric column of the records, as its registration (``tasks``) defines it: ``True`` when a
higher value is better."""


def _metric_directions(
    records: pd.DataFrame, metrics: Sequence[str] | None, higher_is_better: Mapping[str, bool]
) -> dict[str, bool]:
    """The metrics to use (default: every known metric column present) with their directions."""
    if metrics is None:
        metrics = [m for m in higher_is_better if m in records.columns]
    missing = [m for m in metrics if m not in records.columns]
    if missing:
        raise ValueError(f"records have no column {missing}; columns are {list(records.columns)}")
    unknown = [m for m in metrics if m not in higher_is_better]
    if unknown:
        raise ValueError(f"direction unknown for metric {unknown}: pass higher_is_better with it")
    if not metrics:
        raise ValueError("no metric column found in the records")
    return {m: higher_is_better[m] for m in metrics}


def _fusion_order(records: pd.DataFrame, fusion_col: str) -> list:
    """The fusions of the records in order of first appearance."""
    return list(dict.fromkeys(records[fusion_col]))


def seed_matrix(
    records: pd.DataFrame,
    metric: str,
    *,
    fusions: Iterable[str] | None = None,
    complete: bool = True,
    fusion_col: str = "fusion",
    seed_col: str = "seed",
) -> pd.DataFrame:
    """One metric as a ``[seeds, fusions]`` block matrix, the input of :func:`friedman_test` and :func:`nemenyi_test`.

    Args:
        records: long-form records, one row per (fusion, seed), with the metric as a column.
        metric: the metric column.
        fusions: the fusions (columns) in order; default all, in order of first appearance.
        complete: keep only seeds present for every fusion (complete blocks); otherwise missing cells are NaN.
        fusion_col, seed_col: column names.

    Raises:
        ValueError: a (fusion, seed) pair appears twice, or a requested fusion is absent.
    """
    if records.duplicated([fusion_col, seed_col]).any():
        raise ValueError(f"records repeat a ({fusion_col}, {seed_col}) row")
    fusions = _fusion_order(records, fusion_col) if fusions is None else list(fusions)
    absent = [f for f in fusions if f not in set(records[fusion_col])]
    if absent:
        raise ValueError(f"no records for fusion {absent}")
    matrix = records.pivot(index=seed_col, columns=fusion_col, values=metric).reindex(columns=fusions).sort_index()
    matrix.columns.name = None
    return matrix.dropna() if complete else matrix


def summary_table(
    records: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    higher_is_better: Mapping[str, bool] = HIGHER_IS_BETTER,
    fusion_col: str = "fusion",
    **summary_kwargs,
) -> pd.DataFrame:
    """Per fusion and metric: :func:`summarize_seeds` over the seeds of the records.

    Args:
        records: long-form records, one row per (fusion, seed), metric columns.
        metrics: metric columns; default every column named in ``higher_is_better``.
        higher_is_better: metric directions (also reported, for "best in bold").
        fusion_col: column name of the fusion.
        **summary_kwargs: ``confidence``, ``n_resamples``, ``method``, ``seed`` of :func:`summarize_seeds`.

    Returns:
        Long-form DataFrame, one row per (metric, fusion) in metric then first-appearance order, with columns
        ``metric, fusion, higher_is_better, n, mean, std, ci_low, ci_high, t_ci_low, t_ci_high``. NaN metric
        values (a failed cell) are left out of n.
    """
    directions = _metric_directions(records, metrics, higher_is_better)
    rows = []
    for metric, direction in directions.items():
        for fusion in _fusion_order(records, fusion_col):
            values = records.loc[records[fusion_col] == fusion, metric].dropna().to_numpy()
            if values.size == 0:
                continue
            summary = summarize_seeds(values, **summary_kwargs)
            rows.append({"metric": metric, "fusion": fusion, "higher_is_better": direction, **asdict(summary)})
    return pd.DataFrame(rows)


def comparison_table(
    records: pd.DataFrame,
    baseline: str,
    metrics: Sequence[str] | None = None,
    *,
    higher_is_better: Mapping[str, bool] = HIGHER_IS_BETTER,
    fusion_col: str = "fusion",
    seed_col: str = "seed",
) -> pd.DataFrame:
    """Every fusion against the baseline, for every metric: :func:`paired_comparison`, Holm-adjusted.

    Pairs are matched by seed; a seed missing (or NaN: an undefined metric, a failed cell) for either of the two
    fusions is left out of that pair. A pair with no such seed left gets a row with ``n`` 0, NaN statistics and a
    ``t_note`` saying so.
    Family for the Holm correction: all rows of this table (every metric × every fusion other than the baseline)
    whose test is defined (an undefined p-value, NaN, is left out), separately for the t-test and for the Wilcoxon
    p-values.

    Args:
        records: long-form records, one row per (fusion, seed), metric columns.
        baseline: the baseline fusion (e.g. ``"grf"``).
        metrics: metric columns; default every column named in ``higher_is_better``.
        higher_is_better: metric directions.
        fusion_col, seed_col: column names.

    Returns:
        Long-form DataFrame, one row per (metric, fusion), with columns ``metric, fusion, baseline,
        higher_is_better, fusion_mean, baseline_mean``, every :class:`PairedComparison` field, and
        ``t_pvalue_holm, wilcoxon_pvalue_holm``. Means are over the paired seeds.

    Raises:
        ValueError: the baseline is absent or there is no other fusion.
    """
    directions = _metric_directions(records, metrics, higher_is_better)
    fusions = _fusion_order(records, fusion_col)
    if baseline not in fusions:
        raise ValueError(f"baseline {baseline!r} not in the records; fusions are {fusions}")
    others = [f for f in fusions if f != baseline]
    if not others:
        raise ValueError("the records hold only the baseline")
    rows = []
    for metric, direction in directions.items():
        matrix = seed_matrix(records, metric, complete=False, fusion_col=fusion_col, seed_col=seed_col)
        for fusion in others:
            pair = matrix[[fusion, baseline]].dropna()
            if pair.empty:
                comparison = PairedComparison(
                    0, np.nan, np.nan, np.nan, np.nan, np.nan, "no pair", np.nan, np.nan,
                    t_note=f"no seed where both {fusion} and {baseline} have a value of {metric}")
            else:
                comparison = paired_comparison(pair[fusion], pair[baseline], higher_is_better=direction)
            rows.append(
                {
                    "metric": metric,
                    "fusion": fusion,
                    "baseline": baseline,
                    "higher_is_better": direction,
                    "fusion_mean": float(pair[fusion].mean()),
                    "baseline_mean": float(pair[baseline].mean()),
                    **asdict(comparison),
                }
            )
    table = pd.DataFrame(rows)
    table["t_pvalue_holm"] = holm_adjust(table["t_pvalue"])
    table["wilcoxon_pvalue_holm"] = holm_adjust(table["wilcoxon_pvalue"])
    return table
