"""Changes that lift a sanction, held for a second pair of eyes: the reviewers' queue.

A source's retraction, or a dispute answered deleted or corrected, of a record that
restricts someone waits here (:mod:`credence.ledger.lifting`) until a reviewer other
than whoever asked confirms or refuses it (:mod:`credence.disputes.four_eyes`). Deciding
is ``change_review`` in the policy table (reviewers); the rule of four eyes is checked
first, so a key of the source that asked, or the reviewer who answered, hears it named.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from credence.access.policy import Action, Caller, authorize
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.routing import CommittingRoute
from credence.api.schemas import ChangeDecisionIn, ChangeOut
from credence.disputes import four_eyes
from credence.ledger import lifting

router = APIRouter(prefix="/v1/pending-changes", tags=["disputes"], route_class=CommittingRoute)


def _decider(caller: Caller) -> four_eyes.Decider:
    return four_eyes.Decider(principal_id=caller.principal_id, source_id=caller.source_id)


@router.get(
    "",
    response_model=list[ChangeOut],
    summary="Changes that lift a sanction, awaiting a second reviewer (reviewers)",
)
def list_changes(
    caller: CallerDep,
    ctx: ContextDep,
    session: SessionDep,
    status: Annotated[
        lifting.ChangeFilter, Query(description="pending (default), decided or all")
    ] = "pending",
) -> list[ChangeOut]:
    authorize(caller, Action.CHANGE_REVIEW)
    views = lifting.list_changes(session, at=ctx.clock.now(), status=status)
    return [ChangeOut.of(v) for v in views]


def _decide(
    decide: Callable[..., lifting.ChangeView],
    change_id: str,
    body: ChangeDecisionIn,
    caller: Caller,
    at: datetime,
    session: Session,
) -> ChangeOut:
    """Confirm or refuse a change: the rule of four eyes first (so whoever asked hears it
    named), then the policy."""
    by = _decider(caller)
    four_eyes.check_four_eyes(lifting.get_change(session, change_id, at), by)
    authorize(caller, Action.CHANGE_REVIEW)
    return ChangeOut.of(decide(session, change_id=change_id, by=by, reason=body.reasons, at=at))


@router.post(
    "/{change_id}/confirmation",
    response_model=ChangeOut,
    summary="Confirm a change asked for by someone else: the record stops counting now",
)
def confirm(
    change_id: str,
    body: ChangeDecisionIn,
    caller: CallerDep,
    ctx: ContextDep,
    session: SessionDep,
) -> ChangeOut:
    return _decide(four_eyes.confirm_change, change_id, body, caller, ctx.clock.now(), session)


@router.post(
    "/{change_id}/refusal",
    response_model=ChangeOut,
    summary="Refuse a change asked for by someone else: the record keeps counting",
)
def refuse(
    change_id: str,
    body: ChangeDecisionIn,
    caller: CallerDep,
    ctx: ContextDep,
    session: SessionDep,
) -> ChangeOut:
    return _decide(four_eyes.refuse_change, change_id, body, caller, ctx.clock.now(), session)
