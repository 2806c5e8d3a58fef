"""Robustness to a noisy or missing modality at test time, as MultiBench measures it, from stored checkpoints.

For each stored cell and each modality ``i``, the test split is perturbed in one modality only and the main metric
(``mae`` for regression, ``accuracy`` for classification) is measured again; nothing is retrained.

* Noise: ``x_i + level * std_i * eps`` on the real steps only (padding stays zero), for ``level`` in
  ``NOISE_LEVELS`` = 0, 0.25, 0.5, 0.75, 1. ``std_i`` ``[dim_i]`` is each feature's standard deviation over the
  real steps of the *train* split (population std); ``eps`` ``[N, time_i, dim_i]`` is one standard-normal draw per
  modality from a generator seeded with ``NOISE_SEED + i``, so every fusion and seed sees the same noise, the
  levels are nested (the same direction, scaled), and a rerun gives identical numbers. Level 0 is the
  unperturbed split, so it equals the clean metric exactly.
* Drop: modality ``i``'s features set to zero at every step. Its mask is kept as it is: the fusion interface
  requires every sample's first step to be real, so a modality cannot be marked absent, and keeping the mask
  leaves the rest of the input unchanged; the model sees the modality's length but no content.
* Area under the noise curve: the trapezoid rule over the levels divided by their range (1), i.e. the mean
  metric over levels 0 to 1, in the metric's units (for MAE lower is better).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from scipy.integrate import trapezoid
from torch import Tensor

from benchmarks.data import Split
from benchmarks.metrics import higher_is_better, main_metric

from .checkpoints import StoredCell
from .plots import save_figure

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
) -> pd.DataFrame:
    """The cell's main metric under noise on each modality and with each modality dropped.

    Returns one row per measurement with columns ``fusion, seed, modality, perturbation, level, metric, value``:
    ``perturbation`` is ``"noise"`` (``level`` in ``levels``, level 0 = the clean test split) or ``"drop"``
    (``level`` NaN).
    """
    data, metric = cell.data, main_metric(cell.data.task)
    test = data.test

    def score(split: Split) -> float:
        return cell.evaluate(split).metrics[metric]

    clean = score(test)
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


def robustness_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per (fusion, seed): ``clean``, then per modality the area under its noise curve (``noise <m>``)
    and the metric with it dropped (``drop <m>``), in the metric's units.

    ``curves``: :func:`robustness_curves` frames of one or more cells, stacked.
    """
    rows = []
    for (fusion, seed), cell in curves.groupby(["fusion", "seed"], sort=False):
        row = {"fusion": fusion, "seed": seed}
        noise = cell[cell["perturbation"] == "noise"]
        row["clean"] = float(noise.loc[noise["level"] == 0, "value"].iloc[0])
        for modality, curve in noise.groupby("modality", sort=False):
            levels, values = curve["level"].to_numpy(), curve["value"].to_numpy()
            row[f"noise {modality}"] = float(trapezoid(values, levels) / (levels.max() - levels.min()))
        for _, drop in cell[cell["perturbation"] == "drop"].iterrows():
            row[f"drop {drop['modality']}"] = float(drop["value"])
        rows.append(row)
    return pd.DataFrame(rows)


def plot_robustness(curves: pd.DataFrame, path: Path) -> list[Path]:
    """One panel per modality: the metric against the noise level, one line per fusion (mean over seeds, a band
    from their min to max); a last panel: the metric with each modality dropped ("none": clean). Shared y axis."""
    metric = curves["metric"].iloc[0]
    modalities = list(dict.fromkeys(curves["modality"]))
    fusions = list(dict.fromkeys(curves["fusion"]))
    figure = Figure(figsize=(2.8 * (len(modalities) + 1) + 1.2, 3.0), layout="constrained")
    axes = figure.subplots(1, len(modalities) + 1, sharey=True)
    noise = curves[curves["perturbation"] == "noise"]
    drop = curves[curves["perturbation"] == "drop"]
    for k, fusion in enumerate(fusions):
        colour = f"C{k % 10}"
        for ax, modality in zip(axes, modalities):
            values = noise[(noise["fusion"] == fusion) & (noise["modality"] == modality)]
            by_level = values.groupby("level")["value"].agg(["mean", "min", "max"])
            ax.plot(by_level.index, by_level["mean"], marker="o", markersize=3, color=colour, label=fusion)
            ax.fill_between(by_level.index, by_level["min"], by_level["max"], color=colour, alpha=0.15)
        clean = noise[(noise["fusion"] == fusion) & (noise["level"] == 0)].groupby("seed")["value"].first().mean()
        dropped = drop[drop["fusion"] == fusion].groupby("modality", sort=False)["value"].mean()
        offset = (k - (len(fusions) - 1) / 2) * 0.12
        axes[-1].plot(np.arange(len(modalities) + 1) + offset, [clean, *dropped[modalities]], marker="o",
                      linestyle="none", color=colour, label=fusion)
    for ax, modality in zip(axes, modalities):
        ax.set_title(f"noise on {modality}")
        ax.set_xlabel("noise level (x feature std)")
    axes[0].set_ylabel(f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better)")
    axes[-1].set_xticks(np.arange(len(modalities) + 1), ["none", *modalities])
    axes[-1].set_xlabel("modality dropped")
    axes[-1].set_title("one modality dropped")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), title="fusion")
    for ax in axes:
        ax.grid(alpha=0.3)
    return save_figure(figure, path)
