"""A guard against personal data in logs: ``personal_data_guard``.

A test that may make personal data reach a log requests the fixture and names what must
not appear::

    def test_x(personal_data_guard: PersonalDataGuard, ...) -> None:
        personal_data_guard.protect(identifier, name)
        ...

From the fixture's start to the end of the test the guard keeps

* every record any Python logger emits, formatted with its traceback and with any
  extra attributes: the root logger is set to DEBUG for the test, and SQLAlchemy's
  engine (which its library keeps at WARNING) to INFO, where it logs each statement and
  its parameters, as an operator who turns SQL logging on would see them (DEBUG would
  add the rows read, which show the data by design);
* every byte PostgreSQL's server appends to its own log, when the test runs on
  PostgreSQL (a test parametrised by the ``backend`` fixture is watched on its
  PostgreSQL run without asking; :meth:`PersonalDataGuard.watch_postgresql` watches a
  server explicitly);
* any file it is told to watch (:meth:`PersonalDataGuard.watch_file`: a server process's
  output, say).

At teardown it fails the test if any protected value appears in any of them, as written
or escaped (``repr``, JSON), in any letter case; the finding names where, never the
value. Fixtures that set up activity worth watching should request the guard, so that
it starts before them and ends after them.

PostgreSQL's log is found from the server: ``pg_current_logfile()`` when the logging
collector runs, else the file its backends write their standard error to
(``/proc/<pid>/fd/2``, when the server runs on this machine), else Debian's
``/var/log/postgresql/postgresql-<version>-<cluster>.log``; ``CREDENCE_TEST_PG_LOG``
names it outright. The guard writes a marker into the log at the start and the end
and reads what lies between, so a file that is not the server's log, or a log that
cannot be read, fails the test instead of passing it unseen. Outside CI
(``CI`` not ``true``) ``CREDENCE_SKIP_PG_LOG=1`` skips that part with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

#: The attributes every LogRecord has; any other is an ``extra`` a formatter may print.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
#: A protected value shorter than this would match by chance.
MIN_SECRET = 6
#: The level of each logger while a guard watches (see the module docstring).
LEVELS = {"": logging.DEBUG, "sqlalchemy.engine": logging.INFO}


class _Capture(logging.Handler):
    """Keeps every record it is handed, formatted at once (so later changes to the
    objects a record refers to do not hide what was logged)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.lines: list[str] = []
        self._format = logging.Formatter(
            "%(levelname)s %(name)s %(message)s", datefmt=None, style="%"
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self._format.format(record)
        except Exception:  # a record whose arguments do not fit its message
            line = f"{record.levelname} {record.name} {record.msg!r} {record.args!r}"
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if extras:
            line += f" {extras!r}"
        self.lines.append(line)


@dataclass
class _PgLog:
    """A window on a PostgreSQL server's log, between two markers."""

    admin: Engine
    path: str
    offset: int
    start: str

    @classmethod
    def open(cls, admin: Engine) -> _PgLog:
        problems: list[str] = []
        for path in _log_candidates(admin, problems):
            try:
                offset = _size(admin, path)
            except OSError as exc:
                problems.append(f"{path}: {exc.strerror or exc}")
                continue
            start = _mark(admin, "start")
            found = _wait_for(admin, path, offset, start)
            if found is not None:
                return cls(admin, path, offset, start)
            problems.append(f"{path}: the server's marker did not appear in it")
        raise LookupError("; ".join(problems) or "no candidate")

    def read(self) -> str:
        """Everything the server logged from the start marker to an end marker written
        now (so that what came before it is in the file)."""
        end = _mark(self.admin, "end")
        found = _wait_for(self.admin, self.path, self.offset, end)
        if found is None:
            raise AssertionError(
                f"PostgreSQL's log {self.path} stopped growing (rotated?): its end marker "
                "never appeared, so what the server logged during the test is unknown"
            )
        if self.start not in found:
            raise AssertionError(f"PostgreSQL's log {self.path} lost its start marker")
        return found


def _log_candidates(admin: Engine, problems: list[str]) -> Iterator[str]:
    named = os.environ.get("CREDENCE_TEST_PG_LOG")
    if named:
        yield named
        return
    with admin.connect() as conn:
        data_dir = str(conn.scalar(text("SHOW data_directory")) or "")
        version = str(conn.scalar(text("SHOW server_version_num")) or "")
        try:
            current = conn.scalar(text("SELECT pg_current_logfile()"))
        except DBAPIError:
            problems.append("pg_current_logfile() refused (not a superuser?)")
            current = None
        pid = conn.scalar(text("SELECT pg_backend_pid()"))
    if current:
        yield current if os.path.isabs(current) else os.path.join(data_dir, current)
    else:
        problems.append("pg_current_logfile() is NULL (no logging collector)")
    # A backend inherits the standard error of the postmaster, which pg_ctl points at
    # its log file; readable here if the server runs on this machine.
    stderr = Path(f"/proc/{pid}/fd/2")
    try:
        target = os.readlink(stderr)
        if stat.S_ISREG(os.stat(stderr).st_mode):
            yield target
        else:
            problems.append(f"the server's standard error is {target}, not a file")
    except OSError as exc:
        problems.append(f"cannot see the server's standard error ({exc.strerror or exc})")
    # Debian and Ubuntu (pg_ctlcluster): /var/lib/postgresql/<version>/<cluster>.
    parts = Path(data_dir).parts
    if len(parts) >= 2 and version:
        major = parts[-2] if parts[-2].replace(".", "").isdigit() else version[:-4]
        yield f"/var/log/postgresql/postgresql-{major}-{parts[-1]}.log"


def _size(admin: Engine, path: str) -> int:
    try:
        return os.stat(path).st_size
    except PermissionError:
        with admin.connect() as conn:
            size = conn.scalar(text("SELECT size FROM pg_stat_file(:p)"), {"p": path})
        return int(size)


def _read_from(admin: Engine, path: str, offset: int) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            data = file.read()
    except PermissionError:  # the server may read its own log (a superuser may ask)
        with admin.connect() as conn:
            size = int(conn.scalar(text("SELECT size FROM pg_stat_file(:p)"), {"p": path}))
            data = bytes(
                conn.scalar(
                    text("SELECT pg_read_binary_file(:p, :o, :n)"),
                    {"p": path, "o": offset, "n": max(size - offset, 0)},
                )
            )
    return data.decode("utf-8", "replace")


def _mark(admin: Engine, what: str) -> str:
    marker = f"credence-logscan-{what}-{uuid.uuid4().hex}"
    with admin.connect() as conn:
        # LOG goes to the server's log whatever log_min_messages (up to FATAL) says.
        conn.execute(text(f"DO $$BEGIN RAISE LOG '{marker}'; END$$"))
    return marker


def _wait_for(admin: Engine, path: str, offset: int, marker: str) -> str | None:
    """The log from ``offset`` up to and including ``marker``, once it is there."""
    deadline = time.monotonic() + 5
    while True:
        try:
            found = _read_from(admin, path, offset)
        except (OSError, DBAPIError):
            return None
        end = found.find(marker)
        if end >= 0:
            return found[: end + len(marker)]
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


@dataclass
class PersonalDataGuard:
    """What a test must not let into any log, and the logs it watches."""

    secrets: set[str] = field(default_factory=set)
    _capture: _Capture = field(default_factory=_Capture)
    _pg: list[_PgLog] = field(default_factory=list)
    _files: dict[Path, int] = field(default_factory=dict)
    _restore: list[tuple[logging.Logger, int | None]] = field(default_factory=list)

    def protect(self, *values: str) -> None:
        """Values (national identifiers, names, parts of names) no log may show."""
        for value in values:
            if len(value.strip()) < MIN_SECRET:
                raise ValueError(
                    f"a protected value needs at least {MIN_SECRET} characters, or it "
                    "would be found by chance"
                )
            self.secrets.add(value)

    def watch_postgresql(self, admin: Engine) -> None:
        """Read the log of the PostgreSQL server ``admin`` is connected to (as a
        superuser) from now to the end of the test."""
        if any(p.admin.url == admin.url for p in self._pg):
            return
        try:
            self._pg.append(_PgLog.open(admin))
        except LookupError as exc:
            message = f"PostgreSQL's own log cannot be read, so it cannot be checked: {exc}"
            in_ci = os.environ.get("CI", "").lower() == "true"
            if os.environ.get("CREDENCE_SKIP_PG_LOG") == "1" and not in_ci:
                warnings.warn(message, stacklevel=2)
                return
            pytest.fail(message + " (set CREDENCE_TEST_PG_LOG to the file)", pytrace=False)

    def watch_file(self, path: Path) -> None:
        """Read what is appended to ``path`` (a process's output) from now on."""
        self._files[path] = path.stat().st_size if path.exists() else 0

    def start(self) -> None:
        for name, level in LEVELS.items():
            logger = logging.getLogger(name or None)
            self._restore.append((logger, logger.level))
            logger.setLevel(level)
        root = logging.getLogger()
        root.addHandler(self._capture)
        # Loggers that do not pass their records up (a server's, say) get the handler too.
        for known in list(logging.root.manager.loggerDict.values()):
            if isinstance(known, logging.Logger) and not known.propagate:
                known.addHandler(self._capture)
                self._restore.append((known, None))

    def stop(self) -> None:
        for logger, level in self._restore:
            logger.removeHandler(self._capture)
            if level is not None:
                logger.setLevel(level)
        self._restore.clear()

    def logs(self) -> dict[str, str]:
        """Every log watched, by where it came from."""
        found = {"application log": "\n".join(self._capture.lines)}
        for pg in self._pg:
            found[f"PostgreSQL's log ({pg.path})"] = pg.read()
        for path, offset in self._files.items():
            assert path.exists(), f"the watched log {path} was never written"
            with open(path, "rb") as file:
                file.seek(offset)
                found[str(path)] = file.read().decode("utf-8", "replace")
        return found

    def findings(self) -> list[str]:
        """Where a protected value appears (the lines, with every protected value in
        them masked): empty when nothing leaked."""
        variants = {v for s in self.secrets for v in _variants(s)}
        masked = sorted(variants, key=len, reverse=True)
        found = []
        for where, log in self.logs().items():
            for number, line in enumerate(log.splitlines(), 1):
                lowered = line.lower()
                if any(v in lowered for v in variants):
                    for v in masked:
                        lowered = lowered.replace(v, "<protected>")
                    found.append(f"{where}, line {number}: {lowered[:300]}")
        return found

    def check(self) -> None:
        found = self.findings()
        assert not found, f"personal data in logs ({len(found)} lines):\n" + "\n".join(found[:20])


def _variants(secret: str) -> set[str]:
    """How a value may be written in a log: as is, escaped by ``repr``, by JSON."""
    forms = {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    return {f.lower() for f in forms}


@pytest.fixture
def personal_data_guard(request: pytest.FixtureRequest) -> Iterator[PersonalDataGuard]:
    """A :class:`PersonalDataGuard` over this test (see the module docstring)."""
    guard = PersonalDataGuard()
    guard.start()
    try:
        if "backend" in request.fixturenames and request.getfixturevalue("backend") == (
            "postgresql"
        ):
            guard.watch_postgresql(request.getfixturevalue("pg_admin"))
        yield guard
    finally:
        guard.stop()
    guard.check()
