"""The report of a run: significance-tested tables, statistics, figures and an index of claims.

Library: ``write_report(results_dir, baseline=..., metrics=..., out=...)`` reads only what ``benchmarks.run``
stored (``runs.csv``, each cell's predictions and curves, the robustness and embeddings ``benchmarks.probe``
measured from the checkpoints in ``probes/``, ``scaling.csv``) and writes ``<results_dir>/report/`` (or ``out``);
it never loads a model or a dataset:

    README.md            the index: every table and figure in one line, every statistical claim in words
    tables/              comparison.{tex,md,txt} (mean ± std, best bold, Holm-corrected markers), per_seed.md,
                         robustness.{tex,md}
    stats/               summary.csv, paired.csv, friedman.csv, nemenyi.csv, per_sample.csv, silhouettes.csv,
                         robustness.csv, robustness_summary.csv, scaling_exponents.csv
    figures/             seeds, cd_<metric>, curves, modalities, embeddings, robustness, scaling (PNG and PDF)

Parts whose input is missing (a CD diagram with fewer than 3 fusions, the modality figure with one modality count,
scaling without ``scaling.csv``, embeddings and robustness not measured, with the command that measures them) are
listed in the index with why.
Degenerate results still give a report: failed cells (``status`` "failed" in ``runs.csv``) are listed first and
read ``failed`` in the tables; an undefined metric (NaN, e.g. ``corr`` of constant predictions or of a one-sample
test split) reads ``n/a``; both are left out of every test with a note; an undefined test (no variance, too few
seeds or samples) has no marker and its claim says why; a figure panel without a value is left out.

CLI: ``python -m analysis.report RESULTS_DIR [--baseline grf] [--metrics mae,acc2_non0] [--out DIR]
[--cell-seeds 1|all] [--quiet]``. A bad folder, baseline or metric ends in one ``error:`` line, exit status 2.

Code: this module chooses the inputs and runs the parts in order (:func:`write_report`) and holds the command line;
:mod:`.sections` holds the parts, one function each; :mod:`.index` the index they fill; ``__main__`` runs
:func:`main`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from records.cli import (
    ArgumentParser,
    parse_cell_seeds,
    parse_names,
)
from records.io import atomic_write_text, check_writable
from tasks import get_task

from ..records import RunFolder, cell_files, failure_lines, load_run, primary_setting, records_protocol
from ..significance import usable_metrics
from ..tables import significance_legend, significance_markers, terminal_table
from .index import Index
from .sections import (
    Context,
    cost_scaling,
    probe_analyses,
    rank_statistics,
    record_figures,
    sample_records,
    sample_statistics,
    seed_statistics,
    trained_records,
)

__all__ = ["main", "parse_args", "write_report"]


def _choose_metrics(run: RunFolder, metrics: list[str] | None) -> list[str]:
    known = [m for m in get_task(run.task).metrics if m in run.records.columns]
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



def write_report(
    results_dir: str | Path, baseline: str | None = None, metrics: list[str] | None = None,
    out: str | Path | None = None, quiet: bool = False, cell_seeds: int | None = 1,
) -> Path:
    """Write the report of the run stored in ``results_dir``; returns the index (``README.md``).

    Args:
        results_dir: a ``benchmarks.run`` output folder (``runs.csv`` and ``cells/``).
        baseline: the fusion every other is tested against (default ``grf`` when present, else the first fusion).
        metrics: the table's metrics (default every metric of the task in ``runs.csv``). The Holm family of the
            significance markers is every metric x every fusion other than the baseline.
        out: the report folder (default ``<results_dir>/report``).
        quiet: print nothing; otherwise the marked table, its legend and where the report is.
        cell_seeds: how many seeds per fusion (the first ones) the embeddings and robustness show, of those
            ``benchmarks.probe`` measured (it measures one by default); None for every trained seed. Fewer measured
            than asked: the index names the command that measures them.
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

    comparisons = seed_statistics(ctx)
    rank_statistics(ctx)
    trained = trained_records(ctx)
    compared = sample_records(ctx, trained)
    predictions, missing = cell_files(run, compared, "predictions.csv")
    if missing or compared["fusion"].nunique() < 2:
        reason = (f"no predictions.csv for {', '.join(missing)}" if missing else
                  "fewer than 2 fusions have a trained cell")
        index.absent.append(f"per-sample tests: {reason}")
    else:
        sample_statistics(ctx, predictions)
    curves, missing = cell_files(run, trained, "curves.csv")
    if missing:
        index.absent.append(f"learning curves of {', '.join(missing)}: no curves.csv")
    record_figures(ctx, curves)
    probe_analyses(ctx, cell_seeds)
    if (run.path / "scaling.csv").is_file():
        cost_scaling(ctx)
    else:
        index.absent.append("scaling plots: no scaling.csv in the results folder")

    seeds = sorted(records["seed"].unique().tolist())
    title = f"Report: {records['dataset'].iloc[0] if 'dataset' in records.columns else run.path.name}"
    intro = [
        f"Generated by `python -m analysis.report` from `{run.path}` ({len(records)} records: fusions "
        f"{', '.join(dict.fromkeys(records['fusion']))}; seeds {', '.join(map(str, seeds))}; task {run.task}; "
        f"protocol {records_protocol(records)}; baseline {baseline}). Every number below is read from the files "
        "listed here.",
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
    parser = ArgumentParser(
        prog="python -m analysis.report", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("results_dir", help="a benchmarks.run output folder (holds runs.csv)")
    parser.add_argument("--baseline", default=None,
                        help="fusion the others are tested against; none: grf if run, else the first")
    parser.add_argument("--metrics", default=None, help="comma-separated metrics; none: every metric of the task")
    parser.add_argument("--out", default=None, help="report folder; none: RESULTS_DIR/report")
    parser.add_argument("--cell-seeds", default="1",
                        help="seeds per fusion shown in embeddings and robustness (as measured by "
                             "benchmarks.probe): a count, or 'all'")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    write_report(args.results_dir, baseline=args.baseline, out=args.out, quiet=args.quiet,
                 cell_seeds=parse_cell_seeds(args.cell_seeds),
                 metrics=parse_names(args.metrics, "--metrics") if args.metrics else None)
    return 0

