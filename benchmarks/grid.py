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

``--workers K`` (``benchmarks.workers``): K processes of this machine work on the grid as K machines would; the
parent prepares the run, adds the units, shows one line per cell started, done or failed, and gathers the
records. Without ``--storage`` the study lives in the run folder's journal file ``grid.journal`` (a killed
worker's cell is taken over at once: its claim lock is free), so the same command resumes it after a crash.
An interrupted attempt (Ctrl-C) is handed back, not failed (``benchmarks.workqueue``): it costs no retry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time

import optuna
import pandas as pd
import torch
from optuna.trial import FrozenTrial, TrialState

from records.schema import upgrade_record, write_table
from tasks import get_task

from .cells import changed_inputs, failed_record, run_cell
from .config import CellConfig
from .experiment import RunSpec
from .journal_claims import Claims
from .progress import Progress
from .run_folder import PreparedRun, finish_run, prepare_run, raise_failed
from .studies import StorageSpec, open_study
from .workers import WorkerPlan, run_workers
from .workqueue import ERROR, UNIT, WORKER, attempts, enqueue, last_attempts, work

RECORD = "record"


class CellFailedError(RuntimeError):
    """A grid cell's attempt failed (its record, status "failed", is in the trial); the unit is retried."""


def unit_name(cell: CellConfig, seed: int) -> str:
    """A cell's unit name: its folder under ``--out`` (``<label>-<config hash>/seed<k>``)."""
    return f"{cell.label}-{cell.hash}/seed{seed}"


def grid_study_name(dataset: str, names: list[str]) -> str:
    """The default study of a grid: the dataset and a digest of its cells."""
    return f"grid-{dataset}-{hashlib.sha256(' '.join(sorted(names)).encode()).hexdigest()[:10]}"


def grid_units(run: PreparedRun, seeds: list[int]) -> dict[str, tuple[CellConfig, int]]:
    """The grid's units, name -> (cell, seed): every seed of every cell whose configuration fits the data."""
    return {unit_name(cell, seed): (cell, seed) for cell in run.cells if cell.label not in run.invalid
            for seed in seeds}


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


def work_on_grid(
    run: PreparedRun, cells: dict[str, tuple[CellConfig, int]], study: optuna.Study, storage: StorageSpec,
    progress: Progress,
) -> None:
    """Claim and train cells of the grid in this process (on ``run.device``) until none is left to claim or to
    wait for. Each attempt's trial gets the user attributes ``out`` (this run folder), ``device`` and
    ``threads`` (torch CPU threads) and, when it ends, ``record`` (the cell's record as ``record.json`` holds it)."""

    def attempt(trial) -> float:
        cell, seed = cells[trial.user_attrs[UNIT]]
        trial.set_user_attr("out", str(run.out.resolve()))
        trial.set_user_attr("device", str(run.device))
        trial.set_user_attr("threads", torch.get_num_threads())
        record = json.loads(json.dumps(run_cell(cell, seed, run.data, run.out, run.device, progress), default=str))
        trial.set_user_attr(RECORD, record)  # as record.json holds it
        if record["status"] == "failed":
            raise CellFailedError(record["error"])
        return record["valid_loss"]

    work(study, list(cells), attempt, storage.retry(), claims=Claims.of(storage))


def grid_worker(device: str, run: PreparedRun, seeds: list[int], storage: StorageSpec, name: str) -> None:
    """One worker process of ``run_grid`` (``benchmarks.workers.run_workers``): ``work_on_grid`` for the
    prepared ``run`` (its data shared with the parent) on ``device``, in its own connection to the study,
    reporting nothing itself (the parent shows the study's progress)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = dataclasses.replace(run, experiment=dataclasses.replace(run.experiment, device=torch.device(device)))
    work_on_grid(run, grid_units(run, seeds), open_study(storage, name), storage, Progress(quiet=True))


class GridMonitor:
    """The parent's view of a grid that worker processes train: ``tick`` says one line per attempt started,
    per cell done (``[done/total]``, its test score, device and training time) and per attempt failed."""

    def __init__(self, study: optuna.Study, cells: dict[str, tuple[CellConfig, int]], progress: Progress,
                 task: str, max_retries: int):
        self.study, self.cells, self.progress, self.max_retries = study, cells, progress, max_retries
        self.metric = get_task(task).main_metric
        self.started: set[int] = set()
        self.ended: set[int] = set()
        chains = self.chains()
        for chain in chains.values():
            self.ended.update(trial.number for trial in chain if trial.state.is_finished())
        self.done = sum(chain[-1].state == TrialState.COMPLETE for chain in chains.values())
        if self.done:
            progress.say(f"{self.done} of {len(cells)} cells already done in study {study.study_name!r}")

    def chains(self) -> dict[str, list[FrozenTrial]]:
        """Each unit's chain of attempts (``workqueue.attempts``)."""
        every = attempts(self.study.get_trials(deepcopy=False))
        return {name: every[name] for name in self.cells if name in every}

    def work_left(self) -> bool:
        """Whether a unit's latest attempt waits or runs."""
        return any(chain[-1].state in (TrialState.WAITING, TrialState.RUNNING) for chain in self.chains().values())

    def tick(self) -> None:
        for name, chain in self.chains().items():
            cell, seed = self.cells[name]
            for k, trial in enumerate(chain, 1):
                if trial.number in self.ended:
                    continue
                what = f"{cell.label} seed {seed}"
                running = trial.state == TrialState.RUNNING and WORKER in trial.user_attrs
                if running and trial.number not in self.started:
                    self.started.add(trial.number)
                    retry = f" (attempt {k})" if k > 1 else ""
                    self.progress.say(f"{what}: started{retry} by worker {trial.user_attrs[WORKER]}")
                elif trial.state == TrialState.COMPLETE:
                    self.ended.add(trial.number)
                    self.done += 1
                    record = trial.user_attrs.get(RECORD, {})
                    self.progress.say(f"[{self.done}/{len(self.cells)}] {what}: done on {record.get('device')}, test "
                                      f"{self.metric} {record.get(self.metric, float('nan')):.4f}, "
                                      f"{record.get('train_seconds', float('nan')):.1f} s of training")
                elif trial.state == TrialState.FAIL:
                    self.ended.add(trial.number)
                    error = trial.user_attrs.get(ERROR, "its worker stopped sending heartbeats")
                    then = "it is tried again" if k <= self.max_retries else "no retries left"
                    self.progress.say(f"{what}: attempt {k} failed ({error}); {then}")


def run_grid(
    spec: RunSpec, storage: StorageSpec, study_name: str | None = None, quiet: bool = False, report: bool = True,
    workers: WorkerPlan | None = None,
) -> pd.DataFrame:
    """Work on the grid of ``spec`` in ``storage`` with every other worker that runs it, then write and return
    the records of all its cells (raises ``CellsFailed`` after writing them when some cells failed).

    ``workers``: train in that many processes of this machine (``benchmarks.workers``), then take over in this
    process whatever they left (every worker died); None: train in this process."""
    started = time.perf_counter()
    run = prepare_run(spec, storage=storage.describe(), **({"workers": workers.describe()} if workers else {}))
    cells = grid_units(run, spec.seeds)
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
    if workers is not None:
        monitor = GridMonitor(study, cells, progress, run.data.task, storage.max_retries)
        progress.say(f"{workers.count} workers ({', '.join(workers.devices)}; {workers.threads} CPU thread(s) each) "
                     f"on study {name!r} ({storage.describe()})")
        run_workers(workers, grid_worker, (run, spec.seeds, storage, name), work_left=monitor.work_left,
                    tick=monitor.tick, say=progress.say)
    work_on_grid(run, cells, study, storage, progress)
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
