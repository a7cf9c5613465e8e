"""Nothing personal in logs: the races and hostile input leave no national identifier
and no name in any application log line or in PostgreSQL's own log.

:mod:`tests.logscan` watches the logs (``personal_data_guard``). The same requests run
twice per store: against the ASGI app in this process (every Python log record, at
every level, and SQLAlchemy's log of each statement it runs with its parameters),
and against ``credence serve`` in a process of its own (what the server writes,
uvicorn's tracebacks of unhandled errors included). They register subjects twice and
at once, race retractions and disputes, send invalid identifiers and NUL characters,
and make one request fail unexpectedly while it holds an identifier.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from tests.api.test_races import (
    Service,
    issue_keys,
    new_person,
    race_dispute,
    race_registration,
    race_retraction,
    service,
)
from tests.logscan import PersonalDataGuard, personal_data_guard
from tests.server import Server
from tests.world import build_world

__all__ = ["personal_data_guard", "service"]  # fixtures, used by name


def _wrong_check_character(identifier: str) -> str:
    last = "0" if identifier[-1] != "0" else "1"
    return identifier[:-1] + last


def drive(service: Service, guard: PersonalDataGuard) -> None:
    """Everything that could carry an identifier or a name into a log."""
    identifier, name = new_person()
    given = name.split()[-1]
    guard.protect(identifier, name, given)
    registration = {"kind": "person", "identifier": identifier, "name": name}
    # A resend, then the same registration from several clients at once.
    first = service.call("POST", "/v1/subjects", "registry", json=registration)
    assert first.status_code == 201, first.text
    again = service.call("POST", "/v1/subjects", "registry", json=registration)
    assert again.status_code == 200, again.text
    raced, raced_name = new_person()
    guard.protect(raced, raced_name, raced_name.split()[-1])
    race_registration(service, raced, raced_name)
    race_retraction(service, "L-PRIVACY-1")
    race_dispute(service, "L-PRIVACY-2")
    # Invalid identifiers: a wrong check character, a person's number as a company's.
    wrong = _wrong_check_character(new_person()[0])
    guard.protect(wrong)
    for body in (
        {"kind": "person", "identifier": wrong, "name": name},
        {"kind": "company", "identifier": identifier, "name": name},
    ):
        response = service.call("POST", "/v1/subjects", "registry", json=body)
        assert 400 <= response.status_code < 500, response.text
    for looked_up in (wrong, new_person()[0]):
        guard.protect(looked_up)
        response = service.call(
            "POST", "/v1/subjects/lookup", "bank", json={"identifier": looked_up}
        )
        assert 400 <= response.status_code < 500, response.text
    # NUL characters in a name and in identifiers (what the server answers is another
    # test's: here, only that nothing of them is logged).
    nul_id, nul_name = new_person()
    nul_given = nul_name.split()[-1]
    split_id = nul_id[:9] + "\x00" + nul_id[9:]
    guard.protect(nul_id, split_id, nul_given, nul_name.replace(" ", "\x00"))
    service.call(
        "POST",
        "/v1/subjects",
        "registry",
        json={"kind": "person", "identifier": nul_id, "name": nul_name.replace(" ", "\x00")},
    )
    service.call(
        "POST",
        "/v1/subjects",
        "registry",
        json={"kind": "person", "identifier": split_id, "name": name},
    )
    service.call("POST", "/v1/subjects/lookup", "bank", json={"identifier": identifier + "\x00"})
    # An unexpected failure of a statement that carries an identifier: its traceback
    # is logged, and must not show the statement's parameters.
    with renamed(service.engine, "subjects", "subjects_away"):
        response = service.call(
            "POST", "/v1/subjects/lookup", "bank", json={"identifier": identifier}
        )
    assert response.status_code == 500, response.text
    response = service.call("POST", "/v1/subjects/lookup", "bank", json={"identifier": identifier})
    assert response.status_code == 200, response.text


class renamed:
    """A table under another name for the length of a block: any statement on it fails."""

    def __init__(self, engine: Engine, table: str, other: str) -> None:
        self.engine, self.table, self.other = engine, table, other

    def __enter__(self) -> None:
        self._rename(self.table, self.other)

    def __exit__(self, *exc: object) -> None:
        self._rename(self.other, self.table)

    def _rename(self, old: str, new: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(f'ALTER TABLE "{old}" RENAME TO "{new}"'))


def test_no_identifier_or_name_in_the_logs_of_the_app(
    personal_data_guard: PersonalDataGuard, service: Service
) -> None:
    drive(service, personal_data_guard)


# --- a server process ---------------------------------------------------------------


@pytest.fixture
def server(
    personal_data_guard: PersonalDataGuard,
    db_url: str,
    engine: Engine,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> Iterator[Service]:
    """``credence serve`` on the test's store, in a process of its own (logging at
    debug level); the guard reads everything it writes."""
    clock = FixedClock(datetime.now(UTC))
    world = build_world(sessions, clock, people=2)
    keys = issue_keys(sessions, world, clock)
    process = Server(db_url, tmp_path, env={"CREDENCE_LOG_LEVEL": "debug"})
    personal_data_guard.watch_file(tmp_path / f"server-{process.port}.log")
    try:
        process.start()
        served = Service(
            engine,
            world,
            keys,
            lambda: httpx.Client(base_url=process.url, timeout=60),
            lambda: datetime.now(UTC),
        )
        yield served
        served.close()
    finally:
        process.stop()


def test_no_identifier_or_name_in_the_logs_of_a_server(
    personal_data_guard: PersonalDataGuard, server: Service
) -> None:
    drive(server, personal_data_guard)


# --- the guard itself ----------------------------------------------------------------


def test_the_guard_finds_what_leaks(
    personal_data_guard: PersonalDataGuard, engine: Engine, tmp_path: Path
) -> None:
    # Planted leaks in each log it reads (released at the end, so that the test passes).
    guard = personal_data_guard
    identifier, name = new_person()
    guard.protect(identifier, name, name.replace(" ", "\x00"))
    written = tmp_path / "written.log"
    written.touch()
    guard.watch_file(written)
    assert guard.findings() == []
    try:
        raise ValueError(f"bad {name.replace(' ', chr(0))!r}")
    except ValueError:
        logging.getLogger("credence.somewhere").debug("while reading", exc_info=True)
    written.write_text(f"found {identifier.lower()}\n")
    found = guard.findings()
    assert len(found) == 2, found
    assert any(f.startswith("application log") for f in found)
    assert any(f.startswith(str(written)) for f in found)
    assert all(identifier.lower() not in f.lower() and name not in f for f in found)
    if engine.dialect.name == "postgresql":
        # What a failed insert makes PostgreSQL write: the key it found taken.
        with engine.connect() as conn:
            conn.execute(text("CREATE TEMPORARY TABLE taken (identifier text UNIQUE)"))
            conn.execute(text("INSERT INTO taken VALUES (:i)"), {"i": identifier})
            with pytest.raises(Exception, match="duplicate key"):
                conn.execute(text("INSERT INTO taken VALUES (:i)"), {"i": identifier})
        found = guard.findings()
        assert any(f.startswith("PostgreSQL's log") and "detail" in f for f in found), found
    guard.secrets.clear()


@pytest.mark.postgresql
def test_the_guard_fails_when_it_cannot_read_postgresqls_log(
    pg_admin: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A log that is not there, or a file that is not the server's log (the marker the
    # guard asks the server to write never shows in it): the guard fails, in CI even
    # when told to skip.
    not_the_log = tmp_path / "other.log"
    not_the_log.write_text("some other program's log\n")
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("CREDENCE_SKIP_PG_LOG", "1")
    for path in (tmp_path / "absent.log", not_the_log):
        monkeypatch.setenv("CREDENCE_TEST_PG_LOG", str(path))
        with pytest.raises(pytest.fail.Exception, match="PostgreSQL's own log cannot be read"):
            PersonalDataGuard().watch_postgresql(pg_admin)
    monkeypatch.delenv("CREDENCE_TEST_PG_LOG")
    guard = PersonalDataGuard()
    guard.watch_postgresql(pg_admin)  # found without being told where
    assert guard.findings() == []
