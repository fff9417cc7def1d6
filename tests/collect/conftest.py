"""Fixtures of the collect tests: stores on a fresh SQLite file and on a throw-away PostgreSQL cluster.

`store`        Store on a new SQLite file (tmp_path)
`pg_cluster`   one PostgreSQL server for the whole session (tests/collect/pg.py); fails, never skips, when it
               cannot start
`pg_url`       URL of a new empty database on it
`pg_store`     Store on a new PostgreSQL database
`any_store`    parametrised: the same test on SQLite and on PostgreSQL
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests/collect is a package (its __init__.py), so this file is `collect.conftest` and never shadows tests/conftest.py
# (which other tests import as `conftest`); its helper modules are imported by their bare names, as elsewhere
sys.path.insert(0, str(Path(__file__).parent))

from pg import Cluster  # noqa: E402

from rlhfkit.collect.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store.open(str(tmp_path / "collect.db"))
    yield s
    s.close()


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster):
    return pg_cluster.create_database()


@pytest.fixture
def pg_store(pg_url):
    s = Store.open(pg_url)
    yield s
    s.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    if request.param == "sqlite":
        s = Store.open(str(tmp_path / "collect.db"))
    else:
        s = Store.open(request.getfixturevalue("pg_cluster").create_database())
    yield s
    s.close()
