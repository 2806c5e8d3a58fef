"""Records on disk: atomic writes, the cell folder layout, and run metadata.

A run folder (``--out``) holds ``meta.json`` (command, package versions, git commit, device, time),
``runs.csv`` (one row per fusion x seed), ``table.tex`` / ``table.md`` / figures, and one folder per cell:

    cells/<fusion>-<config_hash>/seed<k>/
        config.json       the cell's configuration (``CellConfig.as_dict`` and the seed), written first
        record.json       the cell's row of runs.csv; written last: with ``status`` "done" it marks the cell
                          done, with "failed" (the ``error``, NaN metrics) a cell to try again
        predictions.csv   per test sample: id, label, prediction (regression) or predicted class + logits
        curves.csv        per epoch: train/valid loss, valid metrics, learning rate, seconds
        checkpoint.pt     best-validation weights with what is needed to rebuild the model
        state.pt          resumable training state while the cell runs (removed when it is done; kept when it
                          failed, so that a retry resumes from its last finished epoch)

A cell that failed in training has only ``config.json``, ``record.json`` and perhaps ``state.pt`` (one whose
configuration does not fit the data has no folder: its record is in runs.csv). The ``config_hash`` covers
everything that determines a result (``benchmarks.config``), so a folder never holds a result of other inputs.

Every file is written to a temporary name in the same folder and renamed, so a killed run never leaves a
half-written file under a final name.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch


@contextmanager
def _atomic_path(path: Path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def atomic_write_text(path: Path, text: str) -> None:
    with _atomic_path(path) as temporary:
        temporary.write_text(text)


def atomic_write_json(path: Path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, default=str) + "\n")


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    with _atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)


def atomic_torch_save(value, path: Path) -> None:
    with _atomic_path(path) as temporary:
        torch.save(value, temporary)


def cell_dir(out: Path, fusion: str, config_hash: str, seed: int) -> Path:
    """The folder of one (fusion, configuration, seed) cell."""
    return Path(out) / "cells" / f"{fusion}-{config_hash}" / f"seed{seed}"


def read_record(folder: Path) -> dict | None:
    """The cell's record (done or failed, see ``status``; a record without one is done), or None when the
    cell has not ended."""
    path = Path(folder) / "record.json"
    return json.loads(path.read_text()) if path.exists() else None


def check_writable(out: Path) -> None:
    """Raise ``OSError`` with a clear message when ``out`` cannot be created or written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as error:
        raise OSError(
            f"output folder {out} is not writable ({error.strerror or error}); choose another --out"
        ) from None


def _git_commit() -> dict:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()
        return {"commit": commit, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _versions() -> dict:
    packages = ["torch", "numpy", "pandas", "scipy", "scikit-learn", "optuna", "seaborn", "cmu-multimodal-sdk"]
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def device_description(device: torch.device) -> str:
    """The accelerator's name, or the CPU's model and the thread count torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({torch.get_num_threads()} threads)"


def run_metadata(device: torch.device, **extra) -> dict:
    """What makes a run reproducible: command, versions, git commit, device, host, UTC time, plus ``extra``."""
    return {
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_description(device),
        "git": _git_commit(),
        "versions": _versions(),
        **extra,
    }
