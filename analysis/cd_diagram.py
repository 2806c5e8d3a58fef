"""Critical-difference diagram (Demšar 2006, Fig. 1 style) from average ranks and the Nemenyi critical difference.

Input from :func:`analysis.stats.nemenyi_test`: ``result.average_ranks`` and ``result.critical_difference``. The
drawing uses a bare :class:`matplotlib.figure.Figure` (no pyplot, no global state); save it with ``savefig``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib import rcParams
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["cd_cliques", "plot_cd_diagram"]

# Connector lines reach this fraction of the rank axis's length beyond each end; the labels start there.
_LABEL_OVERHANG = 0.12


def cd_cliques(average_ranks: Mapping[str, float], critical_difference: float) -> list[tuple[str, ...]]:
    """Maximal groups of fusions whose average ranks all lie within less than CD of each other.

    Two fusions differ significantly when their average ranks differ by at least CD; a clique is a run of
    consecutive fusions (in rank order) spanning less than CD, not contained in another such run. Single fusions
    are not cliques.

    Args:
        average_ranks: fusion name -> average rank (rank 1 = best), e.g. ``NemenyiResult.average_ranks``.
        critical_difference: the CD at the chosen alpha.

    Returns:
        Cliques as tuples of names, best rank first, ordered by their best member.
    """
    by_name = {name: float(rank) for name, rank in average_ranks.items()}
    names = sorted(by_name, key=by_name.__getitem__)
    ranks = [by_name[name] for name in names]
    cliques: list[tuple[str, ...]] = []
    last_end = 0
    for start in range(len(names)):
        end = start
        while end + 1 < len(names) and ranks[end + 1] - ranks[start] < critical_difference:
            end += 1
        if end > start and end > last_end:
            cliques.append(tuple(names[start : end + 1]))
            last_end = end
    return cliques


def plot_cd_diagram(
    average_ranks: Mapping[str, float],
    critical_difference: float,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Draw a critical-difference diagram.

    A rank axis from 1 (best, left) to k; each fusion hangs from its average rank to a label, the better half on
    the left and the other half on the right; thick bars join the fusions of each clique (:func:`cd_cliques`: no
    significant difference between them); a bar of length CD sits above the axis.

    Args:
        average_ranks: fusion name -> average rank (rank 1 = best); a pandas Series works.
        critical_difference: the Nemenyi CD (:func:`analysis.stats.critical_difference`).
        ax: axes to draw on; default a new figure sized to the number of fusions.
        title: optional title.

    Returns:
        The figure holding the diagram.
    """
    average_ranks = {name: float(rank) for name, rank in average_ranks.items()}
    if not all(np.isfinite(rank) for rank in average_ranks.values()):
        raise ValueError("average ranks must be finite")
    names = sorted(average_ranks, key=average_ranks.__getitem__)
    k = len(names)
    if k < 2:
        raise ValueError(f"a CD diagram needs at least 2 fusions, got {k}")
    cliques = cd_cliques(average_ranks, critical_difference)
    n_left = (k + 1) // 2
    clique_step, label_step = 0.25, 0.45
    first_label = -clique_step * (len(cliques) + 1) - 0.2
    lowest = first_label - label_step * (max(n_left, k - n_left) - 1)
    if ax is None:
        ax = _new_axes(names, average_ranks, n_rows=max(n_left, k - n_left) + len(cliques), title=title)
    left_end, right_end = 1 - _LABEL_OVERHANG * (k - 1), k + _LABEL_OVERHANG * (k - 1)

    ax.hlines(0, 1, k, color="black", linewidth=1)
    for tick in range(1, k + 1):
        ax.vlines(tick, 0, 0.1, color="black", linewidth=1)
        ax.text(tick, 0.15, str(tick), ha="center", va="bottom")
    ax.hlines(0.75, 1, 1 + critical_difference, color="black", linewidth=1)
    ax.vlines([1, 1 + critical_difference], 0.7, 0.8, color="black", linewidth=1)
    ax.text(1 + critical_difference / 2, 0.85, f"CD = {critical_difference:.2f}", ha="center", va="bottom")

    for position, name in enumerate(names):
        rank = average_ranks[name]
        on_left = position < n_left
        row = position if on_left else k - 1 - position
        y = first_label - label_step * row
        end = left_end if on_left else right_end
        ax.plot([rank, rank, end], [0, y, y], color="black", linewidth=0.8)
        ax.text(end, y, f"{name} ({rank:.2f})" if on_left else f"({rank:.2f}) {name}",
                ha="right" if on_left else "left", va="center")

    for row, clique in enumerate(cliques):
        low, high = average_ranks[clique[0]], average_ranks[clique[-1]]
        ax.hlines(-clique_step * (row + 1), low - 0.03, high + 0.03, color="black", linewidth=3.5, gid="clique")

    ax.set_xlim(left_end, max(right_end, 1 + critical_difference))
    ax.set_ylim(lowest - 0.3, 1.3)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def _new_axes(names: list[str], average_ranks: Mapping[str, float], *, n_rows: int, title: str | None) -> Axes:
    """Axes on a new figure whose side margins fit the longest label (the labels sit outside the axes)."""
    font_inches = rcParams["font.size"] / 72
    longest = max(len(f"{name} ({average_ranks[name]:.2f})") for name in names)
    margin = 0.62 * font_inches * longest + 0.15
    axes_width = max(4.0, 0.9 * len(names))
    height = 1.3 + 0.32 * n_rows + (0.3 if title else 0.0)
    figure = Figure(figsize=(axes_width + 2 * margin, height))
    top = 1 - (0.35 if title else 0.05) / height
    return figure.add_axes((margin / figure.get_figwidth(), 0.02, axes_width / figure.get_figwidth(), top - 0.02))
