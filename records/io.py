"""Atomic writes: every file of the suite is written to a temporary name in its folder and renamed.

A killed run, a full disk or an exception half-way through a write never leaves a half-written file under a final
name: the final name holds either the previous file or the new one (``os.replace`` is atomic on one file system),
and the temporary file is removed. Temporary names are unique (``tempfile.mkstemp``), so two processes writing
the same file never write into each other's temporary file; the last rename wins.

``atomic_path`` is the one mechanism; ``atomic_write_text``, ``atomic_write_json`` and ``atomic_write_csv`` are
the formats the suite writes, and writers of other formats build on it (``benchmarks.store.atomic_torch_save``
for checkpoints, ``analysis.plots.save_figure`` for figures). ``check_writable`` tells a command, before it
starts any work, that its output folder cannot be written.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

__all__ = ["atomic_path", "atomic_write_csv", "atomic_write_json", "atomic_write_text", "check_writable"]


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the body ends without an exception.

    The parent folder is created. ``suffix`` ends the temporary name (a writer that picks its format from the
    file name, e.g. matplotlib, gets the real suffix this way). On an exception the temporary file is removed,
    ``path`` is left as it was, and the exception propagates; ``OSError`` when the folder cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, value) -> None:
    """Write ``value`` as indented JSON (anything ``json`` cannot encode as its ``str``) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(value, indent=2, default=str) + "\n")


def atomic_write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` as CSV (header, no index) to ``path`` atomically."""
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)


def check_writable(out: str | Path) -> None:
    """Raise ``OSError`` with a clear message when the folder ``out`` cannot be created or written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as error:
        raise OSError(
            f"output folder {out} is not writable ({error.strerror or error}); choose another --out"
        ) from None
