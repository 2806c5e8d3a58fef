"""The report of a run: significance-tested tables, statistics, figures and an index of claims.

Library: ``write_report(results_dir, baseline=..., metrics=..., out=...)`` reads only what ``benchmarks.run``
stored (``runs.csv``, each cell's predictions, curves and checkpoint, ``scaling.csv``) and writes
``<results_dir>/report/`` (or ``out``):

    README.md            the index: every table and figure in one line, every statistical claim in words
    tables/              comparison.{tex,md,txt} (mean ± std, best bold, Holm-corrected markers), per_seed.md,
                         robustness.{tex,md}
    stats/               summary.csv, paired.csv, friedman.csv, nemenyi.csv, per_sample.csv, silhouettes.csv,
                         robustness.csv, robustness_summary.csv, scaling_exponents.csv
    figures/             seeds, cd_<metric>, curves, modalities, embeddings, robustness, scaling (PNG and PDF)

Parts whose input is missing (a CD diagram with fewer than 3 fusions, the modality figure with one modality count,
scaling without ``scaling.csv``, embeddings and robustness without checkpoints) are listed in the index with why.
Degenerate results still give a report: failed cells (``status`` "failed" in ``runs.csv``) are listed first and
read ``failed`` in the tables; an undefined metric (NaN, e.g. ``corr`` of constant predictions or of a one-sample
test split) reads ``n/a``; both are left out of every test with a note; an undefined test (no variance, too few
seeds or samples) has no marker and its claim says why; a figure panel without a value is left out.

CLI: ``python -m analysis.report RESULTS_DIR [--baseline grf] [--metrics mae,acc2_non0] [--out DIR]
[--cell-seeds 1|all] [--quiet]``. A bad folder, baseline or metric ends in one ``error:`` line, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.cli import parse_names, resolve_device, run_cli
from benchmarks.metrics import higher_is_better, main_metric, metric_names
from benchmarks.store import atomic_write_csv, atomic_write_text, check_writable

from . import claims, plots, stats
from .cd_diagram import plot_cd_diagram
from .checkpoints import DatasetCache, load_cell, stored_prediction_gap
from .embeddings import cell_panels, class_names, plot_embeddings, silhouette_frame, state_classes
from .records import RunFolder, cell_files, failed_cells, failure_lines, load_run, primary_setting
from .robustness import NOISE_LEVELS, plot_robustness, robustness_curves, robustness_summary
from .scaling import fit_exponents, plot_scaling
from .significance import per_sample_tests, rank_tests, usable_metrics
from .tables import (
    latex_table,
    markdown_table,
    per_seed_table,
    significance_legend,
    significance_markers,
    terminal_table,
)

REPRODUCTION_TOLERANCE = 1e-4  # a checkpoint whose test outputs differ more from predictions.csv is flagged


@dataclass
class Index:
    """What the report holds: files with one line each, claims by section, parts left out with the reason, and
    warnings about the inputs (shown first)."""

    out: Path
    files: list[tuple[str, str]] = field(default_factory=list)
    sections: dict[str, list[str]] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def file(self, path: Path, line: str) -> None:
        self.files.append((Path(path).relative_to(self.out).as_posix(), line))

    def figure(self, paths: list[Path], line: str, empty: str = "no finite value to draw") -> None:
        """A figure saved as PNG and PDF (``plots.save_figure``): listed once, by its PNG; a figure the plotting
        function did not draw (``[]``) is listed among the absent parts with the reason ``empty``."""
        if paths:
            self.file(paths[0], f"{line} (also {paths[1].name})")
        else:
            self.absent.append(f"figure of {line}: {empty}")

    def claims(self, section: str, lines: list[str]) -> None:
        self.sections.setdefault(section, []).extend(lines)

    def markdown(self, title: str, intro: list[str]) -> str:
        parts = [f"# {title}", "", *intro]
        if self.warnings:
            parts += ["", "## Warnings", "", *(f"- {line}" for line in self.warnings)]
        parts += ["", "## Files", ""]
        parts += [f"- [`{path}`]({path}): {line}" for path, line in self.files]
        for section, lines in self.sections.items():
            parts += ["", f"## {section}", ""]
            parts += [line if line.startswith(("|", "#")) or not line else f"- {line}" for line in lines]
        if self.absent:
            parts += ["", "## Not in this report", "", *(f"- {line}" for line in self.absent)]
        return "\n".join(parts) + "\n"


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


def _choose_metrics(run: RunFolder, metrics: list[str] | None) -> list[str]:
    known = [m for m in metric_names(run.task) if m in run.records.columns]
    if metrics is None:
        return known
    for metric in metrics:
        if metric not in known:
            raise ValueError(f"unknown metric {metric!r}; metrics in {run.path / 'runs.csv'}: {', '.join(known)}")
    return list(metrics)


def _choose_baseline(run: RunFolder, baseline: str | None) -> str:
    if baseline is None:
        return "grf" if "grf" in run.fusions else run.fusions[0]
    if baseline not in run.fusions:
        raise ValueError(f"unknown baseline {baseline!r}; fusions in {run.path / 'runs.csv'}: {', '.join(run.fusions)}")
    return baseline


def _lead_metric(ctx: Context) -> str | None:
    """The metric of single-metric figures: the task's main metric when tested, else the first tested one (None
    when no metric has a value)."""
    main = main_metric(ctx.run.task)
    return main if main in ctx.tested else next(iter(ctx.tested), None)


def _trained(ctx: Context) -> pd.DataFrame:
    """The records of cells that trained (not failed): the ones with stored predictions, curves, checkpoint."""
    return ctx.records[~failed_cells(ctx.records)]


def _seed_statistics(ctx: Context) -> pd.DataFrame | None:
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


def _rank_statistics(ctx: Context) -> None:
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
        figure = plot_cd_diagram(result.average_ranks, result.critical_difference,
                                 title=f"{lead}: average rank over {result.n_blocks} seeds (1 = best)")
        ctx.index.figure(plots.save_figure(figure, out / "figures" / f"cd_{lead}"),
                         f"critical-difference diagram of {lead} (Nemenyi, alpha {result.alpha:g}): fusions joined by "
                         "a bar do not differ significantly")


def _sample_statistics(ctx: Context, predictions: pd.DataFrame) -> None:
    """Per-sample paired bootstrap and McNemar for every pair of fusions with predictions."""
    per_sample = per_sample_tests(predictions, ctx.run.task, list(dict.fromkeys(predictions["fusion"])))
    atomic_write_csv(ctx.out / "stats" / "per_sample.csv", per_sample)
    ctx.index.file(ctx.out / "stats" / "per_sample.csv", "every pair of fusions on the test samples, per seed and "
                                                         "on seed-averaged predictions: paired bootstrap of the "
                                                         "MAE/accuracy difference, McNemar's exact test")
    ctx.index.claims("Per test sample, pairs of fusions", [
        *claims.sample_claims(per_sample),
        "These tests hold each trained model fixed: they measure test-set sampling error, not seed-to-seed "
        "variation (for that, read the paired-by-seed claims).",
    ])


def _record_figures(ctx: Context, curves: pd.DataFrame) -> None:
    """Per-seed distributions, learning curves, and the metric against the number of modalities."""
    out, index, shown = ctx.out, ctx.index, plots.with_values(ctx.records, ctx.metrics)[:4]
    index.figure(plots.seed_distribution(ctx.records, shown, out / "figures" / "seeds"),
                 f"every seed's {', '.join(shown) or 'metric'} per fusion over a box of their spread")
    if not curves.empty:
        # Regression's validation loss is the L1 loss, i.e. the validation MAE: the third panel shows corr instead.
        columns = ["train_loss", "valid_loss", "valid_corr" if ctx.run.task == "regression" else "valid_accuracy"]
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


def _checkpoint_analyses(ctx: Context, cell_seeds: int | None, device: str) -> None:
    """Embeddings (silhouettes, projections) and robustness from the stored checkpoints of the first
    ``cell_seeds`` seeds of each fusion (all seeds when None)."""
    records = _trained(ctx)
    if records.empty:
        ctx.index.absent.append("embeddings and robustness: no cell trained")
        return
    rows = pd.concat([records[records["fusion"] == fusion].sort_values("seed").head(cell_seeds or len(records))
                      for fusion in dict.fromkeys(records["fusion"])])
    missing = [f"{row['fusion']} seed {row['seed']}" for _, row in rows.iterrows()
               if not (ctx.run.cell_folder(row) / "checkpoint.pt").is_file()]
    if missing:
        ctx.index.absent.append(f"embeddings and robustness: no checkpoint.pt for {', '.join(missing)}")
        return
    datasets, panels, curves, classes = DatasetCache(), [], [], None
    device = resolve_device(device)
    for _, row in rows.iterrows():
        folder = ctx.run.cell_folder(row)
        try:
            cell = load_cell(folder, datasets, device)
        except ValueError as error:
            ctx.index.absent.append(f"embeddings and robustness: {error}")
            return
        cell_classes = state_classes(cell.data.test.labels.numpy(), ctx.run.task)
        if classes is None:
            classes = cell_classes
        elif not np.array_equal(classes, cell_classes):
            raise ValueError(f"{row['fusion']} seed {row['seed']} was tested on other samples than the first cell")
        evaluation = cell.evaluate(keep_states=True)
        gap = stored_prediction_gap(folder, evaluation)
        if gap > REPRODUCTION_TOLERANCE:
            ctx.index.warnings.append(
                f"{cell.fusion} seed {cell.seed}: its checkpoint no longer reproduces its stored test predictions "
                f"(largest difference {gap:.3g}): the model code or the dataset changed after training, so the "
                "embeddings and robustness of this cell describe the current code and data with the stored "
                "weights; rerun the cell.")
        panels += cell_panels(cell, evaluation.states, classes)
        curves.append(robustness_curves(cell))
    _embeddings(ctx, panels, classes)
    _robustness(ctx, pd.concat(curves, ignore_index=True))


def _embeddings(ctx: Context, panels: list, classes: np.ndarray) -> None:
    """Silhouettes CSV, the projection figure and the separability claims of the cells' states."""
    out, task = ctx.out, ctx.run.task
    by = "sentiment sign (negative < 0 vs non-negative >= 0)" if task == "regression" else "class"
    silhouettes = silhouette_frame(panels)
    atomic_write_csv(out / "stats" / "silhouettes.csv", silhouettes)
    ctx.index.file(out / "stats" / "silhouettes.csv", f"silhouette score by {by} of each fused state on the test "
                                                      "set (fusion, seed, step), in the full state space")
    ctx.index.figure(plot_embeddings(panels, classes, class_names(task, classes), out / "figures" / "embeddings"),
                     "test-set states after each GRF step and the other fusions' final representation: PCA and "
                     "t-SNE, coloured by class, silhouette in each title",
                     empty=f"a 2-d projection needs at least 2 test samples; the test split has {len(classes)}")
    ctx.index.claims("Embeddings: class separability of the fused states",
                     claims.silhouette_claims(silhouettes, by))


def _robustness(ctx: Context, curves: pd.DataFrame) -> None:
    """Robustness CSVs, tables (area under the noise curves, dropped modalities), figure and claims."""
    out, metric = ctx.out, curves["metric"].iloc[0]
    summary = robustness_summary(curves)
    atomic_write_csv(out / "stats" / "robustness.csv", curves)
    atomic_write_csv(out / "stats" / "robustness_summary.csv", summary)
    columns = [c for c in summary.columns if c not in ("fusion", "seed")]
    higher = {c: higher_is_better(metric) for c in columns}
    caption = (f"{metric} on the test set: clean; area under the curve of {metric} against Gaussian noise of "
               f"{', '.join(f'{x:g}' for x in NOISE_LEVELS)} x the feature std on one modality (trapezoid, divided by "
               f"the range of levels); and with one modality's features set to zero.")
    atomic_write_text(out / "tables" / "robustness.md", markdown_table(summary, columns, higher=higher,
                                                                      legend=caption))
    atomic_write_text(out / "tables" / "robustness.tex", latex_table(summary, columns, higher=higher,
                                                                     caption=caption, label="tab:robustness"))
    ctx.index.file(out / "stats" / "robustness.csv", f"{metric} per fusion, seed, modality, noise level (and drop)")
    ctx.index.file(out / "stats" / "robustness_summary.csv", "per fusion and seed: clean metric, area under each "
                                                             "noise curve, metric with each modality dropped")
    ctx.index.file(out / "tables" / "robustness.md", "robustness table (Markdown): mean ± std over the seeds "
                                                     "analysed, best in bold")
    ctx.index.file(out / "tables" / "robustness.tex", "the same robustness table in LaTeX (booktabs)")
    ctx.index.figure(plot_robustness(curves, out / "figures" / "robustness"),
                     f"{metric} against noise on each modality, and with each modality dropped, per fusion")
    ctx.index.claims("Robustness: a noisy or missing modality at test time",
                     claims.robustness_claims(summary, metric, higher_is_better(metric)))


def _scaling(ctx: Context) -> None:
    """Cost against the number of modalities from ``scaling.csv`` (``benchmarks.scaling``): the fitted exponents
    and the log-log figures of ``analysis.scaling``."""
    records = pd.read_csv(ctx.run.path / "scaling.csv")
    exponents = fit_exponents(records)
    atomic_write_csv(ctx.out / "stats" / "scaling_exponents.csv", exponents)
    ctx.index.file(ctx.out / "stats" / "scaling_exponents.csv", "fitted exponent k of cost ~ n^k per fusion, "
                                                                "setting and measure, with its 95% interval")
    paths = plot_scaling(records, exponents, ctx.out / "figures" / "scaling")
    for png, pdf in zip(paths[::2], paths[1::2]):
        ctx.index.figure([png, pdf], "cost against the number of modalities, log-log, fitted k per fusion")


def write_report(
    results_dir: str | Path, baseline: str | None = None, metrics: list[str] | None = None,
    out: str | Path | None = None, quiet: bool = False, cell_seeds: int | None = 1, device: str = "auto",
) -> Path:
    """Write the report of the run stored in ``results_dir``; returns the index (``README.md``).

    Args:
        results_dir: a ``benchmarks.run`` output folder (``runs.csv`` and ``cells/``).
        baseline: the fusion every other is tested against (default ``grf`` when present, else the first fusion).
        metrics: the table's metrics (default every metric of the task in ``runs.csv``). The Holm family of the
            significance markers is every metric x every fusion other than the baseline.
        out: the report folder (default ``<results_dir>/report``).
        quiet: print nothing; otherwise the marked table, its legend and where the report is.
        cell_seeds: how many seeds per fusion (the first ones) the checkpoint analyses (embeddings, robustness)
            use; None for all.
        device: where the checkpoint analyses run (``auto``, ``cpu``, ``cuda``).
    """
    started = time.perf_counter()
    run = load_run(results_dir)
    metrics = _choose_metrics(run, metrics)
    baseline = _choose_baseline(run, baseline)
    records, setting_note = primary_setting(run.records)
    tested, metric_notes = usable_metrics(records, metrics)
    out = Path(out) if out is not None else run.path / "report"
    check_writable(out)
    index = Index(out)
    index.warnings += failure_lines(records)
    index.absent += [note for note in [setting_note, *metric_notes] if note]
    ctx = Context(run, records, metrics, tested, baseline, out, index)

    comparisons = _seed_statistics(ctx)
    _rank_statistics(ctx)
    trained = _trained(ctx)
    predictions, missing = cell_files(run, trained, "predictions.csv")
    if missing or trained["fusion"].nunique() < 2:
        reason = (f"no predictions.csv for {', '.join(missing)}" if missing else
                  "fewer than 2 fusions have a trained cell")
        index.absent.append(f"per-sample tests: {reason}")
    else:
        _sample_statistics(ctx, predictions)
    curves, missing = cell_files(run, trained, "curves.csv")
    if missing:
        index.absent.append(f"learning curves of {', '.join(missing)}: no curves.csv")
    _record_figures(ctx, curves)
    _checkpoint_analyses(ctx, cell_seeds, device)
    if (run.path / "scaling.csv").is_file():
        _scaling(ctx)
    else:
        index.absent.append("scaling plots: no scaling.csv in the results folder")

    seeds = sorted(records["seed"].unique().tolist())
    title = f"Report: {records['dataset'].iloc[0] if 'dataset' in records.columns else run.path.name}"
    intro = [
        f"Generated by `python -m analysis.report` from `{run.path}` ({len(records)} records: fusions "
        f"{', '.join(dict.fromkeys(records['fusion']))}; seeds {', '.join(map(str, seeds))}; task {run.task}; "
        f"baseline {baseline}). Every number below is read from the files listed here.",
    ]
    atomic_write_text(out / "README.md", index.markdown(title, intro))
    if not quiet:
        print(terminal_table(records, metrics, markers=significance_markers(comparisons) if comparisons is not None
                             else None))
        if comparisons is not None:
            print(significance_legend(comparisons))
        for warning in index.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"report: {out / 'README.md'} ({len(index.files)} files) in {time.perf_counter() - started:.1f} s")
    return out / "README.md"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.report", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("results_dir", help="a benchmarks.run output folder (holds runs.csv)")
    parser.add_argument("--baseline", default=None,
                        help="fusion the others are tested against; none: grf if run, else the first")
    parser.add_argument("--metrics", default=None, help="comma-separated metrics; none: every metric of the task")
    parser.add_argument("--out", default=None, help="report folder; none: RESULTS_DIR/report")
    parser.add_argument("--cell-seeds", default="1",
                        help="seeds per fusion for embeddings and robustness: a count, or 'all'")
    parser.add_argument("--device", default="auto", help="where embeddings and robustness run: auto, cpu, cuda")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cell_seeds == "all":
        cell_seeds = None
    elif args.cell_seeds.isdigit() and int(args.cell_seeds) > 0:
        cell_seeds = int(args.cell_seeds)
    else:
        raise ValueError(f"--cell-seeds {args.cell_seeds!r}: expected a positive count or 'all'")
    write_report(args.results_dir, baseline=args.baseline, out=args.out, quiet=args.quiet, cell_seeds=cell_seeds,
                 metrics=parse_names(args.metrics, "--metrics") if args.metrics else None, device=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
