"""Credit repair: a subject applies to end a negative record's effect early; a reviewer
decides. Applying shares the subject's ``dispute_open`` grant (own file); deciding is
``dispute_review`` (reviewers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from credence.access.policy import Action, allowed, authorize
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.routers.disputes import authorize_any, record_and_subject
from credence.api.routing import CommittingRoute
from credence.disputes import repair
from credence.disputes.schemas import RepairDecisionIn, RepairIn, RepairOut
from credence.rulebook import store

router = APIRouter(prefix="/v1/repairs", tags=["repairs"], route_class=CommittingRoute)


@router.post(
    "",
    response_model=RepairOut,
    status_code=status.HTTP_201_CREATED,
    summary="Apply for credit repair of a negative record on your file (subjects)",
)
def apply(body: RepairIn, caller: CallerDep, ctx: ContextDep, session: SessionDep) -> RepairOut:
    record, subject = record_and_subject(session, body.record_id)
    authorize(caller, Action.DISPUTE_OPEN, subject_id=record.subject_id)
    at = ctx.clock.now()
    view = repair.apply_for_repair(
        session,
        subject=subject,
        record_id=body.record_id,
        commitment=body.commitment,
        rulebook=store.in_force(session, at).rulebook,
        at=at,
    )
    return RepairOut.of(view)


@router.get(
    "",
    response_model=list[RepairOut],
    summary="Repair applications: the reviewers' queue, or a subject's own",
)
def list_repairs(
    caller: CallerDep,
    session: SessionDep,
    status: Annotated[
        repair.RepairFilter, Query(description="pending (default), decided or all")
    ] = "pending",
) -> list[RepairOut]:
    if allowed(caller, Action.DISPUTE_REVIEW):
        views = repair.list_repairs(session, status=status)
    else:
        authorize(caller, Action.DISPUTE_OPEN, subject_id=caller.subject_id)
        views = repair.list_repairs(session, status=status, subject_id=caller.subject_id)
    return [RepairOut.of(v) for v in views]


@router.get("/{repair_id}", response_model=RepairOut, summary="One repair application")
def get_repair(repair_id: str, caller: CallerDep, session: SessionDep) -> RepairOut:
    view = repair.get_repair(session, repair_id)
    authorize_any(
        caller,
        (Action.DISPUTE_REVIEW, {}),
        (Action.DISPUTE_OPEN, {"subject_id": view.owner_subject}),
    )
    return RepairOut.of(view)


@router.post(
    "/{repair_id}/decision",
    response_model=RepairOut,
    summary="Approve or refuse a repair application, with reasons (reviewers)",
)
def decide(
    repair_id: str,
    body: RepairDecisionIn,
    caller: CallerDep,
    ctx: ContextDep,
    session: SessionDep,
) -> RepairOut:
    authorize(caller, Action.DISPUTE_REVIEW)
    view = repair.decide_repair(
        session,
        repair_id=repair_id,
        approve=body.approve,
        reasons=body.reasons,
        principal_id=caller.principal_id,
        at=ctx.clock.now(),
    )
    return RepairOut.of(view)
