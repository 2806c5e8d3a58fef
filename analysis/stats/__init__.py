"""Statistics for comparing fusions: pure functions on numpy arrays and pandas frames (no I/O, no plotting).

One module per level, each with its own inputs; every name is importable from ``analysis.stats``:

* :mod:`.seeds` — per fusion and metric, over seeds (:func:`summarize_seeds`): mean, standard deviation (ddof=1),
  percentile-bootstrap and Student-t 95% confidence intervals of the mean.
* :mod:`.paired` — paired by seed, a fusion against a baseline (:func:`paired_comparison`): paired t-test, Wilcoxon
  signed-rank test, Cohen's d_z and the matched-pairs rank-biserial correlation.
* :mod:`.correction` — Holm-Bonferroni correction across a table (:func:`holm_adjust`, statsmodels'
  ``multipletests``) and the significance markers (:func:`significance_marker`).
* :mod:`.ranks` — across all fusions, seeds as blocks (:func:`friedman_test`, :func:`nemenyi_test`,
  :func:`critical_difference`): Friedman test, average ranks, Nemenyi post-hoc p-values and Demšar's (2006)
  critical difference.
* :mod:`.per_sample` — per sample on the test set, two fusions (:func:`paired_bootstrap_mae`,
  :func:`paired_bootstrap_accuracy`, :func:`mcnemar_exact`): paired bootstrap of the MAE and accuracy differences,
  McNemar's exact test; with :func:`average_over_seeds` and :func:`align_pair` to prepare per-sample predictions.
* :mod:`.frames` — tables from long-form records (:func:`summary_table`, :func:`comparison_table`,
  :func:`seed_matrix`), with each metric's direction asked of its registration in ``tasks`` (:data:`HIGHER_IS_BETTER`).
* :mod:`.values` — the inputs as every test reads them (:func:`snap_to_ties`).

Direction conventions (the one thing to read before using the numbers):

* Raw differences (``mean_diff``, :class:`BootstrapDifference` ``observed``) are in metric units and keep the
  metric's own sign: ``fusion - baseline`` or ``a - b``.
* Oriented quantities (t statistic, d_z, rank-biserial of :class:`PairedComparison`) are positive when the fusion is
  *better* than the baseline, whatever the metric's direction (``higher_is_better``; see :data:`HIGHER_IS_BETTER`).
* Ranks: rank 1 is the best fusion; ties share the average rank.
* Degenerate data do not raise. A test that is undefined (no variance: every paired difference the same
  non-zero value; too few pairs or samples) has p = ``NaN``, so it gets no significance marker and is left out of
  Holm's family, and its result says why in a ``note`` field (``PairedComparison.t_note``,
  ``BootstrapDifference.note``, ``McNemarResult.note``, ``FriedmanResult.note``). Identical results (every
  difference zero, every block tied) give p = 1.0, no evidence of a difference, with a note saying so. Each
  function's docstring says what it returns in those cases. Input no test can take (empty or misaligned arrays,
  NaN values, fewer than 3 fusions for Friedman/Nemenyi) raises ``ValueError``.
* Rounding: values that differ by at most ``tasks.NOISE_RTOL`` (1e-5) times their magnitude are
  equal for every test (:func:`snap_to_ties`): zero differences, ties in ranks and zero variance are read after
  merging them, so accuracies of 2 seeds that differ from the baseline's by the same count of samples (equal but
  for the last bit of the subtraction) are "no variance", not t = 7.5e14 with p ~ 1e-15.
"""

from __future__ import annotations

from .correction import SIGNIFICANCE_LEVELS, holm_adjust, significance_marker
from .frames import HIGHER_IS_BETTER, comparison_table, seed_matrix, summary_table
from .paired import PairedComparison, cohens_dz, paired_comparison, rank_biserial
from .per_sample import (
    AlignedPredictions,
    BootstrapDifference,
    McNemarResult,
    acc2_correct,
    align_pair,
    average_over_seeds,
    mcnemar_exact,
    paired_bootstrap,
    paired_bootstrap_accuracy,
    paired_bootstrap_mae,
)
from .ranks import (
    FriedmanResult,
    NemenyiResult,
    average_ranks,
    critical_difference,
    friedman_test,
    nemenyi_q_alpha,
    nemenyi_test,
)
from .seeds import SeedSummary, summarize_seeds
from .values import snap_to_ties

__all__ = [
    "HIGHER_IS_BETTER",
    "SIGNIFICANCE_LEVELS",
    "AlignedPredictions",
    "BootstrapDifference",
    "FriedmanResult",
    "McNemarResult",
    "NemenyiResult",
    "PairedComparison",
    "SeedSummary",
    "acc2_correct",
    "align_pair",
    "average_over_seeds",
    "average_ranks",
    "cohens_dz",
    "comparison_table",
    "critical_difference",
    "friedman_test",
    "holm_adjust",
    "mcnemar_exact",
    "nemenyi_q_alpha",
    "nemenyi_test",
    "paired_bootstrap",
    "paired_bootstrap_accuracy",
    "paired_bootstrap_mae",
    "paired_comparison",
    "rank_biserial",
    "seed_matrix",
    "significance_marker",
    "snap_to_ties",
    "summarize_seeds",
    "summary_table",
]
