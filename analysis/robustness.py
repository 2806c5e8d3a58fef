"""Robustness to a noisy or missing modality at test time: the area under the curves, the table's columns and the
figure, from the curves ``benchmarks.probe`` measured (``<run>/probes/robustness.csv``: ``fusion, seed, modality,
perturbation, level, metric, value``; the protocol is in ``benchmarks.probes.robustness``). Nothing here runs a
model.

* Area under the noise curve: the trapezoid rule over the levels divided by their range, i.e. the mean metric over
  levels 0 to 1, in the metric's units (for MAE lower is better).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.integrate import trapezoid

from .plots import save_figure


def noise_levels(curves: pd.DataFrame) -> list[float]:
    """The noise levels of the curves, ascending."""
    return sorted(curves.loc[curves["perturbation"] == "noise", "level"].unique().tolist())


def robustness_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per (fusion, seed): ``clean``, then per modality the area under its noise curve (``noise <m>``)
    and the metric with it dropped (``drop <m>``), in the metric's units.

    ``curves``: the robustness records of one or more cells (``probes/robustness.csv``).
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


def plot_robustness(curves: pd.DataFrame, path: Path, higher_is_better: bool) -> list[Path]:
    """One panel per modality: the metric against the noise level, one line per fusion (mean over seeds, a band
    from their min to max); a last panel: the metric with each modality dropped ("none": clean). Shared y axis;
    ``higher_is_better``: the metric's direction, said on the axis. Returns the PNG and PDF paths."""
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
    axes[0].set_ylabel(f"{metric} ({'higher' if higher_is_better else 'lower'} is better)")
    axes[-1].set_xticks(np.arange(len(modalities) + 1), ["none", *modalities])
    axes[-1].set_xlabel("modality dropped")
    axes[-1].set_title("one modality dropped")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), title="fusion")
    for ax in axes:
        ax.grid(alpha=0.3)
    return save_figure(figure, path)
