"""The public status of sources, as of any instant: freshness and accountability.

For each source registered by the instant ``at``, and each record type it is registered
for, :func:`status` gives:

* **freshness** (:mod:`credence.ledger.freshness`, the one place of the rule): the last
  report, the cadence and grace in force, whether the source is in outage and since
  when;
* **volume**: records received per day over the :data:`~credence.ledger.freshness.
  WINDOW_DAYS` days before ``at`` (or since the source's registration, if later);
* **suspension**, per source: the suspension in force at ``at``, if any
  (:mod:`credence.ledger.suspension`): since when, and its reason from the catalogue
  (with a legal order's reference), never free text;
* **accountability**, per source, over its whole history up to ``at``:

  - its **retraction rate**: the records it retracted among the records it reported;
  - its **disputes upheld**: among the disputes about its records decided by ``at``
    (answered before their deadline, or past it unanswered), the share that went the
    subject's way: answered ``deleted`` or ``corrected``, or left unanswered at the
    deadline (the record stopped counting then, see :mod:`credence.ledger.endings`).

  Each rate is a figure only over at least :data:`MIN_CASES` cases (records reported,
  disputes decided); below that it is suppressed: no figure and no count, a reason.

Nothing in it names a subject: sources, record types, instants and counts only. Every
figure is read set-wise (grouped queries, as many whatever the number of sources) and
depends only on rows appended by ``at``, so the status as of a past instant is the same
whenever it is asked, on SQLite and PostgreSQL (but see the ledger's note on erased
records).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select

from credence.clock import ensure_utc
from credence.disputes.tables import Dispute, DisputeAnswer
from credence.errors import InvalidInput
from credence.ledger.freshness import (
    WINDOW_DAYS,
    Readable,
    SourceFreshness,
    TypeFreshness,
    freshness,
)
from credence.ledger.suspension import Suspension, as_of
from credence.ledger.tables import Retraction

#: The fewest cases a rate is shown over.
MIN_CASES = 10
#: The outcomes of an answer that uphold a dispute against the source.
UPHELD = ("deleted", "corrected")


@dataclass(frozen=True)
class Rate:
    """A share of cases, or why it is not shown: ``value`` and ``cases`` when there are
    at least :data:`MIN_CASES` cases, else both None and ``suppressed`` says why."""

    value: float | None
    cases: int | None
    suppressed: str | None


def rate(hits: int, cases: int, what: str) -> Rate:
    """``hits`` of ``cases`` (``what`` names the cases, plural), suppressed below
    :data:`MIN_CASES` cases."""
    if cases < MIN_CASES:
        return Rate(None, None, f"fewer than {MIN_CASES} {what}")
    return Rate(hits / cases, cases, None)


@dataclass(frozen=True)
class TypeStatus:
    record_type: str
    last_report: datetime | None
    #: The declaration in force (all None: the type is not watched).
    cadence_days: int | None
    grace_days: int | None
    declared_at: datetime | None
    in_outage: bool
    outage_since: datetime | None
    records_per_day: float | None


@dataclass(frozen=True)
class SuspensionStatus:
    """A suspension in force: since when, why (a reason of the catalogue, what it means,
    and a legal order's reference)."""

    since: datetime
    reason: str
    explanation: str
    reference: str | None


def _suspension(s: Suspension | None) -> SuspensionStatus | None:
    if s is None:
        return None
    return SuspensionStatus(s.suspended_at, s.reason, s.explanation, s.reference)


@dataclass(frozen=True)
class SourceStatus:
    code: str
    name: str
    kind: str
    registered_at: datetime
    last_report: datetime | None
    in_outage: bool
    outage_since: datetime | None
    #: The window the volume is counted over: from here to the instant asked for.
    window_from: datetime
    records_per_day: float | None
    retraction_rate: Rate
    disputes_upheld: Rate
    types: tuple[TypeStatus, ...]
    suspension: SuspensionStatus | None = None


@dataclass(frozen=True)
class Status:
    at: datetime
    window_days: int
    min_cases: int
    sources: tuple[SourceStatus, ...]


def _per_day(records: int, window_from: datetime, at: datetime) -> float | None:
    days = (at - window_from) / timedelta(days=1)
    return records / days if days > 0 else None


def _type(t: TypeFreshness, window_from: datetime, at: datetime) -> TypeStatus:
    d = t.declared
    return TypeStatus(
        record_type=t.record_type,
        last_report=t.last_report,
        cadence_days=None if d is None else d.cadence_days,
        grace_days=None if d is None else d.grace_days,
        declared_at=None if d is None else d.declared_at,
        in_outage=t.in_outage,
        outage_since=t.outage_since,
        records_per_day=_per_day(t.records_in_window, window_from, at),
    )


def retractions(conn: Readable, at: datetime) -> dict[int, int]:
    """Records each source retracted by ``at``."""
    rows = conn.execute(
        select(Retraction.source_id, func.count())
        .where(Retraction.received_at <= at)
        .group_by(Retraction.source_id)
    )
    return {source_id: int(n) for source_id, n in rows}


def disputes(conn: Readable, at: datetime) -> dict[int, tuple[int, int]]:
    """Per source: ``(decided, upheld)``, the disputes about its records decided by
    ``at`` and those of them upheld against it."""
    answered = DisputeAnswer.id.is_not(None)
    lapsed = and_(~answered, Dispute.deadline <= at)
    upheld = or_(and_(answered, DisputeAnswer.outcome.in_(UPHELD)), lapsed)
    rows = conn.execute(
        select(
            Dispute.source_id,
            func.sum(case((or_(answered, lapsed), 1), else_=0)),
            func.sum(case((upheld, 1), else_=0)),
        )
        # An answer counts when it came before the deadline (after it, the lapse
        # stands) and by the instant asked for.
        .outerjoin(
            DisputeAnswer,
            and_(
                DisputeAnswer.dispute_id == Dispute.id,
                DisputeAnswer.answered_at < Dispute.deadline,
                DisputeAnswer.answered_at <= at,
            ),
        )
        .where(Dispute.opened_at <= at)
        .group_by(Dispute.source_id)
    )
    return {source_id: (int(decided or 0), int(up or 0)) for source_id, decided, up in rows}


def _source(
    s: SourceFreshness,
    at: datetime,
    suspended: Suspension | None,
    retracted: int,
    decided: int,
    upheld: int,
) -> SourceStatus:
    return SourceStatus(
        code=s.code,
        name=s.name,
        kind=s.kind,
        registered_at=s.registered_at,
        last_report=s.last_report,
        in_outage=s.in_outage,
        outage_since=s.outage_since,
        window_from=s.window_from,
        records_per_day=_per_day(s.records_in_window, s.window_from, at),
        retraction_rate=rate(retracted, s.records, "records reported"),
        disputes_upheld=rate(upheld, decided, "disputes decided"),
        types=tuple(_type(t, s.window_from, at) for t in s.types),
        suspension=_suspension(suspended),
    )


def status(conn: Readable, at: datetime, *, now: datetime | None = None) -> Status:
    """The status of every source registered by ``at``, by code, as of ``at``; given
    ``now``, an ``at`` after it is refused (the status of sources exists only up to now:
    later, it would foretell outages)."""
    at = ensure_utc(at)
    if now is not None and at > now:
        raise InvalidInput(
            "the status of sources exists only up to now: ask for an instant that is not "
            "in the future",
            code="at_in_future",
        )
    retracted = retractions(conn, at)
    disputed = disputes(conn, at)
    suspended = as_of(conn, at)
    return Status(
        at=at,
        window_days=WINDOW_DAYS,
        min_cases=MIN_CASES,
        sources=tuple(
            _source(
                s,
                at,
                suspended.get(s.source_id),
                retracted.get(s.source_id, 0),
                *disputed.get(s.source_id, (0, 0)),
            )
            for s in freshness(conn, at)
        ),
    )
