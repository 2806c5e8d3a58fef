"""analysis.cd_diagram: cliques against Demšar's (2006) worked example, and the drawing."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import stats
from analysis.cd_diagram import cd_cliques, plot_cd_diagram
from tests.test_stats import DEMSAR_AUC

# Demšar (2006), Section 3.2.4: average ranks of the four C4.5 variants over 14 data sets
DEMSAR_RANKS = pd.Series({"C4.5": 3.143, "C4.5+m": 2.000, "C4.5+cf": 2.893, "C4.5+m+cf": 1.964})


def test_cliques_of_demsar_example():
    # alpha 0.05, CD 1.25: the best-worst gap 1.179 is below CD, no significant difference at all
    assert cd_cliques(DEMSAR_RANKS, 1.25) == [("C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5")]
    # alpha 0.10, CD 1.12: C4.5 differs from C4.5+m+cf (1.179) and C4.5+m (1.143), not from C4.5+cf (0.250)
    assert cd_cliques(DEMSAR_RANKS, 1.12) == [("C4.5+m+cf", "C4.5+m", "C4.5+cf"), ("C4.5+cf", "C4.5")]
    assert cd_cliques(DEMSAR_RANKS, 0.01) == []


def test_cliques_agree_with_nemenyi_p_values():
    result = stats.nemenyi_test(DEMSAR_AUC, higher_is_better=True, alpha=0.10)
    cliques = cd_cliques(result.average_ranks, result.critical_difference)
    for a, b in itertools.combinations(DEMSAR_AUC.columns, 2):
        together = any(a in clique and b in clique for clique in cliques)
        assert together == (result.pvalues.loc[a, b] >= 0.10)


def test_plot_cd_diagram_draws_every_fusion_and_clique(tmp_path):
    figure = plot_cd_diagram(DEMSAR_RANKS, 1.12, title="Demšar (2006), alpha = 0.10")
    assert isinstance(figure, Figure)
    texts = " ".join(text.get_text() for text in figure.axes[0].texts)
    assert all(name in texts for name in DEMSAR_RANKS.index)
    assert "CD = 1.12" in texts
    cliques = [line for line in figure.axes[0].collections if line.get_gid() == "clique"]
    assert len(cliques) == 2
    figure.savefig(tmp_path / "cd.png")
    figure.savefig(tmp_path / "cd.pdf")
    assert (tmp_path / "cd.png").stat().st_size > 0 and (tmp_path / "cd.pdf").stat().st_size > 0


def test_plot_cd_diagram_on_given_axes_and_bad_input():
    figure = Figure()
    ax = figure.add_subplot()
    assert plot_cd_diagram({"grf": 1.0, "late": 2.0}, 1.4, ax=ax) is figure
    with pytest.raises(ValueError):
        plot_cd_diagram({"grf": 1.0}, 1.0)
    with pytest.raises(ValueError):
        plot_cd_diagram({"grf": 1.0, "late": float("nan")}, 1.0)
