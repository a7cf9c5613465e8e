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

Cost for a source not in outage: one prepared statement per batch with positives
(:data:`_STATE`: the source's declarations, each with its type's last report, a seek on
the records' index by source, type and receipt; and its catch-up runs with volume left,
usually none), 18 to 24 µs on SQLite (``python -m bench.catchup``). Functions take the
caller's session and commit nothing; they run in the source's turn
(:mod:`credence.ledger.turns`), so two batches never both open a run for one outage (a
unique index on source, outage and types is the backstop: the second finds the first's).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ClauseElement, Integer, bindparam, exists, func, literal, select, union_all
from sqlalchemy.orm import Session

from credence import journal
from credence.clock import from_micros, to_micros
from credence.db import Direct, Instant, Prepared, insert_new
from credence.ids import new_id
from credence.ledger import backfill, freshness
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


#: What a row of :data:`_STATE` is: a declaration with its type's last report, or a
#: catch-up run with volume left.
_DECLARED, _RUN = 0, 1


def _state_statement() -> ClauseElement:
    """The source's state for catch-up, in one statement (parameters ``source_id`` and
    ``at``): each cadence it declared by ``at`` with its type's last report by ``at``
    (:func:`credence.ledger.freshness.last_report_by`: one seek on the records' index by
    source, type and receipt),
    then each of its catch-up runs with volume left and the volume it used. Rows:
    (what, type(s), cadence or expected, grace or used, declared or from, id, last
    report or until, public id); instants in microseconds."""
    c = SourceCadence.__table__.c
    runs = _RUNS.c
    d = BackfillDelivery.__table__.c
    source_id = bindparam("source_id", type_=Integer())
    at = bindparam("at", type_=Instant())
    last = freshness.last_report_by(c.source_id, c.record_type, at)
    used = (
        select(func.coalesce(func.sum(d.exempted), 0)).where(d.run_id == runs.id).scalar_subquery()
    )
    declared = select(
        literal(_DECLARED),
        c.record_type,
        c.cadence_days,
        c.grace_days,
        c.declared_at,
        c.id,
        last,
        c.record_type,
    ).where(c.source_id == source_id, c.declared_at <= at)
    open_runs = select(
        literal(_RUN),
        runs.record_types,
        runs.expected_records,
        used,
        runs.occurred_from,
        runs.id,
        runs.occurred_until,
        runs.public_id,
    ).where(
        runs.source_id == source_id,
        runs.kind == OUTAGE_CATCH_UP,
        runs.expected_records > used,
    )
    return union_all(declared, open_runs)


_STATE = Prepared(_state_statement())


def _silent(source_id: int, rows: Sequence[Any], at: datetime) -> list[_Silent]:
    """The source's declared types in outage at ``at``, from its declarations' rows
    (the rule of :func:`credence.ledger.freshness.outage_since`, for one source)."""
    if not rows:
        return []
    declared = freshness.in_force(
        (
            freshness.Declaration(source_id, t, days, grace, from_micros(when), order)
            for _, t, days, grace, when, order, _, _ in rows
        ),
        at,
    )
    reports = {t: None if last is None else from_micros(last) for _, t, *_, last, _ in rows}
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


def _scope(source_id: int, row: Sequence[Any]) -> Scope:
    """A catch-up run as intake checks a batch against it, from a run's row of
    :data:`_STATE`."""
    _, types, expected, used, occurred_from, run_id, occurred_until, public_id = row
    return Scope(
        run_id=run_id,
        public_id=public_id,
        source_id=source_id,
        occurred_from_us=occurred_from,
        occurred_until_us=occurred_until,
        remaining=max(expected - used, 0),
        record_types=frozenset((types or "").split(",")),
        burst_only=True,
    )


def scopes(
    session: Session, *, source: Source, record_types: Collection[str], at: datetime
) -> list[Scope]:
    """The catch-up runs a batch of ``source`` at ``at`` delivering ``record_types`` is
    checked against, oldest first: the source's runs with volume left, and the run of
    its outage, opened now, if it is in outage for some of those types. In the source's
    turn (the caller's)."""
    rows = _STATE.run(Direct.within(session), {"source_id": source.id, "at": at})
    found = [_scope(source.id, row) for row in rows if row[0] == _RUN]
    silent = [
        s
        for s in _silent(source.id, [row for row in rows if row[0] == _DECLARED], at)
        if s.record_type in record_types
    ]
    if silent:
        run = _open(session, source, silent, at)
        if run is not None and run.id not in {f.run_id for f in found}:
            found.append(
                _scope(
                    source.id,
                    (
                        _RUN,
                        run.record_types,
                        run.expected_records,
                        backfill.used(session, run.id),
                        to_micros(run.occurred_from),
                        run.id,
                        to_micros(run.occurred_until),
                        run.public_id,
                    ),
                )
            )
    found.sort(key=lambda f: f.run_id)
    return [f for f in found if f.remaining > 0]


def delivered(session: Session, runs: Iterable[Scope], *, at: datetime) -> None:
    """Log what a planned batch's records were exempted by each catch-up run that
    exempted any (a delivery row and ``backfill_delivered`` entry per run)."""
    for run in runs:
        if run.exempted:
            deliver(session, run, at=at)
            run.exempted = 0
