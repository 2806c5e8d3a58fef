"""Opening one fresh Optuna storage from several processes at the same instant (issue 17, issue 12 item 4):
every process must open it and the study, whatever the timing, for SQLite files and (with FUSIONBENCH_PG_URL)
for PostgreSQL, each repetition on a brand-new empty database."""

from __future__ import annotations

import multiprocessing
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from benchmarks.studies import StorageSpec, open_study

PROCESSES = 6
REPEATS = 5


def _open_when_released(url: str, barrier, results) -> None:
    """One worker: wait at the barrier with every import done, then open the storage and the study."""
    try:
        barrier.wait(timeout=120)
        study = open_study(StorageSpec(url=url), "race")
        study.enqueue_trial({}, user_attrs={"unit": "u"})
        results.put("ok")
    except BaseException as error:  # noqa: BLE001 (the parent reports every failure)
        results.put(f"{type(error).__name__}: {error}")


def open_at_once(url: str, processes: int = PROCESSES) -> list[str]:
    """``processes`` forked processes open ``url`` released by one barrier; returns what each reported."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_open_when_released, args=(url, barrier, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    return outcomes


def assert_all_opened(url: str) -> None:
    outcomes = open_at_once(url)
    assert outcomes == ["ok"] * PROCESSES, [o for o in outcomes if o != "ok"]
    study = optuna.load_study(study_name="race", storage=StorageSpec(url=url).open())
    assert len(study.get_trials()) == PROCESSES  # one study, every process's trial in it


def test_processes_open_one_fresh_sqlite_file_at_once(tmp_path):
    for repeat in range(REPEATS):
        assert_all_opened(f"sqlite:///{tmp_path / f'fresh{repeat}.db'}")


def test_a_sqlite_file_in_a_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"--storage sqlite:///.*missing/s\.db: cannot open the database"):
        StorageSpec(url=f"sqlite:///{tmp_path / 'missing' / 's.db'}").open()


@pytest.fixture
def fresh_pg_databases(pg_url):
    """Makes brand-new empty PostgreSQL databases next to FUSIONBENCH_PG_URL's (its user needs CREATEDB) and
    drops them afterwards."""
    admin = sqlalchemy.create_engine(
        StorageSpec(url=pg_url).engine_url(), isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool
    )
    made = []

    def make() -> str:
        name = f"fusionbench_race_{uuid.uuid4().hex[:10]}"
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return sqlalchemy.engine.make_url(pg_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as connection:
        for name in made:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.postgres
def test_processes_open_one_fresh_postgres_database_at_once(fresh_pg_databases):
    for _ in range(REPEATS):
        assert_all_opened(fresh_pg_databases())


def test_the_lock_file_sits_beside_the_sqlite_file(tmp_path):
    StorageSpec(url=f"sqlite:///{tmp_path / 'a.db'}").open()
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["a.db", "a.db.lock"]
