"""analysis.cd_diagram: the bars (cliques) drawn for Demšar's (2006) worked example, and the drawing."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import stats
from analysis.cd_diagram import plot_cd_diagram
from tests.test_stats import DEMSAR_AUC

# Demšar (2006), Section 3.2.4: average ranks of the four C4.5 variants over 14 data sets
DEMSAR_RANKS = pd.Series({"C4.5": 3.143, "C4.5+m": 2.000, "C4.5+cf": 2.893, "C4.5+m+cf": 1.964})


def cd_cliques(result: stats.NemenyiResult) -> list[tuple[str, ...]]:
    """The groups joined by a bar in the diagram of ``result``, as names best rank first, ordered by their best
    member."""
    ranks = result.average_ranks
    figure = plot_cd_diagram(ranks, result.critical_difference, result.pvalues, alpha=result.alpha)
    bars = [line for line in figure.axes[0].lines if line.get_gid() == "clique"]
    cliques = [tuple(sorted((ranks.index[np.isclose(ranks, x)][0] for x in bar.get_xdata()), key=ranks.__getitem__))
               for bar in bars]
    return sorted(cliques, key=lambda clique: ranks[clique[0]])


def _all_significant(names) -> pd.DataFrame:
    return pd.DataFrame(np.where(np.eye(len(names)), 1.0, 0.001), index=names, columns=names)


def test_cliques_of_demsar_example():
    # alpha 0.05, CD 1.25: the best-worst gap 1.179 is below CD, no significant difference at all
    result = stats.nemenyi_test(DEMSAR_AUC, higher_is_better=True, alpha=0.05)
    assert cd_cliques(result) == [("C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5")]
    # alpha 0.10, CD 1.12: C4.5 differs from C4.5+m+cf (1.179) and C4.5+m (1.143), not from C4.5+cf (0.250)
    result = stats.nemenyi_test(DEMSAR_AUC, higher_is_better=True, alpha=0.10)
    assert cd_cliques(result) == [("C4.5+m+cf", "C4.5+m", "C4.5+cf"), ("C4.5+cf", "C4.5")]
    every_pair_differs = stats.NemenyiResult(_all_significant(list(DEMSAR_AUC.columns)), result.average_ranks, 0.01,
                                             result.q_alpha, 0.05, result.n_blocks)
    assert cd_cliques(every_pair_differs) == []


def test_cliques_agree_with_nemenyi_p_values():
    result = stats.nemenyi_test(DEMSAR_AUC, higher_is_better=True, alpha=0.10)
    cliques = cd_cliques(result)
    for a, b in itertools.combinations(DEMSAR_AUC.columns, 2):
        together = any(a in clique and b in clique for clique in cliques)
        assert together == (result.pvalues.loc[a, b] >= 0.10)


def test_plot_cd_diagram_draws_every_fusion_and_clique(tmp_path):
    pvalues = stats.nemenyi_test(DEMSAR_AUC, higher_is_better=True, alpha=0.10).pvalues
    figure = plot_cd_diagram(DEMSAR_RANKS, 1.12, pvalues, alpha=0.10, title="Demšar (2006), alpha = 0.10")
    assert isinstance(figure, Figure)
    texts = " ".join(text.get_text() for text in figure.axes[0].texts)
    assert all(name in texts for name in DEMSAR_RANKS.index)
    assert "CD = 1.12" in texts
    cliques = [line for line in figure.axes[0].lines if line.get_gid() == "clique"]
    assert len(cliques) == 2
    figure.savefig(tmp_path / "cd.png")
    figure.savefig(tmp_path / "cd.pdf")
    assert (tmp_path / "cd.png").stat().st_size > 0 and (tmp_path / "cd.pdf").stat().st_size > 0


def test_plot_cd_diagram_on_given_axes_and_bad_input():
    figure = Figure()
    ax = figure.add_subplot()
    pair = pd.DataFrame([[1.0, 0.3], [0.3, 1.0]], index=["grf", "late"], columns=["grf", "late"])
    assert plot_cd_diagram({"grf": 1.0, "late": 2.0}, 1.4, pair, ax=ax) is figure
    with pytest.raises(ValueError):
        plot_cd_diagram({"grf": 1.0}, 1.0, pair.loc[["grf"], ["grf"]])
    with pytest.raises(ValueError):
        plot_cd_diagram({"grf": 1.0, "late": float("nan")}, 1.0, pair)
    with pytest.raises(ValueError, match="pvalues must be indexed by the fusions"):
        plot_cd_diagram({"grf": 1.0, "tfn": 2.0}, 1.0, pair)
