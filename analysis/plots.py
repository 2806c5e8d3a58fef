"""Seaborn figures from long-form records, saved as PNG and PDF.

NaN values (an undefined metric such as ``corr`` of constant predictions, or a failed cell) are not drawn. A panel
whose column has no finite value is left out of its figure; a figure with no panel left is not written, and the
function returns ``[]`` instead of its two paths.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402

from records.io import atomic_path  # noqa: E402
from tasks import higher_is_better  # noqa: E402


def save_figure(figure, path_without_suffix: Path) -> list[Path]:
    """Write ``<path>.png`` (150 dpi) and ``<path>.pdf``, each atomically (``records.io.atomic_path``: a failed or
    interrupted save leaves the previous file and no temporary one), and close the figure; returns both paths.
    Every figure of the suite is saved here."""
    paths = []
    try:
        for suffix in (".png", ".pdf"):
            target = Path(path_without_suffix).with_suffix(suffix)
            with atomic_path(target, suffix=suffix) as temporary:
                figure.savefig(temporary, format=suffix[1:], dpi=150, bbox_inches="tight")
            paths.append(target)
    finally:
        plt.close(figure)
    return paths


def with_values(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """The ``columns`` of ``frame`` that hold at least one finite value (the panels worth drawing)."""
    return [c for c in columns if bool(np.isfinite(pd.to_numeric(frame[c], errors="coerce")).any())]


def seed_distribution(records: pd.DataFrame, metrics: list[str], path: Path, by: str = "fusion") -> list[Path]:
    """One panel per metric with a value: every seed's value per group (points) over a box of their spread; a
    group without a value keeps its place, empty. Returns the PNG and PDF paths, or ``[]`` when no metric has a
    value."""
    metrics = with_values(records, metrics)
    if not metrics:
        return []
    sns.set_theme(style="whitegrid", context="paper")
    figure, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics) + 0.6, 3.0), squeeze=False)
    order = list(dict.fromkeys(records[by]))
    for ax, metric in zip(axes[0], metrics):
        values = records.dropna(subset=[metric])
        sns.boxplot(data=values, x=by, y=metric, order=order, ax=ax, color="0.9", fliersize=0, width=0.5)
        sns.stripplot(data=values, x=by, y=metric, order=order, ax=ax, hue=by, hue_order=order, size=5,
                      jitter=0.15, legend=False)
        ax.set_title(f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better)")
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    return save_figure(figure, path)


def learning_curves(curves: pd.DataFrame, columns: list[str], path: Path) -> list[Path]:
    """Per-epoch curves, one panel per column (e.g. ``train_loss``, ``valid_loss``, ``valid_corr``): one thin
    line per seed, one colour per fusion.

    ``curves``: long-form ``curves.csv`` of every cell (``fusion, seed, epoch, train_loss, valid_loss,
    valid_<metric>...``), as ``analysis.records.cell_files`` gathers them. Returns the PNG and PDF paths, or ``[]``
    when no column has a value.
    """
    columns = with_values(curves, columns)
    if not columns:
        return []
    sns.set_theme(style="whitegrid", context="paper")
    figure, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns) + 1.2, 3.0), squeeze=False)
    order = list(dict.fromkeys(curves["fusion"]))
    for i, (ax, column) in enumerate(zip(axes[0], columns)):
        sns.lineplot(data=curves, x="epoch", y=column, hue="fusion", hue_order=order, units="seed", estimator=None,
                     ax=ax, linewidth=1.0, legend=i == len(columns) - 1)
        metric = column.removeprefix("valid_").removeprefix("train_")
        if metric != "loss":
            column += f" ({'higher' if higher_is_better(metric) else 'lower'} is better)"
        ax.set_title(column.replace("_", " "))
        ax.set_ylabel("")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), title="fusion (one line per seed)")
    figure.tight_layout()
    return save_figure(figure, path)


def metric_vs_modalities(records: pd.DataFrame, metrics: list[str], path: Path) -> list[Path]:
    """Each metric against the number of modalities, one line per fusion: mean and standard deviation over the
    records at each count (seeds, and modality subsets where there are several) that have a value, every such
    record as a point. Returns the PNG and PDF paths, or ``[]`` when no metric has a value."""
    metrics = with_values(records, metrics)
    if not metrics:
        return []
    sns.set_theme(style="whitegrid", context="paper")
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 1.2, 3.0), squeeze=False)
    order = list(dict.fromkeys(records["fusion"]))
    for i, (ax, metric) in enumerate(zip(axes[0], metrics)):
        values = records.dropna(subset=[metric])
        sns.lineplot(data=values, x="n_modalities", y=metric, hue="fusion", hue_order=order, errorbar="sd",
                     marker="o", ax=ax, legend=i == len(metrics) - 1)
        sns.stripplot(data=values, x="n_modalities", y=metric, hue="fusion", hue_order=order, ax=ax, size=3,
                      alpha=0.5, legend=False, native_scale=True, jitter=0.08)
        ax.set_xticks(sorted(records["n_modalities"].unique()))
        ax.set_xlabel("number of modalities")
        ax.set_title(f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better)")
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1))
    figure.tight_layout()
    return save_figure(figure, path)


def pareto_front(points: pd.DataFrame, x: str, y: str, higher: bool) -> pd.DataFrame:
    """The points no other point beats on both ``x`` (lower is better) and ``y`` (direction ``higher``),
    sorted by ``x``."""
    front, best = [], None
    for _, row in points.sort_values([x, y], ascending=[True, not higher]).iterrows():
        if best is None or (row[y] > best if higher else row[y] < best):
            front.append(row)
            best = row[y]
    return pd.DataFrame(front)


def metric_vs_flops(records: pd.DataFrame, metric: str, path: Path) -> list[Path]:
    """Seed-mean ``metric`` of every fusion x modality setting against its forward FLOPs per sample (log
    scale), with the Pareto front over all points. ``records`` needs ``fusion, setting, n_modalities, flops``.
    A setting without a value of ``metric`` is not drawn; returns the PNG and PDF paths, or ``[]`` when none has
    one."""
    points = records.groupby(["fusion", "setting"], sort=False).agg(
        value=(metric, "mean"), flops=("flops", "first"), n=("n_modalities", "first")).reset_index()
    points = points.dropna(subset=["value"])
    if points.empty:
        return []
    sns.set_theme(style="whitegrid", context="paper")
    figure, ax = plt.subplots(figsize=(6.0, 4.0))
    sns.scatterplot(data=points, x="flops", y="value", hue="fusion", size="n", sizes=(20, 140), ax=ax)
    front = pareto_front(points, "flops", "value", higher_is_better(metric))
    ax.step(front["flops"], front["value"], where="post", color="0.3", linestyle="--", linewidth=1,
            label="Pareto front")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels (2x10^4, 3x10^4, ...) overlap
    ax.set_xlabel("forward FLOPs per sample (log scale)")
    ax.set_ylabel(f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1))
    figure.tight_layout()
    return save_figure(figure, path)
