"""Class separability of a stored cell's fused representations on the test set: silhouettes and 2-D projections.

The claim measured: GRF's state after each fusion step becomes more class-separable as modalities are added. For
every fusion the states come from ``Prediction.states`` (GRF: the state after every step, ``[N, d_model]``
each; the others: their final pre-head representation). Classes: :func:`sample_classes`.

* Silhouette score (``sklearn.metrics.silhouette_score``, Euclidean) in the full state space, not in the 2-D
  projection; on a sample of ``SILHOUETTE_MAX_SAMPLES`` points seeded by the cell's training seed when the test
  set is larger. In [-1, 1]: higher means the classes sit in tighter, better separated groups.
* Projections for the figure: PCA (fitted on every test sample) and t-SNE (``sklearn.manifold.TSNE``, PCA
  initialisation, perplexity 30 (less for tiny sets), ``TSNE_ITERATIONS`` iterations, seeded with
  ``PROJECTION_SEED``, one OpenMP thread), both of at most ``TSNE_MAX_POINTS`` test samples chosen with
  ``PROJECTION_SEED`` (the same samples for every cell and state), since t-SNE's cost grows quickly with the
  number of points.

:func:`benchmarks.probes.measure_probes` writes them (``probes/silhouettes.csv``, ``probes/embeddings.csv``);
``analysis.embeddings`` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from tasks import get_task

from .checkpoints import StoredCell

SILHOUETTE_MAX_SAMPLES = 5000
TSNE_MAX_POINTS = 500
TSNE_ITERATIONS = 500
PROJECTION_SEED = 0


@dataclass(frozen=True)
class Classes:
    """What "class" means for the test samples: ``index`` ``[N]`` integer classes in ``0..len(names)-1``,
    ``names`` the legend name of each class, ``meaning`` the split in words (for the report's sentences)."""

    index: np.ndarray
    names: list[str]
    meaning: str


def sample_classes(labels: np.ndarray, task: str) -> Classes:
    """The classes of the test labels ``[N]`` (``[N, K]`` for a multi-label task) as task ``task`` defines them
    (``tasks.Task.classes``): for sentiment the sign, 0 = negative (< 0), 1 = non-negative (>= 0) (the Acc-2 "has0"
    split); for classification the labels themselves, named ``0..K-1`` with K the largest label + 1. A task without
    classes (plain regression; multi-label, where a sample may hold several labels at once) puts every sample in
    one class, so its silhouettes are undefined (NaN) and its points one colour.
    """
    defined = get_task(task).classes
    if defined is None:
        return Classes(np.zeros(len(labels), dtype=int), ["all samples"], f"no class (task {task!r} defines none)")
    index = defined.of(np.asarray(labels))
    return Classes(index, defined.names_for(index), defined.description)


def silhouette(states: np.ndarray, classes: np.ndarray, seed: int = 0) -> float:
    """Silhouette score of ``states`` ``[N, dim]`` under the labels ``classes`` ``[N]`` in the full ``dim``-space;
    NaN when fewer than 2 classes are present or every sample is its own class."""
    n_classes = np.unique(classes).size
    if n_classes < 2 or n_classes >= len(classes):
        return float("nan")
    sample = SILHOUETTE_MAX_SAMPLES if len(classes) > SILHOUETTE_MAX_SAMPLES else None
    return float(silhouette_score(states, classes, sample_size=sample, random_state=seed))


def shown_samples(n: int, seed: int = PROJECTION_SEED) -> np.ndarray:
    """Indices (sorted) of the at most ``TSNE_MAX_POINTS`` test samples projected, drawn without replacement with
    ``seed``; every index when ``n`` is at most that."""
    if n > TSNE_MAX_POINTS:
        return np.sort(np.random.default_rng(seed).choice(n, TSNE_MAX_POINTS, replace=False))
    return np.arange(n)


def projections(states: np.ndarray, shown: np.ndarray, seed: int = PROJECTION_SEED) -> dict[str, np.ndarray]:
    """PCA and t-SNE coordinates ``[len(shown), 2]`` of the samples at indices ``shown`` of ``states`` ``[N, dim]``
    (PCA fitted on all N samples; t-SNE run on the shown samples only). Needs at least 2 shown samples."""
    pca = PCA(n_components=2, svd_solver="full").fit(states).transform(states[shown])
    perplexity = min(30.0, (len(shown) - 1) / 3)
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, max_iter=TSNE_ITERATIONS, random_state=seed)
    with threadpool_limits(1):  # one OpenMP thread: the Barnes-Hut loop is ~10x slower when threads contend
        return {"PCA": pca, "t-SNE": tsne.fit_transform(states[shown])}


def state_labels(cell: StoredCell, n_states: int) -> list[str]:
    """The label of each of the cell's ``n_states`` states: ``"step k: a+b+..."`` (the modalities fused so far, in
    the fusion's order) for a fusion with several states (GRF), ``"final"`` for a fusion with one."""
    if n_states == 1:
        return ["final"]
    names = cell.data.modality_names
    order = [names[i] for i in getattr(cell.model.fusion, "order", range(len(names)))]
    return [f"step {step}: {'+'.join(order[:step + 1])}" for step in range(1, n_states + 1)]


def cell_embeddings(
    cell: StoredCell, states: list[np.ndarray], classes: Classes,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cell's test-set ``states`` (``Evaluation.states``: ``[N, dim_k]`` each) as records.

    Returns the silhouettes (one row per state: ``fusion, seed, step, state, n_samples, dim, silhouette``, the
    score under ``classes.index`` seeded by the cell's seed) and the projections (one row per state, method and
    shown sample: ``fusion, seed, step, state, method, id, class, x, y``; none when fewer than 2 test samples).
    """
    shown = shown_samples(len(classes.index))
    ids = np.asarray(cell.data.test.ids)[shown]
    silhouettes, points = [], []
    for step, (label, state) in enumerate(zip(state_labels(cell, len(states)), states), start=1):
        key = {"fusion": cell.fusion, "seed": cell.seed, "step": step, "state": label}
        silhouettes.append(key | {"n_samples": state.shape[0], "dim": state.shape[1],
                                  "silhouette": silhouette(state, classes.index, cell.seed)})
        if len(shown) < 2:
            continue
        for method, xy in projections(state, shown).items():
            points.append(pd.DataFrame(key | {"method": method, "id": ids, "class": classes.index[shown],
                                              "x": xy[:, 0].astype(np.float64), "y": xy[:, 1].astype(np.float64)}))
    if not points:
        points = [pd.DataFrame(columns=["fusion", "seed", "step", "state", "method", "id", "class", "x", "y"])]
    return pd.DataFrame(silhouettes), pd.concat(points, ignore_index=True)
