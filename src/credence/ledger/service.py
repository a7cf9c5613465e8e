"""The ledger service: registering sources and subjects, appending and retracting records.

Everything here appends; nothing updates or deletes in place. Each append writes its
journal entry in the same transaction. Functions take the caller's session and commit
nothing: the caller owns the transaction, so a batch is stored whole or not at all.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import (
    ARRAY,
    JSON,
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    Table,
    any_,
    bindparam,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from credence import journal
from credence.clock import to_micros
from credence.db import Connectable, Direct, Instant, Prepared, as_direct, core, insert_rows
from credence.errors import (
    Conflict,
    CredenceError,
    Forbidden,
    InvalidIdentifier,
    InvalidInput,
    NotFound,
)
from credence.identifiers import SubjectKind, date_in_china, validate_any, validate_identifier
from credence.ids import new_id, new_ordered_ids
from credence.ledger import endings
from credence.ledger.schemas import RecordIn, RecordResult, SubjectIn
from credence.ledger.tables import (
    STORED_RECORD_COLUMNS,
    Record,
    Retraction,
    Source,
    SourceRecordType,
    Subject,
)
from credence.notifications.service import Event, Notice, record_event, record_events
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
    record_event(
        session,
        kind=journal.EventKind.SOURCE_REGISTERED,
        at=at,
        data={"source": code},
        rows=[source, *(SourceRecordType(source_id=source.id, record_type=t) for t in types)],
    )
    return source


def source_by_code(session: Session, code: str) -> Source:
    source = session.scalar(select(Source).where(Source.code == code))
    if source is None:
        raise NotFound(f"no source with code {code!r}", code="unknown_source")
    return source


def submitting_source(session: Session, source_id: int | None) -> Source:
    """The source a caller submits or retracts records as; :class:`Forbidden` when the
    caller is no source (``source_id`` None or unknown)."""
    source = session.get(Source, source_id) if source_id is not None else None
    if source is None:
        raise Forbidden("only a source can submit or retract records")
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
    # A birth date after the day the clock says (in China) is refused, whatever the date
    # of the machine.
    identifier = validate_identifier(data.kind, data.identifier, today=date_in_china(at))
    existing = _registered(session, identifier, data.kind)
    if existing is not None:
        return existing, False
    # Two registrations of one identifier at once both find none above; the store keeps
    # one, and the other reads it, as a resend would. Never a failed insert: PostgreSQL
    # would log the violated key (the identifier) even if the error were caught.
    subject_id = insert_new(
        session,
        _SUBJECTS,
        {
            "public_id": new_id("sub"),
            "kind": data.kind.value,
            "identifier": identifier,
            "name": data.name,
            "region": data.region,
            "registered_by": source.id,
            "registered_at": at,
        },
        unique=("identifier",),
    )
    if subject_id is None:
        existing = _registered(session, identifier, data.kind)
        assert existing is not None  # the row that took the identifier is committed
        return existing, False
    subject = session.get_one(Subject, subject_id)
    # The national identifier stays out of the journal: its entries are shown in proofs.
    record_event(
        session,
        kind=journal.EventKind.SUBJECT_REGISTERED,
        at=at,
        subject_id=subject.id,
        data={"subject": subject.public_id},
        rows=[subject],
    )
    return subject, True


def _registered(session: Session, identifier: str, kind: SubjectKind) -> Subject | None:
    """The subject registered with ``identifier`` (compact), if any; :class:`Conflict` if
    it is registered as another kind of subject."""
    existing = session.scalar(select(Subject).where(Subject.identifier == identifier))
    if existing is not None and existing.kind != kind.value:
        raise Conflict(
            f"this identifier is already registered as a {existing.kind}",
            code="subject_kind_conflict",
        )
    return existing


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


_SUBJECTS = Subject.metadata.tables[Subject.__tablename__]
_RETRACTIONS = Retraction.metadata.tables[Retraction.__tablename__]


def unknown_subject(public_id: str | None = None) -> NotFound:
    """The refusal for a subject not found by ``public_id`` or, without one, by national
    identifier (which the message never quotes)."""
    if public_id is not None:
        return NotFound(f"no subject {public_id!r}", code="unknown_subject")
    return NotFound("no subject is registered with this identifier", code="unknown_subject")


def get_subject(session: Session, public_id: str) -> Subject:
    subject = session.scalar(select(Subject).where(Subject.public_id == public_id))
    if subject is None:
        raise unknown_subject(public_id)
    return subject


def find_subject(session: Session, identifier: str) -> Subject:
    """Look a subject up by national identifier (which must be valid)."""
    _, compact = validate_any(identifier)
    subject = session.scalar(select(Subject).where(Subject.identifier == compact))
    if subject is None:
        raise unknown_subject()
    return subject


class SubjectKey(Protocol):
    """What scoring and deciding need of a subject: a :class:`Subject` or a
    :class:`SubjectRef` (read without the ORM, for the per-request paths)."""

    @property
    def id(self) -> int: ...

    @property
    def public_id(self) -> str: ...

    @property
    def kind(self) -> str: ...


class SubjectRef(NamedTuple):
    """A subject's internal id, public id and kind (a named tuple: batches build one per
    record, straight from a row)."""

    id: int
    public_id: str
    kind: str


# Statements built once (with bound parameters): building one costs more than running it.
_SUBJECT_REF = select(Subject.id, Subject.public_id, Subject.kind)
_SUBJECT_BY_PUBLIC_ID = _SUBJECT_REF.where(Subject.public_id == bindparam("key"))
_SUBJECT_BY_IDENTIFIER = _SUBJECT_REF.where(Subject.identifier == bindparam("key"))


_PREPARED_BY_PUBLIC_ID = Prepared(_SUBJECT_BY_PUBLIC_ID)
_PREPARED_BY_IDENTIFIER = Prepared(_SUBJECT_BY_IDENTIFIER)


def subject_ref(
    conn: Connectable, *, public_id: str | None = None, identifier: str | None = None
) -> SubjectRef:
    """The subject named by ``public_id``, else by national ``identifier`` (validated and
    compacted first): its :class:`SubjectRef`, on any connection (a session's or the
    decision path's :class:`Direct`). :class:`NotFound` for an unknown subject, naming
    neither the identifier nor anything else about it."""
    direct = as_direct(conn)
    if public_id is not None:
        rows = _PREPARED_BY_PUBLIC_ID.run(direct, {"key": public_id})
        if not rows:
            raise unknown_subject(public_id)
    else:
        _, compact = validate_any(identifier or "")
        rows = _PREPARED_BY_IDENTIFIER.run(direct, {"key": compact})
        if not rows:
            raise unknown_subject()
    return SubjectRef(*rows[0])


# --- records -------------------------------------------------------------------------


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


#: (subject id, record type, occurred_at in µs, decision_ref): what makes a new record
#: the same fact as one a dispute ended (whatever its source_ref).
_FactKey = tuple[int, str, int, str | None]


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


def _chunked(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _subjects_by(session: Session, column: Any, keys: set[str]) -> dict[str, SubjectRef]:
    found: dict[str, SubjectRef] = {}
    if not keys:
        return found
    direct = Direct.within(session)
    query = _subjects_by_query(column.key, direct.dialect.name)
    for chunk in _chunked(sorted(keys)):
        for key, subject_id, public_id, kind in query.run(direct, {"keys": chunk}):
            found[key] = SubjectRef(subject_id, public_id, kind)
    return found


@functools.cache
def _subjects_by_query(key: str, dialect: str) -> Prepared:
    """Subjects by ``public_id`` or ``identifier`` (parameter ``keys``), built once."""
    column = Subject.__table__.c[key]
    return Prepared(
        select(column, Subject.id, Subject.public_id, Subject.kind).where(
            _in(column, "keys", dialect)
        )
    )


def _in(column: Any, name: str, dialect: str) -> ColumnElement[bool]:
    """``column IN (:name)`` for a list parameter, as one parameter: an array on
    PostgreSQL (``= ANY``), a JSON array on SQLite (``json_each``); expanding hundreds
    of parameters costs more, in SQLAlchemy and in the driver, than the query."""
    if dialect == "postgresql":
        condition: ColumnElement[bool] = column == any_(bindparam(name, type_=ARRAY(column.type)))
    elif dialect == "sqlite":
        values = func.json_each(bindparam(name, type_=JSON())).table_valued("value")
        condition = column.in_(select(values.c.value))
    else:
        condition = column.in_(bindparam(name, expanding=True))
    return condition


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
    ended, ended_hashes = _ended_by_dispute(
        session, {s.id for s in subjects if isinstance(s, SubjectRef)}, at
    )
    refs = sorted({r.source_ref for r in records if isinstance(r, RecordIn)})
    existing: dict[str, tuple[str, str]] = {}
    direct = Direct.within(session)
    existing_refs = _existing_refs_query(direct.dialect.name)
    for chunk in _chunked(refs):
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
            _in(Record.__table__.c.source_ref, "refs", dialect),
        )
    )


@functools.cache
def _disputed_query(dialect: str) -> Select[Any]:
    """Whether any of these subjects (parameter ``subject_ids``) may have a record a
    dispute ended: empty when none can (the sources of dispute endings say how)."""
    probes = [
        source.subjects_with_events(lambda column: _in(column, "subject_ids", dialect))
        for source in endings.sources()
        if source.causes & endings.DISPUTE_CAUSES and source.subjects_with_events
    ]
    # One probe answers; without exactly one, the full check always runs.
    return probes[0] if len(probes) == 1 else select(literal(1))


def _ended_by_dispute(
    session: Session, subject_ids: set[int], at: datetime
) -> tuple[dict[_FactKey, str], dict[str, str]]:
    """Records of these subjects whose effect a dispute ended by ``at``: by fact key,
    and, for those whose content was erased but for the minimum a reinsertion check
    needs, by content hash.

    FCRA-style: a record deleted (or corrected, or left unverified) after a dispute may
    come back only if its source certifies it, whatever source_ref it comes back under.
    """
    found: dict[_FactKey, str] = {}
    hashes: dict[str, str] = {}
    ordered = sorted(subject_ids)
    connection = core(session)
    disputed = _disputed_query(connection.dialect.name)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        # Disputes are rare: one indexed probe spares the join for almost every batch.
        if connection.execute(disputed, {"subject_ids": chunk}).first() is None:
            continue
        rows = session.execute(_ended_by_dispute_query(), {"subject_ids": chunk, "at": at})
        for subject_id, record_type, occurred_at, decision_ref, public_id, digest in rows:
            if record_type is None:  # erased: only its content hash, if it is kept
                if digest is not None:
                    hashes[digest] = public_id
                continue
            found[(subject_id, record_type, to_micros(occurred_at), decision_ref)] = public_id
    return found, hashes


@functools.cache
def _ended_by_dispute_query() -> Select[int, str, datetime, str | None, str, str]:
    """The statement :func:`_ended_by_dispute` runs, built once (parameters
    ``subject_ids``, ``at``): every submission runs it."""
    subject_ids: BindParameter[list[int]] = bindparam("subject_ids", expanding=True)
    mine = select(Record.id).where(Record.subject_id.in_(subject_ids))
    events = endings.ending_events(mine, causes=endings.DISPUTE_CAUSES).subquery()
    return (
        select(
            Record.subject_id,
            Record.record_type,
            Record.occurred_at,
            Record.decision_ref,
            Record.public_id,
            Record.content_hash,
        )
        .join(events, events.c.record_id == Record.id)
        .where(events.c.ended_at <= bindparam("at", type_=Instant()))
        .order_by(Record.id)
    )


def _resolve_subjects(
    session: Session, records: Sequence[RecordIn | CredenceError]
) -> list[SubjectRef | CredenceError]:
    """The subject each record names, looked up in bulk; an error where it names none."""
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
    by_ident = _subjects_by(session, Subject.identifier, set(cleaned.values()))
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
    return resolved


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
    ended: dict[_FactKey, str]
    #: Content hash → record id: records a dispute ended whose content is erased but
    #: for what a reinsertion check needs (see credence.ledger.erasure).
    ended_hashes: dict[str, str]
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
    rulebook, at = batch.rulebook, batch.at
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
    if subject.kind not in batch.kinds[rt.code]:
        raise InvalidInput(
            f"record type {rt.code!r} does not apply to a {subject.kind}",
            code="record_type_not_for_subject_kind",
        )
    occurred_at = to_micros(rec.occurred_at)
    digest = journal.record_content_hash(
        subject_id=subject.public_id,
        record_type=rt.code,
        occurred_at=rec.occurred_at,
        quantity=rec.quantity,
        decision_ref=rec.decision_ref,
    )
    existing = batch.existing
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
    reinstates = batch.ended.get(
        (subject.id, rt.code, occurred_at, rec.decision_ref)
    ) or batch.ended_hashes.get(digest)
    if reinstates is not None and not rec.certified:
        raise Conflict(
            f"this record repeats record {reinstates}, whose effect ended after the subject "
            "disputed it; it may be reinserted only if you certify that it is complete and "
            "accurate: send it with certified: true (the subject will be told)",
            code="reinsertion_requires_certification",
            details={"record_id": reinstates},
        )
    if reinstates is None and rec.certified:
        raise InvalidInput(
            "certified is only for reinserting a record deleted after a dispute, and this "
            "record reinserts none; leave certified out",
            code="certification_not_needed",
        )
    existing[rec.source_ref] = (public_id, digest)  # a repeat inside the batch is a duplicate
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
    reinsertion = Event(
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
    return _Planned(result, row, entry, reinsertion)


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
    session: Session, *, source: Source, record_id: str, reason: str, at: datetime
) -> tuple[Retraction, bool]:
    """A source withdraws its own record. Returns ``(retraction, created)``; retracting
    again returns the first retraction."""
    record = session.scalar(select(Record).where(Record.public_id == record_id))
    if record is None or record.source_id != source.id:
        # The same answer for "absent" and "another source's": no probing of others' files.
        raise NotFound(f"source {source.code!r} has no record {record_id!r}", code="unknown_record")
    refuse_erased(record)
    existing = _retraction_of(session, record)
    if existing is not None:
        return existing, False
    # Retractions of one record at once: one is stored, the others read it (see
    # insert_new), as a repeat would.
    retraction_id = insert_new(
        session,
        _RETRACTIONS,
        {"record_id": record.id, "source_id": source.id, "reason": reason, "received_at": at},
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
        data={"record": record.public_id},
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
