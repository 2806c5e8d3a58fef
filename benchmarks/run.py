"""The main job: train fusions x seeds on a dataset and write records, tables and figures.

Library: ``run_benchmark(fusions, dataset=..., seeds=..., ...)`` returns the records (one row per fusion x
seed). CLI: ``python -m benchmarks.run --fusions grf,pairwise [options]``; ``--help`` lists the options.
Every cell is stored as it finishes (see ``benchmarks.store``); running the same command again skips the
finished cells and resumes an interrupted one from its last epoch. With ``--storage URL`` the grid is shared
by every machine that runs the same command (``benchmarks.grid``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch

from .cli import (
    UsageError,
    add_data_arguments,
    add_training_arguments,
    modality_names,
    parse_fusions,
    parse_seeds,
    resolve_device,
    run_cli,
)
from .config import (
    CellConfig,
    ConfigError,
    Variant,
    dataset_options,
    load_config_file,
    load_preset,
    merge,
    resolve,
    validate,
)
from .data import Dataset, list_datasets, load_dataset
from .metrics import main_metric, metric_names
from .progress import Progress
from .store import (
    atomic_torch_save,
    atomic_write_csv,
    atomic_write_json,
    cell_dir,
    check_writable,
    read_record,
    run_metadata,
)
from .train import CellResult, train_cell


@dataclass
class RunSpec:
    """What to run. ``fusions``: registered names and/or ``Variant``s (named configurations, e.g. ablations);
    ``dataset_path`` may be None (the loader's default, e.g. ``MOSI_PATH``); ``modalities`` selects and orders
    modalities by name; ``params`` adds tuned parameters (``"tuned"`` or a tuning run's folder, see
    ``benchmarks.tuned``); ``overrides``: a configuration dict merged over the preset and config file (before
    ``epochs``)."""

    fusions: list[str | Variant]
    dataset: str = "synthetic"
    dataset_path: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    preset: str = "quick"
    config_file: str | None = None
    epochs: int | None = None
    device: str = "auto"
    amp: bool = False
    out: str | None = None
    modalities: list[str] | None = None
    params: str | None = None
    overrides: dict | None = None


def build_config(spec: RunSpec) -> dict:
    """Preset, then ``--config`` file, then ``--epochs``, validated (unknown keys raise ``ConfigError``)."""
    config = load_preset(spec.preset)
    if spec.config_file:
        config = merge(config, load_config_file(spec.config_file))
    if spec.params:
        from .tuned import tuned_overrides  # noqa: PLC0415 (tuning is optional)

        names = sorted({f.fusion if isinstance(f, Variant) else f for f in spec.fusions})
        config = merge(config, tuned_overrides(spec.params, spec.dataset, names))
    if spec.overrides:
        config = merge(config, spec.overrides)
    if spec.epochs is not None:
        if spec.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {spec.epochs}")
        config = merge(config, {"protocol": {"max_epochs": spec.epochs}})
    validate(config)
    return config


def load_run_dataset(spec: RunSpec, config: dict) -> tuple[Dataset, dict]:
    """The dataset with the configuration's loader options and the modality selection; and its description."""
    if spec.dataset not in list_datasets():
        raise ValueError(f"unknown dataset {spec.dataset!r}; known datasets: {', '.join(list_datasets())}")
    options = dataset_options(config, spec.dataset)
    data = load_dataset(spec.dataset, spec.dataset_path, **options)
    if spec.modalities:
        data = data.select_modalities(spec.modalities)
    described = {
        "name": spec.dataset, "path": data.info.get("path", spec.dataset_path), "options": options,
        "modalities": list(data.modality_names),
    }
    return data, described


def cell_record(cell: CellConfig, seed: int, data: Dataset, result: CellResult, device: torch.device) -> dict:
    """The cell's row in ``runs.csv``."""
    main = main_metric(data.task)
    return {
        "fusion": cell.label, "model": cell.fusion, "seed": seed, "dataset": data.name,
        "modalities": ",".join(data.modality_names),
        "n_modalities": len(data.modality_names), "config_hash": cell.hash,
        "n_train": len(data.train), "n_valid": len(data.valid), "n_test": len(data.test),
        **result.test.metrics, f"valid_{main}": result.valid.metrics[main], "valid_loss": result.valid.loss,
        "params": result.params, "train_seconds": round(result.train_seconds, 3), "epochs": result.epochs,
        "best_epoch": result.best_epoch, "device": str(device),
    }


def store_cell(folder: Path, cell: CellConfig, seed: int, data: Dataset, result: CellResult, device) -> dict:
    """Write predictions, curves and checkpoint, then the record (last: it marks the cell done)."""
    predictions = pd.DataFrame({"id": data.test.ids, "label": data.test.labels.numpy()})
    if data.task == "regression":
        predictions["prediction"] = result.test.outputs
    else:
        predictions["prediction"] = result.test.outputs.argmax(-1)
        for k in range(result.test.outputs.shape[1]):
            predictions[f"logit_{k}"] = result.test.outputs[:, k]
    atomic_write_csv(folder / "predictions.csv", predictions)
    atomic_write_csv(folder / "curves.csv", pd.DataFrame(result.curves))
    atomic_torch_save(
        {"config": cell.as_dict(), "seed": seed, "dims": data.dims, "task": data.task,
         "num_classes": data.num_classes, "modality_names": data.modality_names, "state_dict": result.best_state},
        folder / "checkpoint.pt",
    )
    record = cell_record(cell, seed, data, result, device)
    atomic_write_json(folder / "record.json", record)
    (folder / "state.pt").unlink(missing_ok=True)
    return record


def run_cell(
    cell: CellConfig, seed: int, data: Dataset, out: Path, device: torch.device, amp: bool, progress: Progress,
) -> dict:
    """Train and store one cell, or return its stored record when it is already done."""
    folder = cell_dir(out, cell.label, cell.hash, seed)
    record = read_record(folder)
    if record is not None:
        progress.skip(cell.label, seed)
        return record
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "config.json", {**cell.as_dict(), "seed": seed})
    with progress.cell(cell.label, seed, cell.protocol.max_epochs, main_metric(data.task)) as report:
        result = train_cell(cell, data, seed, device, amp, state_path=folder / "state.pt", on_epoch=report)
    return store_cell(folder, cell, seed, data, result, device)


def write_summary(out: Path, records: pd.DataFrame, task: str, quiet: bool) -> None:
    """``table.tex``, ``table.md`` and the per-seed figure; the terminal table unless ``quiet``."""
    from analysis.plots import seed_distribution  # noqa: PLC0415 (matplotlib only when summarising)
    from analysis.tables import latex_table, markdown_table, terminal_table  # noqa: PLC0415

    from .store import atomic_write_text  # noqa: PLC0415

    metrics = list(metric_names(task))
    shown = metrics if task == "classification" else ["mae", "corr", "acc2_has0", "acc2_non0", "f1_non0", "acc7"]
    atomic_write_text(out / "table.tex", latex_table(records, metrics, caption=f"{records['dataset'].iloc[0]}"))
    atomic_write_text(out / "table.md", markdown_table(records, metrics))
    seed_distribution(records, shown[:4], out / "figures" / "seeds")
    if not quiet:
        print(terminal_table(records, shown))


def prepare_run(spec: RunSpec, **meta) -> tuple[torch.device, Path, Dataset, list[CellConfig]]:
    """Check the output folder, device, configuration and data before any training starts, and write
    ``meta.json`` (with ``meta`` added). Returns the device, the output folder, the data and the cells."""
    device = resolve_device(spec.device)
    if spec.amp and device.type != "cuda":
        raise ValueError(f"--amp uses bf16 autocast on CUDA; the device is {device}")
    out = Path(spec.out or Path("results") / spec.dataset)
    check_writable(out)
    config = build_config(spec)
    data, described = load_run_dataset(spec, config)
    cells = [resolve(config, fusion, described) for fusion in spec.fusions]
    labels = [cell.label for cell in cells]
    if len(set(labels)) != len(labels):
        raise ValueError(f"fusion labels must be distinct, got {labels}")
    atomic_write_json(out / "meta.json", run_metadata(
        device, spec=asdict(spec), dataset=described, data_summary=data.summary(), data_info=data.info,
        cells={cell.label: cell.as_dict() | {"config_hash": cell.hash} for cell in cells},
        torch_threads=torch.get_num_threads(), **meta,
    ))
    return device, out, data, cells


def finish_run(out: Path, records: pd.DataFrame, task: str, quiet: bool, report: bool) -> None:
    """The tables and figure of a run's records and, unless ``report`` is False, the report."""
    write_summary(out, records, task, quiet or report)  # the report prints its own table, with markers
    if report:
        from analysis.report import write_report  # noqa: PLC0415 (matplotlib and scikit-learn only when reporting)

        write_report(out, quiet=quiet)


def run_benchmark(spec: RunSpec, quiet: bool = False, report: bool = True) -> pd.DataFrame:
    """Run every (fusion, seed) cell of ``spec``; returns the records and writes everything under ``spec.out``,
    ending with the report (``analysis.report``, in ``<out>/report``) unless ``report`` is False.

    Checks the output folder, device, configuration and data before any training starts.
    """
    device, out, data, cells = prepare_run(spec)
    progress = Progress(quiet=quiet, total=len(cells) * len(spec.seeds))
    records = []
    started = time.perf_counter()
    for cell in cells:
        for seed in spec.seeds:
            records.append(run_cell(cell, seed, data, out, device, spec.amp, progress))
            atomic_write_csv(out / "runs.csv", pd.DataFrame(records))
    frame = pd.DataFrame(records)
    finish_run(out, frame, data.task, quiet, report)
    if not quiet:
        print(f"{len(records)} cells in {time.perf_counter() - started:.1f} s; records in {out / 'runs.csv'}")
    return frame


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--fusions", required=True, help="comma-separated fusion names, or 'all'")
    add_data_arguments(parser)
    parser.add_argument("--seeds", default="3", help="a count (3 -> 0,1,2) or a list (0,1,2)")
    add_training_arguments(parser)
    parser.add_argument("--params", default=None,
                        help="tuned parameters: 'tuned' (results/tune) or the --out folder of a benchmarks.tune run")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--out", default=None, help="output folder (default results/<dataset>)")
    parser.add_argument("--quiet", action="store_true", help="no progress and no table on the terminal")
    parser.add_argument("--no-report", action="store_true", help="skip the report (python -m analysis.report)")
    parser.add_argument("--storage", default=None,
                        help="share the grid through this Optuna storage (e.g. postgresql://user:password@host/db): "
                             "every machine runs the same command and each cell runs once (benchmarks.grid)")
    parser.add_argument("--study-name", default=None, help="the grid's study in --storage (default: named after "
                                                           "the grid)")
    parser.add_argument("--heartbeat", type=int, default=30,
                        help="with --storage: seconds between heartbeats; a cell silent for 3 runs again elsewhere")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = RunSpec(
        fusions=parse_fusions(args.fusions), dataset=args.dataset, dataset_path=args.data_path,
        seeds=parse_seeds(args.seeds), preset=args.preset, config_file=args.config, epochs=args.epochs,
        device=args.device, amp=args.amp, out=args.out,
        modalities=modality_names(args), params=args.params,
    )
    if args.storage is None:
        if args.study_name is not None:
            raise UsageError("--study-name needs --storage")
        run_benchmark(spec, quiet=args.quiet, report=not args.no_report)
        return 0
    import optuna  # noqa: PLC0415 (Optuna only for shared grids)

    from .grid import run_grid  # noqa: PLC0415
    from .studies import StorageSpec  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = StorageSpec(url=args.storage, heartbeat=args.heartbeat)
    run_grid(spec, storage, study_name=args.study_name, quiet=args.quiet, report=not args.no_report)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
