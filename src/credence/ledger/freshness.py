"""Freshness: how often each source says it reports each record type, and whether it
has gone quiet. The one place of the outage rule.

A source declares, per record type it reports regularly, a **cadence** (it reports that
type at least once every so many days) and a **grace** (how many days more it may be
late). A declaration is a row of ``source_cadences`` (:class:`SourceCadence`), written
with the source's registration or by a ``source_cadence_declared`` entry of its own, and
never changed: a new declaration is a new row, so the declaration in force at any past
instant is read again exactly, and ``credence log verify`` covers every one.

The rule, as of an instant ``at`` (:func:`outage_since`):

* a type's **last report** is the latest ``received_at`` of the source's records of that
  type received by ``at`` (held records included: the source did report them);
* its **silence** runs from the last report or, when later or there is none, from the
  first declaration of a cadence for the type (a source is not late for a promise it had
  not made);
* it is **in outage** once silent for longer than cadence + grace, under the
  declaration in force at ``at``: from silence start + cadence + grace, never dated
  before the declaration in force (a new declaration puts no source in outage before
  it was made), until its next report;
* a type with no declaration is not watched: it shows its last report and volume,
  never an outage;
* a source is in outage while any of its watched types is, since the earliest of
  their outages.

Everything is read set-wise and as of ``at`` (:func:`freshness`): one grouped query
over the records, one over the declarations, whatever the number of sources, so the
same answer comes from the API, the command line and any engine that asks as of the
instant it scores. An erased record has lost its type: it counts for its source's last
report and volume, not for a type's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, ScalarSelect, Select, bindparam, case, func, select
from sqlalchemy.orm import Session

from credence import journal
from credence.clock import MICROS_PER_DAY, ensure_utc, from_micros, to_micros
from credence.db import Direct, Prepared
from credence.errors import InvalidInput
from credence.ledger.tables import Record, Source, SourceCadence, SourceRecordType
from credence.notifications.service import record_event

#: The longest cadence or grace a source may declare, in days (ten years).
MAX_DAYS = 3660
#: Days of records the volume is counted over, ending at the instant asked for (four
#: weeks: every weekday as often, for sources that deliver weekly).
WINDOW_DAYS = 28

Readable = Session | Connection


# --- declaring -----------------------------------------------------------------------


@dataclass(frozen=True)
class Cadence:
    """What a source declares for one record type: at least one report every
    ``cadence_days`` days, late by at most ``grace_days`` more."""

    record_type: str
    cadence_days: int
    grace_days: int = 0


_CADENCE = re.compile(r"^\s*([A-Za-z0-9_]{1,64})\s*=\s*(\d{1,6})\s*(?:\+\s*(\d{1,6})\s*)?$")


def parse_cadence(text: str) -> Cadence:
    """``TYPE=DAYS`` or ``TYPE=DAYS+GRACE`` (days, whole numbers) as a :class:`Cadence`;
    checked against a source's types by :func:`declare` and at registration."""
    found = _CADENCE.match(text)
    if found is None:
        raise InvalidInput(
            "a cadence is TYPE=DAYS or TYPE=DAYS+GRACE (whole days), e.g. loan_repaid=7+7",
            code="invalid_cadence",
        )
    record_type, days, grace = found.groups()
    return Cadence(record_type, int(days), int(grace or 0))


def cadence_rows(
    source: Source, cadences: Iterable[Cadence], registered: Collection[str], at: datetime
) -> list[SourceCadence]:
    """The rows that declare ``cadences`` for ``source`` from ``at``, checked: each type
    one the source is ``registered`` for, named once, cadence 1 to :data:`MAX_DAYS`
    days and grace 0 to :data:`MAX_DAYS`. The caller writes them with its entry."""
    rows: list[SourceCadence] = []
    seen: set[str] = set()
    for cadence in cadences:
        if cadence.record_type not in registered:
            raise InvalidInput(
                f"source {source.code!r} is not registered for record type "
                f"{cadence.record_type!r}: it can declare a cadence only for its own types",
                code="type_not_registered",
            )
        if cadence.record_type in seen:
            raise InvalidInput(
                f"record type {cadence.record_type!r} is declared twice", code="invalid_cadence"
            )
        seen.add(cadence.record_type)
        if not 1 <= cadence.cadence_days <= MAX_DAYS or not 0 <= cadence.grace_days <= MAX_DAYS:
            raise InvalidInput(
                f"a cadence is 1 to {MAX_DAYS} days and its grace 0 to {MAX_DAYS} days",
                code="invalid_cadence",
            )
        rows.append(
            SourceCadence(
                source_id=source.id,
                record_type=cadence.record_type,
                cadence_days=cadence.cadence_days,
                grace_days=cadence.grace_days,
                declared_at=at,
            )
        )
    return rows


def declare(
    session: Session, *, source: Source, cadences: Iterable[Cadence], at: datetime
) -> list[SourceCadence]:
    """Declare ``source``'s cadence anew for some of its types, in force from ``at``:
    new rows and one ``source_cadence_declared`` entry; the rows they replace stay."""
    registered = set(
        session.scalars(
            select(SourceRecordType.record_type).where(SourceRecordType.source_id == source.id)
        )
    )
    rows = cadence_rows(source, cadences, registered, at)
    if not rows:
        raise InvalidInput("declare the cadence of at least one record type", code="no_cadence")
    record_event(
        session,
        kind=journal.EventKind.SOURCE_CADENCE_DECLARED,
        at=at,
        data={"source": source.code, "record_types": sorted(r.record_type for r in rows)},
        rows=rows,
    )
    return rows


# --- the rule ------------------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """The declaration in force for a source and type at an instant, and when a cadence
    was first declared for them."""

    cadence_days: int
    grace_days: int
    declared_at: datetime
    first_declared_at: datetime

    @property
    def allowed_silence(self) -> timedelta:
        return timedelta(days=self.cadence_days + self.grace_days)

    @cached_property
    def instants_us(self) -> tuple[int, int, int]:
        """The first declaration, the declaration in force and the allowed silence, in
        microseconds: what the rule reads (:func:`_since_us`)."""
        silence = (self.cadence_days + self.grace_days) * MICROS_PER_DAY
        return to_micros(self.first_declared_at), to_micros(self.declared_at), silence


def outage_since(at: datetime, last_report: datetime | None, declared: Declared) -> datetime | None:
    """When a type's outage began, if it is in outage at ``at`` (silent for longer than
    cadence + grace since its last report, or since its first declaration), else None.
    ``last_report`` is the last report received by ``at``."""
    since = _since_us(None if last_report is None else to_micros(last_report), declared)
    return from_micros(since) if to_micros(at) > since else None


def _since_us(last_report_us: int | None, declared: Declared) -> int:
    """The rule of :func:`outage_since` on microseconds (the one place it is written):
    silence starts at the last report or, when later or there is none, at the first
    declaration; the outage begins cadence + grace later, never before the declaration
    in force."""
    first_us, declared_us, silence_us = declared.instants_us
    start = first_us if last_report_us is None or last_report_us <= first_us else last_report_us
    return max(start + silence_us, declared_us)


# --- reading, as of an instant ---------------------------------------------------------


@dataclass(frozen=True)
class TypeFreshness:
    """One record type a source is registered for, as of an instant."""

    record_type: str
    last_report: datetime | None
    #: Records of the type received by the instant, and in the window before it.
    records: int
    records_in_window: int
    #: The declaration in force; None: the type is not watched.
    declared: Declared | None
    outage_since: datetime | None

    @property
    def in_outage(self) -> bool:
        return self.outage_since is not None


@dataclass(frozen=True)
class SourceFreshness:
    """A source as of an instant: its last report, volume and types."""

    source_id: int
    code: str
    name: str
    kind: str
    registered_at: datetime
    last_report: datetime | None
    #: Every record received by the instant (erased ones included), and in the window.
    records: int
    records_in_window: int
    #: Where the window starts: ``window_days`` before the instant, or the source's
    #: registration if later.
    window_from: datetime
    types: tuple[TypeFreshness, ...]

    @property
    def outage_since(self) -> datetime | None:
        """The earliest outage among the types in outage; None if none is."""
        return min((t.outage_since for t in self.types if t.outage_since is not None), default=None)

    @property
    def in_outage(self) -> bool:
        return self.outage_since is not None


@dataclass(frozen=True)
class Declaration:
    """One row of ``source_cadences`` as the rule reads it: ``order`` ranks the rows
    declared at the same instant (the store's id; an export's rank of it)."""

    source_id: int
    record_type: str
    cadence_days: int
    grace_days: int
    declared_at: datetime
    order: int


def in_force(rows: Iterable[Declaration], at: datetime) -> dict[tuple[int, str], Declared]:
    """The declaration in force at ``at`` for each source and type among ``rows``: the
    latest declared by ``at`` (the last by ``order`` among those declared at the same
    instant), with the first instant a cadence was declared for them. The one reading
    of declarations: the store's (:func:`declarations`) and an export's (the batch
    engines) go through it."""
    newest: dict[tuple[int, str], Declaration] = {}
    first: dict[tuple[int, str], datetime] = {}
    for row in rows:
        if row.declared_at > at:
            continue
        key = (row.source_id, row.record_type)
        known = newest.get(key)
        if known is None or (row.declared_at, row.order) > (known.declared_at, known.order):
            newest[key] = row
        if key not in first or row.declared_at < first[key]:
            first[key] = row.declared_at
    return {
        key: Declared(row.cadence_days, row.grace_days, row.declared_at, first[key])
        for key, row in newest.items()
    }


def declarations(conn: Readable, at: datetime) -> dict[tuple[int, str], Declared]:
    """The declaration in force at ``at`` for each source and type that has one
    (:func:`in_force` over the rows of ``source_cadences`` declared by ``at``: a few
    per source)."""
    c = SourceCadence
    rows = conn.execute(
        select(c.source_id, c.record_type, c.cadence_days, c.grace_days, c.declared_at, c.id).where(
            c.declared_at <= at
        )
    )
    return in_force((Declaration(*row) for row in rows), at)


# --- outages, as of an instant -----------------------------------------------------------


@dataclass(frozen=True)
class Outage:
    """A source in outage at an instant: since the earliest outage of its types in
    outage, and which they are (sorted)."""

    source_id: int
    code: str
    name: str
    since: datetime
    record_types: tuple[str, ...]


def outages_of(
    declared: dict[tuple[int, str], Declared],
    last_report: Callable[[int, str], datetime | None],
    at: datetime,
) -> dict[int, datetime]:
    """When each source in outage at ``at`` went into outage (the earliest of its
    declared types in outage, :func:`outage_since`), by source id: the rule per source,
    given the declarations in force at ``at`` and ``last_report(source, type)``, the last
    report received by ``at``. Sources not in outage are absent."""

    def last_us(source_id: int, record_type: str) -> int | None:
        report = last_report(source_id, record_type)
        return None if report is None else to_micros(report)

    began, _ = _in_outage(declared, last_us, to_micros(at))
    return {source_id: from_micros(since) for source_id, since in began.items()}


def _in_outage(
    declared: dict[tuple[int, str], Declared],
    last_us: Callable[[int, str], int | None],
    at_us: int,
) -> tuple[dict[int, int], dict[int, list[str]]]:
    """Per source in outage at ``at_us``: when it began (the earliest of its types'), and
    its types in outage (sorted); instants in microseconds."""
    began: dict[int, int] = {}
    silent: dict[int, list[str]] = {}
    for (source_id, record_type), declaration in sorted(declared.items()):
        since = _since_us(last_us(source_id, record_type), declaration)
        if at_us > since:
            if source_id not in began or since < began[source_id]:
                began[source_id] = since
            silent.setdefault(source_id, []).append(record_type)
    return began, silent


def last_report_by(source_id: Any, record_type: Any, at: Any) -> ScalarSelect[datetime]:
    """The latest ``received_at`` of the records of ``source_id`` and ``record_type``
    received by ``at``, as a correlated scalar subquery: newest first, the first row,
    which both stores read with one backward seek on the index by source, type and
    receipt. (SQLite's own ``max()`` would scan every receipt of the type up to ``at``:
    it stops at the first row only without the bound on the receipt.)"""
    return (
        select(Record.received_at)
        .where(
            Record.source_id == source_id,
            Record.record_type == record_type,
            Record.received_at <= at,
        )
        .order_by(Record.received_at.desc())
        .limit(1)
        .scalar_subquery()
    )


def _outage_statement() -> Select[int, str, int, int, datetime, int, datetime]:
    """Every cadence declared by ``:at`` with, for its source and type, the last report
    received by ``:at``: a correlated ``max`` that the index on records' source, type and
    receipt answers with one seek per row (a source declares a few)."""
    c = SourceCadence
    at = bindparam("at", type_=SourceCadence.declared_at.type)
    last = last_report_by(c.source_id, c.record_type, at)
    return select(
        c.source_id, c.record_type, c.cadence_days, c.grace_days, c.declared_at, c.id, last
    ).where(c.declared_at <= at)


_OUTAGE_ROWS = _outage_statement()
_PREPARED_OUTAGE_ROWS = Prepared(_OUTAGE_ROWS)
_SOURCE_NAME = select(Source.code, Source.name).where(
    Source.id == bindparam("id"), Source.created_at <= bindparam("at", type_=Source.created_at.type)
)
_PREPARED_SOURCE_NAME = Prepared(_SOURCE_NAME)


def outages(conn: Readable, at: datetime) -> dict[int, Outage]:
    """The sources in outage at ``at``, by source id: the same answer as
    :func:`freshness` (a source whose :attr:`SourceFreshness.outage_since` is set), read
    cheaply enough for every decision: one statement (the declarations made by ``at``,
    each with its type's last report by ``at``), and a source's name only for a source
    in outage."""
    at = ensure_utc(at)
    rows = conn.execute(_OUTAGE_ROWS, {"at": at}).all()
    declared = in_force((Declaration(*row[:6]) for row in rows), at)
    reports = {(row[0], row[1]): None if row[6] is None else to_micros(row[6]) for row in rows}
    return _outages(
        declared, reports, at, lambda i: conn.execute(_SOURCE_NAME, {"id": i, "at": at}).first()
    )


def outages_direct(direct: Direct, at: datetime) -> dict[int, Outage]:
    """:func:`outages` on a :class:`~credence.db.Direct` connection (the API's decision
    path), from the same statement and rule. Its rows come as they are stored
    (microseconds), and the declarations in force are worked out again only when the
    declaration rows change (they seldom do): per decision, the rule's arithmetic on
    integers, and datetimes only for a source in outage."""
    at = ensure_utc(at)
    rows = _PREPARED_OUTAGE_ROWS.run(direct, {"at": at})
    if not rows:
        return {}
    declared = _declared_direct(tuple(tuple(row[:6]) for row in rows), at)
    reports = {(row[0], row[1]): row[6] for row in rows}
    return _outages(
        declared,
        reports,
        at,
        lambda i: next(iter(_PREPARED_SOURCE_NAME.run(direct, {"id": i, "at": at})), None),
    )


#: The declarations in force, by the declaration rows they were worked out from (the
#: rows a statement as of ``at`` returns are those declared by ``at``, so they decide).
_IN_FORCE: dict[tuple[tuple[Any, ...], ...], dict[tuple[int, str], Declared]] = {}


def _declared_direct(
    rows: tuple[tuple[Any, ...], ...], at: datetime
) -> dict[tuple[int, str], Declared]:
    declared = _IN_FORCE.get(rows)
    if declared is None:
        declared = in_force(
            (Declaration(s, t, c, g, from_micros(d), o) for s, t, c, g, d, o in rows), at
        )
        if len(_IN_FORCE) >= 8:  # a handful of versions at most: the newest matter
            _IN_FORCE.clear()
        _IN_FORCE[rows] = declared
    return declared


def _outages(
    declared: dict[tuple[int, str], Declared],
    reports_us: Mapping[tuple[int, str], int | None],
    at: datetime,
    name_of: Callable[[int], Any],
) -> dict[int, Outage]:
    began, silent = _in_outage(declared, lambda s, t: reports_us.get((s, t)), to_micros(at))
    out: dict[int, Outage] = {}
    for source_id, since in sorted(began.items()):
        named = name_of(source_id)
        if named is None:  # registered after at
            continue
        out[source_id] = Outage(
            source_id, named[0], named[1], from_micros(since), tuple(silent[source_id])
        )
    return out


@dataclass(frozen=True)
class _Reports:
    last: datetime
    records: int
    in_window: int


def _reports(
    conn: Readable, at: datetime, window_start: datetime
) -> dict[tuple[int, str | None], _Reports]:
    """Per source and type (None: erased records, whose type is gone): the last report,
    the records received by ``at`` and those received after ``window_start``."""
    rows = conn.execute(
        select(
            Record.source_id,
            Record.record_type,
            func.max(Record.received_at),
            func.count(),
            func.coalesce(func.sum(case((Record.received_at > window_start, 1), else_=0)), 0),
        )
        .where(Record.received_at <= at)
        .group_by(Record.source_id, Record.record_type)
    )
    return {
        (source_id, record_type): _Reports(last, int(records), int(in_window))
        for source_id, record_type, last, records, in_window in rows
    }


def _type(
    record_type: str, report: _Reports | None, declaration: Declared | None, at: datetime
) -> TypeFreshness:
    last = report.last if report is not None else None
    return TypeFreshness(
        record_type=record_type,
        last_report=last,
        records=report.records if report is not None else 0,
        records_in_window=report.in_window if report is not None else 0,
        declared=declaration,
        outage_since=None if declaration is None else outage_since(at, last, declaration),
    )


def freshness(
    conn: Readable, at: datetime, *, window_days: int = WINDOW_DAYS
) -> list[SourceFreshness]:
    """Every source registered by ``at``, by code, with each type it is registered for:
    last report, volume over the ``window_days`` before ``at``, the declaration in
    force and the outage, if any, all as of ``at``."""
    at = ensure_utc(at)
    window_start = at - timedelta(days=window_days)
    sources = conn.execute(
        select(Source.id, Source.code, Source.name, Source.kind, Source.created_at)
        .where(Source.created_at <= at)
        .order_by(Source.code)
    ).all()
    registered: dict[int, list[str]] = {}
    for source_id, record_type in conn.execute(
        select(SourceRecordType.source_id, SourceRecordType.record_type).order_by(
            SourceRecordType.record_type
        )
    ):
        registered.setdefault(source_id, []).append(record_type)
    declared = declarations(conn, at)
    reports = _reports(conn, at, window_start)
    by_source: dict[int, list[_Reports]] = {}
    for (source_id, _), counted in reports.items():
        by_source.setdefault(source_id, []).append(counted)

    out = []
    for source_id, code, name, kind, created_at in sources:
        types = [
            _type(
                record_type,
                reports.get((source_id, record_type)),
                declared.get((source_id, record_type)),
                at,
            )
            for record_type in registered.get(source_id, ())
        ]
        mine = by_source.get(source_id, [])
        out.append(
            SourceFreshness(
                source_id=source_id,
                code=code,
                name=name,
                kind=kind,
                registered_at=created_at,
                last_report=max((r.last for r in mine), default=None),
                records=sum(r.records for r in mine),
                records_in_window=sum(r.in_window for r in mine),
                window_from=max(window_start, created_at),
                types=tuple(types),
            )
        )
    return out
