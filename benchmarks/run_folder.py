"""A run's folder around its cells: ``meta.json`` before them; ``runs.csv``, the tables, the per-seed figure and
the report after them; and the failure check that ends a run whose cells failed.

``prepare`` checks everything that can be checked before training (output folder, device, configuration,
data) and writes ``meta.json``; ``finish_run`` writes what is derived from the records; ``raise_failed`` ends the
run with ``CellsFailed`` when a cell failed. The local loop (``benchmarks.run``) and the shared grid
(``benchmarks.grid``) both go through them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from records.io import atomic_write_json, atomic_write_text, check_writable
from tasks import get_task

from .cells import failed_record
from .cli import CellsFailed, resolve_device
from .config import CellConfig
from .data import Dataset
from .experiment import Experiment, RunSpec
from .probes import measure_probes
from .probes.checkpoints import DatasetCache
from .protocols import with_rounded_cells
from .store import run_metadata


def write_summary(out: Path, records: pd.DataFrame, task: str, quiet: bool) -> None:
    """``table.tex``, ``table.md`` and the per-seed figure; the terminal table unless ``quiet``."""
    from analysis.plots import seed_distribution  # matplotlib only when summarising
    from analysis.tables import latex_table, markdown_table, terminal_table

    metrics, shown = list(get_task(task).metrics), list(get_task(task).shown_metrics)
    atomic_write_text(out / "table.tex", latex_table(records, metrics, caption=f"{records['dataset'].iloc[0]}"))
    atomic_write_text(out / "table.md", markdown_table(records, metrics))
    seed_distribution(records, shown[:4], out / "figures" / "seeds")
    if not quiet:
        print(terminal_table(records, shown))


@dataclass
class PreparedRun:
    """A run checked and ready to train: its ``experiment``, output folder ``out``, ``cells`` in the order of
    the fusions asked for; ``invalid``: the labels of cells whose configuration does not fit the data, with the
    reason (their cells fail without training)."""

    experiment: Experiment
    out: Path
    cells: list[CellConfig]
    invalid: dict[str, str]

    @property
    def data(self) -> Dataset:
        return self.experiment.data

    @property
    def device(self) -> torch.device:
        return self.experiment.device

    def failed_records(self, cell: CellConfig, seeds: list[int]) -> list[dict]:
        """The failed records of an invalid cell, one per seed."""
        error = f"configuration: {self.invalid[cell.label]}"
        return [failed_record(cell, seed, self.data, self.device, error) for seed in seeds]


def default_out(dataset: str) -> Path:
    """A run's output folder when ``--out`` is not given: ``results/<dataset>``."""
    return Path("results") / dataset


def prepare(experiment: Experiment, fusions: list, out: Path, spec: dict, **meta) -> PreparedRun:
    """Resolve the cells of ``fusions`` in ``experiment``, check they fit the data, and write
    ``<out>/meta.json`` (the ``spec`` as given, the ``protocol`` its cells train under, the data, every cell's
    configuration, the environment, ``meta``).
    A configuration that does not fit one fusion (``Experiment.configuration_error``) does not stop the
    others: that fusion's cells are listed in ``invalid``. Repeated labels raise ``ValueError``."""
    check_writable(out)
    cells = [experiment.cell(fusion) for fusion in fusions]
    labels = [cell.label for cell in cells]
    if len(set(labels)) != len(labels):
        raise ValueError(f"fusion labels must be distinct, got {labels}")
    invalid = {}
    for cell, fusion in zip(cells, fusions):
        error = experiment.configuration_error(fusion)
        if error is not None:
            invalid[cell.label] = error
    data = experiment.data
    atomic_write_json(out / "meta.json", run_metadata(
        experiment.device, spec=spec, protocol=", ".join(dict.fromkeys(cell.protocol.name for cell in cells)),
        dataset=experiment.described, data_summary=data.summary(),
        data_info=data.info, cells={cell.label: cell.as_dict() | {"config_hash": cell.hash} for cell in cells},
        invalid=invalid, torch_threads=torch.get_num_threads(), **meta,
    ))
    return PreparedRun(experiment, out, cells, invalid)


def prepare_run(spec: RunSpec, **meta) -> PreparedRun:
    """``prepare`` for a ``RunSpec``: checks the device and the output folder (``spec.out``, default
    ``results/<dataset>``) first, then builds the experiment (configuration and data, once). A fusion whose
    protocol asks for a rounded-label cell (the reference protocol's GRF) gets it as a second cell
    (``protocols.with_rounded_cells``)."""
    resolve_device(spec.device)
    out = Path(spec.out) if spec.out else default_out(spec.dataset)
    check_writable(out)
    experiment = Experiment.build(spec)
    return prepare(experiment, with_rounded_cells(experiment, spec.fusions), out, asdict(spec), **meta)


def finish_run(run: PreparedRun, records: pd.DataFrame, quiet: bool, report: bool) -> None:
    """The tables and figure of a run's records and, unless ``report`` is False, the probes of its stored
    checkpoints (``benchmarks.probes``: robustness and embeddings, as records) and the report that reads them;
    nothing when no cell is done (every one failed: the failure summary says why)."""
    if not records["status"].eq("done").any():
        return
    write_summary(run.out, records, run.data.task, quiet or report)  # the report prints its own, with markers
    if report:
        from analysis.report import write_report  # matplotlib and scikit-learn only when reporting

        measure_probes(run.out, device=run.device,  # the run's data, not read again
                       datasets=DatasetCache.holding(run.experiment.described, run.data))
        write_report(run.out, quiet=quiet)


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
