"""The parts of the report, one function each: each computes its statistics or figures from the run's records and
stored cell files, writes them under the report folder, and lists them (and its claims, or why it is absent) in the
:class:`~analysis.report.index.Index`. :func:`analysis.report.write_report` runs them in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from records.io import atomic_write_csv, atomic_write_text
from records.layout import probes_dir
from records.schema import VERSION_COLUMN, SchemaError, read_document, read_table
from tasks import get_task, higher_is_better

from .. import claims, plots, stats
from ..cd_diagram import plot_cd_diagram
from ..cost_curves import fit_exponents, plot_scaling, read_cost_records
from ..embeddings import plot_embeddings
from ..records import RunFolder, failed_cells, sample_comparable
from ..robustness import noise_levels, plot_robustness, robustness_summary
from ..significance import per_sample_tests, rank_tests
from ..tables import (
    latex_table,
    markdown_table,
    per_seed_table,
    significance_legend,
    significance_markers,
    terminal_table,
)
from .index import Index

__all__ = [
    "REPRODUCTION_TOLERANCE",
    "Context",
    "cost_scaling",
    "probe_analyses",
    "rank_statistics",
    "record_figures",
    "sample_statistics",
    "seed_statistics",
    "trained_records",
]

REPRODUCTION_TOLERANCE = 1e-4  # a checkpoint whose test outputs differ more from predictions.csv is flagged


@dataclass
class Context:
    """Inputs shared by the parts of the report."""

    run: RunFolder
    records: pd.DataFrame  # the records of the statistics (one modality setting), failed cells included
    metrics: list[str]  # the table's metrics
    tested: list[str]  # the metrics with at least one value
    baseline: str
    out: Path
    index: Index



def _lead_metric(ctx: Context) -> str | None:
    """The metric of single-metric figures: the task's main metric when tested, else the first tested one (None
    when no metric has a value)."""
    main = get_task(ctx.run.task).main_metric
    return main if main in ctx.tested else next(iter(ctx.tested), None)


def trained_records(ctx: Context) -> pd.DataFrame:
    """The records of cells that trained (not failed): the ones with stored predictions, curves, checkpoint."""
    return ctx.records[~failed_cells(ctx.records)]


def sample_records(ctx: Context, trained: pd.DataFrame) -> pd.DataFrame:
    """The trained records the per-sample tests compare (``sample_comparable``); the others noted in the index."""
    kept, note = sample_comparable(trained)
    if note:
        ctx.index.absent.append(f"per-sample tests and probes: {note}")
    return kept


def seed_statistics(ctx: Context) -> pd.DataFrame | None:
    """Summary and paired comparisons; the comparison tables with markers. Returns the comparisons (or None)."""
    out, index, records = ctx.out, ctx.index, ctx.records
    comparisons = None
    if not ctx.tested:
        index.absent.append("statistics and significance markers: no metric has a value in any cell")
    else:
        summary = stats.summary_table(records, ctx.tested)
        atomic_write_csv(out / "stats" / "summary.csv", summary)
        index.file(out / "stats" / "summary.csv", "per fusion and metric: n seeds, mean, std, 95% bootstrap and t "
                                                   "intervals of the mean")
        index.claims("Per fusion and metric (over seeds)", [
            claims.summary_markdown(summary), "",
            "With 2 or 3 seeds the percentile bootstrap interval is the seeds' min to max; the t interval is the "
            "one to read.",
        ])
        if len(set(records["fusion"])) < 2:
            index.absent.append("significance markers and paired comparisons: the records hold a single fusion")
        else:
            comparisons = stats.comparison_table(records, ctx.baseline, ctx.tested)
    if comparisons is not None:
        atomic_write_csv(out / "stats" / "paired.csv", comparisons)
        index.file(out / "stats" / "paired.csv", f"each fusion against {ctx.baseline}, paired by seed: mean "
                                                  "difference, t-test and Wilcoxon (raw and Holm p), d_z, "
                                                  "rank-biserial")
        index.claims(f"Paired by seed, against the baseline {ctx.baseline}", claims.paired_claims(comparisons))
    markers = {style: significance_markers(comparisons, style=style) if comparisons is not None else {}
               for style in ("text", "markdown", "latex")}
    legends = {style: significance_legend(comparisons, style=style) if comparisons is not None else ""
               for style in ("text", "markdown", "latex")}
    dataset = str(records["dataset"].iloc[0]) if "dataset" in records.columns else ""
    tables = out / "tables"
    atomic_write_text(tables / "comparison.tex", latex_table(
        records, ctx.metrics, markers=markers["latex"], legend=legends["latex"], caption=dataset,
        label="tab:comparison"))
    atomic_write_text(tables / "comparison.md", markdown_table(
        records, ctx.metrics, markers=markers["markdown"], legend=legends["markdown"]))
    text = terminal_table(records, ctx.metrics, markers=markers["text"]) + "\n\n" + legends["text"] + "\n"
    atomic_write_text(tables / "comparison.txt", text)
    atomic_write_text(tables / "per_seed.md", per_seed_table(records, ctx.metrics) + "\n")
    index.file(tables / "comparison.tex", "LaTeX (booktabs) table: mean ± std over seeds, best in bold, "
                                          "Holm-corrected significance markers, legend in the caption")
    index.file(tables / "comparison.md", "the same table in Markdown, followed by every seed's values")
    index.file(tables / "comparison.txt", "the same table as plain text (as printed on the terminal)")
    index.file(tables / "per_seed.md", "every (fusion, seed) value of each metric")
    return comparisons


def rank_statistics(ctx: Context) -> None:
    """Friedman and Nemenyi CSVs and the CD diagram of the lead metric (3 fusions or more)."""
    ranks = rank_tests(ctx.records, ctx.tested)
    ctx.index.absent.extend(ranks.notes)
    if ranks.friedman.empty:
        return
    out = ctx.out
    atomic_write_csv(out / "stats" / "friedman.csv", ranks.friedman)
    atomic_write_csv(out / "stats" / "nemenyi.csv", ranks.nemenyi)
    ctx.index.file(out / "stats" / "friedman.csv", "Friedman test of all fusions per metric (seeds as blocks), "
                                                   "with the Nemenyi critical difference")
    ctx.index.file(out / "stats" / "nemenyi.csv", "Nemenyi post-hoc per metric and pair: average ranks, "
                                                  "family-wise p-values")
    ctx.index.claims("All fusions at once (Friedman, Nemenyi)", claims.rank_claims(ranks.friedman, ranks.nemenyi))
    lead = _lead_metric(ctx)
    if lead in ranks.results:
        result = ranks.results[lead]
        figure = plot_cd_diagram(result.average_ranks, result.critical_difference, result.pvalues, alpha=result.alpha,
                                 title=f"{lead}: average rank over {result.n_blocks} seeds (1 = best)")
        ctx.index.figure(plots.save_figure(figure, out / "figures" / f"cd_{lead}"),
                         f"critical-difference diagram of {lead} (Nemenyi, alpha {result.alpha:g}): fusions joined by "
                         "a bar do not differ significantly")


def sample_statistics(ctx: Context, predictions: pd.DataFrame) -> None:
    """Per-sample paired bootstrap and McNemar for every pair of fusions with predictions."""
    per_sample = per_sample_tests(predictions, ctx.run.task, list(dict.fromkeys(predictions["fusion"])))
    atomic_write_csv(ctx.out / "stats" / "per_sample.csv", per_sample)
    measures = ", ".join(get_task(ctx.run.task).sample_tests)
    ctx.index.file(ctx.out / "stats" / "per_sample.csv", "every pair of fusions on the test samples, per seed and "
                                                         "on seed-averaged predictions: paired bootstrap of the "
                                                         f"difference in {measures}, McNemar's exact test where the "
                                                         "per-sample scores are right/wrong")
    ctx.index.claims("Per test sample, pairs of fusions", [
        *claims.sample_claims(per_sample),
        "These tests hold each trained model fixed: they measure test-set sampling error, not seed-to-seed "
        "variation (for that, read the paired-by-seed claims).",
    ])


def record_figures(ctx: Context, curves: pd.DataFrame) -> None:
    """Per-seed distributions, learning curves, and the metric against the number of modalities."""
    out, index, shown = ctx.out, ctx.index, plots.with_values(ctx.records, ctx.metrics)[:4]
    index.figure(plots.seed_distribution(ctx.records, shown, out / "figures" / "seeds"),
                 f"every seed's {', '.join(shown) or 'metric'} per fusion over a box of their spread")
    if not curves.empty:
        columns = ["train_loss", "valid_loss", f"valid_{get_task(ctx.run.task).learning_curve_metric}"]
        index.figure(plots.learning_curves(curves, columns, out / "figures" / "curves"),
                     f"{', '.join(c.replace('_', ' ') for c in columns)} per epoch, one line per seed")
    counts = ctx.run.records["n_modalities"].nunique() if "n_modalities" in ctx.run.records.columns else 1
    lead = _lead_metric(ctx)
    if counts > 1 and lead is not None:
        index.figure(plots.metric_vs_modalities(ctx.run.records, [lead], out / "figures" / "modalities"),
                     f"{lead} against the number of modalities per fusion (mean ± sd over seeds and subsets)")
    else:
        index.absent.append("the metric against the number of modalities: runs.csv holds one modality count"
                            if counts <= 1 else "the metric against the number of modalities: no metric has a value")


def probe_analyses(ctx: Context, cell_seeds: int | None) -> None:
    """Embeddings (silhouettes, projections) and robustness of the first ``cell_seeds`` seeds of each fusion (all
    when None), as ``benchmarks.probe`` measured them from the stored checkpoints (``<run>/probes/``).

    Absent, with one line saying why or which command measures them: no measurement, one that found nothing to
    measure (its ``reason``), or fewer current cells measured than asked (those measured are still drawn). A
    measured cell whose ``config_hash`` is no longer the trained cell's of ``runs.csv`` is out of date and left out.
    """
    folder, index, trained = probes_dir(ctx.run.path), ctx.index, trained_records(ctx)
    command = f"`python -m benchmarks.probe {ctx.run.path} --cell-seeds {cell_seeds or 'all'}`"
    if trained.empty:
        index.absent.append("embeddings and robustness: no cell trained")
        return
    if not (folder / "meta.json").is_file():
        index.absent.append(f"embeddings and robustness: not measured; {command} measures them from the stored "
                            "checkpoints")
        return
    meta = read_document(folder / "meta.json")
    if meta.get("reason"):
        index.absent.append(f"embeddings and robustness: {meta['reason']}")
        return
    current = trained[["fusion", "seed", "config_hash"]].astype({"config_hash": str})
    measured = _read_probe(folder, "probed_cells.csv").merge(current, how="inner")
    cells = measured.groupby("fusion", sort=False).head(cell_seeds or len(measured))
    asked = trained.groupby("fusion", sort=False).size().clip(upper=cell_seeds or len(trained))
    have = cells.groupby("fusion").size().reindex(asked.index, fill_value=0)
    if (have < asked).any():
        short = ", ".join(f"{fusion} ({have[fusion]} of {asked[fusion]} seeds)" for fusion in asked.index
                          if have[fusion] < asked[fusion])
        index.absent.append(f"embeddings and robustness of {short}: not measured for the current cells; {command} "
                            "measures them")
    if cells.empty:
        return
    for cell in cells[cells["reproduction_gap"] > REPRODUCTION_TOLERANCE].itertuples():
        index.warnings.append(
            f"{cell.fusion} seed {cell.seed}: its checkpoint no longer reproduces its stored test predictions "
            f"(largest difference {cell.reproduction_gap:.3g}): the model code or the dataset changed after "
            "training, so the embeddings and robustness of this cell describe the current code and data with the "
            "stored weights; rerun the cell.")
    keys = cells[["fusion", "seed"]]
    _embeddings(ctx, _read_probe(folder, "silhouettes.csv").merge(keys), _read_probe(folder, "embeddings.csv").merge(
        keys), meta["classes"], get_task(ctx.run.task).classes is not None)
    _robustness(ctx, _read_probe(folder, "robustness.csv").merge(keys))


def _read_probe(folder: Path, name: str) -> pd.DataFrame:
    """One of the probes' CSVs in today's format (``records.schema``), without its version column; a
    ``config_hash`` as text."""
    frame = read_table(folder / name).drop(columns=VERSION_COLUMN)
    return frame.astype({"config_hash": str}) if "config_hash" in frame.columns else frame


def _embeddings(
    ctx: Context, silhouettes: pd.DataFrame, points: pd.DataFrame, classes: dict, has_classes: bool,
) -> None:
    """Silhouettes CSV, the projection figure and the separability claims of the cells' states; ``classes``:
    the ``description`` and ``names`` of the classes (the probes' ``meta.json``); ``has_classes``: whether the run's
    task defines classes (``tasks.Task.classes``). Without them (plain regression, multi-label tasks) every sample
    is one class: the words say so, the silhouettes are undefined and there is no separability to claim."""
    out, by = ctx.out, classes["description"]
    atomic_write_csv(out / "stats" / "silhouettes.csv", silhouettes)
    figure = plot_embeddings(points, silhouettes, classes["names"], out / "figures" / "embeddings")
    states = "test-set states after each GRF step and the other fusions' final representation: PCA and t-SNE"
    empty = ("a 2-d projection needs at least 2 test samples; the test split has "
             f"{int(silhouettes['n_samples'].iloc[0])}")
    if has_classes:
        ctx.index.file(out / "stats" / "silhouettes.csv", f"silhouette score by {by} of each fused state on the test "
                                                          "set (fusion, seed, step), in the full state space")
        ctx.index.figure(figure, f"{states}, coloured by class, silhouette in each title", empty=empty)
        ctx.index.claims("Embeddings: class separability of the fused states",
                         claims.silhouette_claims(silhouettes, by))
    else:
        none = f"task {ctx.run.task!r} defines no classes"
        ctx.index.file(out / "stats" / "silhouettes.csv", "the fused states on the test set (fusion, seed, step, "
                                                          f"dimension); no silhouette (NaN): {none}")
        ctx.index.figure(figure, f"{states}, every sample in one colour ({none}, so no silhouette)", empty=empty)
        ctx.index.absent.append(f"class separability of the fused states (silhouettes): {none}")


def _robustness(ctx: Context, curves: pd.DataFrame) -> None:
    """Robustness CSVs, tables (area under the noise curves, dropped modalities), figure and claims."""
    out, metric = ctx.out, curves["metric"].iloc[0]
    higher = higher_is_better(metric)
    summary = robustness_summary(curves)
    atomic_write_csv(out / "stats" / "robustness.csv", curves)
    atomic_write_csv(out / "stats" / "robustness_summary.csv", summary)
    columns = [c for c in summary.columns if c not in ("fusion", "seed")]
    caption = (f"{metric} on the test set: clean; area under the curve of {metric} against Gaussian noise of "
               f"{', '.join(f'{x:g}' for x in noise_levels(curves))} x the feature std on one modality (trapezoid, "
               "divided by the range of levels); and with one modality's features set to zero.")
    atomic_write_text(out / "tables" / "robustness.md", markdown_table(
        summary, columns, higher=dict.fromkeys(columns, higher), legend=caption))
    atomic_write_text(out / "tables" / "robustness.tex", latex_table(
        summary, columns, higher=dict.fromkeys(columns, higher), caption=caption, label="tab:robustness"))
    ctx.index.file(out / "stats" / "robustness.csv", f"{metric} per fusion, seed, modality, noise level (and drop)")
    ctx.index.file(out / "stats" / "robustness_summary.csv", "per fusion and seed: clean metric, area under each "
                                                             "noise curve, metric with each modality dropped")
    ctx.index.file(out / "tables" / "robustness.md", "robustness table (Markdown): mean ± std over the seeds "
                                                     "analysed, best in bold")
    ctx.index.file(out / "tables" / "robustness.tex", "the same robustness table in LaTeX (booktabs)")
    ctx.index.figure(plot_robustness(curves, out / "figures" / "robustness", higher),
                     f"{metric} against noise on each modality, and with each modality dropped, per fusion")
    ctx.index.claims("Robustness: a noisy or missing modality at test time",
                     claims.robustness_claims(summary, metric, higher))


def cost_scaling(ctx: Context) -> None:
    """Cost against the number of modalities from ``scaling.csv`` (``benchmarks.scaling``): the fitted exponents
    and the log-log figures of ``analysis.cost_curves``, of the measures recorded beside it (``scaling_meta.json``);
    records that cannot be read that way (an older sweep's, without its measures) are listed as absent, with why."""
    try:
        records, measures = read_cost_records(ctx.run.path)
    except SchemaError as error:
        ctx.index.absent.append(f"scaling plots: {error}")
        return
    exponents = fit_exponents(records, measures)
    atomic_write_csv(ctx.out / "stats" / "scaling_exponents.csv", exponents)
    ctx.index.file(ctx.out / "stats" / "scaling_exponents.csv", "fitted exponent k of cost ~ n^k per fusion, "
                                                                "setting and measure, with its 95% interval")
    paths = plot_scaling(records, exponents, ctx.out / "figures" / "scaling", measures)
    for png, pdf in zip(paths[::2], paths[1::2]):
        ctx.index.figure([png, pdf], "cost against the number of modalities, log-log, fitted k per fusion")

