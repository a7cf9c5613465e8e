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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, Table, bindparam, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from credence import journal
from credence.db import bulk_insert, is_sqlite, write_lock
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
    """Erase ``record``'s content in the caller's transaction; its erasure row (the
    existing one if it was erased already)."""
    erase_all(session, [record], reason=reason, at=at)
    return session.scalars(select(RecordErasure).where(RecordErasure.record_id == record.id)).one()


def erase_all(session: Session, records: Sequence[Record], *, reason: str, at: datetime) -> int:
    """Erase the content of ``records`` (those not erased yet) in the caller's
    transaction, an entry each; how many were erased.

    Each entry writes the record's erasure row and rewrites the record's row as it is
    now (what it keeps, its content NULL) under a new salt: what the row keeps stays
    proven, and the salt of its content, the only way to test the old digest against
    guessed content, is gone. Written in bulk (a sweep erases thousands), as ingestion
    writes records.
    """
    if reason not in REASONS:
        raise ValueError(f"an erasure's reason is one of {', '.join(REASONS)}")
    ids = [r.id for r in records]
    done = set(
        session.scalars(select(RecordErasure.record_id).where(RecordErasure.record_id.in_(ids)))
    )
    todo = [r for r in records if r.id not in done]
    if not todo:
        return 0
    session.flush()
    n = len(todo)
    seqs = journal.allocate(session, n)
    erasure_ids = journal.allocate_ids(session, _ERASURES, n)
    salts = journal.new_salts(2 * n)
    record_updates, erasure_rows, entries = [], [], []
    for i, (record, seq, erasure_id) in enumerate(zip(todo, seqs, erasure_ids, strict=True)):
        record_salt, erasure_salt = salts[2 * i], salts[2 * i + 1]
        kept = {c.name: getattr(record, c.key) for c in _RECORD_TABLE.columns}
        kept.update(dict.fromkeys(ERASED_RECORD_COLUMNS), seq=seq, salt=record_salt)
        erasure = {
            "id": erasure_id,
            "record_id": record.id,
            "subject_id": record.subject_id,
            "reason": reason,
            "erased_at": at,
            "seq": seq,
            "salt": erasure_salt,
        }
        record_updates.append({"b_id": record.id, "b_seq": seq, "b_salt": record_salt})
        erasure_rows.append(erasure)
        entries.append(
            {
                "seq": seq,
                "kind": journal.EventKind.RECORD_ERASED,
                "at": at,
                "subject_id": record.subject_id,
                "data": journal.canonical({"record": record.public_id, "reason": reason}),
                "rows": journal.listing(
                    [
                        ("records", record.id, journal.digest(record_salt, _RECORD_BYTES(kept))),
                        (
                            "record_erasures",
                            erasure_id,
                            journal.digest(erasure_salt, _ERASURE_BYTES(erasure)),
                        ),
                    ]
                ),
            }
        )
    session.execute(_ERASE_RECORD, record_updates)
    bulk_insert(session, _ERASURES, erasure_rows)
    journal.append_many(session, entries)
    session.execute(
        _ERASE_NOTICES, [{"b_subject": r.subject_id, "b_named": r.public_id} for r in todo]
    )
    for record in todo:  # the instances now hold what the rows hold
        session.expire(record)
    return n


_RECORD_TABLE: Table = Record.__table__  # type: ignore[assignment]
_ERASURES: Table = RecordErasure.__table__  # type: ignore[assignment]
_RECORD_BYTES = journal.covered("records").encoder
_ERASURE_BYTES = journal.covered("record_erasures").encoder
#: A record's row erased: its content NULL, its new entry and salt.
_ERASE_RECORD = (
    update(_RECORD_TABLE)
    .where(_RECORD_TABLE.c.id == bindparam("b_id"))
    .values(
        {
            **dict.fromkeys(ERASED_RECORD_COLUMNS),
            "seq": bindparam("b_seq"),
            "salt": bindparam("b_salt"),
        }
    )
)
#: The notices that name a record lose their text with it.
_NOTICES: Table = Notification.__table__  # type: ignore[assignment]
_ERASE_NOTICES = (
    update(_NOTICES)
    .where(
        _NOTICES.c.subject_id == bindparam("b_subject"),
        _NOTICES.c.text.contains(bindparam("b_named")),
    )
    .values(text=ERASED_NOTICE)
)


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
            erase_all(session, due, reason=RETENTION_ENDED, at=at)
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
