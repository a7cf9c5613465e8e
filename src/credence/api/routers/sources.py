"""The sources' public status: freshness, volume and their record in public; and their
suspension.

Anyone may read the status, with or without a key (``source_status_read`` is granted to
the public, like the rulebook and the log): it names sources and record types, never a
subject, and its rates are suppressed below ten cases (:mod:`credence.watch.status`).

Operators (``source_suspend``) suspend a source, with a reason from the catalogue, and
reinstate it (:mod:`credence.ledger.suspension`). Suspending a suspended source answers
the suspension in force (200; 201 when it is new); reinstating a source not suspended
is 409 ``source_not_suspended``.

Operators (``source_alert``) read the queue of source alerts the scan raised
(:mod:`credence.watch.alerts`), acknowledge them and close them, each with a note. An
alert acknowledged or closed is not acknowledged again (409 ``alert_not_open``); a
closed one is not closed again (409 ``alert_closed``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from credence.access.policy import PUBLIC, Action, authorize
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.routing import CommittingRoute
from credence.api.schemas import Out
from credence.clock import Instant
from credence.ledger import registry, suspension
from credence.watch import alerts
from credence.watch.status import status

router = APIRouter(prefix="/v1/sources", tags=["sources"], route_class=CommittingRoute)


class RateOut(Out):
    value: float | None = Field(
        description="The share, from 0 to 1; null when suppressed (fewer than min_cases cases)."
    )
    cases: int | None = Field(description="How many cases the share is of; null when suppressed.")
    suppressed: str | None = Field(description="Why no figure is shown; null when one is.")


class TypeStatusOut(Out):
    record_type: str
    last_report: datetime | None = Field(
        description="The latest receipt of a record of this type from the source, by `at`."
    )
    cadence_days: int | None = Field(
        description="The source reports this type at least once every so many days (the "
        "declaration in force at `at`); null: no cadence declared, not watched for outages."
    )
    grace_days: int | None = Field(description="Days more it may be late before an outage.")
    declared_at: datetime | None = Field(description="When the cadence in force was declared.")
    in_outage: bool = Field(description="Silent for longer than cadence + grace at `at`.")
    outage_since: datetime | None = Field(
        description="When the outage began: last report (or first declaration) + cadence + "
        "grace, never before the declaration in force."
    )
    records_per_day: float | None = Field(
        description="Records of this type received per day over the source's window."
    )


class SuspensionStatusOut(Out):
    since: datetime = Field(description="When the suspension in force at `at` began.")
    reason: suspension.Reason = Field(description="Why, from the catalogue of reasons.")
    explanation: str = Field(description="What the reason means.")
    reference: str | None = Field(description="A legal order's reference; null otherwise.")


class SourceStatusOut(Out):
    code: str
    name: str
    kind: str
    registered_at: datetime
    last_report: datetime | None = Field(description="The source's latest record, by `at`.")
    in_outage: bool = Field(description="One of its record types is in outage.")
    outage_since: datetime | None = Field(description="The earliest outage of its types.")
    window_from: datetime = Field(
        description="The volume is counted from here to `at`: window_days before `at`, or "
        "the source's registration if later."
    )
    records_per_day: float | None
    retraction_rate: RateOut = Field(
        description="Records it retracted among the records it reported, by `at`."
    )
    disputes_upheld: RateOut = Field(
        description="Disputes about its records decided by `at` that went the subject's way "
        "(answered deleted or corrected, or unanswered at the deadline)."
    )
    types: list[TypeStatusOut]
    suspension: SuspensionStatusOut | None = Field(
        description="The suspension in force at `at`: the source's records received "
        "meanwhile are held for review. Null: not suspended."
    )


class SourcesStatusOut(Out):
    at: datetime = Field(description="The instant the status is as of.")
    window_days: int = Field(description="Days the volume is counted over, ending at `at`.")
    min_cases: int = Field(description="A rate over fewer cases is suppressed.")
    sources: list[SourceStatusOut]


At = Annotated[
    Instant | None,
    Query(description="Status as of this instant (ISO 8601); default now. Past status is exact."),
]


@router.get(
    "/status",
    response_model=SourcesStatusOut,
    summary="Every source's freshness, volume and record in public (public)",
)
def sources_status(ctx: ContextDep, session: SessionDep, at: At = None) -> SourcesStatusOut:
    authorize(PUBLIC, Action.SOURCE_STATUS_READ)
    now = ctx.clock.now()
    return SourcesStatusOut.model_validate(status(session, now if at is None else at, now=now))


class SuspensionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: suspension.Reason = Field(description="Why, from the catalogue of reasons.")
    reference: str | None = Field(
        default=None,
        max_length=suspension.MAX_REFERENCE,
        description="A legal order's reference (required for legal_order, refused otherwise).",
    )


class SuspensionOut(Out):
    source: str
    reason: suspension.Reason
    explanation: str = Field(description="What the reason means.")
    reference: str | None
    suspended_at: datetime
    reinstated_at: datetime | None = Field(description="When it ended; null while in force.")


@router.post(
    "/{code}/suspension",
    response_model=SuspensionOut,
    status_code=201,
    responses={200: {"model": SuspensionOut, "description": "Already suspended: in force."}},
    summary="Suspend a source: its new records are held for review (operators)",
)
def suspend_source(
    code: str,
    body: SuspensionIn,
    caller: CallerDep,
    ctx: ContextDep,
    session: SessionDep,
    response: Response,
) -> SuspensionOut:
    authorize(caller, Action.SOURCE_SUSPEND)
    found, now = suspension.suspend(
        session,
        source=registry.source_by_code(session, code),
        reason=body.reason,
        reference=body.reference,
        principal_id=caller.principal_id,
        at=ctx.clock.now(),
    )
    if not now:
        response.status_code = 200
    return SuspensionOut.model_validate(found)


@router.post(
    "/{code}/reinstatement",
    response_model=SuspensionOut,
    summary="Reinstate a suspended source; records held meanwhile stay held (operators)",
)
def reinstate_source(
    code: str, caller: CallerDep, ctx: ContextDep, session: SessionDep
) -> SuspensionOut:
    authorize(caller, Action.SOURCE_SUSPEND)
    return SuspensionOut.model_validate(
        suspension.reinstate(
            session,
            source=registry.source_by_code(session, code),
            principal_id=caller.principal_id,
            at=ctx.clock.now(),
        )
    )


# --- the queue of source alerts (operators) --------------------------------------------


class AlertOut(Out):
    id: int
    source: str
    detector: str = Field(
        description="What fired: volume, negative_mix, concentration, new_subjects, "
        "negative_retractions, disputes_upheld, silence or outage (README, 'Source "
        "anomalies')."
    )
    day: datetime = Field(description="The UTC day the alert is about (its first instant).")
    value: float = Field(description="The day's figure.")
    median: float | None = Field(description="Its median over the source's history window.")
    mad: float | None = Field(description="Its median absolute deviation over that window.")
    threshold: float = Field(description="The least value that fires, which the day reached.")
    raised_at: datetime
    state: Literal["open", "acknowledged", "closed"]
    acknowledged_at: datetime | None
    acknowledged_note: str | None
    closed_at: datetime | None
    closed_note: str | None


AlertId = Annotated[int, Path(ge=1, le=2_147_483_647, description="The alert's number.")]


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(
        description=f"What was found or done: required, at most {alerts.MAX_NOTE} "
        "printable characters (line breaks allowed)."
    )


@router.get(
    "/alerts",
    response_model=list[AlertOut],
    summary="The queue of source alerts, newest day first (operators)",
)
def source_alerts(
    caller: CallerDep,
    session: SessionDep,
    state: Annotated[
        Literal["open", "acknowledged", "closed"] | None,
        Query(description="Only alerts in this state."),
    ] = None,
    source: Annotated[
        str | None, Query(max_length=64, description="Only alerts about this source (code).")
    ] = None,
) -> list[AlertOut]:
    authorize(caller, Action.SOURCE_ALERT)
    return [AlertOut.model_validate(a) for a in alerts.listing(session, state=state, source=source)]


@router.post(
    "/alerts/{alert_id}/acknowledgement",
    response_model=AlertOut,
    summary="Acknowledge an open source alert, with a note (operators)",
)
def acknowledge_alert(
    alert_id: AlertId, body: NoteIn, caller: CallerDep, ctx: ContextDep, session: SessionDep
) -> AlertOut:
    authorize(caller, Action.SOURCE_ALERT)
    return AlertOut.model_validate(
        alerts.acknowledge(
            session,
            alert_id=alert_id,
            note=body.note,
            principal_id=caller.principal_id,
            at=ctx.clock.now(),
        )
    )


@router.post(
    "/alerts/{alert_id}/closure",
    response_model=AlertOut,
    summary="Close a source alert, with a note; a closed one is 409 alert_closed (operators)",
)
def close_alert(
    alert_id: AlertId, body: NoteIn, caller: CallerDep, ctx: ContextDep, session: SessionDep
) -> AlertOut:
    authorize(caller, Action.SOURCE_ALERT)
    return AlertOut.model_validate(
        alerts.close(
            session,
            alert_id=alert_id,
            note=body.note,
            principal_id=caller.principal_id,
            at=ctx.clock.now(),
        )
    )
