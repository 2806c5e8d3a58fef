"""A run folder as the report reads it: ``runs.csv``, ``meta.json`` and each cell's stored files.

``load_run(path)`` checks that ``path`` is a ``benchmarks.run`` output folder (one line of error otherwise) and
returns its records; ``cell_files`` gathers one kind of per-cell CSV (``predictions.csv``, ``curves.csv``) into one
long-form frame with ``fusion`` and ``seed`` columns added, since the files themselves do not hold them. Every file
is read through ``records.schema``: records of an older schema version are upgraded, a newer one is refused with
one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from records.layout import cell_dir
from records.schema import read_document, read_table, record_version
from tasks import get_task, list_metrics, task_of_columns


@dataclass
class RunFolder:
    """A loaded run folder. ``records``: ``runs.csv``, one row per (fusion, seed) [and modality setting];
    ``meta``: ``meta.json`` (empty when absent); ``task``: the registered task of the records (``tasks``), from
    their ``task`` column, or from their metric columns for records written before they had one."""

    path: Path
    records: pd.DataFrame
    meta: dict
    task: str

    @property
    def fusions(self) -> list[str]:
        """The fusions in order of first appearance in ``runs.csv``."""
        return list(dict.fromkeys(self.records["fusion"]))

    def cell_folder(self, row) -> Path:
        """The cell folder of one record (a row of ``records`` or a dict with fusion, config_hash, seed)."""
        return cell_dir(self.path, row["fusion"], row["config_hash"], int(row["seed"]))


def load_run(path: str | Path) -> RunFolder:
    """Read a run folder; ``FileNotFoundError`` / ``ValueError`` with one clear line when it is not one
    (``records.schema.SchemaError``: written by a newer schema version, or a required column missing). The
    metrics of failed cells (:func:`failed_cells`) are NaN in the returned records."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"results folder {path} does not exist; pass the --out folder of benchmarks.run")
    runs = path / "runs.csv"
    if not runs.is_file():
        raise FileNotFoundError(f"{path} holds no runs.csv; pass the --out folder of a finished benchmarks.run")
    records = read_table(runs)
    if records.empty:
        raise ValueError(f"{runs} holds no records; pass the --out folder of a finished benchmarks.run")
    try:
        task = _records_task(records)
        records_protocol(records)
    except ValueError as error:
        raise ValueError(f"{runs}: {error}") from None
    metrics = [m for m in list_metrics() if m in records.columns]
    records.loc[failed_cells(records), metrics] = float("nan")  # a failed cell has no result, whatever the file holds
    meta_path = path / "meta.json"
    meta = read_document(meta_path) if meta_path.is_file() else {}
    return RunFolder(path=path, records=records, meta=meta, task=task)


def _records_task(records: pd.DataFrame) -> str:
    """The one registered task named in the ``task`` column, else :func:`tasks.task_of_columns`. Raises
    ValueError for several tasks, an unknown one, or no metric column."""
    if "task" not in records.columns:
        return task_of_columns(records.columns)
    names = list(dict.fromkeys(records["task"].astype(str)))
    if len(names) != 1:
        raise ValueError(f"the records mix the tasks {', '.join(names)}; a run folder holds one task")
    return get_task(names[0]).name


def records_protocol(records: pd.DataFrame) -> str:
    """The one training protocol of ``records`` (their ``protocol`` column; ``"shared"`` for records written
    before it). Raises ValueError (one line) when the records mix protocols: a table or a test across protocols
    would compare trainings, not fusions; each protocol's run goes in its own ``--out`` folder."""
    if "protocol" not in records.columns:
        return "shared"
    names = list(dict.fromkeys(records["protocol"].fillna("shared").astype(str)))
    if len(names) > 1:
        raise ValueError(f"the records mix the protocols {', '.join(names)}; tabulate each protocol's records "
                         f"apart (run each --protocol into its own --out folder)")
    return names[0] if names else "shared"


def failed_cells(records: pd.DataFrame) -> pd.Series:
    """``[rows]`` booleans: the records of cells whose training failed (``status`` "failed" in ``runs.csv``; their
    metrics are NaN and they store no predictions or checkpoint). Records read by :func:`load_run` always have
    ``status`` (``records.schema`` upgrades files written before cells could fail); a frame built without the
    column counts as all done."""
    if "status" not in records.columns:
        return pd.Series(False, index=records.index)
    return records["status"].eq("failed")


def sample_comparable(records: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The records whose cells were tested on the run's own labels, and a note naming the others.

    A cell trained and tested on transformed labels (``labels`` other than "raw", e.g. "rounded": the reference
    protocol's Acc-7 cell, ``<label>[acc7]``) scores other targets for the same samples, so it takes no part in
    the per-sample tests and the probes (its row stays in every table). Records without a ``labels`` column are
    all on the raw labels.
    """
    if "labels" not in records.columns:
        return records, ""
    other = records["labels"].fillna("raw").ne("raw")
    if not other.any():
        return records, ""
    names = ", ".join(f"{fusion}: trained and tested on {labels} labels" for fusion, labels in
                      dict.fromkeys(zip(records.loc[other, "fusion"], records.loc[other, "labels"])))
    return records[~other], f"{names}, so not compared sample by sample"


def failure_lines(records: pd.DataFrame) -> list[str]:
    """One line per failed cell: ``"<fusion> seed <k> failed: <error>"`` (the ``error`` column when present)."""
    failed = records[failed_cells(records)]
    errors = failed["error"] if "error" in failed.columns else pd.Series("", index=failed.index)
    return [f"{row['fusion']} seed {int(row['seed'])} failed" + (f": {error}" if isinstance(error, str) and error
                                                                   else "")
            for (_, row), error in zip(failed.iterrows(), errors)]


def primary_setting(records: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The records the seed-paired statistics run on, and a note when some were set aside.

    Paired tests need one row per (fusion, seed). A folder holding several modality settings (e.g. mfeat subsets)
    has more; then the setting with the most modalities (the most rows among those) is kept, and the others
    appear only in the accuracy-against-modalities figure.
    """
    if "modalities" not in records.columns or not records.duplicated(["fusion", "seed"]).any():
        return records, ""
    settings = records.groupby("modalities").agg(n=("n_modalities", "first"), rows=("fusion", "size"))
    chosen = settings.sort_values(["n", "rows"], ascending=False, kind="stable").index[0]
    kept = records[records["modalities"] == chosen]
    if kept.duplicated(["fusion", "seed"]).any():
        raise ValueError(f"runs.csv repeats a (fusion, seed) pair for modalities {chosen!r}")
    note = (f"runs.csv holds {len(settings)} modality settings; the statistics use modalities {chosen} "
            f"({len(kept)} of {len(records)} records)")
    return kept.reset_index(drop=True), note


def cell_files(run: RunFolder, records: pd.DataFrame, name: str) -> tuple[pd.DataFrame, list[str]]:
    """One per-cell CSV (``"predictions.csv"`` or ``"curves.csv"``) of every record, stacked long-form.

    Returns the frame (the file's columns after ``fusion`` and ``seed``; empty when no cell has the file) and the
    cells that lack it, as ``"<fusion> seed <k>"``. Each file is read at its cell's schema version
    (``records.schema.record_version``); ``SchemaError`` for a cell of a newer version.
    """
    frames, missing = [], []
    for _, row in records.iterrows():
        folder = run.cell_folder(row)
        if not (folder / name).is_file():
            missing.append(f"{row['fusion']} seed {int(row['seed'])}")
            continue
        frame = read_table(folder / name, record_version(folder))
        frame.insert(0, "seed", int(row["seed"]))
        frame.insert(0, "fusion", row["fusion"])
        frames.append(frame)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), missing
