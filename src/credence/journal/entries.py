"""Appending to the journal, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from credence.db import bulk_insert
from credence.journal.canonical import canonical
from credence.journal.kinds import EventKind
from credence.journal.tables import JournalEntry

#: The journal's columns a bulk append writes (``seq`` is the store's).
COLUMNS = ("kind", "subject_id", "at", "data")


def checked(kind: EventKind) -> str:
    """``kind``'s stored value; anything but an :class:`EventKind` is refused, a string
    that names one included (a kind is chosen from the enum, never spelt)."""
    if not isinstance(kind, EventKind):
        raise ValueError("not a journal event kind: choose one of credence.journal.EventKind")
    return kind.value


def append(
    session: Session,
    *,
    kind: EventKind,
    at: datetime,
    data: dict[str, Any],
    subject_id: int | None = None,
) -> None:
    """Append one journal entry in the caller's transaction."""
    session.add(
        JournalEntry(kind=checked(kind), at=at, subject_id=subject_id, data=canonical(data))
    )


def append_many(session: Session, entries: Sequence[dict[str, Any]]) -> None:
    """Bulk form of :func:`append`; each dict has ``kind`` (an :class:`EventKind`),
    ``at``, ``subject_id`` and ``data`` (already canonical). Order of the list is the
    order in the journal."""
    if entries:
        rows = [{**entry, "kind": checked(entry["kind"])} for entry in entries]
        # Core insert on the table: one executemany (the ORM bulk form splits on None).
        bulk_insert(session, JournalEntry.metadata.tables[JournalEntry.__tablename__], rows)
