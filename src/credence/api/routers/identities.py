"""Identities: the identity authority's queue of probable duplicates, and its answers.

A subject registered resembling an earlier one is flagged (:mod:`credence.ledger.
identities`); the identity authority for its kind (a civil registry for persons, a
business registry for organisations) confirms the two distinct, merges them, or voids
the new one as fictitious, and may undo a merge. Acting on identities is the identity
authorities' part of ``subject_register`` in the policy table (sources only), narrowed
by the ledger to the authority for the subject's kind.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from credence.access.policy import Action, Caller, authorize
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.routing import CommittingRoute
from credence.errors import Forbidden
from credence.ledger import identities
from credence.ledger.identities import FlagView
from credence.ledger.tables import Source

router = APIRouter(prefix="/v1", tags=["identities"], route_class=CommittingRoute)

FlagId = Annotated[str, Path(max_length=40, description="The flag's id (idf_…).")]
AliasId = Annotated[str, Path(max_length=40, description="The alias's id (als_…).")]


class ReasonsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reasons: str = Field(
        min_length=1,
        max_length=identities.MAX_REASON,
        description="Why, in words both subjects can read (shown on their files).",
    )


class FlagOut(BaseModel):
    """A probable duplicate flagged at registration, and where it stands."""

    flag_id: str
    kind: str
    subject_id: str = Field(description="The subject registered later, the one flagged.")
    other_subject_id: str = Field(description="The earlier subject it resembles.")
    test: str = Field(description="same_name_birth_region or near_identifier.")
    flagged_at: datetime
    status: str = Field(description="open, distinct, merged, unmerged or voided.")
    resolution_id: str | None
    resolved_at: datetime | None
    reasons: str | None
    alias_id: str | None = Field(description="A merge: the alias (read into the other's file).")
    merged_at: datetime | None
    unmerged_at: datetime | None
    unmerge_reasons: str | None
    subject_name: str
    other_name: str
    subject_region: str | None
    other_region: str | None

    @classmethod
    def of(cls, view: FlagView) -> FlagOut:
        return cls(
            flag_id=view.flag_id,
            kind=view.kind,
            subject_id=view.subject_id,
            other_subject_id=view.other_subject_id,
            test=view.test,
            flagged_at=view.flagged_at,
            status=view.status,
            resolution_id=view.resolution_id,
            resolved_at=view.resolved_at,
            reasons=view.reason,
            alias_id=view.alias_id,
            merged_at=view.merged_at,
            unmerged_at=view.unmerged_at,
            unmerge_reasons=view.unmerge_reason,
            subject_name=view.subject_name,
            other_name=view.other_name,
            subject_region=view.subject_region,
            other_region=view.other_region,
        )


def _authority(caller: Caller, session: Session) -> Source:
    """The caller's source, if it is an identity authority (of either kind)."""
    authorize(caller, Action.SUBJECT_REGISTER)
    source = session.get(Source, caller.source_id) if caller.source_id is not None else None
    if source is None or source.identity_authority_for is None:
        raise Forbidden(
            "only an identity authority (a civil or business registry) answers for identities",
            code="not_identity_authority",
        )
    return source


@router.get(
    "/identity-flags",
    response_model=list[FlagOut],
    summary="Probable duplicates awaiting the identity authority (identity authorities)",
)
def list_flags(
    caller: CallerDep,
    session: SessionDep,
    status: Annotated[
        identities.FlagFilter, Query(description="open (default), resolved or all")
    ] = "open",
) -> list[FlagOut]:
    source = _authority(caller, session)
    authority_for = source.identity_authority_for
    assert authority_for is not None
    views = identities.list_flags(session, authority_for=authority_for, status=status)
    return [FlagOut.of(v) for v in views]


@router.get("/identity-flags/{flag_id}", response_model=FlagOut, summary="One flag")
def get_flag(flag_id: FlagId, caller: CallerDep, session: SessionDep) -> FlagOut:
    source = _authority(caller, session)
    view = identities.get_flag(session, flag_id)
    identities.check_authority(source, view.kind)
    return FlagOut.of(view)


def _resolve(
    outcome: str, flag_id: str, body: ReasonsIn, caller: Caller, at: datetime, session: Session
) -> FlagOut:
    view, _ = identities.resolve_flag(
        session,
        flag_id=flag_id,
        outcome=outcome,
        authority=_authority(caller, session),
        principal_id=caller.principal_id,
        reason=body.reasons,
        at=at,
    )
    return FlagOut.of(view)


@router.post(
    "/identity-flags/{flag_id}/distinct",
    response_model=FlagOut,
    summary="Confirm the two subjects distinct",
)
def distinct(
    flag_id: FlagId, body: ReasonsIn, caller: CallerDep, ctx: ContextDep, session: SessionDep
) -> FlagOut:
    return _resolve(identities.DISTINCT, flag_id, body, caller, ctx.clock.now(), session)


@router.post(
    "/identity-flags/{flag_id}/merge",
    response_model=FlagOut,
    summary="Merge: the flagged subject is read into the other's file from now on",
)
def merge(
    flag_id: FlagId, body: ReasonsIn, caller: CallerDep, ctx: ContextDep, session: SessionDep
) -> FlagOut:
    return _resolve(identities.MERGED, flag_id, body, caller, ctx.clock.now(), session)


@router.post(
    "/identity-flags/{flag_id}/void",
    response_model=FlagOut,
    summary="Void the flagged subject as fictitious: its records are held, no decision",
)
def void(
    flag_id: FlagId, body: ReasonsIn, caller: CallerDep, ctx: ContextDep, session: SessionDep
) -> FlagOut:
    return _resolve(identities.VOIDED, flag_id, body, caller, ctx.clock.now(), session)


@router.post(
    "/aliases/{alias_id}/end",
    response_model=FlagOut,
    summary="Undo a merge: the alias is a file of its own again from now on",
)
def end_alias(
    alias_id: AliasId, body: ReasonsIn, caller: CallerDep, ctx: ContextDep, session: SessionDep
) -> FlagOut:
    view, _ = identities.end_alias(
        session,
        alias_id=alias_id,
        authority=_authority(caller, session),
        principal_id=caller.principal_id,
        reason=body.reasons,
        at=ctx.clock.now(),
    )
    return FlagOut.of(view)
