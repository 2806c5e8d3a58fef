"""Critical-difference diagram (Demšar 2006, Fig. 1 style), drawn by ``scikit_posthocs.critical_difference_diagram``.

Input from :func:`analysis.stats.nemenyi_test`: ``result.average_ranks``, ``result.critical_difference``,
``result.pvalues`` and ``result.alpha``. scikit-posthocs draws the fusions on the rank axis with their labels, and
joins by a bar each maximal group of fusions whose Nemenyi p-values are all at least alpha (the same pairs as
``nemenyi.csv``'s ``significant`` column: for Nemenyi, p < alpha exactly when two average ranks differ by more than
the CD). Two things it draws differently from what the report shows, so they are set here after its call: the rank
axis spans 1 (best) to k with a tick at each rank (scikit-posthocs scales it to the span of the ranks), and the bar
of length CD sits above the axis's tick labels with its value to two decimals (scikit-posthocs puts it at a fixed
height on top of the tick labels, to two significant digits, so it is not asked to draw it). The drawing uses a bare
:class:`matplotlib.figure.Figure`; save it with ``analysis.plots.save_figure``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import scikit_posthocs
from matplotlib import rcParams
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_cd_diagram"]

# Height of one row (a label, a bar) in inches; the layout of scikit-posthocs puts rows 1 data unit apart.
_ROW_INCHES = 0.32
# The CD bar's height above the rank axis, in rows: clear of the axis's tick labels.
_CD_BAR_Y = 1.1


def plot_cd_diagram(
    average_ranks: Mapping[str, float],
    critical_difference: float,
    pvalues: pd.DataFrame,
    *,
    alpha: float = 0.05,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Draw a critical-difference diagram.

    A rank axis from 1 (best, left) to k; each fusion hangs from its average rank to a label, the better half on
    the left and the other half on the right; thick bars (``gid`` "clique") join each maximal group of fusions with
    no pairwise p-value below ``alpha`` (no significant difference between them); a bar of length CD sits above
    the axis.

    Args:
        average_ranks: fusion name -> average rank (rank 1 = best); a pandas Series works.
        critical_difference: the Nemenyi CD in rank units (:func:`analysis.stats.critical_difference`).
        pvalues: ``[k, k]`` family-wise post-hoc p-values indexed by fusion name on both axes
            (``NemenyiResult.pvalues``).
        alpha: the significance level of the bars (``NemenyiResult.alpha``).
        ax: axes to draw on; default a new figure sized to the fusions and bars.
        title: optional title.

    Returns:
        The figure holding the diagram.

    Raises:
        ValueError: fewer than 2 fusions, a rank that is not finite, or ``pvalues`` not indexed by exactly the
            fusions of ``average_ranks`` on both axes.
    """
    ranks = pd.Series({name: float(rank) for name, rank in average_ranks.items()}, dtype=float)
    if not np.isfinite(ranks.to_numpy()).all():
        raise ValueError("average ranks must be finite")
    k = len(ranks)
    if k < 2:
        raise ValueError(f"a CD diagram needs at least 2 fusions, got {k}")
    names = set(ranks.index)
    if set(pvalues.index) != names or set(pvalues.columns) != names:
        raise ValueError(f"pvalues must be indexed by the fusions {sorted(names)} on both axes, got rows "
                         f"{list(pvalues.index)} and columns {list(pvalues.columns)}")
    new = ax is None
    if new:
        ax = _new_axes(ranks, title)
    order = list(ranks.index)
    scikit_posthocs.critical_difference_diagram(
        ranks, pvalues.loc[order, order], alpha=alpha, ax=ax,
        label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}",
        elbow_props={"color": "black", "linewidth": 0.8}, marker_props={"s": 12},
        crossbar_props={"linewidth": 3.5, "gid": "clique"}, text_h_margin=0.05,
    )
    ax.set_xticks(range(1, k + 1))
    ax.set_xlim(1, max(k, 1 + critical_difference))
    ax.plot([1, 1 + critical_difference], [_CD_BAR_Y, _CD_BAR_Y], color="black", linewidth=1)
    ax.vlines([1, 1 + critical_difference], _CD_BAR_Y - 0.1, _CD_BAR_Y + 0.1, color="black", linewidth=1)
    ax.text(1 + critical_difference / 2, _CD_BAR_Y + 0.15, f"CD = {critical_difference:.2f}", ha="center",
            va="bottom")
    bottom = ax.get_ylim()[0]
    ax.set_ylim(bottom, _CD_BAR_Y + 1)
    if title:
        ax.set_title(title)
    if new:
        _fit_height(ax.figure, rows=_CD_BAR_Y + 1 - bottom, title=title)
    return ax.figure


def _new_axes(ranks: pd.Series, title: str | None) -> Axes:
    """Axes on a new figure whose side margins fit the longest label (the labels sit outside the rank axis)."""
    font_inches = rcParams["font.size"] / 72
    longest = max(len(f"{name} ({rank:.2f})") for name, rank in ranks.items())
    margin = 0.62 * font_inches * longest + 0.15
    axes_width = max(4.0, 0.9 * len(ranks))
    figure = Figure(figsize=(axes_width + 2 * margin, 3.0))
    return figure.add_axes((margin / figure.get_figwidth(), 0.02, axes_width / figure.get_figwidth(),
                            1 - 0.02 - (0.35 if title else 0.05) / figure.get_figheight()))


def _fit_height(figure: Figure, rows: float, title: str | None) -> None:
    """Give each row of the drawing ``_ROW_INCHES`` by resizing the figure and its one axes (title room on top)."""
    top_inches = 0.35 if title else 0.05
    height = _ROW_INCHES * rows + top_inches + 0.05
    figure.set_figheight(height)
    (ax,) = figure.axes
    left, _, width, _ = ax.get_position().bounds
    ax.set_position((left, 0.05 / height, width, _ROW_INCHES * rows / height))
