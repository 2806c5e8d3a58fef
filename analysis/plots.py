"""Seaborn figures from long-form records, saved as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from benchmarks.metrics import higher_is_better  # noqa: E402


def save_figure(figure, path_without_suffix: Path) -> list[Path]:
    """Write ``<path>.png`` (150 dpi) and ``<path>.pdf`` atomically enough for figures; returns both paths."""
    path_without_suffix = Path(path_without_suffix)
    path_without_suffix.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in (".png", ".pdf"):
        target = path_without_suffix.with_suffix(suffix)
        temporary = target.with_name(f".{target.name}.tmp{suffix}")
        figure.savefig(temporary, dpi=150, bbox_inches="tight")
        temporary.replace(target)
        paths.append(target)
    plt.close(figure)
    return paths


def seed_distribution(records: pd.DataFrame, metrics: list[str], path: Path, by: str = "fusion") -> list[Path]:
    """One panel per metric: every seed's value per group (points) over a box of their spread."""
    sns.set_theme(style="whitegrid", context="paper")
    figure, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics) + 0.6, 3.0), squeeze=False)
    order = list(dict.fromkeys(records[by]))
    for ax, metric in zip(axes[0], metrics):
        sns.boxplot(data=records, x=by, y=metric, order=order, ax=ax, color="0.9", fliersize=0, width=0.5)
        sns.stripplot(data=records, x=by, y=metric, order=order, ax=ax, hue=by, hue_order=order, size=5,
                      jitter=0.15, legend=False)
        ax.set_title(f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better)")
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    return save_figure(figure, path)
