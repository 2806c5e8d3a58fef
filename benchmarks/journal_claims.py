"""Which RUNNING trial of a journal-file study still has a live worker behind it (``benchmarks.workqueue``).

Optuna 5's journal storage keeps no heartbeats, so a trial whose worker was killed would stay RUNNING for ever.
Here a worker locks the file ``<journal>.claims/trial-<trial id>.lock`` (``fcntl.flock``, exclusive) before
it claims the trial, writes its ``host:pid`` into it, and holds the lock until the study has been told how
the trial ended. The kernel drops a lock when its process ends, however it ends (SIGKILL included), so:

* a held lock: a live worker runs the trial;
* a free lock that names this host: the worker is gone, the claim is stale (``Verdict.alive`` False);
* a free lock that names another host: unknown here (``None``) — flock need not reach across machines on a
  network file system — but that host can judge it by running the same command there;
* no record (a trial claimed by a version without these locks): its ``worker`` user attribute decides; a
  process of this host that no longer exists is stale; a process that exists (the worker, or another that
  took its number) and a worker on another host are unknown.

Lock files are kept (a few bytes per trial): removing one while another process waits on it would let two
processes hold "the" lock at once. File systems without ``flock`` raise ``ValueError``.
"""

from __future__ import annotations

import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from optuna.trial import FrozenTrial

from .studies import StorageSpec

WORKER = "worker"


def worker_name() -> str:
    """``host:pid`` of this process (the ``worker`` user attribute of the trials it claims)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Verdict:
    """Whether a RUNNING trial has a live worker: ``alive`` True (yes), False (stale), None (cannot be told on
    this machine); ``reason``: why, in words, naming the worker."""

    alive: bool | None
    reason: str


def judge(trial: FrozenTrial, record: str) -> Verdict:
    """The verdict on a RUNNING ``trial`` whose claim lock is free; ``record``: the lock file's text (``host:pid``
    of the claimer, or ``""`` when the trial was claimed without a lock)."""
    owner = record.strip() or trial.user_attrs.get(WORKER)
    if not owner:
        return Verdict(None, "it was claimed by a worker that recorded neither a lock nor its host and process")
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return Verdict(None, f"its worker {owner} runs on another machine, where only that machine can tell "
                             "whether it is alive")
    if record.strip():
        return Verdict(False, f"its worker {owner} ended while running it (killed or crashed) and released its lock")
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return Verdict(False, f"its worker {owner} no longer exists (killed or crashed)")
    except PermissionError:
        pass  # a process of another user has that number
    return Verdict(None, f"it was claimed without a lock by process {owner}, and a process with that number "
                         "exists (the worker, or another that took its number)")


class Claims:
    """The claim locks of the trials of one journal file, in ``folder``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @classmethod
    def of(cls, storage: StorageSpec) -> Claims | None:
        """The claims of a journal-file storage (``<journal>.claims``); None for a database, which has heartbeats."""
        if storage.journal is None:
            return None
        journal = Path(storage.journal)
        return cls(journal.with_name(journal.name + ".claims"))

    def lock(self, trial_id: int) -> TextIO | None:
        """The trial's lock file, locked by this process (closing it releases the lock), or None while another
        process holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"trial-{trial_id}.lock"
        handle = open(path, "a+")  # the caller closes it: that releases the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        except OSError as error:
            handle.close()
            raise ValueError(f"cannot lock {path} ({error.strerror}); a journal storage needs a file system with "
                             "file locks (use --storage with a database instead)") from None
        handle.seek(0)
        return handle

    @staticmethod
    def stake(handle: TextIO, owner: str | None = None) -> None:
        """Write ``owner`` (default: this process's ``host:pid``; ``""``: nobody) into a lock this process holds."""
        handle.seek(0)
        handle.truncate()
        handle.write(worker_name() if owner is None else owner)
        handle.flush()

    def verdict(self, trial: FrozenTrial, trial_id: int) -> Verdict:
        """Whether the RUNNING ``trial`` (storage id ``trial_id``, ``optuna_adapter.trial_id``: unique in the
        storage, where numbers are per study) has a live worker (takes and releases its lock; no other effect)."""
        handle = self.lock(trial_id)
        if handle is None:
            return Verdict(True, "its worker holds its claim lock")
        with handle:
            return judge(trial, handle.read())
