"""Bulk inserts (credence.db.insert_rows / bulk_insert) on both stores: executemany for
small batches, COPY on PostgreSQL for large ones; every value comes back as sent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import from_micros
from credence.db import (
    COPY_THRESHOLD,
    SQLITE_BULK_CACHE_KIB,
    SQLITE_CACHE_KIB,
    bulk_insert,
    bulk_load_cache,
    insert_rows,
)
from credence.journal import JournalEntry

JOURNAL = JournalEntry.metadata.tables[JournalEntry.__tablename__]
#: Text that COPY must escape (tab, newline, backslash, the \N of NULL) and non-ASCII.
AWKWARD = 'a\tb\nc\\d \\N "e" ü 信用 \r'


@pytest.mark.parametrize("n", [1, 3, COPY_THRESHOLD, COPY_THRESHOLD * 2 + 1])
def test_insert_rows_stores_every_value_as_sent(sessions: sessionmaker[Session], n: int) -> None:
    rows = [("kind", None, 1_767_225_600_000_000 + i, f"{AWKWARD}{i}") for i in range(n)]
    with sessions.begin() as session:
        insert_rows(session, JOURNAL, ("kind", "subject_id", "at", "data"), rows)
    with sessions() as session:
        got = session.execute(
            select(JOURNAL.c.kind, JOURNAL.c.subject_id, JOURNAL.c.at, JOURNAL.c.data).order_by(
                JOURNAL.c.seq
            )
        ).all()
    # Instants go in as microseconds and come back through the column type.
    assert [tuple(r) for r in got] == [(k, s, from_micros(at), d) for k, s, at, d in rows]


def test_insert_rows_is_part_of_the_callers_transaction(sessions: sessionmaker[Session]) -> None:
    rows = [("kind", None, i, "x") for i in range(COPY_THRESHOLD + 5)]
    with sessions() as session:
        insert_rows(session, JOURNAL, ("kind", "subject_id", "at", "data"), rows)
        session.rollback()
    with sessions() as session:
        assert session.scalars(select(JOURNAL.c.seq)).all() == []


def test_bulk_insert_binds_values_by_column_type(sessions: sessionmaker[Session]) -> None:
    at = datetime(2026, 3, 1, 12, 0, 0, 7, tzinfo=UTC)
    entries = [{"kind": "k", "subject_id": None, "at": at, "data": AWKWARD}] * 3
    with sessions.begin() as session:
        bulk_insert(session, JOURNAL, entries)
    with sessions() as session:
        stored = session.scalars(select(JournalEntry)).all()
    assert [(e.at, e.data) for e in stored] == [(at, AWKWARD)] * 3


def test_a_bulk_load_gets_a_large_page_cache_on_sqlite_and_gives_it_back(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        connection = session.connection()

        def cache() -> int:
            return int(connection.exec_driver_sql("PRAGMA cache_size").scalar() or 0)

        sqlite = connection.dialect.name == "sqlite"
        before = cache() if sqlite else None
        with bulk_load_cache(session):
            if sqlite:
                assert cache() == -SQLITE_BULK_CACHE_KIB
            insert_rows(
                session, JOURNAL, ("kind", "subject_id", "at", "data"), [("k", None, 1, "x")]
            )
        if sqlite:
            assert before == cache() == -SQLITE_CACHE_KIB
        session.commit()
