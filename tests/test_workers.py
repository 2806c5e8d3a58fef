"""``python -m benchmarks.run --workers K`` (benchmarks.workers, benchmarks.grid): K local processes share the
grid through a study; their records equal one process's; a worker killed with SIGKILL loses nothing; Ctrl-C
and a killed parent leave no process behind and spend no retry; the threads are split; the device of each
worker; bad flags in one line; an interrupted unit is handed back (benchmarks.workqueue)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState

from benchmarks.cli import UsageError, run_cli
from benchmarks.grid import RECORD
from benchmarks.journal_claims import Claims
from benchmarks.run import main
from benchmarks.studies import StorageSpec, open_study
from benchmarks.workers import thread_share, worker_devices
from benchmarks.workqueue import ERROR, UNIT, WORKER, attempts, enqueue, work
from tasks import get_task
from tests.test_run import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["fusion", "seed", "config_hash", "status", *get_task("sentiment").metrics, "epochs", "best_epoch"]


def config(folder: Path, epochs: int = 2, **protocol) -> Path:
    """The tiny configuration of tests/test_run.py with ``epochs`` (and patience) and ``protocol`` values."""
    text = TINY_CONFIG.replace("max_epochs = 2", f"max_epochs = {epochs}").replace("patience = 5",
                                                                                   f"patience = {epochs}")
    for key, value in protocol.items():
        text, found = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.MULTILINE)
        text = text if found else text.replace("[protocol]\n", f"[protocol]\n{key} = {value}\n")
    path = folder / f"config{epochs}.toml"
    path.write_text(text)
    return path


def journal_trials(out: Path) -> list:
    """Every trial of the studies in ``<out>/grid.journal`` (none before it exists)."""
    if not (out / "grid.journal").exists():
        return []
    storage = StorageSpec(journal=str(out / "grid.journal")).open()
    return [trial for name in optuna.get_all_study_names(storage)
            for trial in optuna.load_study(study_name=name, storage=storage).get_trials()]


def pid_of(trial) -> int:
    return int(trial.user_attrs[WORKER].rsplit(":", 1)[1])


# --- Which device and how many threads each worker gets ------------------------------------------------------


@pytest.mark.parametrize(
    "device, count, workers, per_device, expected",
    [
        ("cpu", 0, None, None, ["cpu"]),  # no flag: one process, as before
        ("cpu", 0, 3, None, ["cpu"] * 3),
        ("cuda", 2, None, 2, ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]),  # devices x cells per device
        ("cuda", 2, 3, None, ["cuda:0", "cuda:1", "cuda:0"]),  # round robin: fewer workers still use each device
        ("cuda", 4, 3, 1, ["cuda:0", "cuda:1", "cuda:2"]),
        ("cuda", 2, None, None, ["cuda:0"]),  # CUDA without the flags: one process, as before
        ("cuda:1", 2, None, 3, ["cuda:1"] * 3),  # a named device: that one only
    ],
)
def test_each_worker_gets_a_device(device, count, workers, per_device, expected):
    assert worker_devices(torch.device(device), count, workers, per_device) == expected


@pytest.mark.parametrize(
    "device, count, workers, per_device, message",
    [
        ("cpu", 0, 0, None, "--workers must be >= 1, got 0"),
        ("cpu", 0, None, 2, "--cells-per-device spreads cells over CUDA devices, but the device is cpu (no CUDA on "
                            "this machine); on the CPU use --workers K"),
        ("cpu", 2, 2, 1, "--cells-per-device spreads cells over CUDA devices, but the device is cpu; on the CPU"),
        ("cuda", 2, None, 0, "--cells-per-device must be >= 1, got 0"),
        ("cuda", 2, 5, 2, "--workers 5 does not fit --cells-per-device 2 on 2 CUDA device(s): at most 4 workers"),
    ],
)
def test_a_device_plan_that_does_not_fit_is_refused(device, count, workers, per_device, message):
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        worker_devices(torch.device(device), count, workers, per_device)


@pytest.mark.parametrize("total, workers, each", [(2, 2, 1), (2, 3, 1), (16, 4, 4), (16, 3, 5), (8, 1, 8)])
def test_the_threads_are_split_between_the_workers(total, workers, each):
    assert thread_share(total, workers) == each


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workers", "0"], "error: --workers must be >= 1, got 0"),
        (["--workers", "2", "--threads", "0"], "error: --threads must be >= 1, got 0"),
        (["--cells-per-device", "2", "--device", "cpu"],
         "error: --cells-per-device spreads cells over CUDA devices, but the device is cpu"),
        (["--workers", "2", "--storage", "sqlite://"], "error: --storage sqlite:// is a database in one process's "
                                                       "memory, which worker processes cannot share; give a file"),
        (["--workers", "2", "--storage", "sqlite:///:memory:"], "error: --storage sqlite:///:memory: is a database "
                                                                "in one process's memory"),
        (["--study-name", "x"], "error: --study-name needs --storage, or --workers of 2 or more"),
    ],
)
def test_bad_worker_flags_give_one_line(tmp_path, capsys, args, message):
    status = run_cli(main, ["--fusions", "concat", "--config", str(config(tmp_path)), "--out", str(tmp_path / "out"),
                            "--quiet", *(["--device", "cpu"] if "--device" not in args else []), *args])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith(message), lines
    assert not (tmp_path / "out" / "cells").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cells_per_device_without_cuda_gives_one_line(tmp_path, capsys):
    status = run_cli(main, ["--fusions", "concat", "--config", str(config(tmp_path)), "--out", str(tmp_path / "out"),
                            "--cells-per-device", "2"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and lines == ["error: --cells-per-device spreads cells over CUDA devices, but the device is "
                                     "cpu (no CUDA on this machine); on the CPU use --workers K"]


# --- The work queue: an interrupted unit is handed back --------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_an_interrupted_unit_is_handed_back_without_spending_a_retry(tmp_path, kind):
    """Ctrl-C (KeyboardInterrupt) in a unit: the worker stops, the unit waits again in the same trial (not
    FAIL with a retry queued), and the next worker runs it: one attempt in its chain."""
    storage = (StorageSpec(url=f"sqlite:///{tmp_path / 'units.db'}", heartbeat=1) if kind == "sqlite"
               else StorageSpec(journal=str(tmp_path / "units.journal")))
    study = open_study(storage, "units")
    enqueue(study, {"a": {}, "b": {}})

    def interrupted(trial):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        work(study, ["a", "b"], interrupted, storage.retry(), claims=Claims.of(storage))
    assert [t.state for t in study.get_trials()] == [TrialState.WAITING, TrialState.WAITING]
    ran = []
    work(study, ["a", "b"], lambda trial: ran.append(trial.user_attrs[UNIT]) or 1.0, storage.retry(),
         claims=Claims.of(storage))
    assert sorted(ran) == ["a", "b"]
    chains = attempts(study.get_trials())
    assert [[t.state for t in chain] for chain in chains.values()] == [[TrialState.COMPLETE]] * 2


# --- Real workers ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_workers_give_the_records_of_one_process(tmp_path, capsys, keep_threads):
    """A 4-cell grid in 2 worker processes (1 CPU thread each) and in this process with --threads 1: the same
    records, cell by cell; every cell trained in a worker (not in the parent), on the split threads."""
    args = ["--fusions", "grf,concat", "--seeds", "2", "--config", str(config(tmp_path)), "--device", "cpu",
            "--no-report", "--threads", "2"]
    assert run_cli(main, [*args, "--workers", "2", "--out", str(tmp_path / "two")]) == 0
    err = capsys.readouterr().err
    assert "2 workers (cpu, cpu; 1 CPU thread(s) each) on study 'grid-synthetic-" in err
    assert err.count(" s of training") == 4  # one line per cell as it is done
    assert run_cli(main, [*args[:-1], "1", "--out", str(tmp_path / "one")]) == 0
    two = pd.read_csv(tmp_path / "two" / "runs.csv")
    one = pd.read_csv(tmp_path / "one" / "runs.csv")
    assert len(two) == 4 and (two["status"] == "done").all()
    pd.testing.assert_frame_equal(two[COLUMNS], one[COLUMNS])

    trials = journal_trials(tmp_path / "two")
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert all(pid_of(t) != os.getpid() and t.user_attrs["threads"] == 1 and t.user_attrs["device"] == "cpu"
               for t in trials)
    assert sorted(t.user_attrs[RECORD]["mae"] for t in trials) == sorted(two["mae"])
    meta = json.loads((tmp_path / "two" / "meta.json").read_text())
    assert meta["workers"] == {"count": 2, "devices": ["cpu", "cpu"], "threads_each": 1}


@pytest.mark.slow
def test_cells_that_fail_in_the_workers_are_retried_and_set_the_exit_status(tmp_path, capsys):
    """A learning rate of 1e30 makes every cell diverge: each is tried 3 times in the workers, the records mark
    them failed, and the command ends with the failure summary and status 1."""
    args = ["--fusions", "concat", "--seeds", "2", "--config", str(config(tmp_path, warmup_epochs=0, lr=1e30)),
            "--device", "cpu", "--no-report", "--workers", "2", "--out", str(tmp_path / "out")]
    assert run_cli(main, args) == 1
    err = capsys.readouterr().err
    assert "error: 2 of 2 cells failed" in err and "each was tried 3 times in study" in err
    assert "concat seed 0: attempt 3 failed (CellFailedError: training diverged at epoch 1" in err
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(runs["status"]) == ["failed", "failed"]
    chains = attempts(journal_trials(tmp_path / "out"))
    assert [[t.state for t in chain] for chain in chains.values()] == [[TrialState.FAIL] * 3] * 2


def start(args: list[str], out: Path) -> subprocess.Popen:
    """``python -m benchmarks.run ARGS --out OUT`` in a session (and process group) of its own, as a terminal
    starts a foreground command."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FUSIONBENCH_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "benchmarks.run", *args, "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def wait_for(condition, what: str, command: subprocess.Popen | None = None, timeout: float = 240):
    """The first true value of ``condition()``, polled; fails after ``timeout`` seconds or when ``command`` ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (command is None or command.poll() is None):
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting until {what}" + (f": {command.communicate()}" if command else ""))


def mid_cell(out: Path):
    """A trial whose worker is training it and has stored an epoch (``state.pt``), or None."""
    return next((t for t in journal_trials(out) if t.state == TrialState.RUNNING and WORKER in t.user_attrs
                 and (out / "cells" / t.user_attrs[UNIT] / "state.pt").exists()), None)


def live_members(group: int) -> list[int]:
    """The processes of process group ``group`` that still run (zombies left out)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # it ended meanwhile
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


SLOW_GRID = ["--fusions", "concat", "--seeds", "4", "--workers", "2", "--device", "cpu", "--no-report"]
"""4 cells of a few seconds each (150 epochs): long enough to stop a worker in the middle of one."""


@pytest.mark.slow
def test_a_worker_killed_mid_cell_loses_nothing(tmp_path):
    """SIGKILL to a worker while it trains a cell: the other worker finds the cell's claim lock free, fails that
    attempt (naming the dead worker) and runs it again, the parent starts a new worker, and the command ends
    with status 0 and every cell's record exactly once."""
    out, args = tmp_path / "out", [*SLOW_GRID, "--config", str(config(tmp_path, epochs=150))]
    command = start(args, out)
    victim = wait_for(lambda: mid_cell(out), "a worker is in the middle of a cell", command)
    os.kill(pid_of(victim), signal.SIGKILL)
    _, stderr = command.communicate(timeout=300)
    assert command.returncode == 0, stderr
    assert (f"pid {pid_of(victim)}) stopped: killed by SIGKILL; a cell it ran goes to the next worker that looks"
            in stderr)

    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["seed"]) == [0, 1, 2, 3] and (runs["status"] == "done").all()
    trials = journal_trials(out)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4  # no cell completed twice
    chains = attempts(trials)
    killed = chains[victim.user_attrs[UNIT]]
    assert [t.state for t in killed] == [TrialState.FAIL, TrialState.COMPLETE]
    assert f"its worker {victim.user_attrs[WORKER]} ended while running it" in killed[0].user_attrs[ERROR]
    assert pid_of(killed[1]) != pid_of(victim)
    assert all(len(chain) == 1 for name, chain in chains.items() if name != victim.user_attrs[UNIT])
    assert not list(out.glob("cells/*/seed*/state.pt"))  # every cell finished, its resume state removed


@pytest.mark.slow
def test_ctrl_c_and_a_killed_parent_leave_no_process_and_the_same_command_resumes(tmp_path):
    """Ctrl-C (SIGINT to the command's process group, as a terminal sends it): status 130, no process left, the
    cell in progress handed back (WAITING, no retry spent). Then SIGKILL to the parent alone: its workers end too
    (they get SIGTERM when it dies) and hand their cells back. The same command then finishes the study: every
    cell done, the interrupted ones in one attempt each."""
    out, args = tmp_path / "out", [*SLOW_GRID, "--config", str(config(tmp_path, epochs=150))]
    command = start(args, out)
    first = wait_for(lambda: mid_cell(out), "a worker is in the middle of a cell", command)
    os.killpg(command.pid, signal.SIGINT)
    _, stderr = command.communicate(timeout=120)
    assert command.returncode == 130 and "interrupted: finished cells are stored" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    # every process of the group ends within seconds (multiprocessing's resource tracker exits once it sees the
    # parent's pipe close, a moment after the parent)
    wait_for(lambda: not live_members(command.pid), "no process of the interrupted command is left", timeout=10)
    assert next(t for t in journal_trials(out) if t.number == first.number).state == TrialState.WAITING

    command = start(args, out)
    second = wait_for(lambda: mid_cell(out), "a worker of the second command is in the middle of a cell", command)
    command.send_signal(signal.SIGKILL)
    command.wait()
    wait_for(lambda: not live_members(command.pid), "the killed parent's workers end", timeout=60)
    assert next(t for t in journal_trials(out) if t.number == second.number).state == TrialState.WAITING

    command = start(args, out)
    _, stderr = command.communicate(timeout=300)
    assert command.returncode == 0, stderr
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["seed"]) == [0, 1, 2, 3] and (runs["status"] == "done").all()
    chains = attempts(journal_trials(out))
    for trial in (first, second):
        assert [t.state for t in chains[trial.user_attrs[UNIT]]] == [TrialState.COMPLETE]


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cells_per_device_spreads_workers_over_the_cuda_devices(tmp_path, capsys):
    """``--cells-per-device 2`` on every visible device: 2 x devices workers, each cell trained on its worker's
    device, all of them used when there are enough cells."""
    count = torch.cuda.device_count()
    args = ["--fusions", "concat", "--seeds", str(2 * count), "--config", str(config(tmp_path)), "--device", "cuda",
            "--cells-per-device", "2", "--no-report", "--out", str(tmp_path / "out")]
    assert run_cli(main, args) == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["workers"]["devices"] == worker_devices(torch.device("cuda"), count, None, 2)
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert (runs["status"] == "done").all() and set(runs["device"]) <= {f"cuda:{i}" for i in range(count)}
    assert {t.user_attrs["device"] for t in journal_trials(tmp_path / "out")} == set(runs["device"])


def test_a_worker_that_cannot_get_the_data_through_shared_memory_is_one_line(monkeypatch):
    """A full /dev/shm (a container's 64 MB) fails ``Process.start`` while the tensors are shared: one UsageError
    line that says where the data goes and what to do, no traceback."""
    import multiprocessing.context

    from benchmarks.cli import UsageError
    from benchmarks.workers import WorkerPlan, run_workers

    def full(self):
        raise RuntimeError("unable to write to file </torch_123_456_0>: No space left on device (28)")

    monkeypatch.setattr(multiprocessing.context.SpawnProcess, "start", full)
    with pytest.raises(UsageError) as caught:
        run_workers(WorkerPlan(("cpu",), 1), print, (), work_left=lambda: False, tick=lambda: None, say=print)
    message = str(caught.value)
    assert "\n" not in message and "No space left on device" in message and "--shm-size" in message
