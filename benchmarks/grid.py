"""The runner's (fusion x seed) grid shared through an Optuna study: ``python -m benchmarks.run ... --storage URL``.

Every machine runs the same command with the same ``--storage`` (and ``--study-name``; by default the study is
named after the grid, so the same command finds the same study). Each cell is a unit of
``benchmarks.workqueue``: the first process to arrive adds one WAITING trial per cell, exactly one worker
claims each and trains it with ``run_cell`` (its files under that worker's ``--out``), and the cell's record
goes into the study as the trial's user attribute ``record``. A cell that fails (it raises, or its training
diverges) is retried up to ``max_retries`` times, and so is one whose worker stops sending heartbeats. A worker
claims cells until none is left, then waits for the cells others are running (taking over any whose worker
died), then writes ``runs.csv`` from the study — every cell's record, whichever machine trained it, a failed
cell's with ``status`` "failed" — and the tables, figure and report, like a local run, ending with
``CellsFailed`` when a cell failed. The same command run later anywhere trains nothing and writes them there;
a cell whose retries are spent is not tried again in that study.

A unit is named after the cell's folder, ``<label>-<config hash>/seed<k>``, and the hash covers everything that
determines a result (configuration, data fingerprint, autocast, code version: ``CellConfig.hash``), so a study
never hands out a record computed from other inputs: changed inputs are other units (and, by default, another
study). When a named study holds cells of the same fusions and seeds from other inputs, the run says so.
"""

from __future__ import annotations

import hashlib
import json
import time

import pandas as pd
from optuna.trial import TrialState

from records.schema import upgrade_record, write_table

from .cells import changed_inputs, failed_record, run_cell
from .config import CellConfig
from .experiment import RunSpec
from .progress import Progress
from .run_folder import finish_run, prepare_run, raise_failed
from .studies import StorageSpec, open_study
from .workqueue import ERROR, UNIT, enqueue, last_attempts, work

RECORD = "record"


class CellFailedError(RuntimeError):
    """A grid cell's attempt failed (its record, status "failed", is in the trial); the unit is retried."""


def unit_name(cell: CellConfig, seed: int) -> str:
    """A cell's unit name: its folder under ``--out`` (``<label>-<config hash>/seed<k>``)."""
    return f"{cell.label}-{cell.hash}/seed{seed}"


def grid_study_name(dataset: str, names: list[str]) -> str:
    """The default study of a grid: the dataset and a digest of its cells."""
    return f"grid-{dataset}-{hashlib.sha256(' '.join(sorted(names)).encode()).hexdigest()[:10]}"


def stale_units(study, units: dict[str, dict]) -> str | None:
    """One line when ``study`` holds units of the same fusions and seeds as ``units`` (name: user attributes
    with ``fusion``, ``seed``, ``config``) computed from other inputs, naming what changed; else None."""
    wanted = {(attrs["fusion"], attrs["seed"]): attrs["config"] for attrs in units.values()}
    changed = set()
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        key = (attrs.get("fusion"), attrs.get("seed"))
        if attrs.get(UNIT) not in units and key in wanted and "config" in attrs:
            changed.update(changed_inputs(attrs["config"], wanted[key]))
    if not changed:
        return None
    return (f"study {study.study_name!r} holds results of these fusions and seeds from other inputs "
            f"({', '.join(sorted(changed))}); they are trained anew")


def run_grid(
    spec: RunSpec, storage: StorageSpec, study_name: str | None = None, quiet: bool = False, report: bool = True,
) -> pd.DataFrame:
    """Work on the grid of ``spec`` in ``storage`` with every other worker that runs it, then write and return
    the records of all its cells (raises ``CellsFailed`` after writing them when some cells failed)."""
    started = time.perf_counter()
    run = prepare_run(spec, storage=storage.describe())
    cells = {
        unit_name(cell, seed): (cell, seed)
        for cell in run.cells if cell.label not in run.invalid for seed in spec.seeds
    }
    name = study_name or grid_study_name(spec.dataset, list(cells))
    study = open_study(storage, name)
    units = {
        unit: {"fusion": cell.label, "seed": seed, "config_hash": cell.hash, "config": cell.as_dict()}
        for unit, (cell, seed) in cells.items()
    }
    progress = Progress(quiet=quiet, total=len(cells))
    for label, error in run.invalid.items():
        progress.say(f"{label}: configuration error, its cells are not run: {error}")
    stale = stale_units(study, units)
    if stale:
        progress.say(stale)
    enqueue(study, units)

    def attempt(trial) -> float:
        cell, seed = cells[trial.user_attrs[UNIT]]
        trial.set_user_attr("out", str(run.out.resolve()))
        record = json.loads(json.dumps(run_cell(cell, seed, run.data, run.out, run.device, progress), default=str))
        trial.set_user_attr(RECORD, record)  # as record.json holds it
        if record["status"] == "failed":
            raise CellFailedError(record["error"])
        return record["valid_loss"]

    work(study, list(cells), attempt, storage.retry())
    latest = last_attempts(study, cells)
    records = []
    for cell in run.cells:
        if cell.label in run.invalid:
            records += run.failed_records(cell, spec.seeds)
            continue
        for seed in spec.seeds:
            last = latest[unit_name(cell, seed)]
            record = last.user_attrs.get(RECORD)
            if record is not None:  # stored by the worker that ran it, perhaps of another fusionbench version
                record = upgrade_record(record, f"trial {last.number} of study {name!r}")
            if last.state != TrialState.COMPLETE and (record is None or record.get("status") != "failed"):
                error = last.user_attrs.get(ERROR, "its worker stopped sending heartbeats")
                record = failed_record(cell, seed, run.data, run.device, error)
            records.append(record)
    frame = pd.DataFrame(records)
    write_table(run.out / "runs.csv", frame)
    finish_run(run, frame, quiet, report)
    if not quiet:
        print(f"{len(cells)} cells of study {name!r} gathered in {time.perf_counter() - started:.1f} s; "
              f"records in {run.out / 'runs.csv'}")
    raise_failed(frame, run.out / "runs.csv", f"each was tried {storage.max_retries + 1} times in study {name!r} "
                                 f"({storage.describe()}); another --study-name tries them again")
    return frame
