"""Optuna storages for studies that several processes or machines share, opened with one clear error line.

``StorageSpec`` names where a study lives; worker processes receive it (it pickles) and open their own
connection:

* ``url``: any SQLAlchemy URL that Optuna's ``RDBStorage`` takes — ``sqlite:///path/to/file.db`` (one machine)
  or a server, ``postgresql://user:password@host:5432/db`` (many machines; a bare ``postgresql://`` is opened
  with psycopg2, the driver the project installs, where SQLAlchemy 2.1 would look for psycopg 3). Heartbeats
  are on: the process running a trial records one every ``heartbeat`` seconds; a running trial silent for
  ``GRACE_HEARTBEATS`` heartbeats (its process killed, frozen or cut off) is marked FAIL by the next worker that looks
  (``optuna.storages.fail_stale_trials``), and ``RetryHeartbeatStaleTrialCallback`` (Optuna 5's name for
  ``RetryFailedTrialCallback``) queues a copy of it, at most ``max_retries`` times.
* ``journal``: a file for Optuna's ``JournalStorage`` (``JournalFileBackend``): processes on one machine.
  Optuna 5.0 keeps no heartbeats there, so a trial whose process was killed stays RUNNING.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import optuna
import sqlalchemy
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend

GRACE_HEARTBEATS = 3


@dataclass(frozen=True)
class StorageSpec:
    """Where a study lives: an RDB ``url`` or a ``journal`` file (exactly one of them); ``heartbeat``: seconds
    between heartbeats (RDB only); ``max_retries``: how often a failed trial is queued again."""

    url: str | None = None
    journal: str | None = None
    heartbeat: int = 30
    max_retries: int = 2

    def __post_init__(self) -> None:
        if (self.url is None) == (self.journal is None):
            raise ValueError("a storage is either a database URL or a journal file")
        if self.heartbeat < 1:
            raise ValueError(f"--heartbeat must be >= 1 second, got {self.heartbeat}")

    def describe(self) -> str:
        """The URL without its password, or the journal file."""
        if self.journal is not None:
            return f"journal file {self.journal}"
        return _parse(self.url).render_as_string(hide_password=True)

    def retry(self) -> RetryHeartbeatStaleTrialCallback:
        """Optuna's retry callback: queues a WAITING copy of a failed trial (same parameters and user
        attributes, its number in the system attribute ``retry_history``) unless ``max_retries`` are spent."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return RetryHeartbeatStaleTrialCallback(max_retry=self.max_retries)

    def open(self) -> BaseStorage:
        """The storage; a URL that does not parse or a server that cannot be reached raises ``ValueError``."""
        if self.journal is not None:
            return JournalStorage(JournalFileBackend(self.journal))
        url = _parse(self.url)
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg2")
        engine_kwargs = {}
        if url.get_backend_name() != "sqlite":
            engine_kwargs["pool_pre_ping"] = True  # connections idle through a long cell may have been closed
        if url.get_backend_name() == "postgresql":
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(
                    url.render_as_string(hide_password=False), engine_kwargs=engine_kwargs,
                    heartbeat_interval=self.heartbeat, grace_period=GRACE_HEARTBEATS * self.heartbeat,
                    heartbeat_stale_trial_callback=self.retry(),
                )
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise ValueError(f"--storage {self.describe()}: cannot open the database ({reason})") from None


def _parse(url: str) -> sqlalchemy.engine.URL:
    try:
        return sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ValueError(
            f"--storage {url!r} is not a database URL; expected e.g. postgresql://user:password@host:5432/db "
            "or sqlite:///path/to/file.db"
        ) from None


def open_study(storage: StorageSpec, name: str, **create) -> optuna.Study:
    """Create the study ``name`` in ``storage`` or load it when it exists (two processes may race to create it:
    Optuna loads it for the loser). ``create``: ``sampler``, ``pruner`` for ``optuna.create_study``."""
    return optuna.create_study(
        storage=storage.open(), study_name=name, direction="minimize", load_if_exists=True, **create
    )
