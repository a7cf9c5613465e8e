"""The ledger's registry: sources and subjects.

Sources are registered by an operator; subjects only on the word of an identity
authority (a civil registry for persons, a business registry for organisations). A
subject is looked up by public id or national identifier, as a :class:`SubjectRef` on any
connection (:func:`subject_ref`, the hot paths) or as its row (:func:`get_subject`, for
the steps that write).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple, Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from credence import journal
from credence.db import Connectable, Prepared, as_direct, insert_new
from credence.errors import Conflict, Forbidden, InvalidInput, NotFound
from credence.identifiers import SubjectKind, date_in_china, validate_any, validate_identifier
from credence.ids import new_id
from credence.ledger import identities
from credence.ledger.freshness import Cadence, cadence_rows
from credence.ledger.schemas import SubjectIn
from credence.ledger.tables import Source, SourceRecordType, Subject
from credence.notifications.service import record_event
from credence.rulebook.model import Rulebook

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
    cadences: Iterable[Cadence] = (),
) -> Source:
    """Register a source and the record types it may submit (all must exist), with the
    cadence it declares for those it reports regularly (:mod:`credence.ledger.
    freshness`; the others are not watched for outages)."""
    for field, value in (("code", code), ("name", name), ("kind", kind)):
        if "\x00" in value:  # the command line has no request guard to refuse it
            raise InvalidInput(
                f"a source's {field} may not contain a NUL character", code="invalid_character"
            )
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
    declared = cadence_rows(source, cadences, types, at)
    record_event(
        session,
        kind=journal.EventKind.SOURCE_REGISTERED,
        at=at,
        data={"source": code},
        rows=[
            source,
            *(SourceRecordType(source_id=source.id, record_type=t) for t in types),
            *declared,
        ],
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
    organisations; nobody else can bring a subject into existence. An organisation's
    founding date, if given, is checked (:func:`credence.ledger.identities.
    check_founding`). A new subject that resembles an earlier one is registered and
    flagged for its identity authority (:func:`credence.ledger.identities.
    flag_duplicates`; :func:`~credence.ledger.identities.flags_of` reads the flags).
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
    identities.check_founding(data.kind, data.founded_on, at)
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
            "founded_on": data.founded_on,
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
    identities.flag_duplicates(session, subject, at)
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


_SUBJECTS = Subject.metadata.tables[Subject.__tablename__]


def unknown_subject(public_id: str | None = None) -> NotFound:
    """The refusal for a subject not found by ``public_id`` or, without one, by national
    identifier (which the message never quotes)."""
    if public_id is not None:
        return NotFound(f"no subject {public_id!r}", code="unknown_subject")
    return NotFound("no subject is registered with this identifier", code="unknown_subject")


def get_subject(
    session: Session, *, public_id: str | None = None, identifier: str | None = None
) -> Subject:
    """The subject's row, named by ``public_id``, else by national ``identifier``
    (validated and compacted first), for the steps that write; :func:`subject_ref` is
    the hot paths' lookup. :class:`NotFound` naming neither the identifier nor anything
    else about it."""
    if public_id is not None:
        subject = session.scalar(select(Subject).where(Subject.public_id == public_id))
    else:
        _, compact = validate_any(identifier or "")
        subject = session.scalar(select(Subject).where(Subject.identifier == compact))
    if subject is None:
        raise unknown_subject(public_id)
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
