"""Long-form statistics frames of a run, built from ``analysis.stats`` (which holds every test and its caveats).

* :func:`usable_metrics`: the metrics with at least one finite value, and which cells have none (undefined).
* :func:`rank_tests`: per metric, Friedman's test over the fusions with a value (seeds as blocks) and the Nemenyi
  post-hoc.
* :func:`per_sample_tests`: per pair of fusions, on the test samples: paired bootstrap of the difference of each
  of the task's per-sample metrics (``tasks.Task.sample_tests``: an error such as the MAE, or an accuracy) and
  McNemar's exact test on the correctness behind each accuracy, for each seed and for seed-averaged predictions.

A NaN metric (undefined, e.g. ``corr`` of constant predictions, or a failed cell) is never a value: the cell is left
out of that metric's tests, and each function says so in its notes (or ``note`` columns).

The seed-level summary and the comparisons against a baseline are ``stats.summary_table`` and
``stats.comparison_table`` as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

import tasks
from tasks import Task

from . import stats
from .records import failed_cells


def cell_list(records: pd.DataFrame) -> str:
    """The (fusion, seed) cells of ``records`` in words: ``"grf seeds 0, 1; late seed 2"``."""
    parts = []
    for fusion, rows in records.groupby("fusion", sort=False):
        seeds = sorted(rows["seed"].astype(int))
        parts.append(f"{fusion} seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")
    return "; ".join(parts)


def usable_metrics(records: pd.DataFrame, metrics: Sequence[str]) -> tuple[list[str], list[str]]:
    """The metrics with at least one finite value (the others cannot be summarised or tested), and one note per
    metric that is NaN (undefined) in a cell that trained: which cells, why, and that they are left out of its
    tests. Failed cells (``records.failed_cells``) are not named: the report lists them once."""
    trained = records[~failed_cells(records)]
    kept, notes = [], []
    for metric in metrics:
        finite = bool(np.isfinite(records[metric]).any())
        if finite:
            kept.append(metric)
        undefined = trained[~np.isfinite(trained[metric])]
        if not undefined.empty:
            why = (metric in tasks.list_metrics() and tasks.metric(metric).undefined_when) or "its value is not finite"
            fate = "those cells are left out of its tests" if finite else "left out of every statistic"
            notes.append(f"{metric} is n/a for {cell_list(undefined)} (undefined when {why}); {fate}")
    return kept, notes


@dataclass
class RankTests:
    """Friedman and Nemenyi over all fusions.

    ``friedman``: one row per metric (``metric, higher_is_better, k, n_seeds, statistic, pvalue,
    critical_difference, q_alpha, alpha, note``; ``note`` as :class:`stats.FriedmanResult`); ``nemenyi``: one row
    per metric and pair (``metric, fusion_a, fusion_b, rank_a, rank_b, rank_difference, pvalue, significant``),
    p-values already family-wise over the pairs; ``results``: the :class:`stats.NemenyiResult` per metric (for the
    CD diagram); ``notes``: why a test is absent or which fusions and seeds it leaves out.
    """

    friedman: pd.DataFrame
    nemenyi: pd.DataFrame
    results: dict[str, stats.NemenyiResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def rank_tests(records: pd.DataFrame, metrics: Sequence[str], alpha: float = 0.05) -> RankTests:
    """Friedman's test and the Nemenyi post-hoc per metric, over the fusions with a value of it, on the seeds where
    each of them has one (complete blocks).

    Needs at least 3 such fusions and 2 such seeds; otherwise that metric has no rows and ``notes`` says why. A
    fusion or seed left out (a NaN value: undefined metric or failed cell) is named in ``notes``.
    """
    fusions = list(dict.fromkeys(records["fusion"]))
    if len(fusions) < 3:
        note = f"Friedman, Nemenyi and the CD diagram need at least 3 fusions; this run has {len(fusions)}"
        return RankTests(pd.DataFrame(), pd.DataFrame(), notes=[note])
    friedman_rows, nemenyi_rows, results, notes = [], [], {}, []
    for metric in metrics:
        direction = tasks.higher_is_better(metric)
        label = f"Friedman, Nemenyi and the CD diagram of {metric}"
        every = stats.seed_matrix(records, metric, fusions=fusions, complete=False)
        present = [f for f in fusions if every[f].notna().any()]
        absent = [f for f in fusions if f not in present]
        matrix = every[present].dropna()
        if len(present) < 3 or len(matrix) < 2:
            why = (f"only {len(present)} fusions have a value" if len(present) < 3 else
                   f"{len(matrix)} seed{'' if len(matrix) == 1 else 's'} with a value for each of {', '.join(present)}")
            notes.append(f"{label}: need at least 3 fusions and 2 seeds with a value; {why}")
            continue
        dropped = [str(int(seed)) for seed in every.index if seed not in matrix.index]
        left = []
        if absent:
            left.append(f"{', '.join(absent)} (no value)")
        if dropped:
            left.append(f"seed{'s' if len(dropped) > 1 else ''} {', '.join(dropped)} (a fusion has no value)")
        if left:
            notes.append(f"{label} leave out {' and '.join(left)}: {len(present)} fusions over {len(matrix)} seeds")
        friedman = stats.friedman_test(matrix, higher_is_better=direction)
        nemenyi = stats.nemenyi_test(matrix, higher_is_better=direction, alpha=alpha)
        results[metric] = nemenyi
        friedman_rows.append({
            "metric": metric, "higher_is_better": direction, "k": friedman.k, "n_seeds": friedman.n_blocks,
            "statistic": friedman.statistic, "pvalue": friedman.pvalue,
            "critical_difference": nemenyi.critical_difference, "q_alpha": nemenyi.q_alpha, "alpha": alpha,
            "note": friedman.note,
        })
        ranks = nemenyi.average_ranks
        for a, b in combinations(present, 2):
            nemenyi_rows.append({
                "metric": metric, "fusion_a": a, "fusion_b": b, "rank_a": ranks[a], "rank_b": ranks[b],
                "rank_difference": ranks[a] - ranks[b], "pvalue": float(nemenyi.pvalues.loc[a, b]),
                "significant": bool(nemenyi.pvalues.loc[a, b] < alpha),
            })
    return RankTests(pd.DataFrame(friedman_rows), pd.DataFrame(nemenyi_rows), results, notes)


def _pair_rows(task: Task, aligned: stats.AlignedPredictions, n_resamples: int, seed: int) -> list[dict]:
    """Bootstrap of one pair on one set of predictions, one row per per-sample metric of the task; McNemar's test
    too where the per-sample scores are correctness (an accuracy). Other scores (an absolute error, a multi-label
    task's fraction of labels right per sample) get no McNemar test, and the note says why."""
    rows = []
    for measure in task.sample_tests:
        row = {"measure": measure}
        a, b = (task.sample_scores(measure, aligned.labels, pred) for pred in (aligned.pred_a, aligned.pred_b))
        boot = stats.paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed)
        if a.dtype == bool:
            mcnemar = stats.mcnemar_exact(a, b)
            row.update(mcnemar_b=mcnemar.b, mcnemar_c=mcnemar.c, mcnemar_p=mcnemar.pvalue, mcnemar_note=mcnemar.note)
        else:
            row.update(mcnemar_b=np.nan, mcnemar_c=np.nan, mcnemar_p=np.nan,
                       mcnemar_note=f"not run: McNemar's test needs right/wrong per sample, not {measure}'s "
                                    f"per-sample scores ({tasks.metric(measure).unit})")
        row.update(n=boot.n, difference=boot.observed, ci_low=boot.ci_low, ci_high=boot.ci_high,
                   bootstrap_p=boot.pvalue, bootstrap_note=boot.note)
        rows.append(row)
    return rows


def per_sample_tests(
    predictions: pd.DataFrame, task: str, fusions: Sequence[str], *, n_resamples: int = 9999, seed: int = 0,
) -> pd.DataFrame:
    """Every pair of fusions compared sample by sample on the test set.

    Args:
        predictions: long-form test predictions (``fusion, seed, id``, then the task's label and prediction
            columns, ``tasks.Task.result_columns``: ``label, prediction``, the prediction a class index for
            classification; a multi-label task's ``label_<name>, prediction_<name>`` of every label).
        task: the registered task of the run (``tasks.get_task``): its ``sample_tests`` are the measures.
        fusions: the fusions in table order; pair (a, b) has a before b. A pair is compared on each seed both have
            predictions of (a failed cell has none).
        n_resamples: bootstrap resamples per test.
        seed: bootstrap seed (the same for every test, so reruns are identical).

    Returns:
        One row per (pair, predictions, measure) with columns ``fusion_a, fusion_b, seed, measure, n, difference,
        ci_low, ci_high, bootstrap_p, mcnemar_b, mcnemar_c, mcnemar_p, bootstrap_p_holm, mcnemar_p_holm,
        bootstrap_note, mcnemar_note`` (the notes: why a p-value is NaN or set to 1, see ``stats.paired_bootstrap``
        and ``stats.mcnemar_exact``).
        ``seed`` is the training seed, or ``"mean"`` (regression tasks: mean prediction) / ``"vote"``
        (classification: majority class; multi-label: majority per label) over the seeds every fusion has
        (``Task.seed_average``). ``difference`` is
        ``a - b`` in the measure's units (an error such as the MAE: negative = a better; accuracies: positive = a
        better), with its percentile bootstrap 95% interval.
        McNemar's ``b`` counts samples only a gets right, ``c`` only b. Holm runs within each set of predictions
        (one seed, or the average) over all pairs x measures, separately for the bootstrap and McNemar p-values.
        These tests treat the trained models as fixed: they measure test-set sampling error, not seed variation.
    """
    task, fusions = tasks.get_task(task), list(fusions)
    if len(fusions) < 2:
        raise ValueError(f"per-sample tests compare pairs of fusions; got {fusions}")
    labels, preds = task.result_columns(predictions.columns)
    seeds = [set(predictions.loc[predictions["fusion"] == f, "seed"]) for f in fusions]
    common = set.intersection(*seeds)
    groups = [(str(s), predictions[predictions["seed"] == s]) for s in sorted(set.union(*seeds))]
    if common:
        how = task.seed_average
        kept = predictions[predictions["seed"].isin(common)]
        groups.append((how, stats.average_over_seeds(kept, how=how, label_col=labels, pred_col=preds)))
    frames = []
    for name, group in groups:
        rows, present = [], set(group["fusion"])
        for a, b in combinations(fusions, 2):
            if a in present and b in present:
                aligned = stats.align_pair(group, a, b, label_col=labels, pred_col=preds)
                rows += [{"fusion_a": a, "fusion_b": b, "seed": name, **row}
                         for row in _pair_rows(task, aligned, n_resamples, seed)]
        if not rows:
            continue
        frame = pd.DataFrame(rows)
        frame["bootstrap_p_holm"] = stats.holm_adjust(frame["bootstrap_p"])
        frame["mcnemar_p_holm"] = stats.holm_adjust(frame["mcnemar_p"])
        frames.append(frame)
    columns = ["fusion_a", "fusion_b", "seed", "measure", "n", "difference", "ci_low", "ci_high", "bootstrap_p",
               "mcnemar_b", "mcnemar_c", "mcnemar_p", "bootstrap_p_holm", "mcnemar_p_holm", "bootstrap_note",
               "mcnemar_note"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
