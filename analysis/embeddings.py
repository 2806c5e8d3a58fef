"""Class separability of the fused representations on the test set: the figure of the 2-D projections and
silhouettes that ``benchmarks.probe`` measured from the stored checkpoints (``<run>/probes/embeddings.csv`` and
``silhouettes.csv``; how they are measured is in ``benchmarks.probes.embeddings``). Nothing here runs a model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from .plots import save_figure

PANEL = ["fusion", "seed", "step"]
"""The columns that name one panel: a state of one cell."""


def plot_embeddings(points: pd.DataFrame, silhouettes: pd.DataFrame, names: list[str], path: Path) -> list[Path]:
    """A grid of scatter plots: one column per state (a row of ``silhouettes``, in its order), rows PCA and t-SNE,
    points coloured by class, the silhouette score (full-dimensional) in each title.

    ``points``: the projections (``fusion, seed, step, state, method, id, class, x, y``; every panel shows the
    same samples); ``silhouettes``: ``fusion, seed, step, state, n_samples, dim, silhouette``; ``names``: the
    legend name of each class ``0..len(names)-1``. Returns the PNG and PDF paths, or ``[]`` (nothing drawn) when
    no sample was projected (fewer than 2 test samples).
    """
    if points.empty:
        return []
    colours = colormaps["tab10"](np.arange(len(names)) % 10)
    methods = list(dict.fromkeys(points["method"]))
    by_panel = dict(iter(points.groupby(PANEL, sort=False)))
    figure = Figure(figsize=(2.7 * len(silhouettes) + 1.6, 5.6), layout="constrained")
    axes = figure.subplots(len(methods), len(silhouettes), squeeze=False)
    for column, panel in enumerate(silhouettes.itertuples(index=False)):
        shown = by_panel[(panel.fusion, panel.seed, panel.step)]
        for row, method in enumerate(methods):
            ax, projected = axes[row][column], shown[shown["method"] == method]
            for k, name in enumerate(names):
                chosen = projected[projected["class"] == k]
                ax.scatter(chosen["x"], chosen["y"], s=4, color=colours[k], label=name, alpha=0.7, linewidths=0)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"{panel.fusion} seed {panel.seed}\n{panel.state}\nsilhouette {panel.silhouette:.3f}",
                             fontsize=8)
            if column == 0:
                ax.set_ylabel(method)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7, markerscale=3, title="class")
    n_shown = len(by_panel[tuple(silhouettes.iloc[0][PANEL])]) // len(methods)
    figure.suptitle(f"Test-set states ({n_shown} of {int(silhouettes['n_samples'].iloc[0])} samples shown); "
                    "silhouette in the full state space", fontsize=9)
    return save_figure(figure, path)
