"""Scaling analysis of cost records: exponent fits ``cost ~ n^k``, log-log figures and LaTeX tables.

Input: the long-form records of ``benchmarks.scaling`` (one row per fusion x setting; columns documented in
``benchmarks.scaling.COLUMNS``). Every function here takes and returns plain DataFrames / strings / paths so
that the report command can reuse them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402

from .plots import save_figure  # noqa: E402
from .tables import latex_escape  # noqa: E402

# Measures fitted and plotted: column -> (axis label, needs a measured (status ok) row).
MEASURES: dict[str, tuple[str, bool]] = {
    "params": ("parameters", False),
    "flops": ("forward FLOPs / sample", False),
    "train_flops": ("training-step FLOPs / sample", False),
    "fwd_ms": ("forward latency (ms / batch)", True),
    "train_ms": ("training-step latency (ms / batch)", True),
    "train_peak_mib": ("training-step peak memory (MiB)", True),
}
SETTING = ["seq_len", "d_model", "batch_size", "device"]  # one figure and one fit per fusion and setting
# Latency measure -> the FLOP count it should follow if time were proportional to work.
LATENCY_VS_FLOPS = {"fwd_ms": "flops", "train_ms": "train_flops"}


@dataclass
class Exponent:
    """Least-squares fit of ``log y = log c + k log n``. ``ci_low``/``ci_high``: the ``confidence`` interval of
    ``k`` from the t distribution with ``points - 2`` degrees of freedom (NaN with fewer than 3 points)."""

    k: float
    ci_low: float
    ci_high: float
    stderr: float
    r2: float
    points: int

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def fit_exponent(n, y, min_n: int = 4, confidence: float = 0.95) -> Exponent:
    """Fit ``y ~ c n^k`` on the points with ``n >= min_n`` and finite positive ``y``.

    Returns NaN fields with fewer than 2 usable points."""
    n, y = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    keep = (n >= min_n) & np.isfinite(y) & (y > 0)
    x, v = np.log(n[keep]), np.log(y[keep])
    points = int(keep.sum())
    if points < 2 or np.ptp(x) == 0:
        return Exponent(math.nan, math.nan, math.nan, math.nan, math.nan, points)
    fit = stats.linregress(x, v)
    if points < 3:
        return Exponent(float(fit.slope), math.nan, math.nan, math.nan, 1.0, points)
    t = stats.t.ppf(0.5 + confidence / 2, points - 2)
    return Exponent(
        k=float(fit.slope), ci_low=float(fit.slope - t * fit.stderr), ci_high=float(fit.slope + t * fit.stderr),
        stderr=float(fit.stderr), r2=float(fit.rvalue**2), points=points,
    )


def usable(records: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Rows whose ``measure`` is valid: counts always (they come from ``meta``), measurements if ``ok``."""
    rows = records
    if MEASURES.get(measure, ("", True))[1]:
        rows = rows[rows["status"] == "ok"]
    return rows[np.isfinite(rows[measure].astype(float))]


def fit_exponents(
    records: pd.DataFrame, measures: list[str] | None = None, min_n: int = 4, confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per fusion x setting x measure: ``k``, ``ci_low``, ``ci_high``, ``stderr``, ``r2``, ``points``,
    ``n_min``, ``n_max`` (the modality counts used)."""
    measures = measures or list(MEASURES)
    rows = []
    for (fusion, *setting), group in records.groupby(["fusion", *SETTING], sort=False):
        for measure in measures:
            if measure not in group:
                continue
            data = usable(group, measure)
            data = data[data["n_modalities"] >= min_n]
            fit = fit_exponent(data["n_modalities"], data[measure], min_n, confidence)
            used = data["n_modalities"]
            rows.append({
                "fusion": fusion, **dict(zip(SETTING, setting)), "measure": measure, **asdict(fit),
                "n_min": int(used.min()) if len(used) else math.nan,
                "n_max": int(used.max()) if len(used) else math.nan,
            })
    return pd.DataFrame(rows)


def format_exponent(row) -> str:
    """``"1.00 [0.99, 1.01]"``, or ``"1.00"`` without an interval, or ``"--"``."""
    if not np.isfinite(row["k"]):
        return "--"
    if not np.isfinite(row["ci_low"]):
        return f"{row['k']:.2f}"
    return f"{row['k']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def latency_findings(exponents: pd.DataFrame, tolerance: float = 0.1) -> list[str]:
    """Sentences comparing each fusion's latency exponent with its FLOP exponent.

    A latency exponent whose confidence interval misses the FLOP exponent by more than ``tolerance`` is
    reported as a finding (time not proportional to work: sequential steps, per-call overheads, memory
    traffic), not hidden. GRF always gets a sentence, consistent or not; a fit on two points (no interval)
    gets a sentence saying so, not a verdict."""
    lines = []
    for (fusion, *setting), group in exponents.groupby(["fusion", *SETTING], sort=False):
        by_measure = group.set_index("measure")
        for latency, flops in LATENCY_VS_FLOPS.items():
            if latency not in by_measure.index or flops not in by_measure.index:
                continue
            lat, flo = by_measure.loc[latency], by_measure.loc[flops]
            if not (np.isfinite(lat["k"]) and np.isfinite(flo["k"])):
                continue
            where = ", ".join(f"{key} {value}" for key, value in zip(SETTING, setting))
            what = "forward" if latency == "fwd_ms" else "training-step"
            if not np.isfinite(lat["ci_low"]):  # two points: a slope, no interval, no verdict
                lines.append(
                    f"{fusion} ({where}): {what} latency measured at {lat['points']} modality counts only "
                    f"(n = {int(lat['n_min'])}..{int(lat['n_max'])}): n^{lat['k']:.2f} against FLOPs "
                    f"n^{flo['k']:.2f}, too few points to compare."
                )
                continue
            differs = flo["k"] < lat["ci_low"] - tolerance or flo["k"] > lat["ci_high"] + tolerance
            if differs:
                direction = "faster" if lat["k"] > flo["k"] else "slower"
                lines.append(
                    f"FINDING {fusion} ({where}): {what} latency grows as n^{format_exponent(lat)}, {direction} "
                    f"than its FLOPs (n^{flo['k']:.2f}), over n = {int(lat['n_min'])}..{int(lat['n_max'])}: time is "
                    "not proportional to work here (sequential steps, per-call overhead or memory traffic)."
                )
            elif fusion.split(":")[0] == "grf":
                lines.append(
                    f"{fusion} ({where}): {what} latency grows as n^{format_exponent(lat)}; its FLOPs grow as "
                    f"n^{flo['k']:.2f}, inside that interval (+-{tolerance}): consistent."
                )
    return lines


def _settings(records: pd.DataFrame):
    return records.groupby(SETTING, sort=False)


def _setting_stem(stem: Path, setting: tuple, several: bool) -> Path:
    if not several:
        return stem
    seq_len, d_model, batch, device = setting
    return stem.with_name(f"{stem.name}_L{seq_len}_d{d_model}_b{batch}_{device}")


def plot_scaling(
    records: pd.DataFrame, exponents: pd.DataFrame, stem: Path, measures: list[str] | None = None, min_n: int = 4,
) -> list[Path]:
    """Log-log figures: one panel per measure, one line per fusion, the fitted ``k`` in each legend label.

    One figure per setting (``seq_len``, ``d_model``, ``batch_size``, ``device``): ``<stem>.png/.pdf``, or
    ``<stem>_L.._d.._b.._<device>.png/.pdf`` when there are several. Returns the written paths."""
    measures = [m for m in (measures or list(MEASURES)) if m in records]
    sns.set_theme(style="whitegrid", context="paper")
    groups = list(_settings(records))
    fusions = list(dict.fromkeys(records["fusion"]))
    palette = dict(zip(fusions, sns.color_palette("colorblind", len(fusions))))
    paths = []
    for setting, data in groups:
        columns = 3
        rows = math.ceil(len(measures) / columns)
        figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), squeeze=False)
        fits = exponents
        for key, value in zip(SETTING, setting):
            fits = fits[fits[key] == value]
        for ax, measure in zip(axes.flat, measures):
            for fusion in fusions:
                points = usable(data[data["fusion"] == fusion], measure).sort_values("n_modalities")
                if points.empty:
                    continue
                fit = fits[(fits["fusion"] == fusion) & (fits["measure"] == measure)]
                k = fit["k"].iloc[0] if len(fit) else math.nan
                label = f"{fusion} (k={k:.2f})" if np.isfinite(k) else fusion
                sns.lineplot(data=points, x="n_modalities", y=measure, ax=ax, marker="o", label=label,
                             color=palette[fusion], errorbar=None)
            ax.set(xscale="log", yscale="log", xlabel="modalities n", ylabel=MEASURES[measure][0])
            ticks = sorted(data["n_modalities"].unique())
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, title=f"fusion (fitted k, n>={min_n})", title_fontsize=7)
        for ax in axes.flat[len(measures):]:
            ax.set_visible(False)
        title = ", ".join(f"{key} {value}" for key, value in zip(SETTING, setting))
        figure.suptitle(f"Cost against the number of modalities ({title}); cost ~ n^k")
        figure.tight_layout()
        paths += save_figure(figure, _setting_stem(Path(stem), setting, len(groups) > 1))
    return paths


def _number(value: float, scale: float = 1.0, digits: int = 1) -> str:
    if value is None or not np.isfinite(value):
        return "--"
    value = value / scale
    return f"{value:,.{digits}f}" if abs(value) < 1e6 else f"{value:.3g}"


def cost_table_tex(records: pd.DataFrame) -> str:
    """A booktabs ``table``: per fusion and modality count, parameters (M), forward and training-step MFLOPs per
    sample, forward and training-step latency (ms per batch) and peak training memory (MiB). Cells that were
    not measured show their status."""
    several = any(records[key].nunique() > 1 for key in SETTING)
    lead = ["Fusion", *(["$L$", "$d$", "$B$", "Device"] if several else []), "$n$"]
    head = lead + ["Params (M)", "MFLOPs fwd", "MFLOPs train", "Fwd ms", "Train ms", "Peak MiB"]
    lines = [
        r"\begin{table}[t]", r"\centering", r"\small",
        r"\begin{tabular}{" + "l" + "r" * (len(head) - 1) + "}", r"\toprule", " & ".join(head) + r" \\",
        r"\midrule",
    ]
    previous = None
    for _, row in records.iterrows():
        if previous is not None and row["fusion"] != previous:
            lines.append(r"\midrule")
        previous = row["fusion"]
        measured = row["status"] == "ok"
        labels = {"over_budget": "over budget", "over_cap": "over cap", "oom": "OOM", "error": "error"}
        status = labels.get(row["status"], row["status"])
        cells = [latex_escape(row["fusion"])]
        if several:
            cells += [str(row["seq_len"]), str(row["d_model"]), str(row["batch_size"]), latex_escape(row["device"])]
        cells += [
            str(row["n_modalities"]), _number(row["params"], 1e6, 3), _number(row["flops"], 1e6, 1),
            _number(row["train_flops"], 1e6, 1),
        ]
        if measured:
            cells += [_number(row["fwd_ms"]), _number(row["train_ms"]), _number(row["train_peak_mib"])]
        else:
            cells += [r"\multicolumn{3}{c}{\emph{" + status + "}}"]
        lines.append(" & ".join(cells) + r" \\")
    caption = (
        "Cost against the number of modalities $n$: FLOPs per sample count matrix products (one multiply-add = 2 "
        "FLOPs); latency is the median per batch; peak memory is that of one training step."
    )
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + caption + "}", r"\label{tab:scaling-cost}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def exponent_table_tex(exponents: pd.DataFrame, measures: list[str] | None = None, min_n: int = 4) -> str:
    """A booktabs ``table`` of fitted exponents ``k`` with their 95\\% intervals, a row per fusion (and setting,
    when there are several), a column per measure."""
    measures = [m for m in (measures or list(MEASURES)) if m in set(exponents["measure"])]
    several = any(exponents[key].nunique() > 1 for key in SETTING)
    head = ["Fusion", *(["$L$", "$d$", "$B$", "Device"] if several else [])] + [
        latex_escape(MEASURES[m][0].split(" (")[0]) for m in measures
    ]
    lines = [
        r"\begin{table}[t]", r"\centering", r"\small",
        r"\begin{tabular}{" + "l" * (len(head) - len(measures)) + "c" * len(measures) + "}", r"\toprule",
        " & ".join(head) + r" \\", r"\midrule",
    ]
    for (fusion, *setting), group in exponents.groupby(["fusion", *SETTING], sort=False):
        by_measure = group.set_index("measure")
        cells = [latex_escape(fusion)] + ([latex_escape(s) for s in setting] if several else [])
        for measure in measures:
            row = by_measure.loc[measure]
            if not np.isfinite(row["k"]):
                cells.append("--")
            elif np.isfinite(row["ci_low"]):
                cells.append(f"${row['k']:.2f} \\pm {row['ci_high'] - row['k']:.2f}$")
            else:
                cells.append(f"${row['k']:.2f}$")
        lines.append(" & ".join(cells) + r" \\")
    caption = (
        r"Fitted exponents $k$ of cost $\propto n^k$ (least squares on log-log points with $n \geq "
        + str(min_n) + r"$; "
        r"$\pm$ the half-width of the 95\% interval from the $t$ distribution)."
    )
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + caption + "}", r"\label{tab:scaling-exponents}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def exponent_summary(exponents: pd.DataFrame) -> pd.DataFrame:
    """Wide, readable table: a row per fusion and setting, a column per measure holding ``k [low, high]``."""
    table = exponents.assign(value=exponents.apply(format_exponent, axis=1))
    wide = table.pivot_table(index=["fusion", *SETTING], columns="measure", values="value", aggfunc="first",
                             sort=False)
    order = [m for m in MEASURES if m in wide.columns]
    return wide[order].reset_index()
