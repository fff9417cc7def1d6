"""The store on PostgreSQL (a throw-away cluster from Debian's postgresql package, tests/collect/pg.py): the
hypothesis state machine and the thread race of the SQLite tests, plus what differs between the databases
(the engine URL forms, migrations run twice at once). The unit tests of test_store.py run on both already.
These tests fail, never skip, when PostgreSQL cannot start.
"""
from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import text
from test_state_machine import StoreMachine
from test_store_concurrency import hammer

from rlhfkit.collect import db
from rlhfkit.collect.store import Store


def test_threads_on_postgres(pg_url):
    hammer(pg_url)


def test_state_machine_on_postgres(pg_url):
    shared = Store.open(pg_url)

    class PostgresMachine(StoreMachine):
        def open_store(self) -> Store:
            return shared  # a new project and new users per example keep examples apart

    PostgresMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None, database=None,
                                                 suppress_health_check=[HealthCheck.too_slow])
    try:
        PostgresMachine.TestCase("runTest").runTest()
    finally:
        shared.close()


def test_postgres_urls_and_concurrent_migrations(pg_cluster):
    url = pg_cluster.create_database()
    assert db.database_url(url).startswith("postgresql+psycopg://")
    assert db.database_url(url.replace("postgresql://", "postgres://")) == db.database_url(url)
    errors, opened = [], []

    def open_one():
        try:
            opened.append(Store.open(url))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with opened[0].engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalars().all() == [db.LATEST]
    for s in opened:
        s.close()


def test_unreachable_postgres_is_a_clear_error(tmp_path):
    from rlhfkit.errors import RlhfkitError

    with pytest.raises(RlhfkitError, match="cannot open the collection database"):
        Store.open(f"postgresql://nobody@/nothing?host={tmp_path}")


def test_a_cluster_that_cannot_start_fails_loudly(tmp_path, monkeypatch):
    """No skip when PostgreSQL is broken: the fixture raises, so every PostgreSQL test errors."""
    import pg

    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("initdb", "pg_ctl"):
        (fake / name).write_text("#!/bin/sh\necho 'broken on purpose' >&2\nexit 3\n")
        (fake / name).chmod(0o755)
    monkeypatch.setattr(pg, "_bin_dir", lambda: fake)
    cluster = pg.Cluster()
    try:
        with pytest.raises(RuntimeError, match=r"initdb failed \(exit \d+\)"):
            cluster.start()
    finally:
        cluster.stop()
