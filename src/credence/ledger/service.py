"""The ledger's write side for records: checking a batch, appending it, retracting a record.

Everything here appends; nothing updates or deletes in place. Each append writes its
journal entry in the same transaction. Functions take the caller's session and commit
nothing: the caller owns the transaction, so a batch is stored whole or not at all.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import (
    Integer,
    bindparam,
    select,
)
from sqlalchemy.orm import Session

from credence import journal
from credence.clock import to_micros
from credence.db import Direct, Prepared, chunked, in_list, insert_new, insert_rows
from credence.errors import (
    Conflict,
    CredenceError,
    Forbidden,
    InvalidIdentifier,
    InvalidInput,
    NotFound,
)
from credence.identifiers import SubjectKind, birth_date, start_in_china, validate_any
from credence.ids import new_ordered_ids
from credence.ledger import lifting, reinsertion
from credence.ledger.registry import SubjectRef, source_types
from credence.ledger.schemas import RecordIn, RecordResult
from credence.ledger.tables import (
    STORED_RECORD_COLUMNS,
    Record,
    Retraction,
    Source,
    Subject,
)
from credence.notifications.service import Event, Notice, record_event, record_events
from credence.rulebook import store
from credence.rulebook.model import RecordType, Rulebook

#: The columns of a planned record's row, in the order of :attr:`_Planned.row`.
RECORD_COLUMNS = STORED_RECORD_COLUMNS
#: The columns of a planned journal entry, in the order of :attr:`_Planned.entry`.
PLANNED_ENTRY_COLUMNS = ("kind", "subject_id", "at", "data")


@dataclass(slots=True)
class _Planned:
    result: RecordResult
    #: The record's row and its journal entry, as the driver takes them (instants as
    #: microseconds; see RECORD_COLUMNS and PLANNED_ENTRY_COLUMNS); the record's id,
    #: its entry's number and its salt are drawn when it is stored.
    row: tuple[Any, ...] | None = None
    entry: tuple[Any, ...] | None = None
    #: For a certified reinsertion: the step, with its notice to the subject.
    reinsertion: Event | None = None


def _rejected(index: int, ref: str | None, error: CredenceError) -> RecordResult:
    return RecordResult(
        index=index,
        source_ref=ref,
        status="rejected",
        # ``status`` is the HTTP status this record alone would have got (409 for a
        # source_ref resent with other content, 403 for a type the source may not send).
        error={
            "code": error.code,
            "message": error.message,
            "details": error.details,
            "status": error.status,
        },
    )


_RECORD_LIST = TypeAdapter(list[RecordIn])


def parse_records(items: Sequence[object]) -> list[RecordIn | CredenceError]:
    """Validate raw submissions one by one; a bad one becomes an error, not an exception."""
    try:
        # The whole batch in one call (the same schema per item, in one pass through
        # pydantic's core); one by one only when some item is invalid, for its error.
        return list(_RECORD_LIST.validate_python(list(items)))
    except ValidationError:
        pass
    parsed: list[RecordIn | CredenceError] = []
    for item in items:
        try:
            parsed.append(RecordIn.model_validate(item))
        except ValidationError as exc:
            problems = [
                {"field": ".".join(str(p) for p in e["loc"]) or "record", "problem": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
            parsed.append(InvalidInput(message, details=problems, code="invalid_record"))
    return parsed


def _subjects_by(
    session: Session, column: Any, keys: set[str], born: dict[int, int]
) -> dict[str, SubjectRef]:
    """The subjects with these keys (public ids or identifiers), in one query per chunk
    of keys; the instant (microseconds) each person's birth date begins in China goes
    into ``born``, by subject id, read from the identifier the same row carries."""
    found: dict[str, SubjectRef] = {}
    if not keys:
        return found
    direct = Direct.within(session)
    query = _subjects_by_query(column.key, direct.dialect.name)
    for chunk in chunked(sorted(keys)):
        for key, subject_id, public_id, kind, identifier in query.run(direct, {"keys": chunk}):
            found[key] = SubjectRef(subject_id, public_id, kind)
            if kind == _PERSON:
                born[subject_id] = to_micros(start_in_china(birth_date(identifier)))
    return found


_PERSON = SubjectKind.PERSON.value


@functools.cache
def _subjects_by_query(key: str, dialect: str) -> Prepared:
    """Subjects by ``public_id`` or ``identifier`` (parameter ``keys``), built once."""
    column = Subject.__table__.c[key]
    return Prepared(
        select(column, Subject.id, Subject.public_id, Subject.kind, Subject.identifier).where(
            in_list(column, "keys", dialect)
        )
    )


def plan_records(
    session: Session,
    *,
    source: Source,
    records: Sequence[RecordIn | CredenceError],
    rulebook: Rulebook,
    at: datetime,
) -> list[_Planned]:
    """Check a batch against the rulebook and the store, without writing anything.

    Each item gets a result (created / duplicate / rejected) and, when created, the rows
    to insert. Used by :func:`submit_records` (per-record outcome) and by bulk import
    (all or nothing).
    """
    allowed = source_types(session, source.id)
    subjects, born = _resolve_subjects(session, records)
    ended, ended_hashes = reinsertion.ended_by_dispute(
        session, {s.id for s in subjects if isinstance(s, SubjectRef)}, at
    )
    refs = sorted({r.source_ref for r in records if isinstance(r, RecordIn)})
    existing: dict[str, tuple[str, str]] = {}
    direct = Direct.within(session)
    existing_refs = _existing_refs_query(direct.dialect.name)
    for chunk in chunked(refs):
        rows = existing_refs.run(direct, {"source_id": source.id, "refs": chunk})
        for ref, public_id, digest in rows:
            existing[ref] = (public_id, digest)
    batch = _Batch(
        source_id=source.id,
        source_code=source.code,
        source_name=source.name,
        allowed=allowed,
        existing=existing,
        ended=ended,
        ended_hashes=ended_hashes,
        born=born,
        rulebook=rulebook,
        at=at,
        at_micros=to_micros(at),
        kinds={
            rt.code: frozenset(kind.value for kind in rt.subject_kinds)
            for rt in rulebook.record_types
        },
    )
    record_ids = new_ordered_ids("rec", len(records))
    planned: list[_Planned] = []
    for index, (rec, subject) in enumerate(zip(records, subjects, strict=True)):
        if isinstance(rec, CredenceError):
            planned.append(_Planned(_rejected(index, None, rec)))
            continue
        try:
            planned.append(_plan_one(index, rec, subject, batch, record_ids[index]))
        except CredenceError as error:
            planned.append(_Planned(_rejected(index, rec.source_ref, error)))
    return planned


@functools.cache
def _existing_refs_query(dialect: str) -> Prepared:
    """A source's records with these source_refs (parameters ``source_id``, ``refs``)."""
    return Prepared(
        select(Record.source_ref, Record.public_id, Record.content_hash).where(
            Record.source_id == bindparam("source_id", type_=Integer),
            in_list(Record.__table__.c.source_ref, "refs", dialect),
        )
    )


def _resolve_subjects(
    session: Session, records: Sequence[RecordIn | CredenceError]
) -> tuple[list[SubjectRef | CredenceError], dict[int, int]]:
    """The subject each record names, looked up in bulk; an error where it names none.
    With them, by subject id, the instant each person among them was born by (see
    :attr:`_Batch.born`), read in the same queries."""
    unregistered = InvalidInput(
        "the subject is not registered; subjects are registered by an identity "
        "authority before records about them are accepted",
        code="unregistered_subject",
    )
    # Registered identifiers were validated at registration: look the cleaned form up
    # first and run the full (slow) validation only on those not found, for its message.
    cleaned = {
        rec.identifier: rec.identifier.replace(" ", "").replace("-", "").upper()
        for rec in records
        if isinstance(rec, RecordIn) and rec.identifier
    }
    born: dict[int, int] = {}
    by_ident = _subjects_by(session, Subject.identifier, set(cleaned.values()), born)
    compact: dict[str, str | InvalidIdentifier] = {}
    for raw, key in cleaned.items():
        if key in by_ident:
            compact[raw] = key
            continue
        try:
            compact[raw] = validate_any(raw)[1]
        except InvalidIdentifier as error:
            compact[raw] = error
    by_public = _subjects_by(
        session,
        Subject.public_id,
        {r.subject_id for r in records if isinstance(r, RecordIn) and r.subject_id is not None},
        born,
    )
    resolved: list[SubjectRef | CredenceError] = []
    for rec in records:
        if isinstance(rec, CredenceError):
            resolved.append(rec)
        elif rec.identifier is not None:
            found = compact[rec.identifier]
            resolved.append(
                found if isinstance(found, CredenceError) else by_ident.get(found, unregistered)
            )
        else:
            resolved.append(by_public.get(rec.subject_id or "", unregistered))
    return resolved, born


@dataclass(frozen=True, slots=True)
class _Batch:
    """What every record of a batch is checked against, looked up once per batch."""

    source_id: int
    source_code: str
    source_name: str
    #: The record types the source is registered for.
    allowed: set[str]
    #: source_ref → (record id, content hash): the source's records with the batch's
    #: refs, and those planned so far in the batch.
    existing: dict[str, tuple[str, str]]
    ended: dict[reinsertion.FactKey, str]
    #: Content hash → record id: records a dispute ended whose content is erased but
    #: for what a reinsertion check needs (see credence.ledger.erasure).
    ended_hashes: dict[str, str]
    #: Subject id → the instant (microseconds) the person's birth date begins in China
    #: (from their resident identity number); no entry for organisations.
    born: dict[int, int]
    rulebook: Rulebook
    at: datetime
    at_micros: int
    #: Record type → the subject kinds it applies to (values of SubjectKind).
    kinds: dict[str, frozenset[str]]


def _plan_one(
    index: int,
    rec: RecordIn,
    subject: SubjectRef | CredenceError,
    batch: _Batch,
    public_id: str,
) -> _Planned:
    """One record of a batch: refused (an error raised), a duplicate, or created (its
    row and journal entry, and its reinsertion step if it reinstates a record)."""
    rt, subject = _admissible(rec, subject, batch)
    occurred_at = to_micros(rec.occurred_at)
    if occurred_at < batch.born.get(subject.id, occurred_at):
        # Never the birth date or the identifier: the message goes back to the source
        # and into import reports.
        raise InvalidInput(
            "the record occurred before the subject was born (by the birth date of their "
            "resident identity number): check occurred_at and the subject it names",
            code="occurred_before_birth",
        )
    digest = journal.record_content_hash(
        subject_id=subject.public_id,
        record_type=rt.code,
        occurred_at=rec.occurred_at,
        quantity=rec.quantity,
        decision_ref=rec.decision_ref,
    )
    duplicate = _duplicate(index, rec, digest, batch)
    if duplicate is not None:
        return duplicate
    reinstates = reinsertion.reinstated(
        batch.ended,
        batch.ended_hashes,
        (subject.id, rt.code, occurred_at, rec.decision_ref),
        digest,
        certified=rec.certified,
    )
    batch.existing[rec.source_ref] = (public_id, digest)  # a repeat in the batch: duplicate
    row = (
        public_id,
        batch.source_id,
        rec.source_ref,
        subject.id,
        rt.code,
        occurred_at,
        batch.at_micros,
        rec.quantity,
        rec.decision_ref,
        digest,
    )
    # The entry names the record; its content is the row's, which the entry lists.
    entry = (
        journal.EventKind.RECORD.value,
        subject.id,
        batch.at_micros,
        journal.canonical({"record": public_id}),
    )
    result = RecordResult(
        index=index, source_ref=rec.source_ref, status="created", record_id=public_id
    )
    if reinstates is None:
        return _Planned(result, row, entry)
    return _Planned(result, row, entry, _reinsertion(rt, public_id, reinstates, subject, batch))


def _admissible(
    rec: RecordIn, subject: SubjectRef | CredenceError, batch: _Batch
) -> tuple[RecordType, SubjectRef]:
    """The record's type and subject, if the rulebook, the source's registration and the
    subject admit it; else the refusal, raised."""
    rulebook = batch.rulebook
    rt = rulebook.record_type(rec.record_type)
    if rt is None:
        raise InvalidInput(
            f"unknown record type {rec.record_type!r}; the rulebook in force "
            f"({rulebook.version}) lists the types Credence accepts",
            code="unknown_record_type",
        )
    if rec.record_type not in batch.allowed:
        raise Forbidden(
            f"source {batch.source_code!r} is not registered for record type {rec.record_type!r}",
            code="record_type_not_registered",
        )
    if rec.occurred_at > batch.at:
        raise InvalidInput(
            "occurred_at is in the future; only facts that have happened can be recorded",
            code="occurred_in_future",
        )
    if rt.negative and not rec.decision_ref:
        raise InvalidInput(
            f"a {rt.code} record lowers a score and needs decision_ref: the reference of the "
            f"final decision or registered default ({rt.evidence.value}) it rests on",
            code="decision_reference_required",
        )
    if rt.quantity is None and rec.quantity is not None:
        raise InvalidInput(
            f"record type {rt.code!r} has no quantity; leave quantity out",
            code="unexpected_quantity",
        )
    if rt.quantity is not None and rec.quantity is None:
        raise InvalidInput(
            f"record type {rt.code!r} needs quantity (in {rt.quantity.unit})",
            code="quantity_required",
        )
    if isinstance(subject, CredenceError):
        raise subject
    if subject.kind not in batch.kinds[rt.code]:
        raise InvalidInput(
            f"record type {rt.code!r} does not apply to a {subject.kind}",
            code="record_type_not_for_subject_kind",
        )
    return rt, subject


def _duplicate(index: int, rec: RecordIn, digest: str, batch: _Batch) -> _Planned | None:
    """The record's result if its ``source_ref`` is taken: a duplicate when the content is
    the same (a resend), a conflict when it is not; None for a new ``source_ref``."""
    seen = batch.existing.get(rec.source_ref)
    if seen is None:
        return None
    public_id, seen_digest = seen
    if seen_digest != digest:
        raise Conflict(
            f"source_ref {rec.source_ref!r} was already used for a record with other "
            f"content ({public_id}); retract it and send the correction with a new "
            "source_ref",
            code="source_ref_conflict",
            details={"record_id": public_id},
        )
    if rec.certified and (
        public_id in batch.ended.values() or public_id in batch.ended_hashes.values()
    ):
        raise Conflict(
            f"record {public_id} was deleted after a dispute; to reinsert it, send it "
            "again with certified: true under a new source_ref (a resend under the old "
            "one is only a duplicate of the deleted record)",
            code="reinsertion_needs_new_source_ref",
            details={"record_id": public_id},
        )
    return _Planned(
        RecordResult(
            index=index, source_ref=rec.source_ref, status="duplicate", record_id=public_id
        )
    )


def _reinsertion(
    rt: RecordType, public_id: str, reinstates: str, subject: SubjectRef, batch: _Batch
) -> Event:
    """The step of a certified reinsertion, with its notice to the subject."""
    at = batch.at
    return Event(
        kind=journal.EventKind.RECORD_REINSERTED,
        at=at,
        subject_id=subject.id,
        data={"record": public_id, "reinstates": reinstates, "source": batch.source_code, "at": at},
        notice=Notice(
            f"{rt.name} (record {reinstates}), removed after your dispute, is back on your "
            f"file as record {public_id} since {at:%Y-%m-%d}: {batch.source_name} certified "
            "that it is complete and accurate. You may dispute it again with new "
            "information, and add a statement to it."
        ),
    )


def store_planned(session: Session, planned: Sequence[_Planned]) -> None:
    """Insert the rows of every created item, with their journal entries, in order:
    each record row carries its entry's number and a fresh salt, and each entry lists
    its row's digest."""
    created = [p for p in planned if p.row is not None and p.entry is not None]
    if created:
        ids = journal.allocate_ids(session, _RECORDS, len(created))
        seqs = journal.allocate(session, len(created))
        rows, entries = [], []
        salts = journal.new_salts(len(created))
        for p, record_id, seq, salt in zip(created, ids, seqs, salts, strict=True):
            assert p.row is not None
            assert p.entry is not None
            row = (record_id, *p.row, seq, salt)
            rows.append(row)
            listed = journal.listing(
                [("records", record_id, journal.digest(salt, _record_bytes(row)))]
            )
            entries.append((seq, *p.entry, listed))
        insert_rows(session, _RECORDS, STORED_ROW_COLUMNS, rows)
        insert_rows(session, _JOURNAL, journal.COLUMNS, entries)
    # A certified reinsertion is a step of its own, after the record it reinserts.
    record_events(session, [p.reinsertion for p in planned if p.reinsertion is not None])


_RECORDS = Record.metadata.tables[Record.__tablename__]
_RETRACTIONS = Retraction.metadata.tables[Retraction.__tablename__]
_JOURNAL = journal.JournalEntry.metadata.tables[journal.JournalEntry.__tablename__]
#: A stored record row's columns, in the order :func:`store_planned` writes them.
STORED_ROW_COLUMNS = ("id", *RECORD_COLUMNS, *journal.JOURNAL_COLUMNS)
_RECORD_ENCODER = journal.covered("records").encoder


def _record_bytes(row: Sequence[Any]) -> bytes:
    return _RECORD_ENCODER(dict(zip(STORED_ROW_COLUMNS, row, strict=True)))


def submit_records(
    session: Session,
    *,
    source: Source,
    records: Sequence[RecordIn | CredenceError],
    rulebook: Rulebook,
    at: datetime,
) -> list[RecordResult]:
    """Append a batch: every valid record is stored, every invalid one reported.

    The caller commits; if the commit fails nothing is acknowledged.
    """
    planned = plan_records(session, source=source, records=records, rulebook=rulebook, at=at)
    store_planned(session, planned)
    return [p.result for p in planned]


def retract_record(
    session: Session,
    *,
    source: Source,
    record_id: str,
    reason: str,
    at: datetime,
    principal_id: int | None = None,
) -> tuple[Retraction | lifting.PendingChange, bool]:
    """A source withdraws its own record. Returns ``(retraction, created)``; retracting
    again returns the first retraction.

    A record that restricts someone (:func:`credence.ledger.lifting.lifts_a_sanction`)
    is not withdrawn now: the retraction is held as a pending change until a reviewer
    other than the source confirms it (:mod:`credence.ledger.lifting`), and the record
    counts meanwhile. That returns ``(change, created)``; asking again while it waits
    returns the same change (a resend), whatever the reason given. ``principal_id``
    is who asked (None from the command line or a test)."""
    record = session.scalar(select(Record).where(Record.public_id == record_id))
    if record is None or record.source_id != source.id:
        # The same answer for "absent" and "another source's": no probing of others' files.
        raise NotFound(f"source {source.code!r} has no record {record_id!r}", code="unknown_record")
    refuse_erased(record)
    existing = _retraction_of(session, record)
    if existing is not None:
        return existing, False
    rulebook = store.in_force(session, at).rulebook
    if lifting.pending_of(session, record.id) is not None or lifting.lifts_a_sanction(
        session, record, rulebook, at
    ):
        rt = rulebook.record_type(record.record_type)
        what = f"record {record.public_id} ({rt.name if rt else record.record_type})"

        def notice(change: str) -> str:
            return (
                f"{source.name} asked on {at:%Y-%m-%d %H:%M} UTC to withdraw {what}, which "
                f"restricts you, saying: {reason} A withdrawal that lifts a restriction "
                "takes effect only once a Credence reviewer other than whoever asked "
                f"confirms it (change {change}); until then the record still counts. You "
                "will be told whether it is confirmed or refused."
            )

        return lifting.request_change(
            session,
            record=record,
            kind=lifting.RETRACTION,
            reference=None,
            requested_by="source",
            principal_id=principal_id,
            reason=reason,
            correction=None,
            notice=notice,
            at=at,
        )
    return write_retraction(session, record=record, reason=reason, at=at)


def write_retraction(
    session: Session, *, record: Record, reason: str, at: datetime, change: str | None = None
) -> tuple[Retraction, bool]:
    """The retraction of ``record`` by its source, effective at ``at``: its row and its
    entry (naming the ``change`` a reviewer confirmed, if it was held). Returns
    ``(retraction, created)``; a record already retracted keeps its first retraction."""
    # Retractions of one record at once: one is stored, the others read it (see
    # insert_new), as a repeat would.
    retraction_id = insert_new(
        session,
        _RETRACTIONS,
        {
            "record_id": record.id,
            "source_id": record.source_id,
            "reason": reason,
            "received_at": at,
        },
        unique=("record_id",),
    )
    if retraction_id is None:
        existing = _retraction_of(session, record)
        assert existing is not None  # the row that took the record is committed
        return existing, False
    retraction = session.get_one(Retraction, retraction_id)
    record_event(
        session,
        kind=journal.EventKind.RETRACTION,
        at=at,
        subject_id=record.subject_id,
        data={"record": record.public_id, **({"change": change} if change else {})},
        rows=[retraction],
    )
    return retraction, True


def refuse_erased(record: Record) -> None:
    """:class:`NotFound` (``record_erased``) for a record whose content was erased:
    nothing of it is left to dispute, retract, repair or comment on."""
    if record.record_type is None:
        raise NotFound(
            f"record {record.public_id} was erased: its content is gone",
            code="record_erased",
        )


def _retraction_of(session: Session, record: Record) -> Retraction | None:
    return session.scalar(select(Retraction).where(Retraction.record_id == record.id))
