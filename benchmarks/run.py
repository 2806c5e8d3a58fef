"""The main job: train fusions x seeds on a dataset and write records, tables and figures.

Library: ``run_benchmark(RunSpec(fusions=[...], dataset=..., seeds=...))`` returns the records (one row per fusion x
seed). CLI: ``python -m benchmarks.run --fusions grf,pairwise [options]``; ``--help`` lists the options.
Every cell is stored as it finishes (see ``benchmarks.store``); running the same command again skips the
finished cells and resumes an interrupted one from its last epoch. With ``--storage URL`` the grid is shared
by every machine that runs the same command (``benchmarks.grid``); with ``--workers K`` by K processes of this
machine (``benchmarks.workers``: the grid in ``<out>/grid.journal`` unless ``--storage`` is given).

A finished cell is reused only for the same inputs: its folder is named by ``CellConfig.hash``, which covers
the configuration, the data's fingerprint, autocast and the code version (``benchmarks.config``); when a cell
of the same fusion and seed is stored for other inputs, the run says what changed and trains it anew.

A cell that fails — its training diverges (``train.Diverged``), its fusion's configuration does not fit the
data, or anything else raises — is recorded with ``status`` "failed", the ``error`` and NaN metrics (in
``runs.csv`` too), and the other cells still run; the run then ends with ``CellsFailed`` (the CLI: a summary
of the failed cells, exit status 1). Running the command again retries failed cells, from their last finished
epoch.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from records.cli import ArgumentParser
from records.schema import write_table

from .cells import run_cell
from .cli import (
    UsageError,
    add_data_arguments,
    add_output_arguments,
    add_seed_arguments,
    add_training_arguments,
    experiment_fields,
    parse_fusions,
    run_cli,
    seeds_of,
)
from .config import Variant
from .experiment import Experiment, RunSpec
from .progress import Progress
from .run_folder import PreparedRun, default_out, finish_run, prepare, prepare_run, raise_failed
from .workers import plan_workers, unshared_storage


def run_prepared(
    run: PreparedRun, seeds: list[int], *, quiet: bool = False, report: bool = True, check: bool = True,
) -> pd.DataFrame:
    """Train every (cell, seed) of a prepared run, one after another in this process; returns the records (one
    row per fusion x seed, ``<out>/runs.csv``) and writes the tables, the per-seed figure and, unless ``report``
    is False, the report. A failed cell does not stop the others; when ``check``, the run ends with
    ``CellsFailed`` if any failed (after writing everything), else the caller finds them by their ``status``."""
    runnable = [cell for cell in run.cells if cell.label not in run.invalid]
    progress = Progress(quiet=quiet, total=len(runnable) * len(seeds))
    for label, error in run.invalid.items():
        progress.say(f"{label}: configuration error, its cells are not run: {error}")
    records = []
    started = time.perf_counter()
    for cell in run.cells:
        if cell.label in run.invalid:
            records += run.failed_records(cell, seeds)
            continue
        for seed in seeds:
            records.append(run_cell(cell, seed, run.data, run.out, run.device, progress))
            write_table(run.out / "runs.csv", pd.DataFrame(records))
    frame = pd.DataFrame(records)
    write_table(run.out / "runs.csv", frame)
    finish_run(run, frame, quiet, report)
    if not quiet:
        print(f"{len(records)} cells in {time.perf_counter() - started:.1f} s; records in {run.out / 'runs.csv'}")
    if check:
        raise_failed(frame, run.out / "runs.csv")
    return frame


def run_experiment(
    experiment: Experiment, fusions: list[str | Variant], seeds: list[int], out: Path, **options,
) -> pd.DataFrame:
    """``run_prepared`` for ``fusions`` x ``seeds`` of an experiment already built (its data is not loaded
    again), into ``out``; ``options``: ``run_prepared``'s. ``meta.json`` records the experiment's spec with
    these fusions, seeds and folder."""
    spec = {**asdict(experiment.spec), "fusions": list(fusions), "seeds": list(seeds), "out": str(out)}
    return run_prepared(prepare(experiment, fusions, Path(out), spec), seeds, **options)


def run_benchmark(spec: RunSpec, quiet: bool = False, report: bool = True, check: bool = True) -> pd.DataFrame:
    """Run every (fusion, seed) cell of ``spec``; returns the records and writes everything under ``spec.out``
    (default ``results/<dataset>``), ending with the report (``analysis.report``, in ``<out>/report``) unless
    ``report`` is False. Checks the device, output folder, configuration and data before any training starts;
    see ``run_prepared`` for failed cells and ``check``."""
    return run_prepared(prepare_run(spec), spec.seeds, quiet=quiet, report=report, check=check)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--fusions", required=True, help="comma-separated fusion names, or 'all'")
    add_data_arguments(parser)
    add_seed_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument("--params", default=None,
                        help="tuned parameters: 'tuned' (results/tune) or the --out folder of a benchmarks.tune run")
    add_output_arguments(parser, "results/<dataset>")
    parser.add_argument("--no-report", action="store_true", help="skip the report (python -m analysis.report)")
    parser.add_argument("--storage", default=None,
                        help="share the grid through this Optuna storage (e.g. postgresql://user:password@host/db): "
                             "every machine runs the same command and each cell runs once (benchmarks.grid)")
    parser.add_argument("--study-name", default=None, help="the grid's study in --storage or the journal file of "
                                                           "--workers (default: named after the grid)")
    parser.add_argument("--heartbeat", type=int, default=30,
                        help="with --storage: seconds between heartbeats; a cell silent for 3 runs again elsewhere")
    parser.add_argument("--workers", type=int, default=None,
                        help="train the cells in this many processes of this machine, sharing the grid as machines "
                             "do (without --storage: the journal file <out>/grid.journal); default 1, or CUDA "
                             "devices x --cells-per-device (benchmarks.workers)")
    parser.add_argument("--cells-per-device", type=int, default=None,
                        help="with CUDA: at most this many workers per device (--device cuda or auto: every visible "
                             "device; cuda:K: that one)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads in all, split evenly between the workers (at least 1 each); default: "
                             "torch's (OMP_NUM_THREADS when set, else the cores)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = RunSpec(fusions=parse_fusions(args.fusions), seeds=seeds_of(args), out=args.out, params=args.params,
                   **experiment_fields(args))
    workers = plan_workers(spec.device, args.workers, args.cells_per_device, args.threads)
    if workers.count == 1 and args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.storage is None and workers.count == 1:
        if args.study_name is not None:
            raise UsageError("--study-name needs --storage, or --workers of 2 or more")
        run_benchmark(spec, quiet=args.quiet, report=not args.no_report)
        return 0
    import optuna  # Optuna only for shared grids

    from .grid import run_grid
    from .studies import StorageSpec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.storage is None:
        storage = StorageSpec(journal=str((Path(spec.out) if spec.out else default_out(spec.dataset)) / "grid.journal"))
    else:
        storage = StorageSpec(url=args.storage, heartbeat=args.heartbeat)
    if workers.count > 1 and unshared_storage(storage):
        raise UsageError(unshared_storage(storage))
    run_grid(spec, storage, study_name=args.study_name, quiet=args.quiet, report=not args.no_report,
             workers=workers if workers.count > 1 else None)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
