"""Erasing a record's content when the law says it must go.

A record is kept only as long as its purpose lasts: to the end of its type's retention
period (the rulebook's ``retention_days`` after it occurred), or until a dispute or an
approved repair ends its effect. Erasure then removes its content (source reference,
type, date, quantity, decision reference, content hash) in place, and the salt it was
hashed with: the row keeps its id, public id, subject, source and received instant. The
entry that wrote the record keeps the digest of what it held, so the log's leaves and
every proof still hold while the content is gone for good (without that salt, the
digest cannot be tested against guessed content). An erasure is an entry of its own: it
writes a row of ``record_erasures`` (what, when, why), which the subject's file shows,
and rewrites the record's row as it is now under a new salt, so what the row keeps
stays proven and the erasure cannot be undone unnoticed. Notices sent to the subject
that name the record lose their text with it.

A record a dispute ended keeps its source reference and content hash
(:data:`REINSERTION_MINIMUM`) for :data:`REINSERTION_WINDOW`, so that a resend is still
a duplicate and a reinsertion of the same content still needs its source's
certification (:func:`credence.ledger.service.plan_records`); then those go too.

:func:`sweep_retention` erases all of these, in batches of its own transactions (each
holds this process's SQLite write lock for one batch only, so requests are not
stalled); on SQLite, ``secure_delete`` (always on, see :func:`credence.db.make_engine`)
zeroes the freed bytes in the database file, and a truncating WAL checkpoint afterwards
removes the old pages from the write-ahead log. On PostgreSQL the old row versions stay
in the table's files until routine vacuum reclaims them (autovacuum, or ``VACUUM
records``).

A past score is reproducible exactly only while the records behind it are retained:
once a record is erased, a score "as of" an instant when it still counted can no longer
be recomputed (scores as of now and later are unchanged: an expired record counts zero,
and one a dispute or repair ended counted zero from then on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, bindparam, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from credence import journal
from credence.db import bulk_insert, is_sqlite, write_lock
from credence.ledger import endings
from credence.ledger.tables import ERASED_RECORD_COLUMNS, Record, RecordErasure
from credence.notifications.tables import Notification
from credence.rulebook.model import Rulebook

#: Why a record was erased: its retention ended, a dispute ended its effect (deleted,
#: corrected or left unanswered), or an approved repair did.
RETENTION_ENDED = "retention_ended"
DISPUTE_DELETED = endings.DISPUTE_DELETED
DISPUTE_CORRECTED = endings.DISPUTE_CORRECTED
DISPUTE_LAPSED = endings.DISPUTE_LAPSED
REPAIRED = "repaired"
REASONS = (RETENTION_ENDED, DISPUTE_DELETED, DISPUTE_CORRECTED, DISPUTE_LAPSED, REPAIRED)
#: What an erasure entry says when it removes the minimum kept for reinsertion checks.
WINDOW_CLOSED = "reinsertion_window_closed"

#: What a record a dispute ended keeps once erased, until the reinsertion window
#: closes: enough to tell a resend of it (a duplicate) and a reinsertion of the same
#: content under another reference (which needs its source's certification).
REINSERTION_MINIMUM = ("source_ref", "content_hash")
#: How long after a dispute ended a record that minimum is kept.
REINSERTION_WINDOW = timedelta(days=365)

#: Records erased per transaction by the sweep.
SWEEP_BATCH = 500

#: What a notice that named an erased record says instead.
ERASED_NOTICE = "This notice was about a record since erased; its content is gone."


def erase(session: Session, record: Record, *, reason: str, at: datetime) -> RecordErasure:
    """Erase ``record``'s content in the caller's transaction; its erasure row (the
    existing one if it was erased already)."""
    erase_all(session, [record], reason=reason, at=at)
    return session.scalars(select(RecordErasure).where(RecordErasure.record_id == record.id)).one()


def erase_all(
    session: Session,
    records: Sequence[Record],
    *,
    reason: str,
    at: datetime,
    keep: Sequence[str] = (),
) -> int:
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
    if not set(keep) <= set(REINSERTION_MINIMUM):
        raise ValueError("an erasure keeps at most the source reference and content hash")
    ids = [r.id for r in records]
    done = set(
        session.scalars(select(RecordErasure.record_id).where(RecordErasure.record_id.in_(ids)))
    )
    todo = [r for r in records if r.id not in done]
    if not todo:
        return 0
    nulled = tuple(c for c in ERASED_RECORD_COLUMNS if c not in keep)
    _rewrite(
        session,
        todo,
        nulled=nulled,
        at=at,
        data=lambda r: {"record": r.public_id, "reason": reason},
        erasures=lambda r, erasure_id: {
            "id": erasure_id,
            "record_id": r.id,
            "subject_id": r.subject_id,
            "reason": reason,
            "erased_at": at,
        },
    )
    return len(todo)


def finish(session: Session, records: Sequence[Record], *, at: datetime) -> int:
    """Erase what ``records``, erased already, kept for reinsertion checks (their
    reinsertion window closed); how many were finished."""
    todo = [r for r in records if any(getattr(r, c) is not None for c in REINSERTION_MINIMUM)]
    if todo:
        _rewrite(
            session,
            todo,
            nulled=REINSERTION_MINIMUM,
            at=at,
            data=lambda r: {"record": r.public_id, "reason": WINDOW_CLOSED},
            erasures=None,
        )
    return len(todo)


def _rewrite(
    session: Session,
    todo: Sequence[Record],
    *,
    nulled: Sequence[str],
    at: datetime,
    data: Callable[[Record], dict[str, Any]],
    erasures: Callable[[Record, int], dict[str, Any]] | None,
) -> None:
    """Set ``nulled`` of each record to NULL and write its row again, an entry each
    (listing the erasure row ``erasures`` makes, if given), in bulk."""
    session.flush()
    n = len(todo)
    seqs = journal.allocate(session, n)
    erasure_ids = journal.allocate_ids(session, _ERASURES, n) if erasures else [0] * n
    salts = journal.new_salts(2 * n)
    record_updates, erasure_rows, entries = [], [], []
    for i, (record, seq, erasure_id) in enumerate(zip(todo, seqs, erasure_ids, strict=True)):
        record_salt, erasure_salt = salts[2 * i], salts[2 * i + 1]
        kept = {c.name: getattr(record, c.key) for c in _RECORD_TABLE.columns}
        kept.update(dict.fromkeys(nulled), seq=seq, salt=record_salt)
        listed = [("records", record.id, journal.digest(record_salt, _RECORD_BYTES(kept)))]
        if erasures is not None:
            erasure = {**erasures(record, erasure_id), "seq": seq, "salt": erasure_salt}
            erasure_rows.append(erasure)
            listed.append(
                (
                    "record_erasures",
                    erasure_id,
                    journal.digest(erasure_salt, _ERASURE_BYTES(erasure)),
                )
            )
        record_updates.append(
            {"b_id": record.id, "b_seq": seq, "b_salt": record_salt}
            | {f"b_{c}": kept[c] for c in ERASED_RECORD_COLUMNS}
        )
        entries.append(
            {
                "seq": seq,
                "kind": journal.EventKind.RECORD_ERASED,
                "at": at,
                "subject_id": record.subject_id,
                "data": journal.canonical(data(record)),
                "rows": journal.listing(listed),
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
            **{c: bindparam(f"b_{c}") for c in ERASED_RECORD_COLUMNS},
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


def ended(session: Session, at: datetime, *, limit: int) -> list[tuple[Record, str]]:
    """Up to ``limit`` records not yet erased whose effect a dispute or an approved
    repair ended at or before ``at``, each with the reason of its erasure (the
    earliest ending's), oldest first."""
    causes = (*sorted(endings.DISPUTE_CAUSES), endings.REPAIR)
    events = endings.ending_events(causes=causes).subquery()
    rows = session.execute(
        select(Record, events.c.cause)
        .join(events, events.c.record_id == Record.id)
        .where(events.c.ended_at <= at, Record.record_type.is_not(None))
        .order_by(Record.id, events.c.ended_at)
        .limit(limit)
    ).all()
    found: dict[int, tuple[Record, str]] = {}
    for record, cause in rows:
        found.setdefault(record.id, (record, REPAIRED if cause == endings.REPAIR else cause))
    return list(found.values())


def window_closed(session: Session, at: datetime, *, limit: int) -> list[Record]:
    """Up to ``limit`` erased records still holding the minimum kept for reinsertion
    checks, erased at least :data:`REINSERTION_WINDOW` before ``at``."""
    return list(
        session.scalars(
            select(Record)
            .join(RecordErasure, RecordErasure.record_id == Record.id)
            .where(
                RecordErasure.erased_at <= at - REINSERTION_WINDOW,
                or_(Record.source_ref.is_not(None), Record.content_hash.is_not(None)),
            )
            .order_by(Record.id)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class SweepReport:
    """What a sweep erased: records by reason, and the reinsertion minimums whose
    window closed."""

    erased: dict[str, int]
    finished: int
    batches: int

    @property
    def total(self) -> int:
        return sum(self.erased.values())


def sweep_retention(
    engine: Engine,
    sessions: sessionmaker[Session],
    rulebook: Rulebook,
    at: datetime,
    *,
    batch: int = SWEEP_BATCH,
) -> SweepReport:
    """Erase, ``batch`` records per transaction (each under this process's write lock,
    so requests are not stalled): every record whose retention ended by ``at``; every
    record a dispute or an approved repair ended (a dispute's keeping the minimum for
    reinsertion checks); and that minimum once its window closed. Then, on SQLite,
    checkpoint and truncate the WAL."""
    erased = dict.fromkeys(REASONS, 0)
    finished = batches = 0

    def rounds(step: Callable[[Session], int]) -> int:
        nonlocal batches
        done = 0
        while True:
            with write_lock(engine), sessions.begin() as session:
                n = step(session)
            if not n:
                return done
            done += n
            batches += 1

    def retention(session: Session) -> int:
        due = expired(session, rulebook, at, limit=batch)
        return erase_all(session, due, reason=RETENTION_ENDED, at=at) if due else 0

    def disputed(session: Session) -> int:
        n = 0
        for record, reason in ended(session, at, limit=batch):
            keep = () if reason == REPAIRED else REINSERTION_MINIMUM
            n += erase_all(session, [record], reason=reason, at=at, keep=keep)
            erased[reason] += 1
        return n

    def closing(session: Session) -> int:
        return finish(session, window_closed(session, at, limit=batch), at=at)

    erased[RETENTION_ENDED] = rounds(retention)
    rounds(disputed)
    finished = rounds(closing)
    if is_sqlite(engine):
        with write_lock(engine), engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    return SweepReport(
        erased={k: v for k, v in erased.items() if v}, finished=finished, batches=batches
    )
