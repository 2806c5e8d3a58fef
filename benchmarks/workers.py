"""Several worker processes on this machine: ``python -m benchmarks.run ... --workers K`` (``benchmarks.grid``).

The parent process checks everything, loads the data and adds the grid's units to its study; then
``run_workers`` starts ``K`` processes that claim and train cells from that study exactly as the many-machine
mode's commands do (``benchmarks.workqueue``), while the parent shows their progress; it then gathers the
records and writes ``runs.csv``, the tables and the report once.

Processes. ``multiprocessing`` with the ``spawn`` context: a fresh interpreter per worker (no forked copy of the
parent's threads, open database connections or CUDA state, which ``fork`` would duplicate and CUDA refuses), and
the worker's arguments are passed as objects, not as a command line: the prepared run goes over as it is, and
its tensors through shared memory (PyTorch's reductions for ``multiprocessing``), so the data is loaded once,
by the parent, not once per worker. A worker:

* uses ``WorkerPlan.threads`` torch CPU threads (``torch.set_num_threads``) and the device it is given;
* imports the user's plugins (``FUSIONBENCH_PLUGINS``), as every command does;
* turns SIGINT (Ctrl-C) and SIGTERM into one ``KeyboardInterrupt`` (later ones are ignored, so that it can
  finish handing its cell back: ``benchmarks.workqueue``) and then exits with status 130; it starts with both
  blocked (inherited from the parent, which blocks them while it starts a worker), so one that arrives while
  the interpreter starts waits for the handler instead of ending it with a traceback;
* gets SIGTERM when the parent dies, however it dies (Linux ``PR_SET_PDEATHSIG``), so a killed parent leaves no
  worker behind; the same command run again resumes the study.

A worker that dies (any non-zero exit status, e.g. -9 after SIGKILL) is replaced while the study still has
waiting or running units, at most ``RESTARTS`` times per worker; its cell is taken over by the next worker that
looks (on the run folder's journal file at once, its claim lock being free; on a database once its heartbeats
have stopped for the grace period). Ctrl-C in the parent (or any exception there) stops every worker: SIGTERM,
``STOP_SECONDS`` to hand back its cell, then SIGKILL.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .cli import UsageError, debug, resolve_device

if TYPE_CHECKING:
    from .studies import StorageSpec

RESTARTS = 3
"""How often one worker slot is started again after its process died: a bound for a worker that dies over and
over (e.g. while it starts). A cell that kills its worker is bounded by the study itself: ``max_retries``."""
STOP_SECONDS = 30.0
"""How long stopped workers get to hand their cells back before they are killed."""
INTERRUPTED = 130
"""A worker's exit status after Ctrl-C or SIGTERM (128 + SIGINT, as a shell reports it)."""
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@dataclass(frozen=True)
class WorkerPlan:
    """The worker processes of a run: ``devices``, one torch device per worker (``"cpu"``, ``"cuda:1"``), and
    ``threads``, the torch CPU threads of each."""

    devices: tuple[str, ...]
    threads: int

    @property
    def count(self) -> int:
        return len(self.devices)

    def describe(self) -> dict:
        """What ``meta.json`` records under ``workers``."""
        return {"count": self.count, "devices": list(self.devices), "threads_each": self.threads}


def worker_devices(device: torch.device, device_count: int, workers: int | None,
                   cells_per_device: int | None) -> list[str]:
    """The device of each worker: index ``i`` -> ``devices[i % len(devices)]`` (round robin, so that fewer workers
    than slots still use every device), where ``devices`` is ``device`` itself when it names one (``cuda:1``,
    ``cpu``) and all ``device_count`` CUDA devices for a bare ``cuda``.

    ``workers``: how many (None: ``len(devices) * cells_per_device`` when that is given, else 1);
    ``cells_per_device``: at most that many workers per CUDA device. Raises ``UsageError`` for ``workers`` < 1,
    ``cells_per_device`` < 1 or given off CUDA, and more workers than ``len(devices) * cells_per_device``."""
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    if cells_per_device is not None:
        if device.type != "cuda":
            raise UsageError(f"--cells-per-device spreads cells over CUDA devices, but the device is {device.type}"
                             f"{' (no CUDA on this machine)' if device_count == 0 else ''}; on the CPU use "
                             "--workers K")
        if cells_per_device < 1:
            raise UsageError(f"--cells-per-device must be >= 1, got {cells_per_device}")
    if device.type != "cuda":
        return [str(device)] * (workers or 1)
    indices = [device.index] if device.index is not None else list(range(device_count))
    if workers is None:
        workers = len(indices) * cells_per_device if cells_per_device else 1
    elif cells_per_device is not None and workers > len(indices) * cells_per_device:
        raise UsageError(f"--workers {workers} does not fit --cells-per-device {cells_per_device} on "
                         f"{len(indices)} CUDA device(s): at most {len(indices) * cells_per_device} workers")
    return [f"cuda:{indices[i % len(indices)]}" for i in range(workers)]


def thread_share(total: int, workers: int) -> int:
    """Torch CPU threads per worker: ``total // workers``, at least 1 (more workers than threads then share the
    cores, each with one thread)."""
    return max(1, total // workers)


def plan_workers(device: str, workers: int | None = None, cells_per_device: int | None = None,
                 threads: int | None = None) -> WorkerPlan:
    """The ``WorkerPlan`` of the run flags ``--device``, ``--workers``, ``--cells-per-device`` and ``--threads``
    (the CPU threads of all workers together; default ``torch.get_num_threads()``: ``OMP_NUM_THREADS`` when set,
    else the machine's cores). Raises ``UsageError`` (``worker_devices``; ``--threads`` < 1; a device that is not
    present)."""
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    resolved = resolve_device(device)
    devices = worker_devices(resolved, torch.cuda.device_count(), workers, cells_per_device)
    return WorkerPlan(tuple(devices), thread_share(threads or torch.get_num_threads(), len(devices)))


def unshared_storage(storage: StorageSpec) -> str | None:
    """Why worker processes cannot share ``storage`` (a SQLite database in one process's memory), or None."""
    if storage.url is None:
        return None
    url = storage.engine_url()
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and (
        database in ("", ":memory:") or database.startswith("file::memory:") or url.query.get("mode") == "memory"
    ):
        return (f"--storage {storage.url} is a database in one process's memory, which worker processes "
                "cannot share; give a file (sqlite:///path/grid.db), a server URL, or no --storage (a journal file "
                "in the run folder)")
    return None


def run_workers(
    plan: WorkerPlan, target: Callable[..., None], args: Sequence, *, work_left: Callable[[], bool],
    tick: Callable[[], None], say: Callable[[str], None], poll: float = 1.0,
) -> None:
    """Run ``target(device, *args)`` in ``plan.count`` spawned processes and wait for all of them; ``target`` and
    ``args`` must pickle (a module-level function; tensors go through shared memory).

    Every ``poll`` seconds, and when a worker ends, calls ``tick()`` (the caller's progress). A worker that ends
    with a non-zero status is named through ``say`` and started again on its device while ``work_left()``, at
    most ``RESTARTS`` times per worker. Any exception here, ``KeyboardInterrupt`` included, stops every worker
    (``stop``) and is raised again."""
    context = multiprocessing.get_context("spawn")
    restarts = [RESTARTS] * plan.count

    def start(slot: int):
        process = context.Process(
            target=_worker_main, name=f"fusionbench-worker-{slot}",
            args=(target, args, plan.devices[slot], plan.threads, os.getpid()),
        )
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)  # inherited: held until the worker's handlers
        try:
            process.start()
        except (RuntimeError, OSError) as error:  # the arguments' tensors go through shared memory (/dev/shm)
            raise UsageError(shared_memory_problem(error)) from None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return process

    running: dict[int, multiprocessing.process.BaseProcess] = {}
    try:
        for slot in range(plan.count):
            running[slot] = start(slot)
        while running:
            multiprocessing.connection.wait([process.sentinel for process in running.values()], timeout=poll)
            tick()
            for slot, process in list(running.items()):
                if process.exitcode is None:
                    continue
                del running[slot]
                if process.exitcode == 0:
                    continue
                line = (f"worker {slot} ({plan.devices[slot]}, pid {process.pid}) stopped: "
                        f"{exit_reason(process.exitcode)}")
                if restarts[slot] and work_left():
                    restarts[slot] -= 1
                    running[slot] = start(slot)
                    say(f"{line}; a cell it ran goes to the next worker that looks; worker {slot} started again "
                        f"(pid {running[slot].pid})")
                else:
                    why = "no cell is left" if restarts[slot] else f"it was started again {RESTARTS} times already"
                    say(f"{line}; not started again: {why}")
    except BaseException:
        stop(list(running.values()))
        raise


def shared_memory_problem(error: BaseException) -> str:
    """The one line for a worker that could not be started with its arguments: their tensors go to the worker
    through shared memory (``/dev/shm``), which a container may keep small (Docker: 64 MB by default)."""
    first = str(error).splitlines()[0] if str(error) else "no message"
    return (f"cannot start a worker process with the run's data ({type(error).__name__}: {first}); the data goes "
            "to the workers through shared memory (/dev/shm): give it room (Docker: --shm-size=4g) or run without "
            "--workers")


def exit_reason(status: int) -> str:
    """A process's exit status in words (negative: killed by that signal, as ``multiprocessing`` reports it)."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}"
    if status == INTERRUPTED:
        return "interrupted"
    return f"exit status {status}"


def stop(processes: Sequence, grace: float = STOP_SECONDS) -> None:
    """Stop ``processes``: SIGTERM to each live one, up to ``grace`` seconds in all for them to end (a worker hands
    its cell back first), then SIGKILL to any still running; returns once every one has ended."""
    for process in processes:
        if process.exitcode is None:
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.exitcode is None:
            process.kill()
            process.join()


_stopping = False


def _interrupt(signum, frame) -> None:
    """A worker's SIGINT or SIGTERM: ``KeyboardInterrupt`` where it runs, the first time; later ones do nothing.
    (The handler stays installed: one set to SIG_IGN here would turn a signal already arrived into Python's
    ``OSError: Signal 15 ignored due to race condition``.)"""
    global _stopping
    if not _stopping:
        _stopping = True
        raise KeyboardInterrupt


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the parent ends (Linux; elsewhere a worker outlives a killed parent and
    finishes the study's cells on its own); SIGTERM now when the parent has already ended."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(target: Callable[..., None], args: Sequence, device: str, threads: int, parent: int) -> None:
    """A worker process's body: signals, plugins, threads, then ``target(device, *args)``. Exits with status
    ``INTERRUPTED`` when stopped, 1 with one ``error:`` line when ``target`` raises (the traceback with
    ``FUSIONBENCH_DEBUG``)."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _interrupt)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # one that came while it started is raised now
    try:
        _die_with_parent(parent)
        from records.cli import import_plugins

        import_plugins()
        torch.set_num_threads(threads)
        target(device, *args)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    except Exception as error:
        if debug():
            raise
        from .experiment import one_line

        print(f"error: worker on {device} (pid {os.getpid()}): {one_line(error)}", file=sys.stderr, flush=True)
        sys.exit(1)
