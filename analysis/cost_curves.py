"""Cost against the number of modalities from the records of ``benchmarks.scaling``: exponent fits ``cost ~ n^k``,
log-log figures, LaTeX tables and the latency findings.

Reads records only: ``scaling.csv`` and the ``measures`` entry of ``scaling_meta.json`` beside it, which the sweep
writes from its registry of cost measures (each measure's column, unit, label, direction, documentation, whether it
needs a measured cell, whether it is fitted). Which columns are fitted, drawn and tabulated, with which units and
labels, comes from that entry (:func:`read_cost_records`): nothing here names a measure. Every function takes and
returns plain DataFrames, strings and paths, so that the sweep and the report share them.
"""

from __future__ import annotations

import dataclasses
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

from records.schema import SchemaError, read_document, read_table  # noqa: E402

from .plots import save_figure  # noqa: E402
from .tables import latex_escape  # noqa: E402

META = "scaling_meta.json"  # beside scaling.csv: the sweep's metadata (schema meta.json), with its measures
SETTING = ["seq_len", "d_model", "batch_size", "device"]  # one figure and one fit per fusion and setting


@dataclass(frozen=True)
class RecordedMeasure:
    """A cost measure as ``scaling_meta.json`` records it (``benchmarks.cost.Measure.record``).

    ``name``: its ``scaling.csv`` column; ``unit``; ``label``: a few words (axis labels, table headers);
    ``direction``: ``"lower"`` or ``"higher"`` is better; ``doc``: its meaning; ``method``: how it is taken;
    ``measured``: valid only in cells whose ``status`` is ``ok`` (False: counted for every cell that builds);
    ``fit``: fitted, drawn and in the LaTeX cost table (headed ``short``, values divided by ``scale``, ``digits``
    decimals); ``follows``: for a latency, the FLOP measure it would grow with if time were proportional to work.
    """

    name: str
    unit: str
    label: str
    direction: str
    doc: str
    method: str
    measured: bool
    fit: bool
    short: str = ""
    scale: float = 1.0
    digits: int = 1
    follows: str = ""

    @property
    def axis_label(self) -> str:
        """``"label (unit)"``; the label alone when the unit says nothing more (``"parameters"``)."""
        return self.label if self.unit in ("", self.label) else f"{self.label} ({self.unit})"


def read_measures(folder: str | Path) -> list[RecordedMeasure]:
    """The measures recorded in ``<folder>/scaling_meta.json``, in column order. Raises ``SchemaError`` (one line
    naming the file) when the file or its ``measures`` entry is absent (records written before the sweep recorded
    its measures) or an entry lacks a field; ``SchemaError`` too for a newer schema version (``records.schema``)."""
    path = Path(folder) / META
    if not path.is_file():
        raise SchemaError(f"{Path(folder) / 'scaling.csv'} has no {META} beside it naming its measures (written "
                          "before benchmarks.scaling recorded them); run python -m benchmarks.scaling again")
    entries = read_document(path, kind="meta.json").get("measures")
    if not entries:
        raise SchemaError(f"{path} has no 'measures' entry; expected the cost measures of scaling.csv")
    fields = {f.name for f in dataclasses.fields(RecordedMeasure)}
    required = {f.name for f in dataclasses.fields(RecordedMeasure) if f.default is dataclasses.MISSING}
    measures = []
    for entry in entries:
        missing = sorted(required - set(entry))
        if missing:
            raise SchemaError(f"{path}: measure {entry.get('name', '?')!r} lacks {missing[0]!r}; expected "
                              f"{', '.join(sorted(required))}")
        measures.append(RecordedMeasure(**{k: v for k, v in entry.items() if k in fields}))
    return measures


def read_cost_records(folder: str | Path) -> tuple[pd.DataFrame, list[RecordedMeasure]]:
    """``scaling.csv`` of ``folder`` (``records.schema.read_table``) and its measures (:func:`read_measures`).
    Raises ``SchemaError`` as those do, and when a recorded measure has no column."""
    records = read_table(Path(folder) / "scaling.csv")
    measures = read_measures(folder)
    absent = [m.name for m in measures if m.name not in records]
    if absent:
        raise SchemaError(f"{Path(folder) / 'scaling.csv'} lacks the column {absent[0]!r} that {META} records")
    return records, measures


def fitted(measures: list[RecordedMeasure]) -> list[RecordedMeasure]:
    """The measures recorded with ``fit``: fitted, drawn and tabulated."""
    return [m for m in measures if m.fit]


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


def usable(records: pd.DataFrame, measure: RecordedMeasure) -> pd.DataFrame:
    """Rows whose ``measure`` is valid: a counted measure in every row, a measured one where ``status`` is ok."""
    rows = records[records["status"] == "ok"] if measure.measured else records
    return rows[np.isfinite(rows[measure.name].astype(float))]


def fit_exponents(
    records: pd.DataFrame, measures: list[RecordedMeasure], min_n: int = 4, confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per fusion x setting x fitted measure (:func:`fitted`): ``k``, ``ci_low``, ``ci_high``,
    ``stderr``, ``r2``, ``points``, ``n_min``, ``n_max`` (the modality counts used)."""
    rows = []
    for (fusion, *setting), group in records.groupby(["fusion", *SETTING], sort=False):
        for measure in fitted(measures):
            data = usable(group, measure)
            data = data[data["n_modalities"] >= min_n]
            fit = fit_exponent(data["n_modalities"], data[measure.name], min_n, confidence)
            used = data["n_modalities"]
            rows.append({
                "fusion": fusion, **dict(zip(SETTING, setting)), "measure": measure.name, **asdict(fit),
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


def latency_findings(exponents: pd.DataFrame, measures: list[RecordedMeasure], tolerance: float = 0.1) -> list[str]:
    """Sentences comparing the exponent of each measure that ``follows`` a FLOP measure (a latency) with that
    FLOP measure's exponent, per fusion and setting.

    A latency exponent whose confidence interval misses the FLOP exponent by more than ``tolerance`` is
    reported as a finding (time not proportional to work: sequential steps, per-call overheads, memory
    traffic), not hidden. GRF always gets a sentence, consistent or not; a fit on two points (no interval)
    gets a sentence saying so, not a verdict."""
    lines = []
    for (fusion, *setting), group in exponents.groupby(["fusion", *SETTING], sort=False):
        by_measure = group.set_index("measure")
        for measure in measures:
            latency, flops = measure.name, measure.follows
            if not flops or latency not in by_measure.index or flops not in by_measure.index:
                continue
            lat, flo = by_measure.loc[latency], by_measure.loc[flops]
            if not (np.isfinite(lat["k"]) and np.isfinite(flo["k"])):
                continue
            where = ", ".join(f"{key} {value}" for key, value in zip(SETTING, setting))
            if not np.isfinite(lat["ci_low"]):  # two points: a slope, no interval, no verdict
                lines.append(
                    f"{fusion} ({where}): {measure.label} measured at {lat['points']} modality counts only "
                    f"(n = {int(lat['n_min'])}..{int(lat['n_max'])}): n^{lat['k']:.2f} against FLOPs "
                    f"n^{flo['k']:.2f}, too few points to compare."
                )
                continue
            differs = flo["k"] < lat["ci_low"] - tolerance or flo["k"] > lat["ci_high"] + tolerance
            if differs:
                direction = "faster" if lat["k"] > flo["k"] else "slower"
                lines.append(
                    f"FINDING {fusion} ({where}): {measure.label} grows as n^{format_exponent(lat)}, {direction} "
                    f"than its FLOPs (n^{flo['k']:.2f}), over n = {int(lat['n_min'])}..{int(lat['n_max'])}: time is "
                    "not proportional to work here (sequential steps, per-call overhead or memory traffic)."
                )
            elif fusion.split(":")[0] == "grf":
                lines.append(
                    f"{fusion} ({where}): {measure.label} grows as n^{format_exponent(lat)}; its FLOPs grow as "
                    f"n^{flo['k']:.2f}, inside that interval (+-{tolerance}): consistent."
                )
    return lines


def _setting_stem(stem: Path, setting: tuple, several: bool) -> Path:
    if not several:
        return stem
    seq_len, d_model, batch, device = setting
    return stem.with_name(f"{stem.name}_L{seq_len}_d{d_model}_b{batch}_{device}")


def plot_scaling(
    records: pd.DataFrame, exponents: pd.DataFrame, stem: Path, measures: list[RecordedMeasure], min_n: int = 4,
) -> list[Path]:
    """Log-log figures: one panel per fitted measure, one line per fusion, the fitted ``k`` in each legend label.

    One figure per setting (``seq_len``, ``d_model``, ``batch_size``, ``device``): ``<stem>.png/.pdf``, or
    ``<stem>_L.._d.._b.._<device>.png/.pdf`` when there are several. Returns the written paths."""
    panels = [m for m in fitted(measures) if m.name in records]
    sns.set_theme(style="whitegrid", context="paper")
    groups = list(records.groupby(SETTING, sort=False))
    fusions = list(dict.fromkeys(records["fusion"]))
    palette = dict(zip(fusions, sns.color_palette("colorblind", len(fusions))))
    paths = []
    for setting, data in groups:
        columns = 3
        rows = math.ceil(len(panels) / columns)
        figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), squeeze=False)
        fits = exponents
        for key, value in zip(SETTING, setting):
            fits = fits[fits[key] == value]
        for ax, measure in zip(axes.flat, panels):
            for fusion in fusions:
                points = usable(data[data["fusion"] == fusion], measure).sort_values("n_modalities")
                if points.empty:
                    continue
                fit = fits[(fits["fusion"] == fusion) & (fits["measure"] == measure.name)]
                k = fit["k"].iloc[0] if len(fit) else math.nan
                label = f"{fusion} (k={k:.2f})" if np.isfinite(k) else fusion
                sns.lineplot(data=points, x="n_modalities", y=measure.name, ax=ax, marker="o", label=label,
                             color=palette[fusion], errorbar=None)
            ax.set(xscale="log", yscale="log", xlabel="modalities n", ylabel=measure.axis_label)
            ticks = sorted(data["n_modalities"].unique())
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, title=f"fusion (fitted k, n>={min_n})", title_fontsize=7)
        for ax in axes.flat[len(panels):]:
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


STATUS_LABELS = {"over_budget": "over budget", "over_cap": "over cap", "oom": "OOM", "error": "error"}


def cost_table_tex(records: pd.DataFrame, measures: list[RecordedMeasure]) -> str:
    """A booktabs ``table``: per fusion and modality count, each fitted measure (headed ``short``, divided by its
    ``scale``), the counted ones first. A cell that was not measured shows its status across the measured
    columns."""
    counted = [m for m in fitted(measures) if not m.measured]
    measured = [m for m in fitted(measures) if m.measured]
    several = any(records[key].nunique() > 1 for key in SETTING)
    lead = ["Fusion", *(["$L$", "$d$", "$B$", "Device"] if several else []), "$n$"]
    head = lead + [latex_escape(m.short or m.label) for m in counted + measured]
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
        cells = [latex_escape(row["fusion"])]
        if several:
            cells += [str(row["seq_len"]), str(row["d_model"]), str(row["batch_size"]), latex_escape(row["device"])]
        cells += [str(row["n_modalities"]), *(_number(row[m.name], m.scale, m.digits) for m in counted)]
        if row["status"] == "ok":
            cells += [_number(row[m.name], m.scale, m.digits) for m in measured]
        elif measured:
            status = STATUS_LABELS.get(row["status"], row["status"])
            cells += [r"\multicolumn{" + str(len(measured)) + r"}{c}{\emph{" + latex_escape(status) + "}}"]
        lines.append(" & ".join(cells) + r" \\")
    caption = "Cost against the number of modalities $n$. " + "; ".join(
        f"{latex_escape(m.short or m.label)}: {latex_escape(m.doc)}" for m in counted + measured) + "."
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + caption + "}", r"\label{tab:scaling-cost}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def exponent_table_tex(exponents: pd.DataFrame, measures: list[RecordedMeasure], min_n: int = 4) -> str:
    """A booktabs ``table`` of fitted exponents ``k`` with their 95\\% intervals, a row per fusion (and setting,
    when there are several), a column per fitted measure (headed by its label)."""
    columns = [m for m in fitted(measures) if m.name in set(exponents["measure"])]
    several = any(exponents[key].nunique() > 1 for key in SETTING)
    head = ["Fusion", *(["$L$", "$d$", "$B$", "Device"] if several else [])] + [latex_escape(m.label) for m in columns]
    lines = [
        r"\begin{table}[t]", r"\centering", r"\small",
        r"\begin{tabular}{" + "l" * (len(head) - len(columns)) + "c" * len(columns) + "}", r"\toprule",
        " & ".join(head) + r" \\", r"\midrule",
    ]
    for (fusion, *setting), group in exponents.groupby(["fusion", *SETTING], sort=False):
        by_measure = group.set_index("measure")
        cells = [latex_escape(fusion)] + ([latex_escape(s) for s in setting] if several else [])
        for measure in columns:
            row = by_measure.loc[measure.name]
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


def exponent_summary(exponents: pd.DataFrame, measures: list[RecordedMeasure]) -> pd.DataFrame:
    """Wide, readable table: a row per fusion and setting, a column per fitted measure holding ``k [low, high]``."""
    table = exponents.assign(value=exponents.apply(format_exponent, axis=1))
    wide = table.pivot_table(index=["fusion", *SETTING], columns="measure", values="value", aggfunc="first",
                             sort=False)
    order = [m.name for m in fitted(measures) if m.name in wide.columns]
    return wide[order].reset_index()
