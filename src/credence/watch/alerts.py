"""The operators' queue of source alerts, and the scan that fills it.

:func:`scan` evaluates, with the detectors of :mod:`credence.watch.anomalies`, every
whole UTC day not scanned yet up to an instant (a day is whole once its last instant has
passed; the figures of a day are read as of its end, so a day judged again gives the
same answer), and raises an alert for each finding. An alert is a row of
``source_alerts``: the source, the detector, the day it is about and the figures that
fired it (value, the history's median and MAD, the threshold reached); never a subject.
It is raised ``open``, then an operator acknowledges it and closes it, each with a note
(at most :data:`MAX_NOTE` printable characters; the entry keeps its digest).

Raising, acknowledging and closing are journal entries (``source_alert_raised``,
``source_alert_acknowledged``, ``source_alert_closed``), each writing the row again, so
``credence log verify`` covers every state an alert went through.

The scan is idempotent: one alert per source, detector and day (a unique constraint),
so scanning the same days again raises nothing twice, and two scans at once raise each
alert once: the second's insert waits for the first's transaction and, when that
commits, gives way (its savepoint is rolled back, nothing is journalled). The days
scanned are noted in ``source_alert_scans`` (the next scan starts after them); a lost
note only makes a scan judge days again, which raises nothing twice.

Closing a closed alert is a conflict (409 ``alert_closed``): a close names why, and a
second why would be lost; acknowledging an alert acknowledged or closed is one too
(``alert_not_open``).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import (
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from credence import journal
from credence.clock import ensure_utc
from credence.db import Base, Instant
from credence.errors import Conflict, InvalidInput, NotFound
from credence.journal.rows import begin_write
from credence.ledger.tables import Record, Source
from credence.notifications.service import record_event
from credence.rulebook import store
from credence.watch import anomalies

#: The longest note kept on an acknowledgement or a closure.
MAX_NOTE = 500
State = Literal["open", "acknowledged", "closed"]
STATES: tuple[State, ...] = ("open", "acknowledged", "closed")


class SourceAlert(journal.Journalled, Base):
    """An alert about a source's day: raised by a scan, acknowledged and closed by
    operators with a note. Written by a ``source_alert_raised`` entry, again by the
    ``source_alert_acknowledged`` and ``source_alert_closed`` ones."""

    __tablename__ = "source_alerts"
    __table_args__ = (UniqueConstraint("source_id", "detector", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    #: One of :data:`credence.watch.anomalies.DETECTORS`.
    detector: Mapped[str] = mapped_column(String(32))
    #: The UTC day the alert is about: its first instant.
    day: Mapped[datetime] = mapped_column(Instant)
    value: Mapped[float] = mapped_column(Float)
    median: Mapped[float | None] = mapped_column(Float, nullable=True)
    mad: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float] = mapped_column(Float)
    raised_at: Mapped[datetime] = mapped_column(Instant)
    state: Mapped[str] = mapped_column(String(16))
    acknowledged_at: Mapped[datetime | None] = mapped_column(Instant, nullable=True)
    acknowledged_principal_id: Mapped[int | None] = mapped_column(
        ForeignKey("principals.id"), nullable=True
    )
    acknowledged_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(Instant, nullable=True)
    closed_principal_id: Mapped[int | None] = mapped_column(
        ForeignKey("principals.id"), nullable=True
    )
    closed_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class SourceAlertScan(Base):
    """The days one scan judged (``first_day`` to ``last_day``, their first instants)."""

    __tablename__ = "source_alert_scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_day: Mapped[datetime] = mapped_column(Instant)
    last_day: Mapped[datetime] = mapped_column(Instant)
    scanned_at: Mapped[datetime] = mapped_column(Instant)
    raised: Mapped[int] = mapped_column(Integer)


_table = SourceAlert.__table__
journal.cover(
    _table,
    journal.encoder(
        _table,
        "id",
        "source_id",
        "detector",
        "day",
        "value",
        "median",
        "mad",
        "threshold",
        "raised_at",
        "state",
        "acknowledged_at",
        "acknowledged_principal_id",
        "acknowledged_note",
        "closed_at",
        "closed_principal_id",
        "closed_note",
    ),
)
journal.exempt(
    SourceAlertScan.__table__,
    "where the next scan of sources starts: no score, decision or authorisation reads it, "
    "and a lost or altered row only makes a scan judge days again, which raises no alert "
    "twice (source_alerts is unique by source, detector and day)",
)


@dataclass(frozen=True)
class Alert:
    """An alert as the API and the command line show it."""

    id: int
    source: str
    detector: str
    day: datetime
    value: float
    median: float | None
    mad: float | None
    threshold: float
    raised_at: datetime
    state: str
    acknowledged_at: datetime | None
    acknowledged_note: str | None
    closed_at: datetime | None
    closed_note: str | None


def _view(row: SourceAlert, code: str) -> Alert:
    return Alert(
        id=row.id,
        source=code,
        detector=row.detector,
        day=row.day,
        value=row.value,
        median=row.median,
        mad=row.mad,
        threshold=row.threshold,
        raised_at=row.raised_at,
        state=row.state,
        acknowledged_at=row.acknowledged_at,
        acknowledged_note=row.acknowledged_note,
        closed_at=row.closed_at,
        closed_note=row.closed_note,
    )


# --- the scan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanResult:
    """What a scan judged (None: no whole day was left to judge), raised, and how long
    it took (seconds)."""

    first_day: datetime | None
    last_day: datetime | None
    raised: tuple[Alert, ...]
    seconds: float = 0.0


def _signs(session: Session, at: datetime) -> tuple[list[str], list[str]]:
    """The record types of each sign in the rulebook in force at ``at``."""
    book = store.in_force(session, at).rulebook
    return (
        [t.code for t in book.record_types if t.points > 0],
        [t.code for t in book.record_types if t.points < 0],
    )


def _first_unscanned(session: Session) -> int | None:
    last = session.scalar(select(func.max(SourceAlertScan.last_day)))
    if last is not None:
        return anomalies.day_of(last) + 1
    first = session.scalar(select(func.min(Record.received_at)))
    return None if first is None else anomalies.day_of(first)


def scan(session: Session, *, through: datetime, at: datetime) -> ScanResult:
    """Judge every whole day not scanned yet, up to ``through`` (at most ``at``, the
    instant of the scan), and raise an alert for each finding not raised before."""
    began = time.perf_counter()
    through, at = ensure_utc(through), ensure_utc(at)
    if through > at:
        raise InvalidInput(
            "a scan judges days that are over: scan through an instant that is not in the future",
            code="through_in_future",
        )
    if session.get_bind().dialect.name == "sqlite":
        begin_write(session)  # one scan at a time: the store's write lock
    last = anomalies.day_of(through + timedelta(microseconds=1)) - 1
    first = _first_unscanned(session)
    if first is None or first > last:
        return ScanResult(None, None, ())
    end = anomalies.day_end(last)
    positive, negative = _signs(session, end)
    histories = anomalies.daily(session, end, positive=positive, negative=negative)
    findings = anomalies.detect(histories, first, last) + anomalies.outages(session, first, last)
    findings.sort(key=lambda f: (f.source_id, f.day, anomalies.DETECTORS.index(f.detector)))
    codes = {i: c for i, c in session.execute(select(Source.id, Source.code))}
    raised = [a for f in findings if (a := raise_alert(session, f, at=at, code=codes[f.source_id]))]
    session.add(
        SourceAlertScan(
            first_day=anomalies.day_start(first),
            last_day=anomalies.day_start(last),
            scanned_at=at,
            raised=len(raised),
        )
    )
    session.flush()
    return ScanResult(
        anomalies.day_start(first),
        anomalies.day_start(last),
        tuple(raised),
        time.perf_counter() - began,
    )


def raise_alert(
    session: Session, f: anomalies.Finding, *, at: datetime, code: str | None = None
) -> Alert | None:
    """Raise ``f``'s alert (``code``: its source's, if known), or nothing if it was
    raised before (by another scan, maybe at this very moment: its insert then waits for
    that scan's transaction)."""
    if code is None:
        code = session.scalars(select(Source.code).where(Source.id == f.source_id)).one()
    day = anomalies.day_start(f.day)
    known = select(SourceAlert.id).where(
        SourceAlert.source_id == f.source_id,
        SourceAlert.detector == f.detector,
        SourceAlert.day == day,
    )
    if session.scalar(known) is not None:
        return None
    row = SourceAlert(
        source_id=f.source_id,
        detector=f.detector,
        day=day,
        value=f.value,
        median=f.median,
        mad=f.mad,
        threshold=f.threshold,
        raised_at=at,
        state="open",
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
            record_event(
                session,
                kind=journal.EventKind.SOURCE_ALERT_RAISED,
                at=at,
                data={
                    "alert": row.id,
                    "source": code,
                    "detector": f.detector,
                    "day": day.date().isoformat(),
                },
                rows=[row],
            )
    except IntegrityError:
        return None  # raised meanwhile by another scan
    return _view(row, code)


# --- the queue -----------------------------------------------------------------------------


def check_note(note: str) -> str:
    """Refuse an empty note, one longer than :data:`MAX_NOTE` characters, or one with
    control or format characters (line breaks and tabs aside)."""
    if not note.strip():
        raise InvalidInput("a note is required: say what was found or done", code="note_required")
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"a note is at most {MAX_NOTE} characters", code="note_too_long")
    if any(unicodedata.category(c).startswith("C") and c not in "\n\t" for c in note):
        raise InvalidInput(
            "a note may not hold control or format characters (NUL among them)",
            code="invalid_note",
        )
    return note


def _row(session: Session, alert_id: int) -> tuple[SourceAlert, str]:
    found = session.execute(
        select(SourceAlert, Source.code)
        .join(Source, Source.id == SourceAlert.source_id)
        .where(SourceAlert.id == alert_id)
        .with_for_update(of=SourceAlert)
    ).first()
    if found is None:
        raise NotFound(f"no source alert {alert_id}", code="alert_not_found")
    return found[0], found[1]


def acknowledge(
    session: Session, *, alert_id: int, note: str, principal_id: int | None, at: datetime
) -> Alert:
    """Acknowledge an open alert with a note (someone is on it); an alert not open is a
    conflict (``alert_not_open``)."""
    return _move(session, alert_id, "acknowledged", note, principal_id, at)


def close(
    session: Session, *, alert_id: int, note: str, principal_id: int | None, at: datetime
) -> Alert:
    """Close an alert, open or acknowledged, with a note (what was found, what was
    done). A closed alert is a conflict (``alert_closed``)."""
    return _move(session, alert_id, "closed", note, principal_id, at)


#: Each step an operator takes: the states it leaves, its refusal otherwise, its entry.
_STEPS = {
    "acknowledged": (
        ("open",),
        "alert_not_open",
        "is {state}",
        journal.EventKind.SOURCE_ALERT_ACKNOWLEDGED,
    ),
    "closed": (
        ("open", "acknowledged"),
        "alert_closed",
        "is already closed",
        journal.EventKind.SOURCE_ALERT_CLOSED,
    ),
}


def _move(
    session: Session, alert_id: int, to: str, note: str, principal_id: int | None, at: datetime
) -> Alert:
    """Take an alert to state ``to`` (:data:`_STEPS`): who, when and the note on its row,
    and the step's journal entry (the note by its digest only)."""
    leaves, code, refusal, kind = _STEPS[to]
    check_note(note)
    if session.get_bind().dialect.name == "sqlite":
        begin_write(session)
    row, source = _row(session, alert_id)
    if row.state not in leaves:
        raise Conflict(f"source alert {alert_id} {refusal.format(state=row.state)}", code=code)
    row.state = to
    setattr(row, f"{to}_at", at)
    setattr(row, f"{to}_principal_id", principal_id)
    setattr(row, f"{to}_note", note)
    session.flush()
    record_event(
        session,
        kind=kind,
        at=at,
        data={"alert": row.id, "source": source, "note_sha256": journal.text_digest(note)},
        rows=[row],
    )
    return _view(row, source)


def listing(
    session: Session, *, state: str | None = None, source: str | None = None
) -> list[Alert]:
    """The alerts, newest day first, optionally in one state or of one source."""
    if state is not None and state not in STATES:
        raise InvalidInput(
            f"unknown state {state!r}; known: {', '.join(STATES)}", code="invalid_state"
        )
    query = select(SourceAlert, Source.code).join(Source, Source.id == SourceAlert.source_id)
    if state is not None:
        query = query.where(SourceAlert.state == state)
    if source is not None:
        query = query.where(Source.code == source)
    query = query.order_by(SourceAlert.day.desc(), Source.code, SourceAlert.detector)
    return [_view(row, code) for row, code in session.execute(query)]


def raised(alerts: Sequence[Alert]) -> dict[str, int]:
    """How many of ``alerts`` each detector raised."""
    out: dict[str, int] = {}
    for a in alerts:
        out[a.detector] = out.get(a.detector, 0) + 1
    return out
