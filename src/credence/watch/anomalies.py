"""Anomalies of a source: what it did each day, against its own history.

Per source and UTC day (by the instant each record, retraction or decision reached
Credence), :func:`daily` reads set-wise (a few grouped queries, whatever the number of
sources or days) and as of an instant:

* **volume**: records received; **positives** and **negatives** among them (by the sign
  of the type's points in the rulebook in force at the instant);
* **concentration**: the *unprecedented positives*: over the subjects given positives
  that day, the positives beyond the most that subject ever had from the source in one
  day before (at least one);
* **new subjects**: subjects the source reports on for the first time;
* **negative retractions**: retractions of its negative records it asked for (written
  at once, or held for a reviewer when the record restricts someone);
* **disputes upheld**: disputes about its records decided against it that day, answered
  ``deleted`` or ``corrected`` before the deadline or lapsed unanswered at it (as
  :mod:`credence.watch.status` counts them).

:func:`detect` compares each day to evaluate with the source's trailing history: the
median and the median absolute deviation (MAD) over :data:`WINDOW_DAYS` days before it,
a robust z = (value - median) / max(1.4826 x MAD, floor), and an absolute floor per
detector so that a source whose figure never varies does not alarm on noise. The
**silence** detector compares the days since the last report with the source's usual gap
between report days; the **outage** detector is the freshness rule's own
(:mod:`credence.ledger.freshness`): the day a declared type goes into outage.

Every threshold below is the one README's section "Source anomalies: detectors and
thresholds" documents, with the demo city's closest calls; change both together. Nothing
here names a subject: figures are counts and shares per source and day.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, and_, case, func, literal, select, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from credence.clock import EPOCH, ensure_utc
from credence.db import Instant
from credence.disputes.tables import Dispute, DisputeAnswer
from credence.ledger.freshness import Readable, declarations, outage_since
from credence.ledger.lifting import RETRACTION, PendingChange
from credence.ledger.tables import Record, Retraction
from credence.watch.status import UPHELD

# --- the thresholds (README, "Source anomalies: detectors and thresholds") -------------

#: Days of history before the day judged, for every detector but silence.
WINDOW_DAYS = 90
#: Report days (the source sent anything) the window must hold before a day is judged.
MIN_HISTORY_DAYS = 8
#: The robust z at or above which a detector fires (its floor must be cleared too).
Z_THRESHOLD = 7.0
#: 1.4826 x MAD estimates a standard deviation for normal data.
MAD_SCALE = 1.4826
#: Volume: the day's records at least this many times the median, and this many more.
VOLUME_RATIO_FLOOR = 4.0
VOLUME_EXCESS_FLOOR = 20
#: Negative mix: judged on days of at least this many records, with at least this many
#: negatives, the scale never below this share.
MIX_MIN_RECORDS = 20
MIX_MIN_NEGATIVES = 5
MIX_SCALE_FLOOR = 0.02
#: Concentration: the scale never below this, the value at least this.
CONCENTRATION_SCALE_FLOOR = 1.5
CONCENTRATION_FLOOR = 10
#: New subjects: the scale never below this, the value at least this above the median.
NEW_SUBJECTS_SCALE_FLOOR = 1.0
NEW_SUBJECTS_EXCESS_FLOOR = 10
#: Negative retractions and disputes upheld: the scale never below this, the value at
#: least this.
EVENTS_SCALE_FLOOR = 1.0
EVENTS_FLOOR = 5
#: Silence: days of history up to the last report day, the odds of the empty slots in a
#: row that make a silence anomalous, the most of a source's slots counted empty, and a
#: day of slack for a late delivery.
SILENCE_WINDOW_DAYS = 365
SILENCE_ODDS = 1e-4
SILENCE_MAX_EMPTY = 0.95
SILENCE_SLACK_DAYS = 1

#: The detectors, in the order they are listed.
DETECTORS = (
    "volume",
    "negative_mix",
    "concentration",
    "new_subjects",
    "negative_retractions",
    "disputes_upheld",
    "silence",
    "outage",
)

DAY = timedelta(days=1)
_DAY_US = 86_400_000_000


def day_of(at: datetime) -> int:
    """The UTC day of ``at``, as days since the epoch."""
    return (ensure_utc(at) - EPOCH) // DAY


def day_start(day: int) -> datetime:
    return EPOCH + day * DAY


def day_end(day: int) -> datetime:
    """The day's last instant (the figures of a day are as of it)."""
    return day_start(day + 1) - timedelta(microseconds=1)


def _day(column: ColumnElement[datetime] | object) -> ColumnElement[int]:
    """The UTC day of an instant column, in SQL (microseconds, integer division)."""
    micros = type_coerce(column, BigInteger())
    day: ColumnElement[int] = micros // literal(_DAY_US, BigInteger())
    return day


# --- the daily figures -------------------------------------------------------------------


@dataclass
class Day:
    """One source's figures for one day (zero where nothing happened)."""

    volume: int = 0
    positives: int = 0
    negatives: int = 0
    concentration: int = 0
    new_subjects: int = 0
    negative_retractions: int = 0
    disputes_upheld: int = 0


@dataclass
class History:
    """A source's days, by day number (only days where something happened)."""

    days: dict[int, Day] = field(default_factory=dict)

    def at(self, day: int) -> Day:
        return self.days.setdefault(day, Day())

    def report_days(self) -> list[int]:
        return sorted(d for d, f in self.days.items() if f.volume > 0)


def _grouped(
    conn: Readable, query: object
) -> Iterable[tuple[int, int, int]]:  # (source_id, day, count)
    for source_id, day, n in conn.execute(query):  # type: ignore[call-overload]
        yield int(source_id), int(day), int(n or 0)


def daily(
    conn: Readable, at: datetime, *, positive: Collection[str], negative: Collection[str]
) -> dict[int, History]:
    """Every source's days up to ``at`` (the rows that reached Credence by then), by
    source id; ``positive`` and ``negative`` are the record types of each sign."""
    at = ensure_utc(at)
    out: dict[int, History] = {}

    def history(source_id: int) -> History:
        return out.setdefault(source_id, History())

    received = Record.received_at <= at
    day = _day(Record.received_at)
    is_pos = Record.record_type.in_(list(positive)) if positive else literal(False)
    is_neg = Record.record_type.in_(list(negative)) if negative else literal(False)
    volume = (
        select(
            Record.source_id,
            day,
            func.count(),
            func.coalesce(func.sum(case((is_pos, 1), else_=0)), 0),
            func.coalesce(func.sum(case((is_neg, 1), else_=0)), 0),
        )
        .where(received)
        .group_by(Record.source_id, day)
    )
    for source_id, d, n, pos, neg in conn.execute(volume):
        f = history(int(source_id)).at(int(d))
        f.volume, f.positives, f.negatives = int(n), int(pos or 0), int(neg or 0)

    # Positives per source, subject and day; then each against the most that subject
    # had from the source in one day before.
    per_subject = (
        select(
            Record.source_id.label("source_id"),
            Record.subject_id.label("subject_id"),
            day.label("day"),
            func.count().label("n"),
        )
        .where(received, is_pos)
        .group_by(Record.source_id, Record.subject_id, day)
        .subquery()
    )
    prior = (
        select(
            per_subject.c.source_id,
            per_subject.c.day,
            per_subject.c.n,
            func.max(per_subject.c.n)
            .over(
                partition_by=(per_subject.c.source_id, per_subject.c.subject_id),
                order_by=per_subject.c.day,
                rows=(None, -1),
            )
            .label("most"),
        )
    ).subquery()
    usual = case((func.coalesce(prior.c.most, 0) > 1, prior.c.most), else_=1)
    excess = func.sum(case((prior.c.n > usual, prior.c.n - usual), else_=0))
    concentration = (
        select(prior.c.source_id, prior.c.day, excess)
        .group_by(prior.c.source_id, prior.c.day)
        .having(excess > 0)
    )
    for source_id, d, n in _grouped(conn, concentration):
        history(source_id).at(d).concentration = n

    first = (
        select(
            Record.source_id.label("source_id"),
            func.min(day).label("day"),
        )
        .where(received)
        .group_by(Record.source_id, Record.subject_id)
        .subquery()
    )
    new = select(first.c.source_id, first.c.day, func.count()).group_by(
        first.c.source_id, first.c.day
    )
    for source_id, d, n in _grouped(conn, new):
        history(source_id).at(d).new_subjects = n

    if negative:
        for source_id, d, n in _retractions(conn, at, negative):
            history(source_id).at(d).negative_retractions += n

    for source_id, d, n in _upheld(conn, at):
        history(source_id).at(d).disputes_upheld += n
    return out


def _retractions(
    conn: Readable, at: datetime, negative: Collection[str]
) -> Iterable[tuple[int, int, int]]:
    """Retractions of negative records each source asked for by ``at``, per source and
    day asked: those written at once (their day), and those held for a reviewer because
    the record restricts someone (the day the source asked, whatever the reviewer
    decides; once confirmed, the retraction is not counted again)."""
    held = and_(
        PendingChange.record_id == Retraction.record_id,
        PendingChange.kind == RETRACTION,
        PendingChange.requested_by == "source",
    )
    written_day = _day(Retraction.received_at)
    yield from _grouped(
        conn,
        select(Retraction.source_id, written_day, func.count())
        .join(Record, Record.id == Retraction.record_id)
        .where(
            Retraction.received_at <= at,
            Record.record_type.in_(list(negative)),
            ~select(PendingChange.id).where(held).exists(),
        )
        .group_by(Retraction.source_id, written_day),
    )
    asked_day = _day(PendingChange.requested_at)
    yield from _grouped(
        conn,
        select(PendingChange.source_id, asked_day, func.count())
        .join(Record, Record.id == PendingChange.record_id)
        .where(
            PendingChange.requested_at <= at,
            PendingChange.kind == RETRACTION,
            PendingChange.requested_by == "source",
            Record.record_type.in_(list(negative)),
        )
        .group_by(PendingChange.source_id, asked_day),
    )


def _upheld(conn: Readable, at: datetime) -> Iterable[tuple[int, int, int]]:
    """Disputes decided against their source by ``at``, per source and day decided: an
    answer deleting or correcting the record before the deadline (its day), or none
    before the deadline (the deadline's day)."""
    in_time = and_(
        DisputeAnswer.dispute_id == Dispute.id,
        DisputeAnswer.answered_at < Dispute.deadline,
        DisputeAnswer.answered_at <= at,
    )
    answered_day = _day(DisputeAnswer.answered_at)
    yield from _grouped(
        conn,
        select(Dispute.source_id, answered_day, func.count())
        .join(DisputeAnswer, in_time)
        .where(DisputeAnswer.outcome.in_(UPHELD))
        .group_by(Dispute.source_id, answered_day),
    )
    lapsed_day = _day(Dispute.deadline)
    yield from _grouped(
        conn,
        select(Dispute.source_id, lapsed_day, func.count())
        .outerjoin(DisputeAnswer, in_time)
        .where(DisputeAnswer.id.is_(None), Dispute.deadline <= at)
        .group_by(Dispute.source_id, lapsed_day),
    )


# --- robust comparison ---------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A detector that fired for a source on a day, with the figures that fired it:
    the value, the history's median and MAD, and the threshold the value reached (the
    least value that would have fired)."""

    source_id: int
    detector: str
    day: int
    value: float
    median: float | None
    mad: float | None
    threshold: float


def robust(history: Sequence[float]) -> tuple[float, float]:
    """The median and the median absolute deviation of ``history`` (not empty)."""
    median = statistics.median(history)
    return median, statistics.median(abs(x - median) for x in history)


def _fires(
    source_id: int,
    detector: str,
    day: int,
    value: float,
    history: Sequence[float],
    scale_floor: Callable[[float], float],
    least: Callable[[float], float],
) -> Finding | None:
    """Whether ``value`` is at least :data:`Z_THRESHOLD` robust z above ``history``
    (the scale never below ``scale_floor(median)``) and at least ``least(median)``."""
    median, mad = robust(history)
    scale = max(MAD_SCALE * mad, scale_floor(median))
    threshold = max(median + Z_THRESHOLD * scale, least(median))
    if value < threshold:
        return None
    return Finding(source_id, detector, day, float(value), median, mad, threshold)


def _sqrt_or(floor: float) -> Callable[[float], float]:
    return lambda median: max(floor, math.sqrt(max(median, 0.0)))


def _judge_day(source_id: int, h: History, day: int, reports: list[int]) -> list[Finding]:
    """The detectors that compare one day's figures with the window before it."""
    window = [d for d in reports if day - WINDOW_DAYS <= d < day]
    if len(window) < MIN_HISTORY_DAYS:
        return []
    today = h.days.get(day, Day())
    found: list[Finding | None] = []
    past = [h.days[d] for d in window]
    if today.volume > 0:
        found.append(
            _fires(
                source_id,
                "volume",
                day,
                today.volume,
                [f.volume for f in past],
                lambda m: math.sqrt(max(m, 0.0)),
                lambda m: max(VOLUME_RATIO_FLOOR * m, m + VOLUME_EXCESS_FLOOR),
            )
        )
        found.append(
            _fires(
                source_id,
                "concentration",
                day,
                today.concentration,
                [f.concentration for f in past],
                _sqrt_or(CONCENTRATION_SCALE_FLOOR),
                lambda m: CONCENTRATION_FLOOR,
            )
        )
        found.append(
            _fires(
                source_id,
                "new_subjects",
                day,
                today.new_subjects,
                [f.new_subjects for f in past],
                _sqrt_or(NEW_SUBJECTS_SCALE_FLOOR),
                lambda m: m + NEW_SUBJECTS_EXCESS_FLOOR,
            )
        )
        mixed = [f.negatives / f.volume for f in past if f.volume >= MIX_MIN_RECORDS]
        if (
            today.volume >= MIX_MIN_RECORDS
            and today.negatives >= MIX_MIN_NEGATIVES
            and len(mixed) >= MIN_HISTORY_DAYS
        ):
            n = today.volume

            def binomial(m: float) -> float:
                p = max(m, 1 / n)
                return max(MIX_SCALE_FLOOR, math.sqrt(p * (1 - p) / n))

            found.append(
                _fires(
                    source_id,
                    "negative_mix",
                    day,
                    today.negatives / n,
                    mixed,
                    binomial,
                    lambda m: 0.0,
                )
            )
    # Events count on every day of the window, the days nothing happened too.
    calendar = [h.days.get(d, Day()) for d in range(day - WINDOW_DAYS, day)]
    for detector, value, past_values in (
        (
            "negative_retractions",
            today.negative_retractions,
            [f.negative_retractions for f in calendar],
        ),
        ("disputes_upheld", today.disputes_upheld, [f.disputes_upheld for f in calendar]),
    ):
        if value > 0:
            found.append(
                _fires(
                    source_id,
                    detector,
                    day,
                    value,
                    past_values,
                    _sqrt_or(EVENTS_SCALE_FLOOR),
                    lambda m: EVENTS_FLOOR,
                )
            )
    return [f for f in found if f is not None]


@dataclass(frozen=True)
class Silence:
    """What a source's history up to a report day says of its silences: the usual gap
    between report days (median, MAD) and the silence, in days, beyond which it is
    anomalous."""

    median: float
    mad: float
    threshold: float


def silence_after(reports: Sequence[int], last: int) -> Silence | None:
    """The silence threshold after report day ``last``, from the report days of the
    :data:`SILENCE_WINDOW_DAYS` up to it; None without :data:`MIN_HISTORY_DAYS`.

    The source's slot is the lower quartile of its gaps between report days (a weekly
    source's week, however many weeks it skips); the share of its slots that went empty
    is estimated by Laplace's rule ((empty + 1) / (slots + 2): a short history that
    never skipped is not taken to never skip); the threshold is the fewest empty slots
    in a row whose chance is below :data:`SILENCE_ODDS`, plus a day of slack."""
    window = [d for d in reports if last - SILENCE_WINDOW_DAYS < d <= last]
    if len(window) < MIN_HISTORY_DAYS:
        return None
    gaps = sorted(b - a for a, b in itertools.pairwise(window))
    median, mad = robust(gaps)
    slot = float(gaps[len(gaps) // 4])
    slots = (window[-1] - window[0]) / slot
    empty = max(0.0, slots - (len(window) - 1))
    share = min(SILENCE_MAX_EMPTY, (empty + 1) / (slots + 2))
    runs = math.ceil(math.log(SILENCE_ODDS) / math.log(share))
    return Silence(median, mad, slot * runs + SILENCE_SLACK_DAYS)


def detect(histories: dict[int, History], first: int, last: int) -> list[Finding]:
    """Every finding of the figure detectors and of silence for the days ``first`` to
    ``last`` (inclusive), by source, day and detector."""
    out: list[Finding] = []
    for source_id in sorted(histories):
        h = histories[source_id]
        reports = h.report_days()
        if not reports:
            continue
        for day in sorted(d for d in h.days if first <= d <= last):
            out.extend(_judge_day(source_id, h, day, reports))
        # Silence: fired on the one day a silence first exceeds its threshold.
        for i, report in enumerate(reports):
            s = silence_after(reports, report) if _may_cross(reports, i, first) else None
            if s is None:
                continue
            day = report + math.floor(s.threshold) + 1
            following = reports[i + 1] if i + 1 < len(reports) else None
            if first <= day <= last and (following is None or following > day):
                out.append(
                    Finding(source_id, "silence", day, day - report, s.median, s.mad, s.threshold)
                )
    out.sort(key=lambda f: (f.source_id, f.day, DETECTORS.index(f.detector)))
    return out


def _may_cross(reports: list[int], i: int, first: int) -> bool:
    """Whether the silence after ``reports[i]`` can reach into the days from ``first``
    (it lasts until the next report)."""
    return i + 1 == len(reports) or reports[i + 1] > first


def outages(conn: Readable, first: int, last: int) -> list[Finding]:
    """The days from ``first`` to ``last`` on which a source's declared record type went
    into outage by the freshness rule: the silence before each report (and after the
    last, up to the end of ``last``) longer than the cadence and grace in force."""
    end = day_end(last)
    declared = declarations(conn, end)
    if not declared:
        return []
    shortest = min(d.allowed_silence for d in declared.values())
    previous = (
        func.lag(Record.received_at)
        .over(partition_by=(Record.source_id, Record.record_type), order_by=Record.received_at)
        .label("previous")
    )
    reports = (
        select(Record.source_id, Record.record_type, Record.received_at, previous)
        .where(Record.received_at <= end, Record.record_type.is_not(None))
        .subquery()
    )
    begin = day_start(first)
    silences: list[tuple[int, str, datetime | None, datetime]] = [
        (source_id, record_type, prev, at)
        for source_id, record_type, at, prev in conn.execute(
            select(
                reports.c.source_id,
                reports.c.record_type,
                reports.c.received_at,
                type_coerce(reports.c.previous, Instant()),
            ).where(
                reports.c.received_at > begin,
                (reports.c.previous.is_(None))
                | (
                    type_coerce(reports.c.received_at, BigInteger())
                    - type_coerce(reports.c.previous, BigInteger())
                    > shortest // timedelta(microseconds=1)
                ),
            )
        )
    ]
    last_reports = dict(
        ((source_id, record_type), at)
        for source_id, record_type, at in conn.execute(
            select(Record.source_id, Record.record_type, func.max(Record.received_at))
            .where(Record.received_at <= end, Record.record_type.is_not(None))
            .group_by(Record.source_id, Record.record_type)
        )
    )
    for key in declared:
        silences.append((key[0], key[1], last_reports.get(key), end + timedelta(microseconds=1)))
    found: dict[tuple[int, int], Finding] = {}
    for source_id, record_type, prev, until in silences:
        asked = until - timedelta(microseconds=1)  # just before the silence ends
        in_force = declarations(conn, asked).get((source_id, record_type))
        if in_force is None:
            continue
        since = outage_since(asked, prev, in_force)
        if since is None or not first <= day_of(since) <= last:
            continue
        day = day_of(since)
        days = in_force.allowed_silence / DAY
        found.setdefault(
            (source_id, day),
            Finding(source_id, "outage", day, days, None, None, days),
        )
    return sorted(found.values(), key=lambda f: (f.source_id, f.day))


__all__ = [
    "DETECTORS",
    "Finding",
    "History",
    "daily",
    "day_end",
    "day_of",
    "day_start",
    "detect",
    "outages",
]
