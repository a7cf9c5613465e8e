"""Subjects: registration by identity authorities, lookup, score and file."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from credence.access.policy import Action, Caller, authorize
from credence.access.tables import RelyingParty
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.routing import CommittingRoute
from credence.api.schemas import (
    AccessOut,
    ChangeOut,
    ErasureOut,
    FileOut,
    InquiryOut,
    LookupIn,
    NotificationOut,
    ScoreOut,
    SubjectRef,
    SubjectRegistered,
    score_out,
)
from credence.audit import purposes
from credence.audit import service as audit
from credence.clock import Instant
from credence.context import Context
from credence.decisions.tables import Inquiry, LookupInquiry
from credence.errors import Forbidden, InvalidInput
from credence.ids import new_id
from credence.ledger import identities, lifting, registry, subject_file
from credence.ledger.schemas import SubjectIn
from credence.ledger.tables import Source, Subject
from credence.notifications.service import for_subject
from credence.rulebook import store
from credence.scoring.online import score_subject
from credence.tiers.service import shown_tier

router = APIRouter(prefix="/v1", tags=["subjects"], route_class=CommittingRoute)

Purpose = Annotated[
    str | None,
    Query(
        max_length=200,
        description="Why you read this file, from the catalogue: "
        + ", ".join(purposes.forms())
        + " (required of everyone but the subject; it is shown to the subject).",
    ),
]


class FlagRef(BaseModel):
    """A probable duplicate the registration was flagged as, for the identity authority."""

    flag_id: str
    probable_duplicate_of: str = Field(description="The earlier subject it resembles.")
    test: str = Field(description="same_name_birth_region or near_identifier.")
    status: str = Field(description="open, distinct, merged, unmerged or voided.")


class Registered(SubjectRegistered):
    flagged: bool = Field(
        description="Registered, but flagged for the identity authority as a probable "
        "duplicate of an earlier subject (see flags and GET /v1/identity-flags)."
    )
    flags: list[FlagRef]


class IdentityNoteOut(BaseModel):
    """What the identity authority was asked, and found, about this file's identity."""

    flag_id: str
    role: Literal["flagged", "resembled"] = Field(
        description="flagged: this subject was registered resembling the other; "
        "resembled: another was registered resembling this one."
    )
    other_subject_id: str
    test: str
    flagged_at: datetime
    status: str = Field(description="open, distinct, merged, unmerged or voided.")
    resolved_at: datetime | None
    reasons: str | None = Field(description="The identity authority's reasons.")
    alias_id: str | None
    read_into: str | None = Field(
        description="A merge: the subject whose file the flagged subject's records are "
        "read into, from merged_at until unmerged_at."
    )
    merged_at: datetime | None
    unmerged_at: datetime | None


class FileWithIdentities(FileOut):
    identities: list[IdentityNoteOut] = Field(
        default_factory=list,
        description="Probable duplicates flagged at registration, by this subject or "
        "against it, and what the identity authority found (distinct, merged, voided).",
    )


AsOf = Annotated[
    Instant | None,
    Query(description="Score as of this instant (ISO 8601); default now. Past scores are exact."),
]


@router.post(
    "/subjects",
    response_model=Registered,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": Registered, "description": "Already registered"}},
    summary="Register a subject (identity authorities only)",
)
def register(
    body: SubjectIn, caller: CallerDep, ctx: ContextDep, session: SessionDep, response: Response
) -> Registered:
    authorize(caller, Action.SUBJECT_REGISTER)
    source = session.get(Source, caller.source_id)
    if source is None:
        raise Forbidden("only a registered source can register subjects")
    subject, created = registry.register_subject(
        session, source=source, data=body, at=ctx.clock.now()
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    flags = [
        FlagRef(
            flag_id=f.flag_id,
            probable_duplicate_of=f.other_subject_id,
            test=f.test,
            status=f.status,
        )
        for f in identities.flags_of(session, subject.id)
    ]
    return Registered(
        subject_id=subject.public_id,
        kind=subject.kind,
        created=created,
        flagged=bool(flags),
        flags=flags,
    )


@router.post(
    "/subjects/lookup",
    response_model=SubjectRef,
    summary="Find a subject's opaque id by national identifier (sent in the body)",
)
def lookup(body: LookupIn, caller: CallerDep, ctx: ContextDep, session: SessionDep) -> SubjectRef:
    authorize(caller, Action.SUBJECT_LOOKUP)
    subject = registry.get_subject(session, identifier=body.identifier)
    # Whoever learns a subject's id from their identifier asked about them: on their file.
    session.add(
        LookupInquiry(
            public_id=new_id("lku"),
            subject_id=subject.id,
            principal_id=caller.principal_id,
            party_id=caller.party_id,
            source_id=caller.source_id,
            at=ctx.clock.now(),
        )
    )
    return SubjectRef(subject_id=subject.public_id, kind=subject.kind)


@router.get("/me", response_model=SubjectRef, summary="The subject a subject key belongs to")
def me(caller: CallerDep, session: SessionDep) -> SubjectRef:
    if caller.subject_id is None:
        raise Forbidden("only a subject's key has a file of its own", code="not_a_subject")
    subject = session.get(Subject, caller.subject_id)
    assert subject is not None
    return SubjectRef(subject_id=subject.public_id, kind=subject.kind)


def _as_of(ctx_now: datetime, as_of: datetime | None) -> datetime:
    """The instant a score is asked for (``as_of`` is in UTC already: an :data:`Instant`)."""
    if as_of is None:
        return ctx_now
    if as_of > ctx_now:
        raise InvalidInput(
            "as_of is in the future; scores exist only up to now", code="as_of_future"
        )
    return as_of


@router.get(
    "/subjects/{subject_id}/score",
    response_model=ScoreOut,
    summary="A subject's score, sub-scores, tier and explanation",
)
def score(
    subject_id: str,
    caller: CallerDep,
    ctx: ContextDep,
    session: SessionDep,
    as_of: AsOf = None,
    purpose: Purpose = None,
) -> ScoreOut:
    subject = registry.get_subject(session, public_id=subject_id)
    authorize(caller, Action.SCORE_READ, subject_id=subject.id)
    at = _as_of(ctx.clock.now(), as_of)
    audit.log_read(
        session,
        caller=caller,
        subject_id=subject.id,
        action=Action.SCORE_READ.value,
        what="score and explanation" + (f" as of {at.isoformat()}" if as_of else ""),
        purpose=audit.declared_purpose(caller, subject.id, purpose),
        at=ctx.clock.now(),
    )
    edition = store.in_force(session, at)
    return score_out(subject.public_id, score_subject(session, subject, edition, at))


@router.get(
    "/subjects/{subject_id}/file",
    response_model=FileWithIdentities,
    summary="A subject's whole file: every record with its weight, and who asked about them",
)
def file(
    subject_id: str,
    caller: CallerDep,
    ctx: ContextDep,
    session: SessionDep,
    purpose: Purpose = None,
) -> FileWithIdentities:
    subject = registry.get_subject(session, public_id=subject_id)
    authorize(caller, Action.FILE_READ, subject_id=subject.id)
    at = ctx.clock.now()
    audit.log_read(
        session,
        caller=caller,
        subject_id=subject.id,
        action=Action.FILE_READ.value,
        what="file",
        purpose=audit.declared_purpose(caller, subject.id, purpose),
        at=at,
    )
    edition = store.in_force(session, at)
    rows = session.execute(
        select(Inquiry, RelyingParty.name)
        .outerjoin(RelyingParty, RelyingParty.id == Inquiry.party_id)
        .where(Inquiry.subject_id == subject.id)
        .order_by(Inquiry.at.desc(), Inquiry.id.desc())
    ).all()
    decided = [
        InquiryOut(
            decision_id=inq.public_id,
            asked_by=party or "operator",
            service=inq.service,
            purpose=inq.purpose,
            outcome=inq.outcome,
            terms=inq.terms,
            reasons=orjson.loads(inq.reasons),
            reason_codes=orjson.loads(inq.reason_codes) if inq.reason_codes is not None else None,
            at=inq.at,
        )
        for inq, party in rows
    ]
    inquiries = sorted(decided + _lookups(session, subject.id), key=lambda i: i.at, reverse=True)
    return FileWithIdentities(
        subject_id=subject.public_id,
        kind=subject.kind,
        name=subject.name,
        registered_at=subject.registered_at,
        score=score_out(subject.public_id, score_subject(session, subject, edition, at)),
        inquiries=inquiries,
        erasures=[
            ErasureOut(
                record_id=e.record_id, reason=e.reason, erased_at=e.erased_at, log_entry=e.seq
            )
            for e in subject_file.erasures(session, subject.id)
        ],
        shown_tier=shown_tier(session, subject.id),
        log_entries=subject_file.record_entry_seqs(session, subject.id),
        accessed_by=[
            AccessOut(
                role=a.role,
                actor=a.actor,
                action=a.action,
                what=a.what,
                purpose=a.purpose,
                purpose_label=a.purpose_label,
                legal_order_reference=a.legal_order_reference,
                at=a.at,
            )
            for a in audit.accesses(session, subject.id)
        ],
        notifications=[
            NotificationOut(
                kind=n.kind,
                text=n.text,
                code=n.code,
                params=n.params,
                at=n.at,
                delivered_at=n.delivered_at,
                channel=n.channel,
            )
            for n in for_subject(session, subject.id)
        ],
        pending_changes=[
            ChangeOut.of(v)
            for v in lifting.list_changes(session, at=at, status="all", subject_id=subject.id)
        ],
        identities=[
            IdentityNoteOut(
                flag_id=n.flag_id,
                role=n.role,
                other_subject_id=n.other_subject_id,
                test=n.test,
                flagged_at=n.flagged_at,
                status=n.status,
                resolved_at=n.resolved_at,
                reasons=n.reason,
                alias_id=n.alias_id,
                read_into=n.read_into,
                merged_at=n.merged_at,
                unmerged_at=n.unmerged_at,
            )
            for n in identities.file_notes(session, subject.id)
        ],
    )


def file_document(session: Session, ctx: Context, caller: Caller, subject_id: str) -> bytes:
    """The whole file as ``GET /v1/subjects/{subject_id}/file`` answers ``caller`` (the
    read authorised and logged the same way), in JSON: the portal's download of a
    subject's own file (handed to it as ``app.state.file_document``)."""
    return file(subject_id, caller, ctx, session).model_dump_json().encode()


#: How a look-up by identifier reads among the inquiries on a file.
LOOKUP_SERVICE = "lookup"
LOOKUP_PURPOSE = "identification"
LOOKUP_OUTCOME = "identified"


def _lookups(session: Session, subject_id: int) -> list[InquiryOut]:
    """The look-ups of the subject by identifier, newest first, as inquiries."""
    rows = session.execute(
        select(LookupInquiry, RelyingParty.name, Source.name)
        .outerjoin(RelyingParty, RelyingParty.id == LookupInquiry.party_id)
        .outerjoin(Source, Source.id == LookupInquiry.source_id)
        .where(LookupInquiry.subject_id == subject_id)
        .order_by(LookupInquiry.at.desc(), LookupInquiry.id.desc())
    ).all()
    return [
        InquiryOut(
            decision_id=found.public_id,
            asked_by=party or source or "operator",
            service=LOOKUP_SERVICE,
            purpose=LOOKUP_PURPOSE,
            outcome=LOOKUP_OUTCOME,
            terms=None,
            reasons=[],
            at=found.at,
        )
        for found, party, source in rows
    ]
