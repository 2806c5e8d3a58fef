"""Tables computed from long-form records (one row per fusion x seed): terminal, Markdown and LaTeX.

Cells read ``mean ± std`` over seeds (the mean alone for one seed); the best mean per metric is bold, in the
metric's direction (``tasks.higher_is_better``: lower is better for errors such as ``mae``).
A per-seed table sits beside the summary, so no result is reported only as mean ± std. An optional
``markers`` mapping ``(fusion, metric) -> str`` appends significance markers, explained by ``legend``.

A NaN value is never a number: a cell whose training failed (``status`` "failed" in ``runs.csv``) reads
``failed``, an undefined metric (e.g. ``corr`` of constant predictions) reads ``n/a``; a mean over fewer seeds
than the group has says so (``0.812 ± 0.010 (2/3 seeds)``), and the Markdown and LaTeX notes explain the words
that occur.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tabulate import tabulate

from tasks import higher_is_better

from .records import failed_cells, records_protocol
from .stats import SIGNIFICANCE_LEVELS, significance_marker

GAP_WORDS = {
    "n/a": "n/a: undefined for these predictions (e.g. corr of constant predictions or labels)",
    "failed": "failed: the cell's training failed (runs.csv says why)",
    "seeds)": "(k/n seeds): mean over the k seeds with a value",
}
"""What each word a table may hold instead of a number means (the notes of :func:`markdown_table` and
:func:`latex_table` quote the ones that occur)."""


def _format(value: float, digits: int) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def _higher(metric: str, higher: dict | None) -> bool:
    """The column's direction: from ``higher`` when it names the column, else its metric's registration (``tasks``)."""
    return higher[metric] if higher and metric in higher else higher_is_better(metric)


def summary_frame(
    records: pd.DataFrame, metrics: list[str], by: str = "fusion", higher: dict | None = None,
) -> pd.DataFrame:
    """``[group, metric]`` rows with mean, std (ddof 1; NaN for one seed) over the finite values, their count
    ``n_seeds``, the group's row count ``n_rows``, ``failed`` (every row of the group is a failed cell) and the best
    flag (best finite mean; a group without a value is never best).

    ``higher``: ``column -> bool`` directions for columns that are not registered metrics (``tasks``). Records
    of several training protocols raise ValueError (``records.records_protocol``)."""
    records_protocol(records)
    failed = failed_cells(records).groupby(records[by], sort=False).all()
    rows = []
    for metric in metrics:
        stats = records.groupby(by, sort=False)[metric].agg(["mean", "std", "count", "size"])
        means = stats["mean"].to_numpy(dtype=float)
        best = None
        if np.isfinite(means).any():
            best = np.nanmax(means) if _higher(metric, higher) else np.nanmin(means)
        for group, row in stats.iterrows():
            rows.append({by: group, "metric": metric, "mean": row["mean"], "std": row["std"],
                         "n_seeds": int(row["count"]), "n_rows": int(row["size"]), "failed": bool(failed[group]),
                         "best": best is not None and row["mean"] == best})
    return pd.DataFrame(rows)


def _cells(records, metrics, by, digits, bold, markers, higher=None) -> tuple[list[str], list[list[str]]]:
    summary = summary_frame(records, metrics, by, higher)
    groups = list(dict.fromkeys(records[by]))
    body = []
    for group in groups:
        row = [str(group)]
        for metric in metrics:
            entry = summary[(summary[by] == group) & (summary["metric"] == metric)].iloc[0]
            if entry["n_seeds"] == 0:
                text = "failed" if entry["failed"] else "n/a"
            else:
                text = _format(entry["mean"], digits)
                if entry["n_seeds"] > 1:  # one seed has no spread to show
                    text += f" ± {_format(entry['std'], digits)}"
                if entry["n_seeds"] < entry["n_rows"]:
                    text += f" ({entry['n_seeds']}/{entry['n_rows']} seeds)"
            if entry["best"]:
                text = bold(text)
            row.append(text + (markers or {}).get((group, metric), ""))
        body.append(row)
    header = [by] + [f"{m} {'↑' if _higher(m, higher) else '↓'}" for m in metrics]
    return header, body


def _gap_note(body: list[list[str]]) -> str:
    """The meaning of each word of :data:`GAP_WORDS` that occurs in the table's cells, as one sentence ("")."""
    cells = [cell for row in body for cell in row[1:]]
    found = [meaning for word, meaning in GAP_WORDS.items() if any(word in cell for cell in cells)]
    return "; ".join(found) + "." if found else ""


def terminal_table(
    records: pd.DataFrame, metrics: list[str], by: str = "fusion", digits: int = 3, markers: dict | None = None,
    higher: dict | None = None,
) -> str:
    """Plain-text summary table (tabulate); the best mean is followed by ``(best)``, then any marker."""
    header, body = _cells(records, metrics, by, digits, lambda s: s + " (best)", markers, higher)
    return tabulate(body, headers=header, tablefmt="simple")


def _styled_marker(marker: str, style: str) -> str:
    """A marker as plain ``text``, ``markdown`` (stars escaped, so they do not turn into emphasis) or ``latex``."""
    if style not in ("text", "markdown", "latex"):
        raise ValueError(f"style must be 'text', 'markdown' or 'latex', got {style!r}")
    if not marker or style == "text":
        return marker
    return marker.replace("*", r"\*") if style == "markdown" else f"\\textsuperscript{{{marker}}}"


def significance_markers(comparisons: pd.DataFrame, column: str = "t_pvalue_holm", style: str = "text") -> dict:
    """``(fusion, metric) -> marker`` from a ``stats.comparison_table`` frame: the stars of the p-values in
    ``column`` (``""`` when not significant), styled for ``"text"``, ``"markdown"`` or ``"latex"``."""
    return {(row["fusion"], row["metric"]): _styled_marker(significance_marker(row[column]), style)
            for _, row in comparisons.iterrows()}


def significance_legend(comparisons: pd.DataFrame, style: str = "text") -> str:
    """One sentence naming the test behind the markers and the family Holm's correction ran over.

    ``comparisons``: a ``stats.comparison_table`` frame (one row per metric x fusion against one baseline);
    ``style``: ``"text"``, ``"markdown"`` or ``"latex"``.
    """
    latex = style == "latex"
    baseline = str(comparisons["baseline"].iloc[0])
    n_metrics, n_fusions = comparisons["metric"].nunique(), comparisons["fusion"].nunique()
    n_seeds = int(comparisons["n"].max())
    family = int(comparisons["t_pvalue"].notna().sum())
    undefined = len(comparisons) - family
    defined, left_out = ("defined ", f", {undefined} undefined left out") if undefined else ("", "")
    less, times = ("$<$", r"$\times$") if latex else ("<", "x")
    floor = f"$2/2^{{{n_seeds}}}$" if latex else f"2/2^{n_seeds}"
    stars = ", ".join(f"{_styled_marker(marker, style)} p {less} {threshold:g}"
                      for threshold, marker in reversed(SIGNIFICANCE_LEVELS))
    return (
        f"Markers: {stars}, two-sided paired t-test by seed against the baseline "
        f"{latex_escape(baseline) if latex else baseline}, Holm-adjusted over all {family} {defined}tests of this "
        f"table ({n_metrics} metrics {times} {n_fusions} fusions{left_out}); no marker: not significant after "
        f"correction, or the t-test is undefined (fewer than 2 paired seeds, or no variance: the report's index says "
        f"which). "
        f"Wilcoxon signed-rank p-values are in stats/paired.csv; with {n_seeds} seeds they cannot fall below "
        f"{2 / 2**n_seeds:g} (= {floor})."
    )


def markdown_table(
    records: pd.DataFrame, metrics: list[str], by: str = "fusion", digits: int = 3,
    markers: dict | None = None, legend: str = "", higher: dict | None = None,
) -> str:
    """Markdown summary table, best in bold, followed by the per-seed table."""
    header, body = _cells(records, metrics, by, digits, lambda s: f"**{s}**", markers, higher)
    text = tabulate(body, headers=header, tablefmt="github")
    head = f"Mean ± std over seeds (n = {records.groupby(by).size().to_dict()}); best mean in bold."
    note = " ".join(part for part in (head, _gap_note(body), legend) if part)
    return f"{text}\n\n{note}\n\n{per_seed_table(records, metrics, by, digits)}\n"


def per_seed_table(records: pd.DataFrame, metrics: list[str], by: str = "fusion", digits: int = 3) -> str:
    """Markdown table with one row per group x seed (``failed`` for a failed cell, ``n/a`` for an undefined value)."""
    frame = records.assign(_failed=failed_cells(records))[[by, "seed", "_failed", *metrics]]
    frame = frame.sort_values([by, "seed"], kind="stable")
    body = [[row[by], int(row["seed"]), *("failed" if row["_failed"] else _format(row[m], digits) for m in metrics)]
            for _, row in frame.iterrows()]
    return tabulate(body, headers=[by, "seed", *metrics], tablefmt="github")


LATEX_SYMBOLS = {"±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "Δ": r"$\Delta$", "×": r"$\times$"}


def latex_symbols(text: str) -> str:
    """``text`` with the table symbols (± ↑ ↓ Δ ×) as LaTeX math, so pdfLaTeX compiles it without Unicode
    set-up."""
    for char, math in LATEX_SYMBOLS.items():
        text = text.replace(char, math)
    return text


def latex_escape(text) -> str:
    """``text`` (any value, as ``str``) with the characters LaTeX treats as commands escaped: ``\\ _ % & #``."""
    text = str(text)
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text


def latex_table(
    records: pd.DataFrame, metrics: list[str], by: str = "fusion", digits: int = 3,
    markers: dict | None = None, legend: str = "", caption: str = "", label: str = "tab:results",
    higher: dict | None = None,
) -> str:
    """A booktabs LaTeX table (``\\usepackage{booktabs}``): mean $\\pm$ std, best in bold, markers, legend
    (LaTeX source, inserted as it is)."""
    header, body = _cells(records, metrics, by, digits, lambda s: f"\\textbf{{{s}}}", markers, higher)
    gaps = latex_escape(_gap_note(body))
    header = [latex_symbols(latex_escape(h)) for h in header]
    lines = [
        r"\begin{table}[t]", r"\centering",
        rf"\begin{{tabular}}{{l{'c' * len(metrics)}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule",
    ]
    for row in body:
        cells = [latex_escape(row[0])] + [latex_symbols(c) for c in row[1:]]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    seeds = records.groupby(by).size()
    head = f"Mean $\\pm$ std over {seeds.min()}--{seeds.max()} seeds; best mean in bold."
    note = " ".join(part for part in (head, gaps, legend) if part)
    lines.append(rf"\caption{{{latex_escape(caption) + ' ' if caption else ''}{note}}}")
    lines += [rf"\label{{{label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"
