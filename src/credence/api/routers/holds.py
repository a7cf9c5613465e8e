"""Records held at intake: the reviewers' queue.

Intake stores a record but holds it when the rulebook's intake checks say so (a burst
from one source, a new identity's positives beyond its limit, a voided identity; see
:mod:`credence.ledger.holds`): it is on the subject's file and counts nowhere until a
reviewer releases it (it counts from that instant on) or rejects it (it never counts),
with reasons the subject reads. Both are ``hold_review`` in the policy table
(reviewers). Deciding again the same way is a resend (the first decision); the other
way is 409 ``hold_decided``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from credence.access.policy import Action, Caller, authorize
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.routing import CommittingRoute
from credence.api.schemas import HoldDecisionIn, HoldOut
from credence.context import Context
from credence.ledger import holds

router = APIRouter(prefix="/v1/holds", tags=["holds"], route_class=CommittingRoute)


@router.get(
    "",
    response_model=list[HoldOut],
    summary="Records held at intake, oldest first (reviewers)",
)
def list_holds(
    caller: CallerDep,
    session: SessionDep,
    status: Annotated[
        holds.HoldFilter, Query(description="held (default), decided or all")
    ] = "held",
) -> list[HoldOut]:
    authorize(caller, Action.HOLD_REVIEW)
    return [HoldOut.model_validate(v) for v in holds.list_holds(session, status=status)]


def _decide(
    outcome: holds.Outcome,
    hold_id: str,
    body: HoldDecisionIn,
    caller: Caller,
    ctx: Context,
    session: Session,
) -> HoldOut:
    authorize(caller, Action.HOLD_REVIEW)
    view, _ = holds.decide(
        session,
        hold_id=hold_id,
        outcome=outcome,
        principal_id=caller.principal_id,
        reason=body.reasons,
        at=ctx.clock.now(),
    )
    return HoldOut.model_validate(view)


@router.post(
    "/{hold_id}/release",
    response_model=HoldOut,
    summary="Release a held record: it counts from now on",
)
def release(
    hold_id: str,
    body: HoldDecisionIn,
    caller: CallerDep,
    ctx: ContextDep,
    session: SessionDep,
) -> HoldOut:
    return _decide("released", hold_id, body, caller, ctx, session)


@router.post(
    "/{hold_id}/rejection",
    response_model=HoldOut,
    summary="Reject a held record: it stays on the file and never counts",
)
def reject(
    hold_id: str,
    body: HoldDecisionIn,
    caller: CallerDep,
    ctx: ContextDep,
    session: SessionDep,
) -> HoldOut:
    return _decide("rejected", hold_id, body, caller, ctx, session)
