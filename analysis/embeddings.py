"""Class separability of the fused representations on the test set: silhouette scores and 2-D projections.

The claim measured: GRF's state after each fusion step becomes more class-separable as modalities are added. For
every fusion the states come from ``Prediction.states`` (GRF: the state after every step, ``[N, d_model]``
each; the others: their final pre-head representation). Classes: the sentiment sign for regression
(negative < 0 against non-negative >= 0, the Acc-2 "has0" split), the class index for classification.

* Silhouette score (``sklearn.metrics.silhouette_score``, Euclidean) in the full state space, not in the 2-D
  projection; on a seeded subsample of ``SILHOUETTE_MAX_SAMPLES`` points when the test set is larger.
  In [-1, 1]: higher means the classes sit in tighter, better separated groups.
* Projections for the figure: PCA (fitted on every test sample) and t-SNE (``sklearn.manifold.TSNE``, PCA
  initialisation, perplexity 30 (less for tiny sets), ``TSNE_ITERATIONS`` iterations, seeded, one OpenMP
  thread), both drawn on at most
  ``TSNE_MAX_POINTS`` test samples chosen with a fixed seed (the same samples in every panel), since t-SNE's
  cost grows quickly with the number of points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from .checkpoints import StoredCell
from .plots import save_figure

SILHOUETTE_MAX_SAMPLES = 5000
TSNE_MAX_POINTS = 500
TSNE_ITERATIONS = 500
REGRESSION_CLASSES = ("negative (< 0)", "non-negative (>= 0)")


def state_classes(labels: np.ndarray, task: str) -> np.ndarray:
    """``[N]`` integer classes: sentiment sign for regression (0 = negative, 1 = non-negative), else the labels."""
    labels = np.asarray(labels)
    return (labels >= 0).astype(int) if task == "regression" else labels.astype(int)


def class_names(task: str, classes: np.ndarray) -> list[str]:
    """Legend names of the classes ``0..max(classes)``."""
    return list(REGRESSION_CLASSES) if task == "regression" else [str(k) for k in range(int(classes.max()) + 1)]


def silhouette(states: np.ndarray, classes: np.ndarray, seed: int = 0) -> float:
    """Silhouette score of ``states`` ``[N, dim]`` under the labels ``classes`` ``[N]`` in the full ``dim``-space;
    NaN when fewer than 2 classes are present or every sample is its own class."""
    n_classes = np.unique(classes).size
    if n_classes < 2 or n_classes >= len(classes):
        return float("nan")
    sample = SILHOUETTE_MAX_SAMPLES if len(classes) > SILHOUETTE_MAX_SAMPLES else None
    return float(silhouette_score(states, classes, sample_size=sample, random_state=seed))


@dataclass(eq=False)
class StatePanel:
    """One representation of the test set: ``states`` ``[N, dim]`` of ``fusion`` (training ``seed``) after
    ``step`` (1-based; 1 for a fusion with one state), described by ``label``, and its silhouette score."""

    fusion: str
    seed: int
    step: int
    label: str
    states: np.ndarray
    silhouette: float


def cell_panels(cell: StoredCell, states: list[np.ndarray], classes: np.ndarray) -> list[StatePanel]:
    """The cell's test-set ``states`` (``Evaluation.states``: ``[N, dim_k]`` each), one panel per state, with
    silhouettes under ``classes`` ``[N]``.

    A fusion with several states (GRF) gets ``"step k: a+b+..."``: the modalities fused so far, in its fusion
    order; a fusion with one state gets ``"final"``.
    """
    names = cell.data.modality_names
    order = [names[i] for i in getattr(cell.model.fusion, "order", range(len(names)))]
    panels = []
    for step, state in enumerate(states, start=1):
        label = f"step {step}: {'+'.join(order[:step + 1])}" if len(states) > 1 else "final"
        panels.append(StatePanel(cell.fusion, cell.seed, step, label, state, silhouette(state, classes, cell.seed)))
    return panels


def silhouette_frame(panels: list[StatePanel]) -> pd.DataFrame:
    """One row per panel: ``fusion, seed, step, state, n_samples, dim, silhouette``."""
    return pd.DataFrame([
        {"fusion": p.fusion, "seed": p.seed, "step": p.step, "state": p.label, "n_samples": p.states.shape[0],
         "dim": p.states.shape[1], "silhouette": p.silhouette}
        for p in panels
    ])


def projections(states: np.ndarray, shown: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """PCA and t-SNE coordinates ``[len(shown), 2]`` of the samples at indices ``shown`` of ``states`` ``[N, dim]``
    (PCA fitted on all N samples; t-SNE run on the shown samples only)."""
    pca = PCA(n_components=2, svd_solver="full").fit(states).transform(states[shown])
    perplexity = min(30.0, (len(shown) - 1) / 3)
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, max_iter=TSNE_ITERATIONS, random_state=seed)
    with threadpool_limits(1):  # one OpenMP thread: the Barnes-Hut loop is ~10x slower when threads contend
        return {"PCA": pca, "t-SNE": tsne.fit_transform(states[shown])}


def plot_embeddings(
    panels: list[StatePanel], classes: np.ndarray, names: list[str], path: Path, seed: int = 0,
) -> list[Path]:
    """A grid of scatter plots: one column per panel, rows PCA and t-SNE, points coloured by class, the
    silhouette score (full-dimensional) in each title. All panels show the same seeded subsample of samples.
    Returns the PNG and PDF paths, or ``[]`` (nothing drawn) when there are fewer than 2 samples to project."""
    n = len(classes)
    if n < 2:
        return []
    shown = np.sort(np.random.default_rng(seed).choice(n, TSNE_MAX_POINTS, replace=False)) if n > TSNE_MAX_POINTS \
        else np.arange(n)
    colours = colormaps["tab10"](np.arange(len(names)) % 10)
    figure = Figure(figsize=(2.7 * len(panels) + 1.6, 5.6), layout="constrained")
    axes = figure.subplots(2, len(panels), squeeze=False)
    for column, panel in enumerate(panels):
        for row, (method, points) in enumerate(projections(panel.states, shown, seed).items()):
            ax = axes[row][column]
            for k, name in enumerate(names):
                chosen = classes[shown] == k
                ax.scatter(points[chosen, 0], points[chosen, 1], s=4, color=colours[k], label=name, alpha=0.7,
                           linewidths=0)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"{panel.fusion} seed {panel.seed}\n{panel.label}\nsilhouette {panel.silhouette:.3f}",
                             fontsize=8)
            if column == 0:
                ax.set_ylabel(method)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7, markerscale=3, title="class")
    figure.suptitle(f"Test-set states ({len(shown)} of {n} samples shown); silhouette in the full state space",
                    fontsize=9)
    return save_figure(figure, path)
