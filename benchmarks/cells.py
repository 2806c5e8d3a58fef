"""One cell of a run: train a (fusion, seed) on an experiment's data and store it, or return it stored.

A cell's folder is ``<out>/cells/<label>-<config hash>/seed<k>`` (``records.layout.cell_dir``). It holds
``config.json`` (written first), ``state.pt`` (the last finished epoch, while it trains), then
``predictions.csv``, ``curves.csv``, ``checkpoint.pt`` and, last, ``record.json``: the cell's row of
``runs.csv``, whose presence marks the cell done. A cell that raises is stored as failed (``status`` "failed",
the ``error``, NaN metrics) and tried again by the next run, from its last finished epoch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from records.io import atomic_write_json
from records.layout import cell_dir
from records.schema import RECORD_VERSION, VERSION_COLUMN, read_record, write_table
from tasks import get_task

from .cli import debug
from .config import CellConfig
from .data import Dataset
from .experiment import one_line
from .progress import Progress
from .store import atomic_torch_save
from .train import CellResult, protocol_data, train_cell


def _base_record(cell: CellConfig, seed: int, data: Dataset) -> dict:
    return {
        "fusion": cell.label, "model": cell.fusion, "seed": seed, "protocol": cell.protocol.name,
        "labels": cell.protocol.labels,
        "dataset": data.name, "task": data.task,
        "modalities": ",".join(data.modality_names),
        "n_modalities": len(data.modality_names), "config_hash": cell.hash,
        "n_train": len(data.train), "n_valid": len(data.valid), "n_test": len(data.test),
        VERSION_COLUMN: RECORD_VERSION,
    }


def cell_record(cell: CellConfig, seed: int, data: Dataset, result: CellResult, device: torch.device) -> dict:
    """The cell's row in ``runs.csv`` (``status`` "done")."""
    main = get_task(data.task).main_metric
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
    main = get_task(data.task).main_metric
    return {
        **_base_record(cell, seed, data), "status": "failed",
        **dict.fromkeys(get_task(data.task).metrics, nan), f"valid_{main}": nan, "valid_loss": nan,
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
    """Write predictions, curves and checkpoint, then the record (last: it marks the cell done). ``data``: as the
    cell was scored on (``train.protocol_data``: its labels are the ``label`` column of ``predictions.csv``, or the
    ``label_<name>`` columns of a multi-label task: ``tasks.Task.prediction_record``)."""
    predictions = pd.DataFrame({"id": data.test.ids, **get_task(data.task).prediction_record(
        data.test.labels.numpy(), result.test.outputs, data.label_names)})
    write_table(folder / "predictions.csv", predictions)
    write_table(folder / "curves.csv", pd.DataFrame(result.curves))
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
    if record is not None and record["status"] == "done":
        progress.skip(cell.label, seed)
        return record
    note = (stale_note(out, cell, seed) if record is None
            else f"failed in an earlier run ({record.get('error')}); trying again")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "config.json", {**cell.as_dict(), "seed": seed})
    with progress.cell(cell.label, seed, cell.protocol.max_epochs, get_task(data.task).main_metric) as report:
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
    return store_cell(folder, cell, seed, protocol_data(data, cell.protocol), result, device)  # labels as scored
