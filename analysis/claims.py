"""Plain-word statements of computed statistics, one per line, for the report's index.

Every number in a sentence is read from a statistics frame (``analysis.stats`` / ``analysis.significance`` /
``analysis.embeddings`` / ``analysis.robustness`` outputs); nothing is typed by hand. "Significant" always means
an adjusted p-value below ``ALPHA``, and each sentence names the test and the correction behind it. An undefined
statistic reads ``n/a``, and a test that is undefined or set by convention says why (the ``note`` columns).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tabulate import tabulate

from tasks import higher_is_better

ALPHA = 0.05


def _p(value: float) -> str:
    """A p-value with three significant digits (``n/a`` when undefined)."""
    return "n/a" if np.isnan(value) else f"{value:.3g}"


def _x(value: float, digits: int = 3) -> str:
    """A statistic with ``digits`` decimals (``n/a`` when undefined, ``inf`` as such)."""
    return "n/a" if np.isnan(value) else f"{value:.{digits}f}"


def _note(row: pd.Series, column: str) -> str:
    """``"; <note>"`` for a non-empty note column of a statistics row, else ``""``."""
    note = row.get(column)
    return f"; {note}" if isinstance(note, str) and note else ""


def _direction(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def summary_markdown(summary: pd.DataFrame) -> str:
    """A Markdown table of ``stats.summary_table``: mean, std, t and bootstrap 95% intervals per fusion and metric."""
    body = [[row["metric"], row["fusion"], int(row["n"]), _x(row["mean"], 4), _x(row["std"], 4),
             f"[{_x(row['t_ci_low'], 4)}, {_x(row['t_ci_high'], 4)}]",
             f"[{_x(row['ci_low'], 4)}, {_x(row['ci_high'], 4)}]"] for _, row in summary.iterrows()]
    headers = ["metric", "fusion", "seeds", "mean", "std", "95% t interval", "95% bootstrap interval"]
    return tabulate(body, headers=headers, tablefmt="github")


def paired_claims(comparisons: pd.DataFrame) -> list[str]:
    """One sentence per row of ``stats.comparison_table``: difference, both tests, effect sizes and the verdict
    (an undefined t-test: no verdict, and why)."""
    family = int(comparisons["t_pvalue"].notna().sum())
    lines = []
    for _, row in comparisons.iterrows():
        fusion, baseline, metric = row["fusion"], row["baseline"], row["metric"]
        if row["n"] == 0:
            side = "nothing to compare"
        elif row["mean_diff"] == 0:
            side = "no difference in the mean"
        else:
            better = (row["mean_diff"] > 0) == bool(row["higher_is_better"])
            side = f"{fusion} {'better' if better else 'worse'} on average"
        if np.isnan(row["t_pvalue_holm"]):
            verdict = "t-test undefined, so no significance marker"
        elif row["t_pvalue_holm"] < ALPHA:
            verdict = "significant after correction"
        else:
            verdict = "not significant after correction"
        lines.append(
            f"{fusion} vs {baseline} on {metric} ({_direction(row['higher_is_better'])}): mean difference "
            f"{_x(row['mean_diff'], 4)} ({fusion} - {baseline}, {int(row['n'])} paired seeds; {side}); paired t "
            f"p = {_p(row['t_pvalue'])}, Holm-adjusted {_p(row['t_pvalue_holm'])} (family of {family}); "
            f"d_z = {_x(row['d_z'], 2)}; Wilcoxon signed-rank p = {_p(row['wilcoxon_pvalue'])} "
            f"({row['wilcoxon_method']}), Holm-adjusted {_p(row['wilcoxon_pvalue_holm'])}; rank-biserial "
            f"{_x(row['rank_biserial'], 2)}{_note(row, 't_note')}; {verdict}."
        )
    return lines


def rank_claims(friedman: pd.DataFrame, nemenyi: pd.DataFrame) -> list[str]:
    """One sentence per metric: Friedman's test, the average ranks, and which pairs Nemenyi separates."""
    lines = []
    for _, row in friedman.iterrows():
        pairs = nemenyi[nemenyi["metric"] == row["metric"]]
        ranks = dict(zip(pairs["fusion_a"], pairs["rank_a"])) | dict(zip(pairs["fusion_b"], pairs["rank_b"]))
        ranked = ", ".join(f"{f} {r:.2f}" for f, r in sorted(ranks.items(), key=lambda item: item[1]))
        different = [f"{a} vs {b} (p = {_p(p)})" for a, b, p in
                     pairs.loc[pairs["significant"], ["fusion_a", "fusion_b", "pvalue"]].itertuples(index=False)]
        found = ("differ: " + ", ".join(different)) if different else "no pair differs significantly"
        lines.append(
            f"All {int(row['k'])} fusions on {row['metric']} ({_direction(row['higher_is_better'])}), Friedman test "
            f"over {int(row['n_seeds'])} seeds: chi2 = {_x(row['statistic'], 2)}, p = {_p(row['pvalue'])} "
            f"(chi-square approximation, rough with few seeds); average ranks (1 = best): {ranked}; Nemenyi "
            f"post-hoc (family-wise over {len(pairs)} pairs, CD = {_x(row['critical_difference'], 2)} at alpha = "
            f"{row['alpha']:g}): {found}{_note(row, 'note')}."
        )
    return lines


def sample_claims(per_sample: pd.DataFrame) -> list[str]:
    """One sentence per pair and measure on the seed-averaged predictions, with how often each seed agrees."""
    averaged = per_sample[per_sample["seed"].isin(["mean", "vote"])]
    seeds = per_sample[~per_sample["seed"].isin(["mean", "vote"])]
    lines = []
    for _, row in averaged.iterrows():
        same = seeds[(seeds["fusion_a"] == row["fusion_a"]) & (seeds["fusion_b"] == row["fusion_b"])
                     & (seeds["measure"] == row["measure"])]
        a, b = row["fusion_a"], row["fusion_b"]
        better = ("positive = " if higher_is_better(row["measure"]) else "negative = ") + a
        text = (
            f"{a} vs {b} on {row['measure']}, predictions averaged over seeds ({row['seed']}), {int(row['n'])} test "
            f"sample{'' if row['n'] == 1 else 's'}: difference {_x(row['difference'], 4)} ({a} - {b}; {better} "
            f"better), 95% bootstrap interval "
            f"[{_x(row['ci_low'], 4)}, {_x(row['ci_high'], 4)}], bootstrap p = {_p(row['bootstrap_p'])}, "
            f"Holm-adjusted {_p(row['bootstrap_p_holm'])}{_note(row, 'bootstrap_note')}"
        )
        if pd.notna(row["mcnemar_b"]):  # McNemar ran: the per-sample scores are right/wrong
            text += (f"; McNemar exact: {int(row['mcnemar_b'])} samples only {a} gets right, "
                     f"{int(row['mcnemar_c'])} only {b}, p = {_p(row['mcnemar_p'])}, Holm-adjusted "
                     f"{_p(row['mcnemar_p_holm'])}{_note(row, 'mcnemar_note')}")
        significant = int((same["bootstrap_p_holm"] < ALPHA).sum())
        lines.append(text + f"; per seed, the Holm-adjusted bootstrap p is below {ALPHA:g} in {significant} of "
                            f"{len(same)} seeds.")
    return lines


def silhouette_claims(silhouettes: pd.DataFrame, classes: str) -> list[str]:
    """One sentence per (fusion, seed): the silhouette of each state in order, and whether it rises over steps."""
    lines = []
    for (fusion, seed), rows in silhouettes.groupby(["fusion", "seed"], sort=False):
        values = ", ".join(f"{state} {_x(value)}" for state, value in zip(rows["state"], rows["silhouette"]))
        trend = ""
        steps = rows["silhouette"].to_numpy()
        if np.isnan(steps).any():  # embeddings.silhouette: fewer than 2 classes, or every sample its own class
            trend = "; n/a: the silhouette needs at least 2 classes and more samples than classes"
        elif len(rows) > 1:
            rises = "rising at every step" if np.all(np.diff(steps) > 0) else "not rising at every step"
            trend = f"; first to last step {steps[-1] - steps[0]:+.3f}, {rises}"
        lines.append(f"{fusion} seed {seed}: silhouette of the test-set state by {classes}, in the full "
                     f"{int(rows['dim'].iloc[0])}-d state space: {values}{trend}.")
    return lines


def robustness_claims(summary: pd.DataFrame, metric: str, higher_is_better: bool) -> list[str]:
    """One sentence per fusion: clean metric, area under each noise curve and the metric with each modality
    dropped, as means over the seeds analysed."""
    lines = []
    for fusion, rows in summary.groupby("fusion", sort=False):
        means = rows.drop(columns=["fusion", "seed"]).mean()
        noise = ", ".join(f"{c.removeprefix('noise ')} {_x(v)}" for c, v in means.items() if c.startswith("noise "))
        drop = ", ".join(f"{c.removeprefix('drop ')} {_x(v)}" for c, v in means.items() if c.startswith("drop "))
        lines.append(
            f"{fusion} ({len(rows)} seed{'s' if len(rows) > 1 else ''}; {metric}, {_direction(higher_is_better)}): "
            f"clean {_x(means['clean'])}; area under the noise curve (mean {metric} over levels 0-1 x feature std) "
            f"with noise on {noise}; with the modality dropped: {drop}."
        )
    return lines
