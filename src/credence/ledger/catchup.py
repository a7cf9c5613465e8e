"""An outage's catch-up: what a source missed, delivered late, is not a burst.

A source in outage (:mod:`credence.ledger.freshness`) that reports again usually sends
what it could not send meanwhile: weeks of records at once, which the burst limit would
hold as a bribe's pattern. So when a batch arrives from a source in outage for positive
record types the batch delivers (the burst limit counts positives only), intake opens, by
itself and once per outage, a **catch-up run** (:class:`~credence.ledger.backfill.
BackfillRun` of kind ``outage_catch_up``):

* **scope**: the source; those record types in outage (T); the period
  from the earliest last report of those types (L) until the batch's instant;
* **expected volume**: what the source missed at its usual rate, per type:
  ``ceil(rate × silence)``, where the silence runs from the type's last report to the
  batch, and the rate is the type's records received per day over the
  :func:`window_days` before its last report (from the source's registration if
  later), counting neither records a backfill run exempted (a history load is not a
  usual rate) nor held ones;
* the run's records (of types T, occurred in the period, up to the volume, in this
  batch and later ones) are exempt from the **burst limit only**: never from the
  new-identity limit (they count towards it, now and later), never from plausibility.
  Each carries the run's id in ``records.backfill_run_id``, so later bursts do not
  count it; each batch's use is a delivery row, as for approved runs.

A type never reported before has no usual rate: its first delivery opens no run (a
history is loaded under a run an operator approves). An approved run named by the batch
takes precedence for its records. A suspended source opens none.

Cost for a source not in outage: :func:`scopes` reads the source's declarations with
each declared type's last report (one statement: a correlated ``max`` per declared type,
a seek on the records' index by source, type and receipt) and the source's catch-up runs
(one statement on ``backfill_runs`` by source, usually nothing). Functions take the
caller's session and commit nothing; they run in the source's turn
(:mod:`credence.ledger.turns`), so two batches never both open a run for one outage
(a unique index on source, outage and types is the backstop: the second finds the first's).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from credence import journal
from credence.clock import to_micros
from credence.db import insert_new
from credence.ids import new_id
from credence.ledger import freshness
from credence.ledger.backfill import (
    OUTAGE_CATCH_UP,
    BackfillDelivery,
    BackfillRun,
    Scope,
    deliver,
)
from credence.ledger.holds import RecordHold
from credence.ledger.tables import Record, Source, SourceCadence
from credence.notifications.service import record_event

#: The least number of days a usual rate is read over (four weeks, as the status's).
MIN_RATE_DAYS = freshness.WINDOW_DAYS
#: The rate's window is at least this many cadences long.
RATE_CADENCES = 3

_DAY = timedelta(days=1)
_RUNS = BackfillRun.metadata.tables[BackfillRun.__tablename__]


def window_days(cadence_days: int) -> int:
    """Days before a type's last report its usual rate is read over."""
    return max(MIN_RATE_DAYS, RATE_CADENCES * cadence_days)


@dataclass(frozen=True)
class _Silent:
    """A record type of the source in outage at the batch's instant."""

    record_type: str
    since: datetime
    last_report: datetime | None
    cadence_days: int


def _silent(session: Session, source_id: int, at: datetime) -> list[_Silent]:
    """The source's declared types in outage at ``at`` (the rule of
    :func:`credence.ledger.freshness.outage_since`, read for one source)."""
    c = SourceCadence
    last = (
        select(func.max(Record.received_at))
        .where(
            Record.source_id == c.source_id,
            Record.record_type == c.record_type,
            Record.received_at <= at,
        )
        .scalar_subquery()
    )
    rows = session.execute(
        select(c.record_type, c.cadence_days, c.grace_days, c.declared_at, c.id, last).where(
            c.source_id == source_id, c.declared_at <= at
        )
    ).all()
    if not rows:
        return []
    declared = freshness.in_force(
        (
            freshness.Declaration(source_id, t, days, grace, when, order)
            for t, days, grace, when, order, _ in rows
        ),
        at,
    )
    reports = {t: report for t, *_, report in rows}
    out = []
    for (_, record_type), declaration in sorted(declared.items()):
        report = reports[record_type]
        since = freshness.outage_since(at, report, declaration)
        if since is not None:
            out.append(_Silent(record_type, since, report, declaration.cadence_days))
    return out


def _usual_volume(session: Session, source: Source, silent: _Silent, at: datetime) -> int:
    """What the source missed of one type at its usual rate (see the module doc)."""
    last = silent.last_report
    if last is None:
        return 0
    start = max(last - window_days(silent.cadence_days) * _DAY, source.created_at)
    days = (last - start) / _DAY
    if days <= 0:
        return 0
    held = exists().where(RecordHold.record_id == Record.id, RecordHold.status != "released")
    usual = session.scalar(
        select(func.count()).where(
            Record.source_id == source.id,
            Record.record_type == silent.record_type,
            Record.received_at > start,
            Record.received_at <= last,
            Record.backfill_run_id.is_(None),
            ~held,
        )
    )
    return math.ceil((usual or 0) / days * ((at - last) / _DAY))


def _open(
    session: Session, source: Source, silent: list[_Silent], at: datetime
) -> BackfillRun | None:
    """The catch-up run of ``silent``'s outage: opened now (with its entry), or the one
    an earlier batch opened for it; None when the source had no usual volume to miss."""
    expected = sum(_usual_volume(session, source, s, at) for s in silent)
    if expected <= 0:
        return None
    reported = [s.last_report for s in silent if s.last_report is not None]
    since = min(s.since for s in silent)
    types = ",".join(sorted(s.record_type for s in silent))
    values = {
        "public_id": new_id("bkf"),
        "source_id": source.id,
        "occurred_from": min(reported),
        "occurred_until": at,
        "expected_records": expected,
        "approved_principal_id": None,
        "approved_at": at,
        "kind": OUTAGE_CATCH_UP,
        "record_types": types,
        "outage_since": since,
    }
    run_id = insert_new(
        session, _RUNS, values, unique=("source_id", "outage_since", "record_types")
    )
    if run_id is None:  # a batch of this outage whose records were all refused opened it
        return session.scalars(
            select(BackfillRun).where(
                BackfillRun.source_id == source.id,
                BackfillRun.outage_since == since,
                BackfillRun.record_types == types,
            )
        ).one()
    run = session.get_one(BackfillRun, run_id)
    record_event(
        session,
        kind=journal.EventKind.OUTAGE_CATCH_UP_OPENED,
        at=at,
        data={
            "run": run.public_id,
            "source": source.code,
            "record_types": types.split(","),
            "outage_since": since,
            "occurred_from": run.occurred_from,
            "occurred_until": at,
            "expected_records": expected,
        },
        rows=[run],
    )
    return run


def _scope(run: BackfillRun, used: int) -> Scope:
    return Scope(
        run_id=run.id,
        public_id=run.public_id,
        source_id=run.source_id,
        occurred_from_us=to_micros(run.occurred_from),
        occurred_until_us=to_micros(run.occurred_until),
        remaining=max(run.expected_records - used, 0),
        record_types=frozenset((run.record_types or "").split(",")),
        burst_only=True,
    )


def scopes(
    session: Session, *, source: Source, record_types: Collection[str], at: datetime
) -> list[Scope]:
    """The catch-up runs a batch of ``source`` at ``at`` delivering ``record_types`` is
    checked against, oldest first: the source's runs with volume left, after opening
    the run of its outage if it is in outage for some of those types. In the source's
    turn (the caller's)."""
    silent = [s for s in _silent(session, source.id, at) if s.record_type in record_types]
    if silent:
        _open(session, source, silent, at)
    used = (
        select(func.coalesce(func.sum(BackfillDelivery.exempted), 0))
        .where(BackfillDelivery.run_id == BackfillRun.id)
        .scalar_subquery()
    )
    found = session.execute(
        select(BackfillRun, used)
        .where(
            and_(BackfillRun.source_id == source.id, BackfillRun.kind == OUTAGE_CATCH_UP),
            BackfillRun.expected_records > used,
        )
        .order_by(BackfillRun.id)
    ).all()
    return [_scope(run, int(n)) for run, n in found]


def delivered(session: Session, runs: Iterable[Scope], *, at: datetime) -> None:
    """Log what a planned batch's records were exempted by each catch-up run that
    exempted any (a delivery row and ``backfill_delivered`` entry per run)."""
    for run in runs:
        if run.exempted:
            deliver(session, run, at=at)
            run.exempted = 0
