"""Erasing a record's content when the law says it must go.

A record is kept only as long as its purpose lasts: to the end of its type's retention
period (the rulebook's ``retention_days`` after it occurred). Erasure then removes its
content (source reference, type, date, quantity, decision reference, content hash) in
place, and its salt with it: the row keeps its id, public id, subject, source and
received instant. The entry that wrote the record keeps the digest of what it held, so
the log's leaves and every proof still hold while the content is gone for good (without
that salt, the digest cannot be tested against guessed content). An erasure is an entry
of its own: it writes a row of ``record_erasures`` (what, when, why), which the
subject's file shows, and rewrites the record's row as it is now under a new salt, so
what the row keeps stays proven and the erasure cannot be undone unnoticed.

Notices sent to the subject that name the record lose their text with it.

:func:`sweep_retention` erases every record whose retention ended, in batches of its own
transactions (each holds this process's SQLite write lock for one batch only, so
requests are not stalled); on SQLite, ``secure_delete`` (always on, see
:func:`credence.db.make_engine`) zeroes the freed bytes in the database file, and a
truncating WAL checkpoint afterwards removes the old pages from the write-ahead log.
On PostgreSQL the old row versions stay in the table's files until routine vacuum
reclaims them (autovacuum, or ``VACUUM records``).

A past score is reproducible exactly only while the records behind it are retained:
once a record is erased, a score "as of" an instant when it still counted can no longer
be recomputed (the record counted zero after its retention anyway, so scores as of now
and later are unchanged).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from credence import journal
from credence.db import is_sqlite, write_lock
from credence.ledger.tables import ERASED_RECORD_COLUMNS, Record, RecordErasure
from credence.notifications.tables import Notification
from credence.rulebook.model import Rulebook

#: Why a record was erased.
RETENTION_ENDED = "retention_ended"
DISPUTE_DELETED = "dispute_deleted"
REASONS = (RETENTION_ENDED, DISPUTE_DELETED)

#: Records erased per transaction by the sweep.
SWEEP_BATCH = 500

#: What a notice that named an erased record says instead.
ERASED_NOTICE = "This notice was about a record since erased; its content is gone."


def erase(session: Session, record: Record, *, reason: str, at: datetime) -> RecordErasure:
    """Erase ``record``'s content in the caller's transaction; its erasure row."""
    if reason not in REASONS:
        raise ValueError(f"an erasure's reason is one of {', '.join(REASONS)}")
    existing = session.scalar(select(RecordErasure).where(RecordErasure.record_id == record.id))
    if existing is not None:
        return existing
    for column in ERASED_RECORD_COLUMNS:
        setattr(record, column, None)
    erasure = RecordErasure(
        record_id=record.id, subject_id=record.subject_id, reason=reason, erased_at=at
    )
    # The erasure rewrites the record's row as it is now (what it keeps, its content
    # NULL) under a new salt: what it keeps stays proven, and the salt of its content,
    # the only way to test the old digest against guessed content, is gone.
    journal.append(
        session,
        kind=journal.EventKind.RECORD_ERASED,
        at=at,
        subject_id=record.subject_id,
        data={"record": record.public_id, "reason": reason},
        rows=[record, erasure],
    )
    session.execute(
        update(Notification)
        .where(
            Notification.subject_id == record.subject_id,
            Notification.text.contains(record.public_id),
        )
        .values(text=ERASED_NOTICE)
    )
    return erasure


def expired(session: Session, rulebook: Rulebook, at: datetime, *, limit: int) -> list[Record]:
    """Up to ``limit`` records not yet erased whose retention ended at or before ``at``
    (under ``rulebook``), oldest first."""
    found: list[Record] = []
    for rt in sorted(rulebook.record_types, key=lambda t: t.code):
        cutoff = at - timedelta(days=rt.retention_days)
        found += session.scalars(
            select(Record)
            .where(
                Record.record_type == rt.code,
                Record.occurred_at <= cutoff,
            )
            .order_by(Record.id)
            .limit(limit - len(found))
        )
        if len(found) >= limit:
            break
    return found


@dataclass(frozen=True)
class SweepReport:
    erased: int
    batches: int


def sweep_retention(
    engine: Engine,
    sessions: sessionmaker[Session],
    rulebook: Rulebook,
    at: datetime,
    *,
    batch: int = SWEEP_BATCH,
    progress: Callable[[int], None] | None = None,
) -> SweepReport:
    """Erase every record whose retention ended by ``at``, ``batch`` records per
    transaction; then, on SQLite, checkpoint and truncate the WAL."""
    erased = batches = 0
    while True:
        with write_lock(engine), sessions.begin() as session:
            due = expired(session, rulebook, at, limit=batch)
            for record in due:
                erase(session, record, reason=RETENTION_ENDED, at=at)
        if not due:
            break
        erased += len(due)
        batches += 1
        if progress is not None:
            progress(erased)
    if is_sqlite(engine):
        with write_lock(engine), engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    return SweepReport(erased=erased, batches=batches)
