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
  Optuna 5 keeps no heartbeats there; ``benchmarks.journal_claims`` tells a killed worker's trial from a running
  one by a lock file the worker holds.
"""

from __future__ import annotations

import fcntl
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass

import optuna
import sqlalchemy
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend

GRACE_HEARTBEATS = 3
SCHEMA_LOCK_SECONDS = 60.0  # the longest a process waits for another to create a database's schema
SQLITE_BUSY_SECONDS = 60.0  # the longest a SQLite writer waits for another's transaction


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

    def engine_url(self) -> sqlalchemy.engine.URL:
        """The SQLAlchemy URL of an RDB storage, with the driver the project installs (psycopg2 for a bare
        ``postgresql://``). Raises ``ValueError`` for a URL that does not parse."""
        url = _parse(self.url)
        return url.set(drivername="postgresql+psycopg2") if url.drivername == "postgresql" else url

    def open(self) -> BaseStorage:
        """The storage; a URL that does not parse or a server that cannot be reached raises ``ValueError``.

        Several processes may open one new database at the same instant: Optuna creates its tables and stamps
        its schema version on first open, which two processes cannot do at once (``UNIQUE constraint failed:
        alembic_version.version_num``, ``duplicate key ... "pg_type_typname_nsp_index"``). The creation runs
        under ``schema_lock``, so the first process creates the schema and the others find it."""
        if self.journal is not None:
            return JournalStorage(JournalFileBackend(self.journal))
        url = self.engine_url()
        engine_kwargs = {}
        if url.get_backend_name() != "sqlite":
            engine_kwargs["pool_pre_ping"] = True  # connections idle through a long cell may have been closed
        if url.get_backend_name() == "postgresql":
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
        if url.get_backend_name() == "sqlite":
            engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_SECONDS}
        try:
            with schema_lock(url, engine_kwargs), warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                storage = RDBStorage(
                    url.render_as_string(hide_password=False), engine_kwargs=engine_kwargs,
                    heartbeat_interval=self.heartbeat, grace_period=GRACE_HEARTBEATS * self.heartbeat,
                    heartbeat_stale_trial_callback=self.retry(),
                )
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError) as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise ValueError(f"--storage {self.describe()}: cannot open the database ({reason})") from None
        if url.get_backend_name() == "sqlite":
            serialize_sqlite_transactions(storage.engine)
        return storage


def serialize_sqlite_transactions(engine: sqlalchemy.engine.Engine) -> None:
    """Makes every transaction on a SQLite ``engine`` start with ``BEGIN IMMEDIATE`` (SQLAlchemy's documented
    recipe for SQLite's serializable transactions; the pysqlite driver on its own starts a transaction only at
    the first write, so the read that a check-then-write begins with runs outside it).

    Without it a study in a SQLite file is not safe for several processes: Optuna claims a waiting trial by
    reading its state and then writing RUNNING, with a row lock (``SELECT ... FOR UPDATE``) that SQLite
    ignores, so several workers released at one instant all claimed the same trial and ran it. With it the
    read and the write hold SQLite's write lock together; a writer waits up to ``SQLITE_BUSY_SECONDS`` for
    another. Pooled connections made before (Optuna's schema check) are closed so that none escapes."""

    @sqlalchemy.event.listens_for(engine, "connect")
    def _driver_leaves_transactions_to_sqlalchemy(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()


@contextmanager
def schema_lock(url: sqlalchemy.engine.URL, engine_kwargs: dict, timeout: float = SCHEMA_LOCK_SECONDS):
    """Holds an exclusive lock on the database ``url`` while Optuna creates or checks its schema, so that
    processes opening one new database at once do it one after another.

    * SQLite file: ``flock`` on ``<file>.lock`` beside it (processes on one machine; the lock file stays; an
      in-memory database needs none).
    * PostgreSQL: a session advisory lock (``pg_advisory_lock``) keyed by the database name.
    * MySQL / MariaDB: a named lock (``GET_LOCK``) keyed by the database name.
    * Any other backend: no lock (Optuna supports only these three).

    Raises ``OSError`` (file) or ``sqlalchemy.exc.SQLAlchemyError`` (server) when the lock cannot be taken,
    including after ``timeout`` seconds of waiting on a server."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            yield
            return
        with open(f"{url.database}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed, or the process dies
            yield
        return
    statements = {
        "postgresql": (f"SET lock_timeout = '{int(timeout * 1000)}ms'", "SELECT pg_advisory_lock(:key)",
                       "SELECT pg_advisory_unlock(:key)"),
        "mysql": (None, "SELECT GET_LOCK(:name, :timeout)", "SELECT RELEASE_LOCK(:name)"),
    }.get("mysql" if backend == "mariadb" else backend)
    if statements is None:
        yield
        return
    setup, take, release = statements
    name = f"optuna-schema:{url.database}"
    key = {"key": zlib.crc32(name.encode()) - 2**31, "name": name, "timeout": timeout}
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool,
                                      connect_args=engine_kwargs.get("connect_args", {}))
    try:
        with engine.connect() as connection:  # the lock belongs to this session and ends with it
            if setup:
                connection.execute(sqlalchemy.text(setup))
            if connection.execute(sqlalchemy.text(take), key).scalar() == 0:  # GET_LOCK: 0 on time-out
                raise sqlalchemy.exc.OperationalError(take, key, TimeoutError(f"schema lock {name!r} not free "
                                                                               f"after {timeout:g} s"))
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text(release), key)
                connection.commit()
    finally:
        engine.dispose()


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
