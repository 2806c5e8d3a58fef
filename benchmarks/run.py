"""The main job: train fusions x seeds on a dataset and write records, tables and figures.

Library: ``run_benchmark(RunSpec(fusions=[...], dataset=..., seeds=...))`` returns the records (one row per fusion x
seed). CLI: ``python -m benchmarks.run --fusions grf,pairwise [options]``; ``--help`` lists the options.
Every cell is stored as it finishes (see ``benchmarks.store``); running the same command again skips the
finished cells and resumes an interrupted one from its last epoch. With ``--storage URL`` the grid is shared
by every machine that runs the same command (``benchmarks.grid``).

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
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch

from .cli import (
    CellsFailed,
    UsageError,
    add_data_arguments,
    add_training_arguments,
    debug,
    modality_names,
    parse_fusions,
    parse_seeds,
    resolve_device,
    run_cli,
)
from .config import (
    CellConfig,
    ConfigError,
    Layers,
    Variant,
    dataset_options,
    fit_to_modalities,
    load_config_file,
    load_preset,
    merge_layers,
    resolve,
    value_source,
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
from .train import CellResult, build_cell_model, data_fingerprint, resolve_hparams, train_cell


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


def config_layers(spec: RunSpec) -> Layers:
    """Where the run's configuration comes from, lowest precedence first: the preset (its modality orders
    fitted to ``spec.modalities``), the ``--config`` file, the tuned parameters, ``spec.overrides``, ``--epochs``."""
    preset = load_preset(spec.preset)
    layers = [(f"preset {spec.preset!r}", fit_to_modalities(preset, spec.modalities) if spec.modalities else preset)]
    if spec.config_file:
        layers.append((f"--config {spec.config_file}", load_config_file(spec.config_file)))
    if spec.params:
        from .tuned import tuned_overrides  # noqa: PLC0415 (tuning is optional)

        names = sorted({f.fusion if isinstance(f, Variant) else f for f in spec.fusions})
        layers.append((f"--params {spec.params}", tuned_overrides(spec.params, spec.dataset, names)))
    if spec.overrides:
        layers.append(("the run's overrides", spec.overrides))
    if spec.epochs is not None:
        if spec.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {spec.epochs}")
        layers.append(("--epochs", {"protocol": {"max_epochs": spec.epochs}}))
    return layers


def build_config(spec: RunSpec) -> dict:
    """The merged ``config_layers``, validated (unknown keys raise ``ConfigError``)."""
    return merge_layers(config_layers(spec))


def load_run_dataset(spec: RunSpec, config: dict) -> tuple[Dataset, dict]:
    """The dataset with the configuration's loader options and the modality selection; and its description
    (``{"name", "path", "options", "modalities", "fingerprint"}``, the ``dataset`` of its cells)."""
    if spec.dataset not in list_datasets():
        raise ValueError(f"unknown dataset {spec.dataset!r}; known datasets: {', '.join(list_datasets())}")
    options = dataset_options(config, spec.dataset)
    data = load_dataset(spec.dataset, spec.dataset_path, **options)
    if spec.modalities:
        data = data.select_modalities(spec.modalities)
    described = {
        "name": spec.dataset, "path": data.info.get("path", spec.dataset_path), "options": options,
        "modalities": list(data.modality_names), "fingerprint": data_fingerprint(data),
    }
    return data, described


def configuration_error(cell: CellConfig, fusion: str | Variant, layers: Layers, data: Dataset) -> str | None:
    """Why ``cell`` cannot be built for ``data`` (None when it can): a modality ``order`` that does not name each
    of the run's modalities once, with where it was set, or the fusion's own error (built on the ``meta``
    device: no memory, no time)."""
    order = cell.hparams.get("order")
    if order is not None:
        names = data.modality_names
        try:
            fits = sorted(resolve_hparams({"order": order}, names)["order"]) == list(range(len(names)))
        except (ValueError, TypeError):
            fits = False
        if not fits:
            where = value_source(layers, fusion, data.name, "order") or "the fusion's default"
            return f"order {order} from {where} must name each of this run's modalities once: {', '.join(names)}"
    try:
        with torch.device("meta"):
            build_cell_model(cell, data)
    except Exception as error:  # noqa: BLE001 (whatever a constructor refuses is this fusion's error)
        return one_line(error)
    return None


def one_line(error: BaseException) -> str:
    """An exception as one line: its message (a ``ValueError``'s) or ``Type: message``."""
    text = (str(error).strip().splitlines() or [""])[0]
    if isinstance(error, ValueError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _base_record(cell: CellConfig, seed: int, data: Dataset) -> dict:
    return {
        "fusion": cell.label, "model": cell.fusion, "seed": seed, "dataset": data.name,
        "modalities": ",".join(data.modality_names),
        "n_modalities": len(data.modality_names), "config_hash": cell.hash,
        "n_train": len(data.train), "n_valid": len(data.valid), "n_test": len(data.test),
    }


def cell_record(cell: CellConfig, seed: int, data: Dataset, result: CellResult, device: torch.device) -> dict:
    """The cell's row in ``runs.csv`` (``status`` "done")."""
    main = main_metric(data.task)
    return {
        **_base_record(cell, seed, data), "status": "done",
        **result.test.metrics, f"valid_{main}": result.valid.metrics[main], "valid_loss": result.valid.loss,
        "params": result.params, "train_seconds": round(result.train_seconds, 3), "epochs": result.epochs,
        "best_epoch": result.best_epoch, "device": str(device), "error": "",
    }


def failed_record(
    cell: CellConfig, seed: int, data: Dataset, device: torch.device, error: str, epochs: int | None = None,
) -> dict:
    """A failed cell's row in ``runs.csv``: ``status`` "failed", the ``error``, NaN metrics; ``epochs``: the
    epoch it failed in (NaN when it failed before training)."""
    nan = float("nan")
    main = main_metric(data.task)
    return {
        **_base_record(cell, seed, data), "status": "failed",
        **dict.fromkeys(metric_names(data.task), nan), f"valid_{main}": nan, "valid_loss": nan,
        "params": nan, "train_seconds": nan, "epochs": nan if epochs is None else epochs, "best_epoch": nan,
        "device": str(device), "error": error,
    }


def changed_inputs(old: dict, new: dict) -> list[str]:
    """The dotted keys whose values differ between two stored cell configurations (``config.json``), e.g.
    ``dataset.fingerprint``, ``code``, ``protocol.max_epochs``; the label, seed and data path are left out."""

    def flat(value, prefix=""):
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()}
        return {prefix[:-1]: json.loads(json.dumps(value, default=str))}

    ignored = {"label", "seed", "dataset.path"}
    a, b = flat(old), flat(new)
    return sorted(key for key in set(a) | set(b) if key not in ignored and a.get(key) != b.get(key))


def stale_note(out: Path, cell: CellConfig, seed: int) -> str | None:
    """One line when this fusion and seed are stored under ``out`` for other inputs (the most recent such
    cell): which inputs differ; None when there is none."""
    folder = cell_dir(out, cell.label, cell.hash, seed)
    others = [
        path / f"seed{seed}" / "config.json" for path in (Path(out) / "cells").glob("*")
        if path.name.rpartition("-")[0] == cell.label and path / f"seed{seed}" != folder
    ]
    others = [path for path in others if path.is_file()]
    if not others:
        return None
    latest = max(others, key=lambda path: path.stat().st_mtime)
    changed = changed_inputs(json.loads(latest.read_text()), {**cell.as_dict(), "seed": seed})
    shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
    return f"{latest.parent.relative_to(out)} holds a result from other inputs ({shown}); training anew"


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


def run_cell(cell: CellConfig, seed: int, data: Dataset, out: Path, device: torch.device, progress: Progress) -> dict:
    """Train and store one cell, or return its stored record when it is already done. A cell that raises is
    stored as failed (its record, the state of its last finished epoch kept for a retry) and its failed record
    returned; a failed cell stored earlier is tried again. ``FUSIONBENCH_DEBUG`` lets the exception through."""
    folder = cell_dir(out, cell.label, cell.hash, seed)
    record = read_record(folder)
    if record is not None and record.get("status", "done") == "done":
        progress.skip(cell.label, seed)
        return record
    note = (stale_note(out, cell, seed) if record is None
            else f"failed in an earlier run ({record.get('error')}); trying again")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "config.json", {**cell.as_dict(), "seed": seed})
    with progress.cell(cell.label, seed, cell.protocol.max_epochs, main_metric(data.task)) as report:
        if note:
            progress.note(note)
        try:
            result = train_cell(cell, data, seed, device, cell.amp, state_path=folder / "state.pt", on_epoch=report,
                                say=progress.note)
        except Exception as error:
            if debug():
                raise
            record = failed_record(cell, seed, data, device, one_line(error), getattr(error, "epoch", None))
            atomic_write_json(folder / "record.json", record)
            progress.failed(record["error"])
            return record
    return store_cell(folder, cell, seed, data, result, device)


def write_summary(out: Path, records: pd.DataFrame, task: str, quiet: bool) -> None:
    """``table.tex``, ``table.md`` and the per-seed figure; the terminal table unless ``quiet``."""
    from analysis.plots import seed_distribution  # noqa: PLC0415 (matplotlib only when summarising)
    from analysis.tables import latex_table, markdown_table, terminal_table  # noqa: PLC0415

    from .store import atomic_write_text  # noqa: PLC0415

    metrics = list(metric_names(task))
    shown = metrics if task == "classification" else [
        "mae", "corr", "acc2_has0", "acc2_non0", "f1_macro_has0", "f1_non0", "acc7"]
    atomic_write_text(out / "table.tex", latex_table(records, metrics, caption=f"{records['dataset'].iloc[0]}"))
    atomic_write_text(out / "table.md", markdown_table(records, metrics))
    seed_distribution(records, shown[:4], out / "figures" / "seeds")
    if not quiet:
        print(terminal_table(records, shown))


@dataclass
class PreparedRun:
    """A run checked and ready to train: ``cells`` in the order of ``spec.fusions``; ``invalid``: the labels of
    cells whose configuration does not fit the data, with the reason (their cells fail without training)."""

    device: torch.device
    out: Path
    data: Dataset
    cells: list[CellConfig]
    invalid: dict[str, str]

    def failed_records(self, cell: CellConfig, seeds: list[int]) -> list[dict]:
        """The failed records of an invalid cell, one per seed."""
        error = f"configuration: {self.invalid[cell.label]}"
        return [failed_record(cell, seed, self.data, self.device, error) for seed in seeds]


def prepare_run(spec: RunSpec, **meta) -> PreparedRun:
    """Check the output folder, device, configuration and data before any training starts, and write
    ``meta.json`` (with ``meta`` added). A configuration that does not fit one fusion (see
    ``configuration_error``) does not stop the others: that fusion's cells are listed in ``invalid``."""
    device = resolve_device(spec.device)
    if spec.amp and device.type != "cuda":
        raise ValueError(f"--amp uses bf16 autocast on CUDA; the device is {device}")
    out = Path(spec.out or Path("results") / spec.dataset)
    check_writable(out)
    layers = config_layers(spec)
    config = merge_layers(layers)
    data, described = load_run_dataset(spec, config)
    cells = [resolve(config, fusion, described, amp=spec.amp) for fusion in spec.fusions]
    labels = [cell.label for cell in cells]
    if len(set(labels)) != len(labels):
        raise ValueError(f"fusion labels must be distinct, got {labels}")
    invalid = {}
    for cell, fusion in zip(cells, spec.fusions):
        error = configuration_error(cell, fusion, layers, data)
        if error is not None:
            invalid[cell.label] = error
    atomic_write_json(out / "meta.json", run_metadata(
        device, spec=asdict(spec), dataset=described, data_summary=data.summary(), data_info=data.info,
        cells={cell.label: cell.as_dict() | {"config_hash": cell.hash} for cell in cells},
        invalid=invalid, torch_threads=torch.get_num_threads(), **meta,
    ))
    return PreparedRun(device, out, data, cells, invalid)


def finish_run(out: Path, records: pd.DataFrame, task: str, quiet: bool, report: bool) -> None:
    """The tables and figure of a run's records and, unless ``report`` is False, the report; nothing when no
    cell is done (every one failed: the failure summary says why)."""
    if not records["status"].eq("done").any():
        return
    write_summary(out, records, task, quiet or report)  # the report prints its own table, with markers
    if report:
        from analysis.report import write_report  # noqa: PLC0415 (matplotlib and scikit-learn only when reporting)

        write_report(out, quiet=quiet)


def raise_failed(records: pd.DataFrame, path: Path, retry: str = "the same command run again retries them") -> None:
    """Raise ``CellsFailed`` (the summary, one line per failed cell) when a record has ``status`` "failed";
    ``path``: the file that holds the records; ``retry`` says how to try the failed cells again."""
    failed = records[records["status"].eq("failed")]
    if failed.empty:
        return
    settings = failed["setting"] if "setting" in failed.columns else pd.Series("", index=failed.index)
    raise CellsFailed(
        f"{len(failed)} of {len(records)} cells failed; {path} marks them (status 'failed'); {retry}",
        [f"{row.fusion} seed {row.seed}{f' ({setting})' if setting else ''}: {row.error}"
         for row, setting in zip(failed.itertuples(), settings)],
    )


def run_benchmark(spec: RunSpec, quiet: bool = False, report: bool = True, check: bool = True) -> pd.DataFrame:
    """Run every (fusion, seed) cell of ``spec``; returns the records and writes everything under ``spec.out``,
    ending with the report (``analysis.report``, in ``<out>/report``) unless ``report`` is False.

    Checks the output folder, device, configuration and data before any training starts. A failed cell does
    not stop the others; when ``check``, the run ends with ``CellsFailed`` if any failed (after writing
    everything), else the caller finds them by their ``status``.
    """
    run = prepare_run(spec)
    runnable = [cell for cell in run.cells if cell.label not in run.invalid]
    progress = Progress(quiet=quiet, total=len(runnable) * len(spec.seeds))
    for label, error in run.invalid.items():
        progress.say(f"{label}: configuration error, its cells are not run: {error}")
    records = []
    started = time.perf_counter()
    for cell in run.cells:
        if cell.label in run.invalid:
            records += run.failed_records(cell, spec.seeds)
            continue
        for seed in spec.seeds:
            records.append(run_cell(cell, seed, run.data, run.out, run.device, progress))
            atomic_write_csv(run.out / "runs.csv", pd.DataFrame(records))
    frame = pd.DataFrame(records)
    atomic_write_csv(run.out / "runs.csv", frame)
    finish_run(run.out, frame, run.data.task, quiet, report)
    if not quiet:
        print(f"{len(records)} cells in {time.perf_counter() - started:.1f} s; records in {run.out / 'runs.csv'}")
    if check:
        raise_failed(frame, run.out / "runs.csv")
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
