"""Shared fixtures: the clock, and one database per test on every backend.

Storage tests ask for ``engine`` (or ``sessions``) and run twice, once on SQLite and
once on PostgreSQL: one suite, every backend.

* **SQLite**: a fresh file under the test's ``tmp_path``.
* **PostgreSQL**: a fresh schema ``t_<random>`` in the database named by
  ``--pg-url`` / ``CREDENCE_TEST_PG_URL`` (default
  ``postgresql://postgres@127.0.0.1:5432/test``). The test's URL carries
  ``options=-csearch_path=t_…`` so every connection made from it, by any engine, lands
  in that schema and nowhere else; tests therefore run in parallel (pytest-xdist)
  without seeing each other. Connections also carry ``application_name=t_…``, so at
  teardown any the test left open are terminated before ``DROP SCHEMA … CASCADE``.

An unreachable PostgreSQL fails the PostgreSQL half of the suite; set
``CREDENCE_SKIP_PG=1`` to skip it instead (CI never does).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.db import make_engine, session_factory
from credence.migrate import upgrade
from tests.client import Api, open_api
from tests.world import World, build_world

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")
T0 = datetime(2026, 6, 1, tzinfo=UTC)
"""The instant the ``clock`` fixture stands at."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pg-url",
        default=os.environ.get("CREDENCE_TEST_PG_URL", DEFAULT_PG_URL),
        help="PostgreSQL database for the postgresql half of storage tests "
        "(env CREDENCE_TEST_PG_URL); each test gets its own schema in it.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgresql: runs against PostgreSQL")


# --- time --------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FixedClock:
    """A clock standing at 2026-06-01T00:00Z until a test moves it."""
    return FixedClock(T0)


# --- databases ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_admin(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An autocommit engine on the test PostgreSQL database, to create and drop schemas."""
    url = str(request.config.getoption("--pg-url"))
    admin = make_engine(
        url, isolation_level="AUTOCOMMIT", pool_size=1, connect_args={"connect_timeout": 10}
    )
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        admin.dispose()
        message = (
            f"PostgreSQL at {url} is unreachable ({exc.orig}). Start it "
            "(pg_ctlcluster --skip-systemctl-redirect <version> main start), point "
            "CREDENCE_TEST_PG_URL at another, or set CREDENCE_SKIP_PG=1 to skip."
        )
        if os.environ.get("CREDENCE_SKIP_PG") == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    yield admin
    admin.dispose()


@pytest.fixture(params=[BACKENDS[0], pytest.param(BACKENDS[1], marks=pytest.mark.postgresql)])
def backend(request: pytest.FixtureRequest) -> str:
    """Which store this run of a storage test uses: ``sqlite`` or ``postgresql``."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database that belongs to this test alone."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'credence.db'}"
        return
    admin: Engine = request.getfixturevalue("pg_admin")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    base = str(request.config.getoption("--pg-url"))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}&application_name={schema}"
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND pid <> pg_backend_pid()"
            ),
            {"name": schema},
        )
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def bare_engine(db_url: str) -> Iterator[Engine]:
    """An engine on the test's empty database (no tables yet)."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(bare_engine: Engine) -> Engine:
    """An engine on the test's database, migrated to the newest revision."""
    upgrade(bare_engine)
    return bare_engine


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """Session factory on the test's migrated database (use ``with sessions.begin()``)."""
    return session_factory(engine)


# --- feature fixtures --------------------------------------------------------------------
# Fixtures that set up domain state (a published rulebook, sources, subjects, keys) go
# below, one small block per feature, each built on ``sessions`` and ``clock`` so it runs
# on both backends. Keep them independent of each other where possible.


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    """The small world of :func:`tests.world.build_world` (a module may override it)."""
    return build_world(sessions, clock)


@pytest.fixture
def api(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    world: World,
    tmp_path: Path,
) -> Api:
    """The one API under test, on ``world``: see :func:`tests.client.open_api`."""
    return open_api(engine, sessions, clock, world, tmp_path)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session per test worker, shared by every module that scores on
    Spark (a JVM start costs seconds); skipped without PySpark or a Java runtime."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime for Spark")
    from credence.scoring.spark import spark_session

    session = spark_session("local[2]", memory="1g", shuffle_partitions=2)
    yield session
    session.stop()
