"""Decisions for relying parties: may subject S use service X?"""

from __future__ import annotations

from fastapi import APIRouter

from credence.access.policy import Action, authorize
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.schemas import DecisionIn, DecisionOut, decision_out
from credence.decisions.service import decide
from credence.errors import InvalidInput
from credence.ledger import service as ledger
from credence.rulebook import store

router = APIRouter(prefix="/v1/decisions", tags=["decisions"])


@router.post(
    "",
    response_model=DecisionOut,
    summary="Ask for a purpose-bound decision (relying parties); recorded on the subject's file",
)
def ask(body: DecisionIn, caller: CallerDep, ctx: ContextDep, session: SessionDep) -> DecisionOut:
    if (body.subject_id is None) == (body.identifier is None):
        raise InvalidInput("name the subject by exactly one of subject_id or identifier")
    if body.subject_id is not None:
        subject = ledger.get_subject(session, body.subject_id)
    else:
        subject = ledger.find_subject(session, body.identifier or "")
    authorize(caller, Action.DECISION_REQUEST, subject_id=subject.id)
    at = ctx.clock.now()
    decision = decide(
        session,
        subject=subject,
        service_code=body.service,
        edition=store.in_force(session, at),
        at=at,
        party_id=caller.party_id,
        principal_id=caller.principal_id,
    )
    return decision_out(decision)
