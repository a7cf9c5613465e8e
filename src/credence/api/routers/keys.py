"""API keys, for operators: issue, revoke, rotate. Every action is in the access log."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from credence.access.keys import create_principal, issue_key, revoke_key, rotate_key
from credence.access.policy import Action, Role, authorize
from credence.access.tables import RelyingParty
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.routing import CommittingRoute
from credence.audit.service import log_operator_action
from credence.clock import Instant
from credence.errors import NotFound
from credence.ledger import registry

router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=CommittingRoute)


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    name: str = Field(min_length=1, max_length=200, description="Who holds the key.")
    source: str | None = Field(default=None, description="Source code (role source).")
    party: str | None = Field(default=None, description="Relying party code.")
    subject_id: str | None = Field(default=None, description="Subject id (role subject).")
    expires_at: Instant | None = None


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_at: Instant | None = None
    overlap_hours: float = Field(default=0, ge=0, le=24 * 30)


class KeyOut(BaseModel):
    key: str = Field(description="Shown once; only its hash is stored.")
    prefix: str


class RevokedOut(BaseModel):
    prefix: str
    revoked_at: datetime


@router.post("", response_model=KeyOut, status_code=status.HTTP_201_CREATED, summary="Issue a key")
def create(body: KeyIn, caller: CallerDep, ctx: ContextDep, session: SessionDep) -> KeyOut:
    authorize(caller, Action.KEY_MANAGE)
    source_id = registry.source_by_code(session, body.source).id if body.source else None
    party_id = None
    if body.party:
        party_id = session.scalar(select(RelyingParty.id).where(RelyingParty.code == body.party))
        if party_id is None:
            raise NotFound(f"no relying party {body.party!r}", code="unknown_party")
    subject_id = (
        registry.get_subject(session, public_id=body.subject_id).id if body.subject_id else None
    )
    principal = create_principal(
        session,
        role=body.role,
        name=body.name,
        source_id=source_id,
        party_id=party_id,
        subject_id=subject_id,
        clock=ctx.clock,
    )
    key = issue_key(session, principal=principal, clock=ctx.clock, expires_at=body.expires_at)
    log_operator_action(
        session,
        caller=caller,
        action="key_issued",
        what=f"{body.role.value} key {key[:12]}",
        at=ctx.clock.now(),
    )
    return KeyOut(key=key, prefix=key[:12])


@router.post("/{prefix}/revocation", response_model=RevokedOut, summary="Revoke a key now")
def revoke(prefix: str, caller: CallerDep, ctx: ContextDep, session: SessionDep) -> RevokedOut:
    authorize(caller, Action.KEY_MANAGE)
    row = revoke_key(session, prefix=prefix, clock=ctx.clock)
    log_operator_action(
        session, caller=caller, action="key_revoked", what=f"key {prefix}", at=ctx.clock.now()
    )
    assert row.revoked_at is not None
    return RevokedOut(prefix=row.prefix, revoked_at=row.revoked_at)


@router.post("/{prefix}/rotation", response_model=KeyOut, summary="Replace a key")
def rotate(
    prefix: str, body: RotateIn, caller: CallerDep, ctx: ContextDep, session: SessionDep
) -> KeyOut:
    authorize(caller, Action.KEY_MANAGE)
    key = rotate_key(
        session,
        prefix=prefix,
        clock=ctx.clock,
        expires_at=body.expires_at,
        overlap=timedelta(hours=body.overlap_hours),
    )
    log_operator_action(
        session,
        caller=caller,
        action="key_rotated",
        what=f"key {prefix} -> {key[:12]}",
        at=ctx.clock.now(),
    )
    return KeyOut(key=key, prefix=key[:12])
