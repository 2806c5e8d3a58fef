"""The runner's (fusion x seed) grid shared through an Optuna study: ``python -m benchmarks.run ... --storage URL``.

Every machine runs the same command with the same ``--storage`` (and ``--study-name``; by default the study is
named after the grid, so the same command finds the same study). Each cell is a unit of
``benchmarks.workqueue``: the first process to arrive adds one WAITING trial per cell, exactly one worker
claims each and trains it with ``run_cell`` (its files under that worker's ``--out``), and the cell's record
goes into the study as the trial's user attribute ``record``. A cell that raises is retried up to
``max_retries`` times, and so is one whose worker stops sending heartbeats. A worker claims cells until none
is left, then waits for the cells others are running (taking over any whose worker died), then writes
``runs.csv`` from the study — every cell's record, whichever machine trained it — and the tables, figure and
report, like a local run. The same command run later anywhere trains nothing and writes them there.
"""

from __future__ import annotations

import hashlib
import json
import time

import pandas as pd
from optuna.trial import TrialState

from .config import CellConfig
from .progress import Progress
from .run import RunSpec, finish_run, prepare_run, run_cell
from .store import atomic_write_csv
from .studies import StorageSpec, open_study
from .workqueue import ERROR, UNIT, enqueue, last_attempts, work

RECORD = "record"


class GridIncomplete(ValueError):
    """Cells that failed on every attempt; ``runs.csv`` holds the others."""


def unit_name(cell: CellConfig, seed: int) -> str:
    """A cell's unit name: its folder under ``--out`` (``<label>-<config hash>/seed<k>``)."""
    return f"{cell.label}-{cell.hash}/seed{seed}"


def grid_study_name(dataset: str, names: list[str]) -> str:
    """The default study of a grid: the dataset and a digest of its cells."""
    return f"grid-{dataset}-{hashlib.sha256(' '.join(sorted(names)).encode()).hexdigest()[:10]}"


def run_grid(
    spec: RunSpec, storage: StorageSpec, study_name: str | None = None, quiet: bool = False, report: bool = True,
) -> pd.DataFrame:
    """Work on the grid of ``spec`` in ``storage`` with every other worker that runs it, then write and return
    the records of all its cells (raises ``GridIncomplete`` after writing them when some cells failed)."""
    started = time.perf_counter()
    cells = {}
    device, out, data, configs = prepare_run(spec, storage=storage.describe())
    for cell in configs:
        for seed in spec.seeds:
            cells[unit_name(cell, seed)] = (cell, seed)
    name = study_name or grid_study_name(spec.dataset, list(cells))
    study = open_study(storage, name)
    enqueue(study, {
        unit: {"fusion": cell.label, "seed": seed, "config_hash": cell.hash, "config": cell.as_dict()}
        for unit, (cell, seed) in cells.items()
    })
    progress = Progress(quiet=quiet, total=len(cells))

    def run(trial) -> float:
        cell, seed = cells[trial.user_attrs[UNIT]]
        trial.set_user_attr("out", str(out.resolve()))
        record = run_cell(cell, seed, data, out, device, spec.amp, progress)
        trial.set_user_attr(RECORD, json.loads(json.dumps(record, default=str)))  # as record.json holds it
        return record["valid_loss"]

    work(study, list(cells), run, storage.retry())
    latest = last_attempts(study, cells)
    done = [unit for unit in cells if latest[unit].state == TrialState.COMPLETE]
    frame = pd.DataFrame([latest[unit].user_attrs[RECORD] for unit in done])
    atomic_write_csv(out / "runs.csv", frame)
    failed = [f"{unit} ({latest[unit].user_attrs.get(ERROR, 'no heartbeat')})" for unit in cells if unit not in done]
    if failed:
        raise GridIncomplete(
            f"{len(failed)} of {len(cells)} cells failed after {storage.max_retries} retries: {'; '.join(failed)}; "
            f"{out / 'runs.csv'} holds the {len(done)} others (study {name!r} in {storage.describe()})"
        )
    finish_run(out, frame, data.task, quiet, report)
    if not quiet:
        print(f"{len(cells)} cells of study {name!r} gathered in {time.perf_counter() - started:.1f} s; "
              f"records in {out / 'runs.csv'}")
    return frame
