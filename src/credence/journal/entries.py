"""Appending to the journal, in the caller's transaction.

An entry lists the covered rows it wrote (see :mod:`credence.journal.rows`): each is
stamped with the entry's sequence number and a fresh salt, and the entry stores the
row's digest. A step that writes covered rows passes them to :func:`append`; a bulk
writer that inserts rows itself allocates numbers with
:func:`~credence.journal.rows.allocate` and passes each entry's listing to
:func:`append_many`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from credence.db import bulk_insert
from credence.journal.canonical import canonical
from credence.journal.coverage import REGISTRY, Covered
from credence.journal.kinds import EventKind
from credence.journal.rows import allocate, listed, listing, stamp
from credence.journal.tables import JournalEntry

#: The journal's columns a bulk append writes.
COLUMNS = ("seq", "kind", "subject_id", "at", "data", "rows")

_JOURNAL: Table = JournalEntry.metadata.tables[JournalEntry.__tablename__]


def checked(kind: EventKind) -> str:
    """``kind``'s stored value; anything but an :class:`EventKind` is refused, a string
    that names one included (a kind is chosen from the enum, never spelt)."""
    if not isinstance(kind, EventKind):
        raise ValueError("not a journal event kind: choose one of credence.journal.EventKind")
    return kind.value


def covered(table: str) -> Covered:
    """The registration of covered table ``table``; an error if it is not covered."""
    entry = REGISTRY.tables.get(table)
    if not isinstance(entry, Covered):
        raise ValueError(f"table {table} is not covered by the journal")
    return entry


def append(
    session: Session,
    *,
    kind: EventKind,
    at: datetime,
    data: dict[str, Any],
    subject_id: int | None = None,
    rows: Sequence[Any] = (),
) -> int:
    """Append one journal entry in the caller's transaction; its sequence number.

    ``rows`` are the mapped instances of covered tables the step wrote (new, or
    changed in place): each is stamped with the entry's number and a fresh salt,
    flushed, and listed in the entry with its digest.
    """
    value = checked(kind)
    (seq,) = allocate(session, 1)
    items = []
    if rows:
        stamp(rows, seq)
        session.add_all(rows)
        session.flush()
        items = [listed(row, covered(type(row).__table__.name).encoder) for row in rows]
    session.execute(
        insert(_JOURNAL),
        {
            "seq": seq,
            "kind": value,
            "at": at,
            "subject_id": subject_id,
            "data": canonical(data),
            "rows": listing(items),
        },
    )
    return seq


def append_many(session: Session, entries: Sequence[dict[str, Any]]) -> None:
    """Bulk form of :func:`append` for rows the caller inserted itself; each dict has
    ``seq`` (from :func:`~credence.journal.rows.allocate`), ``kind`` (an
    :class:`EventKind`), ``at``, ``subject_id``, ``data`` (already canonical) and
    ``rows`` (a :func:`~credence.journal.rows.listing`). Order of the list is the order
    in the journal."""
    if entries:
        rows = [{**entry, "kind": checked(entry["kind"])} for entry in entries]
        # Core insert on the table: one executemany (the ORM bulk form splits on None).
        bulk_insert(session, _JOURNAL, rows)
