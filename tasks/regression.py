"""Plain regression: one real output per sample, any real labels; no class metric.

* ``rmse`` (main): root mean squared error, in label units; ``mae`` and ``corr`` as for sentiment
  (``tasks.sentiment``); ``r2``: the coefficient of determination ``1 - SS_res / SS_tot``
  (``sklearn.metrics.r2_score``), NaN when the labels are constant up to rounding (``SS_tot`` is 0 or noise).
* Loss: mean squared error, the estimator of the conditional mean that RMSE and R² score; the model is selected
  on the validation loss (the validation MSE: the same epoch as the lowest validation RMSE).
* Per-sample tests: the bootstrap of the absolute-error difference (``mae``). No classes: the embedding
  figures and McNemar's test need classes and are not made.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from sklearn.metrics import r2_score

from . import sentiment as _sentiment  # noqa: F401  (registers mae and corr, which plain regression shares)
from .registry import Task, register_metric, register_task
from .scores import nearly_constant


@register_metric(higher_is_better=False, unit="label units", definition="root mean squared error")
def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - p) ** 2)))


@register_metric(higher_is_better=True, unit="dimensionless, at most 1",
                 definition="coefficient of determination 1 - SS_res / SS_tot (sklearn r2_score)",
                 undefined_when="the test labels are constant, up to rounding")
def r2(y: np.ndarray, p: np.ndarray) -> float:
    return float("nan") if nearly_constant(y) else float(r2_score(y, p))


def mse_loss(outputs, labels):
    """Mean squared error of ``outputs`` ``[batch, 1]`` against ``labels`` ``[batch]``."""
    return F.mse_loss(outputs.squeeze(-1).float(), labels)


register_task(Task(
    name="regression",
    description="plain regression: one output per sample, any real labels",
    kind="regression",
    loss=mse_loss,
    metrics=("rmse", "mae", "corr", "r2"),
    sample_tests=("mae",),
))
