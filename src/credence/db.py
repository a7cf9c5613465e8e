"""Engine, sessions and column types shared by every feature's tables.

SQLite (WAL) is the embedded default; PostgreSQL is the production store. Instants are
stored as integer microseconds since the Unix epoch (UTC) so that both stores compare,
sort and bulk-load them identically and the batch scorer can read them without parsing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    any_,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeDecorator

from credence.clock import from_micros, to_micros

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for every table; one metadata for Alembic."""

    metadata = MetaData(naming_convention=NAMING)


class Instant(TypeDecorator[datetime]):
    """An aware UTC datetime stored as BIGINT microseconds since the epoch."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        return None if value is None else to_micros(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> datetime | None:
        return None if value is None else from_micros(int(value))


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and route it to the psycopg (v3) driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


#: How long an SQLite connection waits for another's write lock before it gives up.
SQLITE_BUSY_MS = 30_000

#: How much of an SQLite file each connection maps into memory (SQLite caps it, by
#: default at 2 GiB); pages past it are read with system calls.
SQLITE_MMAP_BYTES = 1 << 40
#: Each SQLite connection's page cache, in KiB (SQLite's default is 2 MiB).
SQLITE_CACHE_KIB = 64 * 1024


#: The page cache of a connection during a bulk load, in KiB: the dirty pages of a large
#: transaction stay in memory until its commit, instead of being spilled to the WAL and
#: written again each time the load touches them once more.
SQLITE_BULK_CACHE_KIB = 1024 * 1024


@contextmanager
def bulk_load_cache(session: Session) -> Iterator[None]:
    """A larger page cache (:data:`SQLITE_BULK_CACHE_KIB`) on the session's SQLite
    connection for a bulk load, back to the usual size at the end of the block (leave
    it before committing). No-op on other stores."""
    connection = core(session)
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_BULK_CACHE_KIB}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")


#: An empty table: ``get`` returns None for any key (sqlite3's adapter for None).
_NULL_ADAPTER: dict[object, None] = {}


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout.

    SQL parameters never appear in SQLAlchemy's exception texts or statement logs
    (``hide_parameters``): they carry national identifiers and names, and an error's
    text goes into tracebacks and logs.
    """
    url = normalise_url(url)
    kwargs["hide_parameters"] = True
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        # sqlite3 binds any value but an int, float, str or bytearray through its
        # adaptation protocol, which for None is an attribute look-up that fails (an
        # exception built, then cleared): about 2,000 instructions per NULL bound, and a
        # record's row carries several (bench/README.md, intake's instruction counts).
        # With an adapter registered for None (a C call that returns None) the protocol
        # finds it in its table at once; the value is bound as NULL as before.
        sqlite3.register_adapter(type(None), _NULL_ADAPTER.get)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Freed bytes (an erased record's content) are zeroed, not left on disk.
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            # Read the file through a memory map and keep more pages per connection:
            # on a large store a request touches a few dozen index pages, and reading
            # each through a system call costs more than the query.
            cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def checkpoint_in_background(engine: Engine, every: float = 0.2) -> None:
    """Checkpoint an SQLite engine's WAL in a thread, not in the connections that commit.

    By default the connection whose commit grows the WAL past 1,000 pages copies the WAL
    into the database file and syncs both, there and then: a stall of milliseconds in
    the middle of a request, now and then. The API server calls this at start: its
    connections made from then on never checkpoint, and a daemon thread checkpoints
    every ``every`` seconds (PASSIVE: it waits for no reader or writer), mostly without
    the GIL. It stops when the engine is gone. No-op for other stores.
    """
    if not is_sqlite(engine) or engine.url.database in (None, "", ":memory:"):
        return

    @event.listens_for(engine, "connect")
    def _no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")

    thread = threading.Thread(
        target=_checkpoints,
        args=(weakref.ref(engine), every),
        name="credence-wal-checkpoints",
        daemon=True,
    )
    thread.start()


def _checkpoints(engine_ref: weakref.ref[Engine], every: float) -> None:
    log = logging.getLogger("credence.db")
    while True:
        time.sleep(every)
        engine = engine_ref()
        if engine is None:
            return
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:
            log.exception("WAL checkpoint failed; trying again in %s s", every)
        del engine


_write_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_write_locks_guard = threading.Lock()


def write_lock(engine: Engine) -> AbstractContextManager[Any]:
    """Held around a write transaction to take turns with this process's other writers.

    SQLite has one writer at a time; a second one waits in SQLite's busy handler, which
    sleeps in growing steps (up to 100 ms) and so leaves the file idle after the first
    commits. Waiting on a lock in the process instead hands over at once. Other stores
    take concurrent writers: no lock.
    """
    lock = _sqlite_write_lock(engine)
    return nullcontext() if lock is None else lock


def try_write_lock(engine: Engine) -> bool:
    """Take this process's write lock of an SQLite ``engine`` (see :func:`write_lock`)
    if it is free, without waiting: True if taken (release it with
    :func:`release_write_lock`). Always True for other stores, which have none."""
    lock = _sqlite_write_lock(engine)
    return lock is None or lock.acquire(blocking=False)


def release_write_lock(engine: Engine) -> None:
    """Release the lock :func:`try_write_lock` took."""
    lock = _sqlite_write_lock(engine)
    if lock is not None:
        lock.release()


def _sqlite_write_lock(engine: Engine) -> threading.Lock | None:
    if not is_sqlite(engine):
        return None
    with _write_locks_guard:
        lock = _write_locks.get(engine)
        if lock is None:
            lock = _write_locks[engine] = threading.Lock()
    return lock


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` is SQLite's "database is locked" (another connection writes)."""
    return isinstance(error, sqlite3.OperationalError) and error.sqlite_errorcode in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    )


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    with factory() as session, session.begin():
        yield session


def core(session: Session) -> Connection:
    """The session's connection, for Core statements on a hot path (one per request).

    ``session.execute`` runs a Core statement through the ORM's machinery, several times
    the cost of the query itself on SQLite; the connection runs it directly, in the same
    transaction. Pending ORM changes are flushed first, as ``session.execute`` would
    (autoflush), so the statement sees them.
    """
    if session.autoflush and (session.new or session.dirty or session.deleted):
        session.flush()
    return session.connection()


class Direct:
    """A DBAPI connection checked out of an engine's pool, with the engine's dialect:
    where :class:`Prepared` statements run, without SQLAlchemy's per-statement work.

    Use it as a context manager: the connection goes back to the pool at the end (rolled
    back if it was not committed). Statements that write start a transaction (as every
    DBAPI driver does); :meth:`commit` ends it.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.sqlite = engine.dialect.name == "sqlite"
        self._proxy: Any = engine.raw_connection()
        self.dbapi: Any = self._proxy.driver_connection

    @classmethod
    def within(cls, session: Session) -> Direct:
        """The connection of ``session``'s transaction (ORM changes flushed, as
        :func:`core` does), to run :class:`Prepared` statements in that transaction.
        It stays the session's: :meth:`close` leaves it alone."""
        connection = core(session)
        direct = cls.__new__(cls)
        direct.engine = connection.engine
        direct.dialect = connection.dialect
        direct.sqlite = connection.dialect.name == "sqlite"
        direct._proxy = None
        direct.dbapi = connection.connection.driver_connection
        return direct

    def __enter__(self) -> Direct:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, *, invalidate: bool = False) -> None:
        """Give the connection back to the pool, which rolls back whatever was not
        committed; ``invalidate`` closes it instead (it may be broken)."""
        if self._proxy is None:  # a session's connection (see within): the session's to end
            return
        if invalidate:
            self._proxy.invalidate()
        else:
            self._proxy.close()

    def commit(self) -> None:
        self.dbapi.commit()

    def rollback(self) -> None:
        self.dbapi.rollback()


#: What a hot read runs on: an ORM session (its transaction's connection) or a
#: :class:`Direct` connection. Each hot read is one function taking either.
Connectable = Session | Direct


def as_direct(conn: Connectable) -> Direct:
    """``conn`` as a :class:`Direct` connection: itself, or the session's (see
    :meth:`Direct.within`), so one function serves every path with the same prepared
    statement."""
    return conn if isinstance(conn, Direct) else Direct.within(conn)


class Prepared:
    """A Core statement compiled once per dialect and run on a :class:`Direct` connection.

    For the few statements an API path runs on every request: SQLAlchemy's work per
    execution (cache key, parameter binding, result rows) costs several times a simple
    indexed query on SQLite. The statement is still written once, in Core, for every
    dialect. ``fixed`` gives the values of expanding ``IN`` parameters (their lengths
    shape the SQL, so each prepared statement has its own); :meth:`run` binds the other
    parameters through their types' bind processors, as SQLAlchemy would, and returns
    the driver's rows as they are: instants as integer microseconds (see
    :class:`Instant`), booleans as the driver gives them.
    """

    def __init__(self, statement: ClauseElement, **fixed: Any) -> None:
        self.statement = statement
        self.fixed = fixed
        self._ready: dict[str, _Ready] = {}

    def _prepare(self, dialect: Dialect, params: dict[str, Any]) -> _Ready:
        compiled: Any = self.statement.compile(dialect=dialect)
        state = compiled.construct_expanded_state({**self.fixed, **params})
        processors = {
            name: process
            for name, bind in compiled.binds.items()
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        processors.update(state.processors)  # those of the expanded IN elements
        # Parameters fixed at compile time (IN lists, LIMITs, literals) are bound once;
        # the per-call ones go through their processors on each run.
        defaults = {
            name: (processors[name](v) if name in processors and v is not None else v)
            for name, v in state.parameters.items()
        }
        order = tuple(state.positiontup) if state.positiontup is not None else None
        ready = _Ready(state.statement, order, defaults, processors)
        self._ready[dialect.name] = ready
        return ready

    def run(self, direct: Direct, params: dict[str, Any]) -> list[Any]:
        """Execute with ``params`` (by name); the rows, if the statement returns any."""
        ready = self._ready.get(direct.dialect.name) or self._prepare(direct.dialect, params)
        if direct.sqlite:  # sqlite3 runs a statement without a cursor of our own
            cursor = direct.dbapi.execute(ready.sql, ready.bind(params))
            return cursor.fetchall() if cursor.description is not None else []
        cursor = direct.dbapi.cursor()
        try:
            cursor.execute(ready.sql, ready.bind(params))
            return cursor.fetchall() if cursor.description is not None else []
        finally:
            cursor.close()

    def run_many(self, direct: Direct, rows: Sequence[dict[str, Any]]) -> None:
        """Execute once per parameter set in ``rows`` (an insert of many rows, say)."""
        if not rows:
            return
        ready = self._ready.get(direct.dialect.name) or self._prepare(direct.dialect, rows[0])
        cursor = direct.dbapi.cursor()
        try:
            cursor.executemany(ready.sql, [ready.bind(row) for row in rows])
        finally:
            cursor.close()


class _Ready:
    """A :class:`Prepared` statement for one dialect: its SQL, how to bind parameters."""

    def __init__(
        self,
        sql: str,
        order: tuple[str, ...] | None,
        defaults: dict[str, Any],
        processors: dict[str, Any],
    ) -> None:
        self.sql = sql
        self.order = order
        self.defaults = defaults
        self.processors = processors

    def bind(self, params: dict[str, Any]) -> list[Any] | dict[str, Any]:
        """Positional values in the statement's order, or named ones (by paramstyle)."""
        processors = self.processors
        if self.order is None:
            values = dict(self.defaults)
            for name, value in params.items():
                process = processors.get(name)
                values[name] = process(value) if process and value is not None else value
            return values
        bound = []
        for name in self.order:
            if name in params:
                value = params[name]
                process = processors.get(name)
                bound.append(process(value) if process and value is not None else value)
            else:
                bound.append(self.defaults[name])
        return bound


#: Batches at least this large go through PostgreSQL's COPY instead of INSERT.
COPY_THRESHOLD = 500


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows given as dicts of what the ORM would bind (instants as aware
    datetimes): each value goes through its column type's bind processor, as SQLAlchemy
    would bind it, then :func:`insert_rows`."""
    if not rows:
        return
    dialect = session.connection().dialect
    columns = [c for c in table.columns if c.key in rows[0]]
    processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    keys = [c.key for c in columns]
    values = [
        tuple(
            process(value) if process is not None and value is not None else value
            for process, value in zip(processors, (row.get(k) for k in keys), strict=True)
        )
        for row in rows
    ]
    insert_rows(session, table, [c.name for c in columns], values)


def insert_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert many rows in the session's transaction, each a tuple of values in the order
    of ``columns``, already as the driver takes them (instants as integer microseconds,
    see :class:`Instant`): for large batches, where SQLAlchemy's per-row parameter
    handling would cost more than the insert. COPY on PostgreSQL for batches of at least
    :data:`COPY_THRESHOLD` rows, one DBAPI ``executemany`` otherwise."""
    if not rows:
        return
    connection = core(session)
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    raw: Any = connection.connection.driver_connection
    assert raw is not None  # a live DBAPI connection inside the session's transaction
    if dialect.name == "postgresql" and len(rows) >= COPY_THRESHOLD:
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {quote(table.name)} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join(marker for _ in columns)})"
    if dialect.name == "sqlite":
        raw.executemany(sql, rows)
        return
    cursor = raw.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


#: Values per list parameter (see :func:`in_list`) sent at once: well under SQLite's and
#: PostgreSQL's limits.
CHUNK = 900


def chunked(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """``values`` in slices of at most :data:`CHUNK`."""
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


class _IdsText(TypeDecorator[list[int]]):
    """A list of integers bound as the text of a PostgreSQL array literal (``{1,2,3}``),
    cast on the server: an ``ARRAY`` parameter goes through SQLAlchemy's array processor
    and the driver's list adapter element by element, which costs a look-up of a few
    thousand ids more client CPU than the look-up (0.75 against 0.33 µs an id, measured
    on psycopg). Integers need no quoting."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: list[int] | None, dialect: Dialect) -> str | None:
        return None if value is None else "{" + ",".join(map(str, value)) + "}"


class _JsonText(TypeDecorator[list[Any]]):
    """A list bound as the text of a JSON array (SQLite's ``json_each`` reads it),
    written by orjson: SQLAlchemy's ``JSON`` type writes it with :func:`json.dumps`,
    whose escaping of each string costs about 800 instructions an element (a look-up's
    thousands of identifiers or refs per batch). The values ``json_each`` reads are the
    same; a list orjson refuses (a lone surrogate, an integer beyond 64 bits) is written
    by :func:`json.dumps`."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        try:
            return orjson.dumps(value).decode()
        except TypeError:  # orjson.JSONEncodeError
            return json.dumps(value)


def in_list(column: Any, name: str, dialect: str) -> ColumnElement[bool]:
    """``column IN (:name)`` for a list parameter, as one parameter: an array on
    PostgreSQL (``= ANY``; integers as one array literal, :class:`_IdsText`), a JSON
    array on SQLite (``json_each``); expanding hundreds of parameters costs more, in
    SQLAlchemy and in the driver, than the query."""
    if dialect == "postgresql":
        array: Any = (
            cast(bindparam(name, type_=_IdsText()), ARRAY(BigInteger()))
            if isinstance(column.type, Integer)
            else bindparam(name, type_=ARRAY(column.type))
        )
        condition: ColumnElement[bool] = column == any_(array)
    elif dialect == "sqlite":
        values = func.json_each(bindparam(name, type_=_JsonText())).table_valued("value")
        condition = column.in_(select(values.c.value))
    else:
        condition = column.in_(bindparam(name, expanding=True))
    return condition


def insert_new(
    session: Session, table: Table, values: dict[str, Any], *, unique: Sequence[str]
) -> int | None:
    """Insert one row into ``table`` (whose key is ``id``) unless a row with the same
    ``unique`` columns (a unique index or constraint) is stored: the new row's id, or
    None and nothing written.

    ``INSERT … ON CONFLICT DO NOTHING``: a row taken by a concurrent transaction is
    waited for, then found, and the statement does not fail on the server. A failed
    insert would, even inside a savepoint: PostgreSQL writes the violated key into its
    log and into the error, and a key may carry personal data (a national identifier).
    """
    dialect = core(session).dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=unique)
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=unique)
    else:  # pragma: no cover - the two stores Credence runs on
        raise NotImplementedError(f"no insert-unless-stored for {dialect}")
    found = core(session).execute(statement.values(values).returning(table.c.id)).scalar()
    return None if found is None else int(found)
