"""One journal row as a log entry, and the rows it wrote, opened.

Leaf hashes are public; an entry's leaf data (digests only) and its opened rows
(:func:`opened_rows`: salt and canonical bytes, from which anyone can recompute the
digests the entry lists) are shown only to the entry's subject and to operators.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence.clock import from_micros
from credence.errors import NotFound
from credence.journal import Covered, JournalEntry, parse_listing, registration
from credence.translog import merkle
from credence.translog.leaves import ROW_COLUMNS, leaf_data
from credence.translog.tables import LogLeaf


@dataclass(frozen=True)
class LogEntry:
    """One journal row as a log leaf."""

    seq: int
    kind: str
    subject_id: int | None
    at: datetime
    data: str
    rows: str
    """The covered rows the entry wrote, as it lists them: ``[[table, key, digest]]``."""
    leaf_data: bytes
    leaf_hash: bytes
    leaf_index: int | None
    """Its index in the log, once a checkpoint covers it; ``None`` before."""


def entry(session: Session, seq: int) -> LogEntry:
    """Journal row ``seq`` as a log leaf; :class:`NotFound` if there is none."""
    row = session.execute(select(*ROW_COLUMNS).where(JournalEntry.seq == seq)).one_or_none()
    if row is None:
        raise NotFound(f"the log has no entry {seq}", code="unknown_entry")
    _, kind, subject_id, at, data, rows = row
    bytes_ = leaf_data(
        seq=seq, kind=kind, subject_id=subject_id, at_micros=int(at), data=data, rows=rows
    )
    index = session.scalar(select(LogLeaf.leaf_index).where(LogLeaf.seq == seq))
    return LogEntry(
        seq=seq,
        kind=kind,
        subject_id=subject_id,
        at=from_micros(int(at)),
        data=data,
        rows=rows,
        leaf_data=bytes_,
        leaf_hash=merkle.leaf_hash(bytes_),
        leaf_index=index,
    )


@dataclass(frozen=True)
class OpenedRow:
    """A row an entry wrote, opened: its canonical bytes and salt, from which anyone can
    recompute the digest the entry lists (shown only to whom may read the entry)."""

    table: str
    key: Any
    digest: str
    salt: str
    canonical: str


def opened_rows(session: Session, entry: LogEntry) -> list[OpenedRow]:
    """The rows ``entry`` lists that still hold what it wrote (not rewritten by a later
    entry, not erased), opened."""
    opened = []
    for table_name, key, digest in parse_listing(entry.rows):
        registered = registration(table_name)
        if not isinstance(registered, Covered):
            continue
        table = JournalEntry.metadata.tables[table_name]
        columns = list(table.primary_key.columns)
        keys = key if isinstance(key, tuple) else (key,)
        if len(keys) != len(columns):
            continue
        row = (
            session.execute(
                select(table).where(*(c == k for c, k in zip(columns, keys, strict=True)))
            )
            .mappings()
            .one_or_none()
        )
        if row is None or row["seq"] != entry.seq or row["salt"] is None:
            continue
        opened.append(
            OpenedRow(
                table=table_name,
                key=key,
                digest=digest,
                salt=row["salt"],
                canonical=registered.encoder(row).decode(),
            )
        )
    return opened


__all__ = [
    "LogEntry",
    "OpenedRow",
    "entry",
    "opened_rows",
]
