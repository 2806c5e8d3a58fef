"""CH-SIMS sentiment regression (``sims``): one real output per sample, labels in [-1, 1], scored exactly as MMSA's
SIMS evaluation scores it (``MetricsTop.__eval_sims_regression`` in github.com/thuiar/MMSA, used for CH-SIMS and
CH-SIMS v2).

MMSA clips predictions and labels to [-1, 1] before every metric, so this task keeps each model output clipped to
[-1, 1] (:class:`SimsTask`: the stored predictions and every metric read the clipped value; a non-finite
output stays as it is, so a diverged model still reads as diverged). The loss reads the unclipped output.

* ``mae`` and ``corr``: sentiment's (``tasks.sentiment``), here of the clipped predictions: MMSA's MAE and Corr;
* ``sims_acc2``: 2 classes, negative or neutral [-1, 0] against positive (0, 1];
* ``sims_acc3``: 3 classes cut at -0.1 and 0.1: [-1, -0.1], (-0.1, 0.1], (0.1, 1];
* ``sims_acc5``: 5 classes cut at -0.7, -0.1, 0.1 and 0.7: [-1, -0.7], (-0.7, -0.1], (-0.1, 0.1], (0.1, 0.7],
  (0.7, 1];
* ``sims_f1``: the class-weighted F1 of the ``sims_acc2`` classes (``f1_score(..., average="weighted")``).

Every bin is open below and closed above, as MMSA's ``(low < x) & (x <= high)``: a value exactly on a cut falls in
the bin below it (0 is negative-or-neutral, 0.1 neutral, -0.1 negative, 0.7 weakly positive, -0.7 strongly
negative); -1 and 1 (and anything beyond, once clipped) fall in the end bins. The comparisons are made in float32,
the precision of the model outputs and of MMSA's tensors, so a value written as 0.1 falls on the same side in
float32 and float64 (``numpy.float32(0.1)`` is above the float64 0.1). MMSA rounds its results to 4 decimals; the
records keep them unrounded.

Loss: L1. The model is selected on the validation loss, as MMSA selects it (``KeyEval = "Loss"``: the L1 loss of
the unclipped outputs), which is the validation MAE before clipping. Classes (embeddings, McNemar): the
``sims_acc2`` bins. Undefined: ``corr`` when the labels or the clipped predictions are constant (as for sentiment);
everything else is defined for any non-empty test split.
"""

from __future__ import annotations

import numpy as np

from . import sentiment as _sentiment  # noqa: F401  (registers mae and corr, which SIMS shares)
from .registry import Classes, Task, register_metric, register_task
from .scores import accuracy, weighted_f1
from .sentiment import l1_loss

SIMS_RANGE = (-1.0, 1.0)
"""The label range of CH-SIMS (``Task.label_range``); predictions and labels are clipped to it before scoring."""

ACC2_CUTS = (0.0,)
ACC3_CUTS = (-0.1, 0.1)
ACC5_CUTS = (-0.7, -0.1, 0.1, 0.7)


def sims_bins(values: np.ndarray, cuts: tuple[float, ...]) -> np.ndarray:
    """The MMSA SIMS class ``0..len(cuts)`` of each of ``values`` ``[N]`` (label units): clipped to [-1, 1], class
    ``k`` is ``cuts[k-1] < value <= cuts[k]``, compared in float32 (see the module docstring)."""
    clipped = np.clip(np.asarray(values, dtype=np.float32), *SIMS_RANGE)
    return np.digitize(clipped, np.asarray(cuts, dtype=np.float32), right=True)


def _bin_metrics(name: str, cuts: tuple[float, ...], words: str) -> None:
    """Register ``sims_acc<k>`` on the bins of ``cuts``."""

    def correct(y: np.ndarray, p: np.ndarray) -> np.ndarray:
        return sims_bins(y, cuts) == sims_bins(p, cuts)

    register_metric(name, higher_is_better=True, unit="fraction", per_sample=correct,
                    definition=f"{len(cuts) + 1}-class accuracy, label and prediction clipped to [-1, 1] and "
                               f"binned {words} (MMSA's SIMS evaluation)")(
        lambda y, p: accuracy(sims_bins(y, cuts), sims_bins(p, cuts)))


_bin_metrics("sims_acc2", ACC2_CUTS, "[-1, 0], (0, 1]")
_bin_metrics("sims_acc3", ACC3_CUTS, "[-1, -0.1], (-0.1, 0.1], (0.1, 1]")
_bin_metrics("sims_acc5", ACC5_CUTS, "[-1, -0.7], (-0.7, -0.1], (-0.1, 0.1], (0.1, 0.7], (0.7, 1]")


@register_metric(higher_is_better=True, unit="fraction",
                 definition="class-weighted F1 of the sims_acc2 classes, [-1, 0] against (0, 1] "
                            "(MMSA's SIMS evaluation)")
def sims_f1(y: np.ndarray, p: np.ndarray) -> float:
    return weighted_f1(sims_bins(y, ACC2_CUTS), sims_bins(p, ACC2_CUTS))


class SimsTask(Task):
    """A regression :class:`Task` whose outputs and predictions are clipped to its ``label_range``, as MMSA's SIMS
    evaluation clips them before every metric."""

    def outputs(self, raw: np.ndarray) -> np.ndarray:
        """``raw`` ``[N, 1]`` as ``[N]``, clipped (:meth:`clip`): what evaluations keep and predictions store."""
        return self.clip(super().outputs(raw))

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        """Predictions ``[N]`` from outputs ``[N]`` (or ``[N, 1]``), clipped (:meth:`clip`)."""
        return self.clip(super().predict(outputs))

    def clip(self, values: np.ndarray) -> np.ndarray:
        """``values`` with every finite value clipped to ``label_range``; NaN and infinities kept, so that a
        diverged model still reads as diverged."""
        return np.where(np.isfinite(values), np.clip(values, *self.label_range), values)


register_task(SimsTask(
    name="sims",
    description="CH-SIMS sentiment regression: one output per sample, labels in [-1, 1], MMSA's SIMS metrics",
    kind="regression",
    loss=l1_loss,
    metrics=("mae", "corr", "sims_acc2", "sims_acc3", "sims_acc5", "sims_f1"),
    selection="loss",
    label_range=SIMS_RANGE,
    classes=Classes(of=lambda values: sims_bins(values, ACC2_CUTS),
                    description="the sims_acc2 bin of the sentiment (negative or neutral <= 0 vs positive > 0)",
                    names=("negative or neutral (<= 0)", "positive (> 0)")),
    sample_tests=("mae", "sims_acc2"),
    curve_metric="corr",
))
