"""The sources' public status: freshness, volume and their record in public.

Anyone may read it, with or without a key (``source_status_read`` is granted to the
public, like the rulebook and the log): it names sources and record types, never a
subject, and its rates are suppressed below ten cases (:mod:`credence.watch.status`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from credence.access.policy import PUBLIC, Action, authorize
from credence.api.deps import ContextDep, SessionDep
from credence.api.routing import CommittingRoute
from credence.api.schemas import Out
from credence.clock import Instant
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
