"""What only the experiment layer writes: torch files (checkpoints, training states) and a command's metadata.

``atomic_torch_save`` writes through ``records.io.atomic_path`` like every other file of the suite (a killed run
never leaves a half-written checkpoint under its final name); ``run_metadata`` is the content of ``meta.json``
(schema ``meta.json`` of ``records.schema``). The folders and files of a run are described in
``records.layout`` and ``records.schema``.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import torch

from records.io import atomic_path
from records.schema import document_stamp


def atomic_torch_save(value, path: Path) -> None:
    """``torch.save(value)`` to ``path`` atomically."""
    with atomic_path(path) as temporary:
        torch.save(value, temporary)


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
    """What makes a run reproducible (``meta.json``): command, versions, git commit, device, host, UTC time, plus
    ``extra``, stamped with its schema version."""
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
        "schema": document_stamp("meta.json"),
    }
