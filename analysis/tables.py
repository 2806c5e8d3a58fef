"""Tables computed from long-form records (one row per fusion x seed): terminal, Markdown and LaTeX.

Cells read ``mean ± std`` over seeds; the best mean per metric is bold (lower is better for ``mae`` only).
A per-seed table sits beside the summary, so no result is reported only as mean ± std. An optional
``markers`` mapping ``(fusion, metric) -> str`` appends significance markers, explained by ``legend``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tabulate import tabulate

from benchmarks.metrics import higher_is_better


def _format(value: float, digits: int) -> str:
    return "nan" if not np.isfinite(value) else f"{value:.{digits}f}"


def summary_frame(records: pd.DataFrame, metrics: list[str], by: str = "fusion") -> pd.DataFrame:
    """``[group, metric]`` rows with mean, std (ddof 1; NaN for one seed), n seeds and the best flag."""
    rows = []
    for metric in metrics:
        stats = records.groupby(by, sort=False)[metric].agg(["mean", "std", "count"])
        means = stats["mean"].to_numpy(dtype=float)
        best = None
        if np.isfinite(means).any():
            best = np.nanmax(means) if higher_is_better(metric) else np.nanmin(means)
        for group, row in stats.iterrows():
            rows.append({by: group, "metric": metric, "mean": row["mean"], "std": row["std"],
                         "n_seeds": int(row["count"]), "best": best is not None and row["mean"] == best})
    return pd.DataFrame(rows)


def _cells(records, metrics, by, digits, bold, markers) -> tuple[list[str], list[list[str]]]:
    summary = summary_frame(records, metrics, by)
    groups = list(dict.fromkeys(records[by]))
    body = []
    for group in groups:
        row = [str(group)]
        for metric in metrics:
            entry = summary[(summary[by] == group) & (summary["metric"] == metric)].iloc[0]
            text = f"{_format(entry['mean'], digits)} ± {_format(entry['std'], digits)}"
            if entry["best"]:
                text = bold(text)
            row.append(text + (markers or {}).get((group, metric), ""))
        body.append(row)
    header = [by] + [f"{m} {'↑' if higher_is_better(m) else '↓'}" for m in metrics]
    return header, body


def terminal_table(records: pd.DataFrame, metrics: list[str], by: str = "fusion", digits: int = 3) -> str:
    """Plain-text summary table (tabulate)."""
    header, body = _cells(records, metrics, by, digits, lambda s: s + " *best", None)
    return tabulate(body, headers=header, tablefmt="simple")


def markdown_table(
    records: pd.DataFrame, metrics: list[str], by: str = "fusion", digits: int = 3,
    markers: dict | None = None, legend: str = "",
) -> str:
    """Markdown summary table, best in bold, followed by the per-seed table."""
    header, body = _cells(records, metrics, by, digits, lambda s: f"**{s}**", markers)
    text = tabulate(body, headers=header, tablefmt="github")
    note = f"Mean ± std over seeds (n = {records.groupby(by).size().to_dict()}); best mean in bold. {legend}".strip()
    return f"{text}\n\n{note}\n\n{per_seed_table(records, metrics, by, digits)}\n"


def per_seed_table(records: pd.DataFrame, metrics: list[str], by: str = "fusion", digits: int = 3) -> str:
    """Markdown table with one row per group x seed."""
    frame = records[[by, "seed", *metrics]].sort_values([by, "seed"], kind="stable")
    body = [[row[by], int(row["seed"]), *(_format(row[m], digits) for m in metrics)] for _, row in frame.iterrows()]
    return tabulate(body, headers=[by, "seed", *metrics], tablefmt="github")


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text


def latex_table(
    records: pd.DataFrame, metrics: list[str], by: str = "fusion", digits: int = 3,
    markers: dict | None = None, legend: str = "", caption: str = "", label: str = "tab:results",
) -> str:
    """A booktabs LaTeX table (``\\usepackage{booktabs}``): mean $\\pm$ std, best in bold, markers, legend."""
    header, body = _cells(records, metrics, by, digits, lambda s: f"\\textbf{{{s}}}", markers)
    header = [_latex_escape(h).replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$") for h in header]
    lines = [
        r"\begin{table}[t]", r"\centering",
        rf"\begin{{tabular}}{{l{'c' * len(metrics)}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule",
    ]
    for row in body:
        cells = [_latex_escape(row[0])] + [c.replace("±", r"$\pm$") for c in row[1:]]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    seeds = records.groupby(by).size()
    note = f"Mean $\\pm$ std over {seeds.min()}--{seeds.max()} seeds; best mean in bold. {legend}".strip()
    lines.append(rf"\caption{{{_latex_escape(caption) + ' ' if caption else ''}{note}}}")
    lines += [rf"\label{{{label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"
