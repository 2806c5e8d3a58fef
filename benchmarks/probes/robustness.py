"""Robustness to a noisy or missing modality at test time, as MultiBench measures it, from a stored checkpoint.

For a stored cell and each modality ``i``, the test split is perturbed in one modality only and the main metric
of the dataset's task (``tasks``: ``mae`` for sentiment, ``accuracy`` for classification, ``wacc_avg`` for
multi-label) is measured again;
nothing is retrained.

* Noise: ``x_i + level * std_i * eps`` on the real steps only (padding stays zero), for ``level`` in
  ``NOISE_LEVELS`` = 0, 0.25, 0.5, 0.75, 1. ``std_i`` ``[dim_i]`` is each feature's standard deviation over the
  real steps of the *train* split (population std); ``eps`` ``[N, time_i, dim_i]`` is one standard-normal draw per
  modality from a generator seeded with ``NOISE_SEED + i``, so every fusion and seed sees the same noise, the
  levels are nested (the same direction, scaled), and a rerun gives identical numbers. Level 0 is the
  unperturbed split, so it equals the clean metric exactly.
* Drop: modality ``i``'s features set to zero at every step. Its mask is kept as it is: the fusion interface
  requires every sample's first step to be real, so a modality cannot be marked absent, and keeping the mask
  leaves the rest of the input unchanged; the model sees the modality's length but no content.

The curves are written by :func:`benchmarks.probes.measure_probes` (``probes/robustness.csv``); the area under
them, the table and the figure are drawn by ``analysis.robustness``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from tasks import get_task

from ..data import Split
from ..train import Evaluation
from .checkpoints import StoredCell

NOISE_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
NOISE_SEED = 0


def feature_std(split: Split) -> list[Tensor]:
    """Per modality, each feature's standard deviation ``[dim_i]`` over the real steps of every sample."""
    return [x[mask].std(dim=0, correction=0) for x, mask in zip(split.xs, split.masks)]


def unit_noise(split: Split, modality: int, seed: int = NOISE_SEED) -> Tensor:
    """Standard-normal noise ``[N, time_i, dim_i]`` for ``modality``, zero on padding steps, seeded by
    ``seed + modality``."""
    x, mask = split.xs[modality], split.masks[modality]
    generator = torch.Generator().manual_seed(seed + modality)
    return torch.randn(x.shape, generator=generator) * mask.unsqueeze(-1)


def with_modality(split: Split, modality: int, x: Tensor) -> Split:
    """The same split with modality ``modality``'s features replaced by ``x`` (masks, labels, ids unchanged)."""
    xs = list(split.xs)
    xs[modality] = x
    return replace(split, xs=xs)


def robustness_curves(
    cell: StoredCell, levels: tuple[float, ...] = NOISE_LEVELS, seed: int = NOISE_SEED,
    clean: Evaluation | None = None,
) -> pd.DataFrame:
    """The cell's main metric under noise on each modality and with each modality dropped.

    ``clean``: the cell's evaluation on the unperturbed test split when already made (its metric is level 0),
    else made here.
    Returns one row per measurement with columns ``fusion, seed, modality, perturbation, level, metric, value``:
    ``perturbation`` is ``"noise"`` (``level`` in ``levels``, level 0 = the clean test split) or ``"drop"``
    (``level`` NaN). Raises ``benchmarks.train.Diverged`` when a perturbed input gives a non-finite output.
    """
    data, metric = cell.data, get_task(cell.data.task).main_metric
    test = data.test

    def score(split: Split) -> float:
        return cell.evaluate(split).metrics[metric]

    clean = score(test) if clean is None else clean.metrics[metric]
    stds = feature_std(data.train)
    rows = []
    for i, name in enumerate(data.modality_names):
        noise = unit_noise(test, i, seed) * stds[i]
        for level in levels:
            value = clean if level == 0 else score(with_modality(test, i, test.xs[i] + level * noise))
            rows.append({"modality": name, "perturbation": "noise", "level": float(level), "value": value})
        dropped = score(with_modality(test, i, torch.zeros_like(test.xs[i])))
        rows.append({"modality": name, "perturbation": "drop", "level": np.nan, "value": dropped})
    frame = pd.DataFrame(rows)
    frame.insert(0, "seed", cell.seed)
    frame.insert(0, "fusion", cell.fusion)
    frame.insert(len(frame.columns) - 1, "metric", metric)
    return frame
