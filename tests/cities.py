"""The demo city (``credence demo``'s defaults: 10,500 subjects, 200,000 records), built
once per test run and copied into each SQLite store that asks for it.

Building it through the real ingestion path takes about a minute; two tests want it as
it stands before they do their own work on it (the engines' parity, the honest city's
anomaly scan). The first test to ask builds it into a file beside the workers' temporary
folders, under a lock, so that pytest-xdist's workers share one build; every test then
gets its own copy through SQLite's backup API, so nothing one test does is seen by
another. The city is a function of the arguments of :func:`credence.lab.city.build_city`
only (its seed, its sizes, its instant), and the copy is keyed by them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from credence.db import make_engine, session_factory
from credence.lab.city import CityStats, build_city
from credence.migrate import upgrade


def _folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the run's workers (their base folders' parent) or, without xdist, the
    run's own base folder: never a folder an earlier run, with other code, left."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def demo_city(engine: Engine, tmp_path_factory: pytest.TempPathFactory, now: datetime) -> CityStats:
    """Put the demo city built as of ``now`` into ``engine``'s store (SQLite, migrated,
    empty) and return what was built."""
    assert engine.dialect.name == "sqlite", "the shared city is copied with SQLite's backup"
    key = hashlib.sha256(f"demo-city|{now.isoformat()}".encode()).hexdigest()[:16]
    folder = _folder(tmp_path_factory)
    built, stats_file = folder / f"city-{key}.db", folder / f"city-{key}.stats"
    with (folder / f"city-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stats_file.exists():
            source = make_engine(f"sqlite:///{built}")
            try:
                upgrade(source)
                stats = build_city(session_factory(source), now=now)
            finally:
                source.dispose()
            stats_file.write_bytes(pickle.dumps(stats))
    stats = pickle.loads(stats_file.read_bytes())  # noqa: S301 - written just above by this run
    assert isinstance(stats, CityStats)
    engine.dispose()  # no pooled connection holds the old, empty store
    with engine.connect() as conn:
        target = conn.connection.driver_connection
        assert isinstance(target, sqlite3.Connection)
        with sqlite3.connect(built) as original:
            original.backup(target)
    return stats
