"""Per fusion and metric, over seeds: mean, standard deviation (ddof=1), percentile-bootstrap and Student-t 95%
confidence intervals of the mean (:func:`summarize_seeds`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .values import as_vector

__all__ = ["SeedSummary", "summarize_seeds"]


@dataclass(frozen=True)
class SeedSummary:
    """Summary of one fusion's metric over seeds.

    ``ci_low``/``ci_high``: bootstrap confidence interval of the mean (see :func:`summarize_seeds`);
    ``t_ci_low``/``t_ci_high``: Student-t interval ``mean ± t_{(1+c)/2, n-1} · std / sqrt(n)``.
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    t_ci_low: float
    t_ci_high: float


def summarize_seeds(
    values, *, confidence: float = 0.95, n_resamples: int = 9999, method: str = "percentile", seed: int = 0
) -> SeedSummary:
    """Mean, standard deviation and confidence intervals of one metric over seeds.

    Args:
        values: ``[n_seeds]`` metric values of one fusion, one per seed (finite).
        confidence: confidence level of both intervals.
        n_resamples: bootstrap resamples.
        method: ``scipy.stats.bootstrap`` interval method: ``"percentile"`` (default), ``"basic"`` or ``"BCa"``.
        seed: seed of the bootstrap generator; the same seed gives the same interval.

    Returns:
        :class:`SeedSummary`. ``std`` uses ddof=1. Small samples, by design never an exception:

        * n = 1: ``std`` and both intervals are NaN.
        * all values equal: both intervals are ``(value, value)``.
        * n = 2 or 3: the percentile bootstrap interval is exactly ``(min, max)`` of the values (each extreme
          resample has probability 1/n**n > 2.5%); it is a description of the seeds, not a 95% interval with
          95% coverage. The t interval is the honest one at these n (and it is wide: t_{0.975,2} = 4.30).
    """
    values = as_vector(values, "values")
    n = values.size
    if n == 0:
        raise ValueError("values is empty")
    mean = float(values.mean())
    if n == 1:
        return SeedSummary(1, mean, np.nan, np.nan, np.nan, np.nan, np.nan)
    if np.all(values == values[0]):
        value = float(values[0])  # exactly, where the floating-point mean may be off in the last digit
        return SeedSummary(n, value, 0.0, value, value, value, value)
    std = float(values.std(ddof=1))
    result = stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method=method,
        rng=np.random.default_rng(seed),
    )
    half_width = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / float(np.sqrt(n))
    return SeedSummary(
        n,
        mean,
        std,
        float(result.confidence_interval.low),
        float(result.confidence_interval.high),
        mean - half_width,
        mean + half_width,
    )
