"""The ledger service: registering sources and subjects, appending and retracting records.

Everything here appends; nothing updates or deletes in place. Each append writes its
journal entry in the same transaction. Functions take the caller's session and commit
nothing: the caller owns the transaction, so a batch is stored whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from credence.errors import (
    Conflict,
    CredenceError,
    Forbidden,
    InvalidIdentifier,
    InvalidInput,
    NotFound,
)
from credence.identifiers import SubjectKind, validate_any, validate_identifier
from credence.ids import new_id
from credence.ledger import journal
from credence.ledger.schemas import RecordIn, RecordResult, SubjectIn
from credence.ledger.tables import Record, Retraction, Source, SourceRecordType, Subject
from credence.rulebook.model import Rulebook

#: Bound parameters per IN (...) query; well under SQLite's and PostgreSQL's limits.
_CHUNK = 900

PERSON_AUTHORITY = "person"
ORGANISATION_AUTHORITY = "organisation"


# --- sources -------------------------------------------------------------------------


def register_source(
    session: Session,
    *,
    code: str,
    name: str,
    kind: str,
    record_types: Iterable[str],
    rulebook: Rulebook,
    at: datetime,
    identity_authority_for: str | None = None,
) -> Source:
    """Register a source and the record types it may submit (all must exist)."""
    types = sorted(set(record_types))
    unknown = [t for t in types if rulebook.record_type(t) is None]
    if unknown:
        raise InvalidInput(
            f"unknown record types for source {code!r}: {', '.join(unknown)}",
            code="unknown_record_type",
        )
    if identity_authority_for not in (None, PERSON_AUTHORITY, ORGANISATION_AUTHORITY):
        raise InvalidInput("identity_authority_for must be 'person', 'organisation' or absent")
    if session.scalar(select(Source.id).where(Source.code == code)) is not None:
        raise Conflict(f"a source with code {code!r} already exists", code="source_exists")
    source = Source(
        code=code,
        name=name,
        kind=kind,
        identity_authority_for=identity_authority_for,
        created_at=at,
    )
    session.add(source)
    session.flush()
    session.add_all(SourceRecordType(source_id=source.id, record_type=t) for t in types)
    journal.append(
        session,
        kind="source_registered",
        at=at,
        data={
            "source": code,
            "name": name,
            "kind": kind,
            "record_types": types,
            "identity_authority_for": identity_authority_for,
        },
    )
    return source


def source_by_code(session: Session, code: str) -> Source:
    source = session.scalar(select(Source).where(Source.code == code))
    if source is None:
        raise NotFound(f"no source with code {code!r}", code="unknown_source")
    return source


def source_types(session: Session, source_id: int) -> set[str]:
    """The record types a source is registered for."""
    return set(
        session.scalars(
            select(SourceRecordType.record_type).where(SourceRecordType.source_id == source_id)
        )
    )


# --- subjects ------------------------------------------------------------------------


def register_subject(
    session: Session, *, source: Source, data: SubjectIn, at: datetime
) -> tuple[Subject, bool]:
    """Register a subject on the word of an identity authority.

    Returns ``(subject, created)``; registering the same identifier again returns the
    existing subject. A civil registry registers persons, a business registry
    organisations; nobody else can bring a subject into existence.
    """
    needed = PERSON_AUTHORITY if data.kind is SubjectKind.PERSON else ORGANISATION_AUTHORITY
    if source.identity_authority_for != needed:
        raise Forbidden(
            f"source {source.code!r} is not an identity authority for "
            f"{'persons' if needed == PERSON_AUTHORITY else 'organisations'}",
            code="not_identity_authority",
        )
    identifier = validate_identifier(data.kind, data.identifier)
    existing = session.scalar(select(Subject).where(Subject.identifier == identifier))
    if existing is not None:
        if existing.kind != data.kind.value:
            raise Conflict(
                f"this identifier is already registered as a {existing.kind}",
                code="subject_kind_conflict",
            )
        return existing, False
    subject = Subject(
        public_id=new_id("sub"),
        kind=data.kind.value,
        identifier=identifier,
        name=data.name,
        region=data.region,
        registered_by=source.id,
        registered_at=at,
    )
    session.add(subject)
    session.flush()
    # The national identifier stays out of the journal: its entries are shown in proofs.
    journal.append(
        session,
        kind="subject_registered",
        at=at,
        subject_id=subject.id,
        data={"subject": subject.public_id, "kind": subject.kind, "registered_by": source.code},
    )
    return subject, True


def get_subject(session: Session, public_id: str) -> Subject:
    subject = session.scalar(select(Subject).where(Subject.public_id == public_id))
    if subject is None:
        raise NotFound(f"no subject {public_id!r}", code="unknown_subject")
    return subject


def find_subject(session: Session, identifier: str) -> Subject:
    """Look a subject up by national identifier (which must be valid)."""
    _, compact = validate_any(identifier)
    subject = session.scalar(select(Subject).where(Subject.identifier == compact))
    if subject is None:
        raise NotFound("no subject is registered with this identifier", code="unknown_subject")
    return subject


# --- records -------------------------------------------------------------------------


@dataclass
class _Planned:
    result: RecordResult
    row: dict[str, Any] | None = None
    entry: dict[str, Any] | None = None


def _rejected(index: int, ref: str | None, error: CredenceError) -> RecordResult:
    return RecordResult(
        index=index,
        source_ref=ref,
        status="rejected",
        error={"code": error.code, "message": error.message, "details": error.details},
    )


def parse_records(items: Sequence[object]) -> list[RecordIn | CredenceError]:
    """Validate raw submissions one by one; a bad one becomes an error, not an exception."""
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


def _chunked(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _subjects_by(session: Session, column: Any, keys: set[str]) -> dict[str, Subject]:
    found: dict[str, Subject] = {}
    ordered = sorted(keys)
    for chunk in _chunked(ordered):
        for subject in session.scalars(select(Subject).where(column.in_(chunk))):
            found[getattr(subject, column.key)] = subject
    return found


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
    subjects = _resolve_subjects(session, records)
    refs = sorted({r.source_ref for r in records if isinstance(r, RecordIn)})
    existing: dict[str, tuple[str, str]] = {}
    for chunk in _chunked(refs):
        rows = session.execute(
            select(Record.source_ref, Record.public_id, Record.content_hash).where(
                Record.source_id == source.id, Record.source_ref.in_(chunk)
            )
        )
        for ref, public_id, digest in rows:
            existing[ref] = (public_id, digest)

    planned: list[_Planned] = []
    for index, (rec, subject) in enumerate(zip(records, subjects, strict=True)):
        if isinstance(rec, CredenceError):
            planned.append(_Planned(_rejected(index, None, rec)))
            continue
        try:
            planned.append(_plan_one(index, rec, subject, source, allowed, existing, rulebook, at))
        except CredenceError as error:
            planned.append(_Planned(_rejected(index, rec.source_ref, error)))
    return planned


def _resolve_subjects(
    session: Session, records: Sequence[RecordIn | CredenceError]
) -> list[Subject | CredenceError]:
    """The subject each record names, looked up in bulk; an error where it names none."""
    unregistered = InvalidInput(
        "the subject is not registered; subjects are registered by an identity "
        "authority before records about them are accepted",
        code="unregistered_subject",
    )
    compact: dict[str, str | InvalidIdentifier] = {}
    for rec in records:
        if isinstance(rec, RecordIn) and rec.identifier and rec.identifier not in compact:
            try:
                compact[rec.identifier] = validate_any(rec.identifier)[1]
            except InvalidIdentifier as error:
                compact[rec.identifier] = error
    by_ident = _subjects_by(
        session, Subject.identifier, {c for c in compact.values() if isinstance(c, str)}
    )
    by_public = _subjects_by(
        session,
        Subject.public_id,
        {r.subject_id for r in records if isinstance(r, RecordIn) and r.subject_id is not None},
    )
    resolved: list[Subject | CredenceError] = []
    for rec in records:
        if isinstance(rec, CredenceError):
            resolved.append(rec)
        elif rec.identifier is not None:
            key = compact[rec.identifier]
            resolved.append(
                key if isinstance(key, CredenceError) else by_ident.get(key, unregistered)
            )
        else:
            resolved.append(by_public.get(rec.subject_id or "", unregistered))
    return resolved


def _plan_one(
    index: int,
    rec: RecordIn,
    subject: Subject | CredenceError,
    source: Source,
    allowed: set[str],
    existing: dict[str, tuple[str, str]],
    rulebook: Rulebook,
    at: datetime,
) -> _Planned:
    rt = rulebook.record_type(rec.record_type)
    if rt is None:
        raise InvalidInput(
            f"unknown record type {rec.record_type!r}; the rulebook in force "
            f"({rulebook.version}) lists the types Credence accepts",
            code="unknown_record_type",
        )
    if rec.record_type not in allowed:
        raise Forbidden(
            f"source {source.code!r} is not registered for record type {rec.record_type!r}",
            code="record_type_not_registered",
        )
    if rec.occurred_at > at:
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
    if SubjectKind(subject.kind) not in rt.subject_kinds:
        raise InvalidInput(
            f"record type {rt.code!r} does not apply to a {subject.kind}",
            code="record_type_not_for_subject_kind",
        )
    digest = journal.record_content_hash(
        subject_id=subject.public_id,
        record_type=rt.code,
        occurred_at=rec.occurred_at,
        quantity=rec.quantity,
        decision_ref=rec.decision_ref,
    )
    seen = existing.get(rec.source_ref)
    if seen is not None:
        public_id, seen_digest = seen
        if seen_digest != digest:
            raise Conflict(
                f"source_ref {rec.source_ref!r} was already used for a record with other "
                f"content ({public_id}); retract it and send the correction with a new "
                "source_ref",
                code="source_ref_conflict",
                details={"record_id": public_id},
            )
        return _Planned(
            RecordResult(
                index=index, source_ref=rec.source_ref, status="duplicate", record_id=public_id
            )
        )
    public_id = new_id("rec")
    existing[rec.source_ref] = (public_id, digest)  # a repeat inside the batch is a duplicate
    row = {
        "public_id": public_id,
        "source_id": source.id,
        "source_ref": rec.source_ref,
        "subject_id": subject.id,
        "record_type": rt.code,
        "occurred_at": rec.occurred_at,
        "received_at": at,
        "quantity": rec.quantity,
        "decision_ref": rec.decision_ref,
        "content_hash": digest,
    }
    entry = {
        "kind": "record",
        "at": at,
        "subject_id": subject.id,
        "data": journal.canonical(
            journal.record_data(
                record_id=public_id,
                source=source.code,
                source_ref=rec.source_ref,
                subject_id=subject.public_id,
                record_type=rt.code,
                occurred_at=rec.occurred_at,
                received_at=at,
                quantity=rec.quantity,
                decision_ref=rec.decision_ref,
            )
        ),
    }
    result = RecordResult(
        index=index, source_ref=rec.source_ref, status="created", record_id=public_id
    )
    return _Planned(result, row, entry)


def store_planned(session: Session, planned: Sequence[_Planned]) -> None:
    """Insert the rows of every created item, with their journal entries, in order."""
    rows = [p.row for p in planned if p.row is not None]
    entries = [p.entry for p in planned if p.entry is not None]
    if rows:
        session.execute(insert(Record), rows)
        journal.append_many(session, entries)


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
    session: Session, *, source: Source, record_id: str, reason: str, at: datetime
) -> tuple[Retraction, bool]:
    """A source withdraws its own record. Returns ``(retraction, created)``; retracting
    again returns the first retraction."""
    record = session.scalar(select(Record).where(Record.public_id == record_id))
    if record is None or record.source_id != source.id:
        # The same answer for "absent" and "another source's": no probing of others' files.
        raise NotFound(f"source {source.code!r} has no record {record_id!r}", code="unknown_record")
    existing = session.scalar(select(Retraction).where(Retraction.record_id == record.id))
    if existing is not None:
        return existing, False
    retraction = Retraction(record_id=record.id, source_id=source.id, reason=reason, received_at=at)
    session.add(retraction)
    journal.append(
        session,
        kind="retraction",
        at=at,
        subject_id=record.subject_id,
        data={"record": record.public_id, "source": source.code, "reason": reason, "at": at},
    )
    session.flush()
    return retraction, True


# --- reading a subject's records ----------------------------------------------------


@dataclass(frozen=True)
class RecordView:
    """A record as read back for scoring and for the subject's file."""

    record_id: str
    source_code: str
    source_name: str
    source_ref: str
    record_type: str
    occurred_at: datetime
    received_at: datetime
    quantity: float | None
    decision_ref: str | None
    #: When the record's effect ended by a ledger entry (retraction), if it has.
    ended_at: datetime | None


def subject_records(
    session: Session, subject_id: int, *, record_types: Iterable[str] | None = None
) -> list[RecordView]:
    """Every record on a subject's file (optionally only some types), with retractions."""
    query = (
        select(
            Record.public_id,
            Source.code,
            Source.name,
            Record.source_ref,
            Record.record_type,
            Record.occurred_at,
            Record.received_at,
            Record.quantity,
            Record.decision_ref,
            Retraction.received_at,
        )
        .join(Source, Source.id == Record.source_id)
        .outerjoin(Retraction, Retraction.record_id == Record.id)
        .where(Record.subject_id == subject_id)
    )
    if record_types is not None:
        query = query.where(Record.record_type.in_(sorted(set(record_types))))
    return [
        RecordView(
            record_id=row[0],
            source_code=row[1],
            source_name=row[2],
            source_ref=row[3],
            record_type=row[4],
            occurred_at=row[5],
            received_at=row[6],
            quantity=row[7],
            decision_ref=row[8],
            ended_at=row[9],
        )
        for row in session.execute(query)
    ]
