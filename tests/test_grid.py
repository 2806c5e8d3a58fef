"""Units shared through an Optuna study (benchmarks.workqueue) and the runner's grid on it (benchmarks.grid):
each unit runs once, failures are retried a bounded number of times, dead workers' units are taken over; with
FUSIONBENCH_PG_URL, real worker processes on PostgreSQL, one of them killed midway."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from benchmarks.cli import run_cli
from benchmarks.experiment import RunSpec
from benchmarks.grid import RECORD, run_grid
from benchmarks.journal_claims import Claims
from benchmarks.run import main, run_benchmark
from benchmarks.studies import StorageSpec, open_study
from benchmarks.workqueue import ERROR, UNIT, WORKER, attempts, enqueue, last_attempts, work
from tasks import get_task
from tests.test_run import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(folder: Path, epochs: int = 2) -> Path:
    path = folder / f"tiny{epochs}.toml"
    path.write_text(TINY_CONFIG.replace("max_epochs = 2", f"max_epochs = {epochs}"))
    return path


def queue(tmp_path, names, heartbeat: int = 30, max_retries: int = 2):
    storage = StorageSpec(url=f"sqlite:///{tmp_path / 'units.db'}", heartbeat=heartbeat, max_retries=max_retries)
    study = open_study(storage, "units")
    enqueue(study, {name: {} for name in names})
    return storage, study


def test_each_unit_runs_once_and_a_duplicate_is_dropped(tmp_path):
    storage, study = queue(tmp_path, ["a", "b", "c"])
    study.enqueue_trial({}, user_attrs={UNIT: "b"})  # as if a second process had added "b" at the same moment
    enqueue(study, {"a": {}, "d": {}})  # adding again adds only what is missing
    ran = []
    work(study, ["a", "b", "c", "d"], lambda trial: ran.append(trial.user_attrs[UNIT]) or 1.0, storage.retry())
    assert sorted(ran) == ["a", "b", "c", "d"]
    assert all(last.state == TrialState.COMPLETE for last in last_attempts(study, "abcd").values())
    duplicate = study.get_trials()[3]
    assert duplicate.state == TrialState.FAIL and "duplicate" in duplicate.user_attrs[ERROR]


def test_a_failing_unit_is_retried_a_bounded_number_of_times(tmp_path):
    storage, study = queue(tmp_path, ["good", "bad"], max_retries=2)

    def run(trial):
        if trial.user_attrs[UNIT] == "bad":
            raise RuntimeError("boom")
        return 0.5

    work(study, ["good", "bad"], run, storage.retry())
    chains = attempts(study.get_trials())
    assert [t.state for t in chains["good"]] == [TrialState.COMPLETE]
    assert [t.state for t in chains["bad"]] == [TrialState.FAIL] * 3  # the first attempt and 2 retries
    assert all(t.user_attrs[ERROR] == "RuntimeError: boom" for t in chains["bad"])
    assert [t.system_attrs.get("retry_history") for t in chains["bad"]] == [None, [1], [1, 2]]


def test_a_failure_whose_retry_was_never_queued_is_retried(tmp_path):
    """A worker that died between failing its unit and queueing the retry loses nothing."""
    storage, study = queue(tmp_path, ["x"])
    (trial,) = study.get_trials()
    study._storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    work(study, ["x"], lambda trial: 1.0, storage.retry())
    assert [t.state for t in attempts(study.get_trials())["x"]] == [TrialState.FAIL, TrialState.COMPLETE]


def test_a_dead_workers_unit_is_taken_over_after_the_grace_period(tmp_path):
    """A unit claimed by a worker that then went silent is failed after 3 missed heartbeats and run again."""
    storage, study = queue(tmp_path, ["x", "y"], heartbeat=1)
    dead = study.get_trials()[0]
    study._storage.record_heartbeat(dead._trial_id)
    study._storage.set_trial_state_values(dead._trial_id, TrialState.RUNNING)  # claimed, then silence
    started = time.monotonic()
    ran = []
    work(study, ["x", "y"], lambda trial: ran.append(trial.user_attrs[UNIT]) or 1.0, storage.retry())
    assert sorted(ran) == ["x", "y"] and time.monotonic() - started >= 3
    chain = attempts(study.get_trials())["x"]
    assert [t.state for t in chain] == [TrialState.FAIL, TrialState.COMPLETE]
    assert chain[1].system_attrs["retry_history"] == [dead.number]


def test_grid_on_sqlite_gives_the_records_of_a_local_run(tmp_path):
    config = tiny_config(tmp_path)
    storage = StorageSpec(url=f"sqlite:///{tmp_path / 'grid.db'}")
    spec = RunSpec(fusions=["grf", "concat"], seeds=[0, 1], config_file=str(config), device="cpu",
                   out=str(tmp_path / "worker"))
    shared = run_grid(spec, storage, quiet=True, report=False)
    local = run_benchmark(RunSpec(**{**spec.__dict__, "out": str(tmp_path / "local")}), quiet=True, report=False)
    columns = ["fusion", "seed", "config_hash", *get_task("sentiment").metrics, "epochs", "best_epoch"]
    pd.testing.assert_frame_equal(shared[columns], local[columns])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "worker" / "runs.csv")[columns], local[columns])

    again = run_grid(RunSpec(**{**spec.__dict__, "out": str(tmp_path / "late")}), storage, quiet=True, report=False)
    assert not (tmp_path / "late" / "cells").exists()  # a finished grid: nothing trained, records gathered
    pd.testing.assert_frame_equal(again[columns], local[columns])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--study-name", "x"], "--study-name needs --storage"),
        (["--storage", "nosuchdb://host/db"], "--storage nosuchdb://host/db: cannot open the database"),
        (["--storage", "sqlite:///no/such/folder/grid.db"], "cannot open the database"),
    ],
)
def test_bad_storage_flags_give_one_line(tmp_path, capsys, args, message):
    status = run_cli(main, ["--fusions", "concat", "--config", str(tiny_config(tmp_path)), "--out",
                            str(tmp_path / "out"), "--device", "cpu", "--quiet", *args])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and message in lines[0], lines


def start_worker(args: list[str], out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "benchmarks.run", *args, "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def done_cells(out: Path) -> set[str]:
    return {str(p.parent.relative_to(out / "cells")) for p in out.glob("cells/*/seed*/record.json")}


@pytest.fixture
def pg_study(pg_url):
    """A fresh study name in the PostgreSQL database, deleted afterwards."""
    name = f"test-grid-{uuid.uuid4().hex[:8]}"
    yield name
    storage = StorageSpec(url=pg_url).open()
    if name in [s.study_name for s in optuna.get_all_study_summaries(storage)]:
        optuna.delete_study(study_name=name, storage=storage)


def wait_for(condition, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


@pytest.mark.postgres
def test_postgres_two_workers_share_the_grid(tmp_path, pg_url, pg_study):
    """Two worker processes on one grid in PostgreSQL: every cell done exactly once, records in both runs.csv,
    and each worker trained at least one cell. That last part is made certain, not left to timing: worker A is
    frozen (SIGSTOP) inside its first cell until worker B has finished one; the 20-second heartbeat keeps A's
    claim from going stale meanwhile."""
    args = ["--fusions", "grf,concat", "--seeds", "3", "--config", str(tiny_config(tmp_path, epochs=3)),
            "--storage", pg_url, "--study-name", pg_study, "--heartbeat", "20", "--quiet", "--no-report"]
    a = start_worker(args, tmp_path / "m0")
    wait_for(lambda: list((tmp_path / "m0").glob("cells/*/seed*/config.json")), "worker A claims a cell")
    a.send_signal(signal.SIGSTOP)
    try:
        b = start_worker(args, tmp_path / "m1")
        wait_for(lambda: done_cells(tmp_path / "m1") or b.poll() is not None, "worker B finishes a cell")
    finally:
        a.send_signal(signal.SIGCONT)
    outputs = [worker.communicate(timeout=300) for worker in (a, b)]
    assert [worker.returncode for worker in (a, b)] == [0, 0], outputs

    study = optuna.load_study(study_name=pg_study, storage=StorageSpec(url=pg_url).open())
    latest = last_attempts(study, [t.user_attrs[UNIT] for t in study.get_trials()])
    assert len(latest) == 6 and all(t.state == TrialState.COMPLETE for t in latest.values())
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(complete) == 6  # no cell completed twice
    trained = [done_cells(tmp_path / f"m{k}") for k in range(2)]
    assert trained[0] and trained[1], trained  # both workers took part
    assert trained[0] | trained[1] == set(latest) and not trained[0] & trained[1]  # no cell trained twice
    for k in range(2):
        runs = pd.read_csv(tmp_path / f"m{k}" / "runs.csv")
        assert len(runs) == 6 and not runs.duplicated(["fusion", "seed"]).any()


def _race_for_the_unit(storage: StorageSpec, name: str, barrier, ran) -> None:
    """One worker process: open the study, wait for the others, then work on its single unit."""
    study = open_study(storage, name)
    barrier.wait(timeout=120)
    work(study, ["u"], lambda trial: ran.put(os.getpid()) or 1.0, storage.retry(), claims=Claims.of(storage))


def assert_one_worker_runs_the_waiting_unit(storage: StorageSpec, name: str, processes: int = 4) -> None:
    """``processes`` forked workers released at one instant on a study whose only unit is WAITING: exactly one
    runs it, and it ends COMPLETE."""
    enqueue(open_study(storage, name), {"u": {}})
    context = multiprocessing.get_context("fork")
    barrier, ran = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_race_for_the_unit, args=(storage, name, barrier, ran))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0] * processes
    winners = []
    while not ran.empty():
        winners.append(ran.get())
    assert len(winners) == 1, winners
    (trial,) = optuna.load_study(study_name=name, storage=storage.open()).get_trials()
    assert trial.state == TrialState.COMPLETE


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_workers_racing_for_one_waiting_unit_run_it_once(tmp_path, kind):
    """The losers see the unit RUNNING and look again after one heartbeat (1 s) until it is finished."""
    for repeat in range(5):
        storage = (StorageSpec(url=f"sqlite:///{tmp_path / f'race{repeat}.db'}", heartbeat=1) if kind == "sqlite"
                   else StorageSpec(journal=str(tmp_path / f"race{repeat}.journal")))
        assert_one_worker_runs_the_waiting_unit(storage, "race")


@pytest.mark.postgres
def test_postgres_workers_racing_for_one_waiting_unit_run_it_once(pg_url):
    names = [f"race-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    try:
        for name in names:
            assert_one_worker_runs_the_waiting_unit(StorageSpec(url=pg_url, heartbeat=1), name)
    finally:
        storage = StorageSpec(url=pg_url).open()
        for summary in optuna.get_all_study_summaries(storage):
            if summary.study_name in names:
                optuna.delete_study(study_name=summary.study_name, storage=storage)


@pytest.mark.postgres
def test_postgres_killed_workers_cell_is_finished_by_the_other(tmp_path, pg_url, pg_study):
    """Worker A is killed (SIGKILL) in the middle of a cell after finishing another; worker B, started then,
    runs the rest, waits for A's cell to go stale (3 missed 1-second heartbeats), and runs it again."""
    args = ["--fusions", "grf,concat", "--seeds", "2", "--config", str(tiny_config(tmp_path, epochs=8)),
            "--storage", pg_url, "--study-name", pg_study, "--heartbeat", "1", "--quiet", "--no-report"]
    a_out, b_out = tmp_path / "a", tmp_path / "b"
    a = start_worker(args, a_out)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not done_cells(a_out):
        time.sleep(0.05)
    while time.monotonic() < deadline and not list(a_out.glob("cells/*/seed*/state.pt")):
        time.sleep(0.05)  # the next cell has begun and stored an epoch
    a.send_signal(signal.SIGKILL)
    a.wait()
    a_done = done_cells(a_out)
    assert 1 <= len(a_done) < 4, "A was not killed in the middle of the grid"
    b = start_worker(args, b_out)
    stdout, stderr = b.communicate(timeout=300)
    assert b.returncode == 0, stderr

    study = optuna.load_study(study_name=pg_study, storage=StorageSpec(url=pg_url).open())
    trials = study.get_trials()
    killed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(killed) == 1 and killed[0].user_attrs[WORKER].endswith(f":{a.pid}") and ERROR not in killed[0].user_attrs
    retry = next(t for t in trials if t.system_attrs.get("retry_history") == [killed[0].number])
    assert retry.state == TrialState.COMPLETE and retry.user_attrs[WORKER].endswith(f":{b.pid}")
    assert retry.user_attrs[UNIT] == killed[0].user_attrs[UNIT] and killed[0].user_attrs[UNIT] in done_cells(b_out)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    assert not a_done & done_cells(b_out) and a_done | done_cells(b_out) == {t.user_attrs[UNIT] for t in trials}
    runs = pd.read_csv(b_out / "runs.csv")
    assert len(runs) == 4 and sorted(zip(runs.fusion, runs.seed)) == [("concat", 0), ("concat", 1), ("grf", 0),
                                                                     ("grf", 1)]
    records = {t.user_attrs[UNIT]: t.user_attrs[RECORD] for t in trials if t.state == TrialState.COMPLETE}
    assert sorted(records) == sorted(f"{r.fusion}-{r.config_hash}/seed{r.seed}" for r in runs.itertuples())
    assert json.loads((b_out / "cells" / retry.user_attrs[UNIT] / "record.json").read_text()) == records[
        retry.user_attrs[UNIT]]


@pytest.mark.postgres
def test_postgres_concurrent_enqueues_run_each_unit_once(pg_url, pg_study):
    """Two processes adding the same units at the same moment: each unit still runs exactly once."""
    names = [f"u{k}" for k in range(20)]
    barrier = threading.Barrier(2)

    def add() -> None:
        study = open_study(StorageSpec(url=pg_url), pg_study)
        barrier.wait()
        enqueue(study, {name: {} for name in names})

    threads = [threading.Thread(target=add) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    storage = StorageSpec(url=pg_url, heartbeat=1)
    study = open_study(storage, pg_study)
    ran = []
    work(study, names, lambda trial: ran.append(trial.user_attrs[UNIT]) or 1.0, storage.retry())
    assert sorted(ran) == sorted(names)
    for trial in study.get_trials():
        assert trial.state == TrialState.COMPLETE or "duplicate" in trial.user_attrs[ERROR]
