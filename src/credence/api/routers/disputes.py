"""Disputes and statements: a subject contests a record, its source answers.

Who may do what is the policy table's (:mod:`credence.access.policy`):
``dispute_open`` (a subject, on their own file: disputes and statements),
``dispute_answer`` (a source, about its own records) and ``dispute_review`` (a
reviewer, every dispute).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from credence.access.policy import Action, Caller, Scope, allowed, authorize, scope_of
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.routing import CommittingRoute
from credence.disputes import service
from credence.disputes.schemas import AnswerIn, DisputeIn, DisputeOut, StatementIn, StatementOut
from credence.errors import CredenceError, NotFound
from credence.ledger.tables import Record, Subject
from credence.rulebook import store

router = APIRouter(prefix="/v1", tags=["disputes"], route_class=CommittingRoute)

Check = tuple[Action, dict[str, int | None]]


def authorize_any(caller: Caller, *checks: Check) -> None:
    """Allow the call if any one of ``checks`` (action, ownership) passes; otherwise raise
    a refusal: that of a grant the caller's role has but whose ownership failed ("a
    subject may open disputes only about their own file") if any, else the first.
    For resources that several roles reach by different grants."""
    refusals: list[CredenceError] = []
    for action, owner in checks:
        try:
            authorize(caller, action, **owner)
        except CredenceError as error:
            if scope_of(caller.role, action) is Scope.NONE:
                refusals.append(error)
            else:
                refusals.insert(0, error)
        else:
            return
    raise refusals[0]


def record_and_subject(session: Session, record_id: str) -> tuple[Record, Subject]:
    """A record by public id, and the subject whose file it is on."""
    record = session.scalar(select(Record).where(Record.public_id == record_id))
    if record is None:
        raise NotFound(f"there is no record {record_id!r}", code="unknown_record")
    subject = session.get(Subject, record.subject_id)
    assert subject is not None  # a foreign key
    return record, subject


@router.post(
    "/disputes",
    response_model=DisputeOut,
    status_code=status.HTTP_201_CREATED,
    summary="Dispute a record on your file (subjects); the source must answer by the deadline",
)
def open_dispute(
    body: DisputeIn, caller: CallerDep, ctx: ContextDep, session: SessionDep
) -> DisputeOut:
    record, subject = record_and_subject(session, body.record_id)
    authorize(caller, Action.DISPUTE_OPEN, subject_id=record.subject_id)
    at = ctx.clock.now()
    view = service.open_dispute(
        session,
        subject=subject,
        record_id=body.record_id,
        reason=body.reason,
        new_information=body.new_information,
        rulebook=store.in_force(session, at).rulebook,
        at=at,
    )
    return DisputeOut.of(view)


@router.get(
    "/disputes",
    response_model=list[DisputeOut],
    summary="Disputes: a source's queue about its records, a subject's own, or all (reviewers)",
)
def list_disputes(
    caller: CallerDep,
    ctx: ContextDep,
    session: SessionDep,
    status: Annotated[
        service.StatusFilter, Query(description="open (default), answered, lapsed or all")
    ] = "open",
) -> list[DisputeOut]:
    at = ctx.clock.now()
    if allowed(caller, Action.DISPUTE_REVIEW):
        views = service.list_disputes(session, at=at, status=status)
    elif allowed(caller, Action.DISPUTE_ANSWER, source_id=caller.source_id):
        views = service.list_disputes(session, at=at, status=status, source_id=caller.source_id)
    else:
        authorize(caller, Action.DISPUTE_OPEN, subject_id=caller.subject_id)
        views = service.list_disputes(session, at=at, status=status, subject_id=caller.subject_id)
    return [DisputeOut.of(v) for v in views]


@router.get(
    "/disputes/{dispute_id}",
    response_model=DisputeOut,
    summary="One dispute (its subject, the record's source, reviewers)",
)
def get_dispute(
    dispute_id: str, caller: CallerDep, ctx: ContextDep, session: SessionDep
) -> DisputeOut:
    view = service.get_dispute(session, dispute_id, ctx.clock.now())
    authorize_any(
        caller,
        (Action.DISPUTE_REVIEW, {}),
        (Action.DISPUTE_ANSWER, {"source_id": view.owner_source}),
        (Action.DISPUTE_OPEN, {"subject_id": view.owner_subject}),
    )
    return DisputeOut.of(view)


@router.post(
    "/disputes/{dispute_id}/answer",
    response_model=DisputeOut,
    summary="Answer a dispute before its deadline: verified, corrected or deleted",
    responses={
        202: {
            "model": DisputeOut,
            "description": "Deleted or corrected, of a record that restricts the subject: the "
            "answer awaits a second reviewer's confirmation (pending_change).",
        }
    },
)
def answer_dispute(
    dispute_id: str,
    body: AnswerIn,
    caller: CallerDep,
    ctx: ContextDep,
    session: SessionDep,
    response: Response,
) -> DisputeOut:
    at = ctx.clock.now()
    view = service.get_dispute(session, dispute_id, at)
    authorize_any(
        caller,
        (Action.DISPUTE_ANSWER, {"source_id": view.owner_source}),
        (Action.DISPUTE_REVIEW, {}),
    )
    as_source = allowed(caller, Action.DISPUTE_ANSWER, source_id=view.owner_source)
    answered = service.answer_dispute(
        session,
        dispute_id=dispute_id,
        outcome=body.outcome,
        explanation=body.explanation,
        by=service.Answerer(
            kind="source" if as_source else "reviewer",
            name=caller.name,
            principal_id=caller.principal_id,
        ),
        rulebook=store.in_force(session, at).rulebook,
        at=at,
        correction=body.correction,
    )
    if answered.pending_change is not None:
        response.status_code = status.HTTP_202_ACCEPTED
    return DisputeOut.of(answered)


@router.post(
    "/records/{record_id}/statement",
    response_model=StatementOut,
    status_code=status.HTTP_201_CREATED,
    summary="Attach your statement to a record on your file (subjects; at most 500 characters)",
)
def add_statement(
    record_id: str, body: StatementIn, caller: CallerDep, ctx: ContextDep, session: SessionDep
) -> StatementOut:
    record, subject = record_and_subject(session, record_id)
    # Adding a statement is part of the subject's right to contest (docs/roles.md: "open
    # disputes; add a statement"), so it shares the dispute_open grant.
    authorize(caller, Action.DISPUTE_OPEN, subject_id=record.subject_id)
    view = service.add_statement(
        session, subject=subject, record_id=record_id, text=body.text, at=ctx.clock.now()
    )
    return StatementOut(record_id=view.record_id, text=view.text, at=view.at)
