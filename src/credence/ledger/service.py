"""The ledger's write side for records: checking a batch, appending it, retracting a record.

Everything here appends; nothing updates or deletes in place. Each append writes its
journal entry in the same transaction. Functions take the caller's session and commit
nothing: the caller owns the transaction, so a batch is stored whole or not at all.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    bindparam,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from credence import journal
from credence.clock import MICROS_PER_DAY, from_micros, to_micros
from credence.db import Direct, Prepared, chunked, in_list, insert_new, insert_rows
from credence.errors import (
    Conflict,
    CredenceError,
    Forbidden,
    InvalidIdentifier,
    InvalidInput,
    NotFound,
)
from credence.identifiers import SubjectKind, birth_date, start_in_china, validate_any
from credence.ids import new_ordered_ids
from credence.ledger import backfill as backfill_runs
from credence.ledger import (
    catchup,
    endings,
    holds,
    identities,
    lifting,
    reinsertion,
    suspension,
    turns,
)
from credence.ledger.registry import SubjectRef, source_types
from credence.ledger.schemas import RecordIn, RecordResult
from credence.ledger.tables import (
    STORED_RECORD_COLUMNS,
    IdentityVoid,
    Record,
    Retraction,
    Source,
    Subject,
)
from credence.notifications.service import Event, Notice, record_event, record_events
from credence.rulebook import store
from credence.rulebook.model import IntakeAction, RecordType, Rulebook

#: The columns of a planned record's row, in the order of :attr:`_Planned.row`.
RECORD_COLUMNS = STORED_RECORD_COLUMNS
#: The columns of a planned journal entry, in the order of :attr:`_Planned.entry`.
PLANNED_ENTRY_COLUMNS = ("kind", "subject_id", "at", "data")


@dataclass(slots=True)
class _Planned:
    result: RecordResult
    #: The record's row and its journal entry, as the driver takes them (instants as
    #: microseconds; see RECORD_COLUMNS and PLANNED_ENTRY_COLUMNS); the record's id,
    #: its entry's number and its salt are drawn when it is stored.
    row: tuple[Any, ...] | None = None
    entry: tuple[Any, ...] | None = None
    #: For a certified reinsertion: the step, with its notice to the subject.
    reinsertion: Event | None = None
    #: Why the record is held (a cause of :mod:`credence.ledger.holds`), if it is.
    hold: str | None = None


def _rejected(index: int, ref: str | None, error: CredenceError) -> RecordResult:
    return RecordResult(
        index=index,
        source_ref=ref,
        status="rejected",
        # ``status`` is the HTTP status this record alone would have got (409 for a
        # source_ref resent with other content, 403 for a type the source may not send).
        error={
            "code": error.code,
            "message": error.message,
            "details": error.details,
            "status": error.status,
        },
    )


_RECORD_LIST = TypeAdapter(list[RecordIn])


def parse_records(items: Sequence[object]) -> list[RecordIn | CredenceError]:
    """Validate raw submissions one by one; a bad one becomes an error, not an exception."""
    try:
        # The whole batch in one call (the same schema per item, in one pass through
        # pydantic's core); one by one only when some item is invalid, for its error.
        return list(_RECORD_LIST.validate_python(list(items)))
    except ValidationError:
        pass
    parsed: list[RecordIn | CredenceError] = []
    for item in items:
        try:
            parsed.append(RecordIn.model_validate(item))
        except ValidationError as exc:
            problems = [
                {"field": ".".join(str(p) for p in e["loc"]) or "record", "problem": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
            parsed.append(InvalidInput(message, details=problems, code="invalid_record"))
    return parsed


def _subjects_by(
    session: Session, column: Any, keys: set[str], known: _Known
) -> dict[str, SubjectRef]:
    """The subjects with these keys (public ids or identifiers), in one query per chunk
    of keys; what intake checks of each goes into ``known`` (:class:`_Known`), read from
    the same rows."""
    found: dict[str, SubjectRef] = {}
    if not keys:
        return found
    direct = Direct.within(session)
    query = _subjects_by_query(column.key, direct.dialect.name)
    by_identifier = column.key == "identifier"
    for chunk in chunked(sorted(keys)):
        rows = query.run(direct, {"keys": chunk})
        for identifier, subject_id, public_id, kind, registered, founded, void in rows:
            found[identifier if by_identifier else public_id] = SubjectRef(
                subject_id, public_id, kind
            )
            known.registered[subject_id] = registered
            if kind == _PERSON:
                # Persons share birth dates (tens of thousands of days in all): the
                # instant is worked out once per date, read off the identifier's digits.
                digits = identifier[_BIRTH_DIGITS]
                instant = _BORN_ON.get(digits)
                if instant is None:
                    ordinal = birth_date(identifier).toordinal()
                    instant = _BORN_ON[digits] = _DAY_ZERO_IN_CHINA + ordinal * MICROS_PER_DAY
                known.born[subject_id] = instant
            elif founded is not None:
                # SQLite hands a date back as its text when read raw.
                day = founded if isinstance(founded, date) else date.fromisoformat(founded)
                known.born[subject_id] = identities.founded_instant(day)
            if void is not None:
                known.voided.add(subject_id)
    return found


@dataclass(slots=True)
class _Known:
    """What intake knows of a batch's subjects, by subject id (microseconds): when each
    person was born or organisation founded by (see :attr:`_Batch.born`), when each
    subject was registered, and which were voided as fictitious."""

    born: dict[int, int]
    registered: dict[int, int]
    voided: set[int]


_PERSON = SubjectKind.PERSON.value
#: The characters of a compact resident identity number that :func:`~credence.
#: identifiers.birth_date` reads (the birth date, YYYYMMDD).
_BIRTH_DIGITS = slice(6, 14)
#: Birth-date digits → the instant (microseconds) that date begins in China. Bounded by
#: the number of calendar days since the earliest birth date a number may carry.
_BORN_ON: dict[str, int] = {}
#: When day 0 of the ordinal calendar (``date.toordinal``) would begin in China, in
#: microseconds: a date begins there a whole number of days later. Read off
#: :func:`start_in_china` (a fixed offset from UTC's midnight), so a birth date's
#: instant is one multiplication, not a datetime built and converted (most of a batch's
#: birth dates are new to :data:`_BORN_ON`: a store has tens of thousands).
_DAY_ZERO_IN_CHINA = (
    to_micros(start_in_china(date(1970, 1, 1))) - date(1970, 1, 1).toordinal() * MICROS_PER_DAY
)


@functools.cache
def _subjects_by_query(key: str, dialect: str) -> Prepared:
    """Subjects by ``public_id`` or ``identifier`` (parameter ``keys``), built once. The
    key is not selected again (it is one of the columns read): Python's ``sqlite3``
    releases and takes back the GIL for every column of every row it fetches, about 500
    instructions each before the value is read."""
    column = Subject.__table__.c[key]
    table = Subject.__table__.c
    void = IdentityVoid.__table__.c
    return Prepared(
        select(
            table.identifier,
            table.id,
            table.public_id,
            table.kind,
            table.registered_at,
            table.founded_on,
            void.subject_id,
        )
        .outerjoin(IdentityVoid.__table__, void.subject_id == table.id)
        .where(in_list(column, "keys", dialect))
    )


def plan_records(
    session: Session,
    *,
    source: Source,
    records: Sequence[RecordIn | CredenceError],
    rulebook: Rulebook,
    at: datetime,
    backfill: backfill_runs.Scope | None = None,
    replacing: int | None = None,
) -> list[_Planned]:
    """Check a batch against the rulebook and the store, storing none of its records
    (in the turns of its source and new subjects, :mod:`credence.ledger.turns`).

    Each item gets a result (created / held / duplicate / rejected) and, when stored, the
    rows to insert. Used by :func:`submit_records` (per-record outcome) and by bulk
    import (all or nothing). ``backfill``: the approved run the batch is delivered under
    (its records within the run's scope are exempt from the volume limits; see
    :func:`_volume_holds`). A batch from a source recovering from an outage is checked
    against the source's catch-up runs too (:mod:`credence.ledger.catchup`): the only
    steps this writes (a run opened, what runs exempted), in the caller's transaction,
    which stores the planned records or rolls back. ``replacing``: the store id of the
    record a dispute's correction replaces (it does not stand in the way of its own
    correction's spacing).
    """
    turns.take_sources(session, [source.id])  # before anything the checks read
    # Read in the source's turn, which suspending takes too: once a suspension is
    # acknowledged, no batch of the source gets through unheld.
    suspended = suspension.in_force(session, source.id)
    positive = frozenset(rt.code for rt in rulebook.record_types if rt.points > 0)
    # The burst limit counts positives only: their types alone are caught up.
    caught_up = {r.record_type for r in records if isinstance(r, RecordIn)} & positive
    catch_ups = (
        catchup.scopes(session, source=source, record_types=caught_up, at=at)
        if caught_up and rulebook.intake.burst is not None and not suspended
        else []
    )
    allowed = source_types(session, source.id)
    subjects, known = _resolve_subjects(session, records)
    ended, ended_hashes = reinsertion.ended_by_dispute(
        session, {s.id for s in subjects if isinstance(s, SubjectRef)}, at
    )
    refs = sorted({r.source_ref for r in records if isinstance(r, RecordIn)})
    burst = rulebook.intake.burst
    spaced, burst_counted = _spaced(
        session,
        source.id,
        records,
        subjects,
        rulebook,
        replacing,
        burst=None
        if burst is None
        else (positive, to_micros(at) - burst.window_days * MICROS_PER_DAY),
    )
    existing: dict[str, tuple[str, str]] = {}
    direct = Direct.within(session)
    existing_refs = _existing_refs_query(direct.dialect.name)
    for chunk in chunked(refs):
        rows = existing_refs.run(direct, {"source_id": source.id, "refs": chunk})
        for ref, public_id, digest in rows:
            existing[ref] = (public_id, digest)
    batch = _Batch(
        source_id=source.id,
        source_code=source.code,
        source_name=source.name,
        allowed=allowed,
        existing=existing,
        ended=ended,
        ended_hashes=ended_hashes,
        born=known.born,
        voided=known.voided,
        rulebook=rulebook,
        at=at,
        at_micros=to_micros(at),
        kinds={
            rt.code: frozenset(kind.value for kind in rt.subject_kinds)
            for rt in rulebook.record_types
        },
        spaced=spaced,
        positive=positive,
        burst_counted=burst_counted,
    )
    record_ids = new_ordered_ids("rec", len(records))
    planned: list[_Planned] = []
    for index, (rec, subject) in enumerate(zip(records, subjects, strict=True)):
        if isinstance(rec, CredenceError):
            planned.append(_Planned(_rejected(index, None, rec)))
            continue
        try:
            planned.append(_plan_one(index, rec, subject, batch, record_ids[index]))
        except CredenceError as error:
            planned.append(_Planned(_rejected(index, rec.source_ref, error)))
    _volume_holds(session, planned, batch, known, backfill, catch_ups)
    catchup.delivered(session, catch_ups, at=at)
    if suspended:
        for p in planned:
            if p.row is not None and p.hold is None:
                _hold_planned(p, holds.SOURCE_SUSPENDED)
    return planned


# --- intake's volume limits: bursts and new identities -----------------------------------

#: Positions in a planned record's row (see RECORD_COLUMNS).
_SOURCE, _SUBJECT, _TYPE, _OCCURRED, _RECEIVED = 1, 3, 4, 5, 6
_RUN = RECORD_COLUMNS.index("backfill_run_id")


def _volume_holds(
    session: Session,
    planned: list[_Planned],
    batch: _Batch,
    known: _Known,
    backfill: backfill_runs.Scope | None,
    catch_ups: Sequence[backfill_runs.Scope] = (),
) -> None:
    """Mark the records of a planned batch that a backfill run exempts, and hold the
    positive records that break the rulebook's limits (:class:`~credence.rulebook.
    model.Intake`): per source and subject, ``burst.max_positive`` received in any
    ``burst.window_days``; per subject registered less than ``new_identity.days`` ago,
    ``new_identity.max_positive`` from every source together. When the batch's
    positives about a subject take it past a limit, all of them are held.

    The approved run the batch names (``backfill``) exempts its records from both
    limits; the source's outage catch-ups (``catch_ups``, :mod:`credence.ledger.
    catchup`) exempt the records the approved run does not from the burst limit only.
    Records a run exempted are not counted by the limits it exempts from (they are in
    the store with the run's id); held ones are (a source cannot retry its way past a
    limit). Set-wise: one indexed query per limit and chunk of subjects, only for
    subjects with positives in the batch."""
    limits = batch.rulebook.intake
    limited = limits.burst is not None or limits.new_identity is not None
    positive = batch.positive
    # One pass: an approved run's exemptions marked, and the positives the limits
    # count grouped by subject.
    by_subject: dict[int, list[_Planned]] = {}
    for p in planned:
        row = p.row
        if row is None:
            continue
        if backfill is not None and backfill.exempts(row[_OCCURRED], row[_TYPE]):
            p.row = (*row[:_RUN], backfill.run_id, *row[_RUN + 1 :])
        elif limited and p.hold is None and row[_TYPE] in positive:
            mine = by_subject.get(row[_SUBJECT])
            if mine is None:
                by_subject[row[_SUBJECT]] = [p]
            else:
                mine.append(p)
    if not by_subject:
        return
    # Counted first, then applied (a hold does not change the store's counts). A batch
    # that takes a subject past a limit is held (or refused) whole for that subject: the
    # reviewer sees the burst, not only its tail, and its first records buy nothing.
    over: list[tuple[str, int, list[int], IntakeAction, dict[int, list[_Planned]]]] = []
    at_us = batch.at_micros
    refused: set[int] = set()  # the planned records (by id()) a limit will refuse
    if limits.new_identity is not None:
        nid = limits.new_identity
        since = at_us - nid.days * MICROS_PER_DAY
        registered = known.registered
        new = {s for s in by_subject if registered.get(s, since) > since}
        if new:
            turns.take_subjects(session, new)  # other sources count towards this limit
            counted = _positives_received(session, new, positive, since)
            past = [s for s in new if counted.get(s, 0) + len(by_subject[s]) > nid.max_positive]
            over.append((holds.NEW_IDENTITY, nid.max_positive, past, nid.action, by_subject))
            if nid.action is IntakeAction.REFUSE:
                refused.update(id(p) for s in past for p in by_subject[s])
    if limits.burst is not None:
        # What the source's catch-ups exempt (no record refused above: it takes no
        # volume) the burst limit does not count.
        bursty = _catch_up(planned, backfill, catch_ups, by_subject, refused)
        most = limits.burst.max_positive
        since = at_us - limits.burst.window_days * MICROS_PER_DAY
        # The spacing look-up already counted the store's positives of the subjects it
        # read (:func:`_spaced`): only the others are counted here.
        read = batch.burst_counted
        counted = _positives_received(
            session,
            [s for s in bursty if s not in read],
            positive,
            since,
            source_id=batch.source_id,
        )
        counted.update(read)
        past = [s for s, mine in bursty.items() if counted.get(s, 0) + len(mine) > most]
        over.insert(0, (holds.BURST, most, past, limits.burst.action, bursty))
    for cause, most, subjects, action, grouped in over:
        for subject_id in subjects:
            for p in grouped[subject_id]:
                if p.hold is not None or p.row is None:
                    continue
                if action is IntakeAction.REFUSE:
                    _refuse_planned(p, _limit_error(cause, most, batch.rulebook))
                else:
                    _hold_planned(p, cause)


def _catch_up(
    planned: list[_Planned],
    backfill: backfill_runs.Scope | None,
    catch_ups: Sequence[backfill_runs.Scope],
    by_subject: dict[int, list[_Planned]],
    refused: set[int],
) -> dict[int, list[_Planned]]:
    """Mark the records the source's catch-up runs exempt (in batch order, oldest run
    first; not those the approved run exempted or a limit refuses), and return
    ``by_subject`` without them: what the burst limit counts."""
    if not catch_ups:
        return by_subject
    exempted: set[int] = set()
    for p in planned:
        row = p.row
        if row is None or row[_RUN] is not None or id(p) in refused:
            continue
        for run in catch_ups:
            if run.exempts(row[_OCCURRED], row[_TYPE]):
                p.row = (*row[:_RUN], run.run_id, *row[_RUN + 1 :])
                exempted.add(id(p))
                break
    if not exempted:
        return by_subject
    left = {s: [p for p in mine if id(p) not in exempted] for s, mine in by_subject.items()}
    return {s: mine for s, mine in left.items() if mine}


def _limit_error(cause: str, most: int, rulebook: Rulebook) -> InvalidInput:
    if cause == holds.BURST:
        assert rulebook.intake.burst is not None
        return InvalidInput(
            f"more than {most} positive records from one source about one subject in "
            f"{rulebook.intake.burst.window_days} days (rulebook {rulebook.version}); "
            "a source loading its history asks an operator for a backfill run",
            code="burst_limit",
        )
    assert rulebook.intake.new_identity is not None
    return InvalidInput(
        f"a subject registered less than {rulebook.intake.new_identity.days} days ago may "
        f"gain at most {most} positive records (rulebook {rulebook.version})",
        code="new_identity_limit",
    )


def _hold_planned(p: _Planned, cause: str) -> None:
    p.hold = cause
    p.result.status = "held"
    p.result.hold = {"code": cause, "message": holds.CAUSE_TEXT[cause]}


def _refuse_planned(p: _Planned, error: CredenceError) -> None:
    p.result = _rejected(p.result.index, p.result.source_ref, error)
    p.row = p.entry = None
    p.reinsertion = None


def _positives_received(
    session: Session,
    subjects: Collection[int],
    positive: Collection[str],
    since_us: int,
    *,
    source_id: int | None = None,
) -> dict[int, int]:
    """Per subject, the positive records received after ``since_us``: from
    ``source_id`` only (the burst limit), those no backfill run exempted; from every
    source (the new-identity limit), those no approved run exempted (an outage's
    catch-up exempts from the burst limit only)."""
    found: dict[int, int] = {}
    direct = Direct.within(session)
    query = _positives_query(direct.dialect.name, source_id is not None)
    types = sorted(positive)
    for chunk in chunked(sorted(subjects)):
        params: dict[str, Any] = {
            "subjects": chunk,
            "types": types,
            "since": since_us,
        }
        if source_id is not None:
            params["source_id"] = source_id
        # One row per record (few: those within the window), counted here: SQLite's
        # GROUP BY would sort them first.
        for (subject_id,) in query.run(direct, params):
            found[subject_id] = found.get(subject_id, 0) + 1
    return found


@functools.cache
def _positives_query(dialect: str, by_source: bool) -> Prepared:
    records = Record.__table__.c
    conditions = [
        in_list(records.subject_id, "subjects", dialect),
        records.received_at > bindparam("since", type_=BigInteger()),
        in_list(records.record_type, "types", dialect),
    ]
    if by_source:
        conditions += [records.backfill_run_id.is_(None), _same_source(records.source_id)]
    else:
        runs = backfill_runs.BackfillRun.__table__.c
        catch_ups = select(runs.id).where(runs.kind == backfill_runs.OUTAGE_CATCH_UP)
        conditions.append(
            or_(records.backfill_run_id.is_(None), records.backfill_run_id.in_(catch_ups))
        )
    return Prepared(select(records.subject_id).where(*conditions))


# --- spacing of streak types --------------------------------------------------------------


def _spaced(
    session: Session,
    source_id: int,
    records: Sequence[RecordIn | CredenceError],
    subjects: Sequence[SubjectRef | CredenceError],
    rulebook: Rulebook,
    replacing: int | None = None,
    *,
    burst: tuple[frozenset[str], int] | None = None,
) -> tuple[dict[tuple[int, str], list[int]], dict[int, int]]:
    """For the batch's records of types with ``min_spacing_days``: the occurrences
    (microseconds) of the source's records of that type about that subject already in
    the store and still in effect, by (subject id, type). The batch's own are added as
    they are planned.

    ``burst``: the positive types and the start of the burst window (microseconds), when
    the rulebook has a burst limit. The same look-up then also reads the source's
    positives about these subjects received in the window (their rows lie in the index
    range it walks anyway), and the second result is their count per subject, as
    :func:`_positives_received` would give it: the burst count need not seek these
    subjects again."""
    gaps = {
        rt.code: rt.min_spacing_days * MICROS_PER_DAY
        for rt in rulebook.record_types
        if rt.min_spacing_days
    }
    # (subject id, type) -> the occurrences of the batch's records of that kind.
    batch: dict[tuple[int, str], list[int]] = {}
    for rec, subject in zip(records, subjects, strict=True):
        if (
            isinstance(rec, RecordIn)
            and isinstance(subject, SubjectRef)
            and rec.record_type in gaps
        ):
            batch.setdefault((subject.id, rec.record_type), []).append(to_micros(rec.occurred_at))
    found: dict[tuple[int, str], list[int]] = {key: [] for key in batch}
    if not batch:
        return found, {}
    direct = Direct.within(session)
    query = _spaced_query(direct.dialect.name)
    wanted = {t for _, t in batch}
    floor = min(
        min(occurrences) - gaps[record_type] for (_, record_type), occurrences in batch.items()
    )
    subject_ids = sorted({s for s, _ in batch})
    counted: dict[int, int] = {}
    if burst is not None:
        positive, since = burst
        wanted |= positive
        floor = min(floor, since)
        counted = dict.fromkeys(subject_ids, 0)
    types = sorted(wanted)
    rows: list[tuple[int, int, str, int, int, int | None]] = []
    for chunk in chunked(subject_ids):
        params = {
            "source_id": source_id,
            "subjects": chunk,
            "types": types,
            "floor": floor,
        }
        rows.extend(query.run(direct, params))
    if burst is not None:
        positive, since = burst
        for _, subject_id, record_type, _, received, run in rows:
            if received > since and run is None and record_type in positive:
                counted[subject_id] += 1
    # Only a stored record close to one of the batch's can stop it: whether its effect
    # ended is asked of those alone (rare in live intake: no query at all). A row read
    # for the burst count alone (another type, or received before a spacing floor) is
    # never close: it occurred no later than it was received.
    close = [
        row
        for row in rows
        if row[0] != replacing
        and row[2] in gaps
        and any(abs(row[3] - o) < gaps[row[2]] for o in batch.get((row[1], row[2]), ()))
    ]
    ended = _ended_among(session, [r[0] for r in close])
    for record_id, subject_id, record_type, occurred, _, _ in close:
        if record_id not in ended:
            found[(subject_id, record_type)].append(int(occurred))
    return found, counted


@functools.cache
def _spaced_query(dialect: str) -> Prepared:
    records = Record.__table__.c
    return Prepared(
        select(
            records.id,
            records.subject_id,
            records.record_type,
            records.occurred_at,
            records.received_at,
            records.backfill_run_id,
        ).where(
            _same_source(records.source_id),
            in_list(records.subject_id, "subjects", dialect),
            # A record is received after it occurred: only those received after the
            # floor can have occurred within a period of the batch's records.
            records.received_at > bindparam("floor", type_=BigInteger()),
            in_list(records.record_type, "types", dialect),
        )
    )


def _same_source(column: ColumnElement[int]) -> ColumnElement[bool]:
    """``column = :source_id``, written so that no index is chosen for it: SQLite has no
    statistics and would otherwise walk the (source_id, source_ref) index through every
    record of the source, instead of (subject_id, received_at) through the batch's
    subjects' records."""
    return (column + literal_column("0")) == bindparam("source_id", type_=Integer)


def _ended_among(session: Session, record_ids: list[int]) -> set[int]:
    """Which of these records' effect ended (retracted, deleted after a dispute, ...) or
    was rejected on review: they no longer stand in the way of a spaced record."""
    if not record_ids:
        return set()
    chosen = select(Record.id).where(Record.id.in_(record_ids))
    events = endings.ending_events(chosen).subquery()
    ended = set(session.scalars(select(events.c.record_id)))
    ended |= set(
        session.scalars(
            select(holds.RecordHold.record_id).where(
                holds.RecordHold.record_id.in_(record_ids),
                holds.RecordHold.status == "rejected",
            )
        )
    )
    return ended


@functools.cache
def _existing_refs_query(dialect: str) -> Prepared:
    """A source's records with these source_refs (parameters ``source_id``, ``refs``)."""
    return Prepared(
        select(Record.source_ref, Record.public_id, Record.content_hash).where(
            Record.source_id == bindparam("source_id", type_=Integer),
            in_list(Record.__table__.c.source_ref, "refs", dialect),
        )
    )


def _resolve_subjects(
    session: Session, records: Sequence[RecordIn | CredenceError]
) -> tuple[list[SubjectRef | CredenceError], _Known]:
    """The subject each record names, looked up in bulk; an error where it names none.
    With them, what intake checks of each (:class:`_Known`), read in the same queries."""
    unregistered = InvalidInput(
        "the subject is not registered; subjects are registered by an identity "
        "authority before records about them are accepted",
        code="unregistered_subject",
    )
    # Registered identifiers were validated at registration: look the cleaned form up
    # first and run the full (slow) validation only on those not found, for its message.
    cleaned = {
        rec.identifier: rec.identifier.replace(" ", "").replace("-", "").upper()
        for rec in records
        if isinstance(rec, RecordIn) and rec.identifier
    }
    known = _Known({}, {}, set())
    by_ident = _subjects_by(session, Subject.identifier, set(cleaned.values()), known)
    compact: dict[str, str | InvalidIdentifier] = {}
    for raw, key in cleaned.items():
        if key in by_ident:
            compact[raw] = key
            continue
        try:
            compact[raw] = validate_any(raw)[1]
        except InvalidIdentifier as error:
            compact[raw] = error
    by_public = _subjects_by(
        session,
        Subject.public_id,
        {r.subject_id for r in records if isinstance(r, RecordIn) and r.subject_id is not None},
        known,
    )
    resolved: list[SubjectRef | CredenceError] = []
    for rec in records:
        if isinstance(rec, CredenceError):
            resolved.append(rec)
        elif rec.identifier is not None:
            found = compact[rec.identifier]
            resolved.append(
                found if isinstance(found, CredenceError) else by_ident.get(found, unregistered)
            )
        else:
            resolved.append(by_public.get(rec.subject_id or "", unregistered))
    return resolved, known


@dataclass(frozen=True, slots=True)
class _Batch:
    """What every record of a batch is checked against, looked up once per batch."""

    source_id: int
    source_code: str
    source_name: str
    #: The record types the source is registered for.
    allowed: set[str]
    #: source_ref → (record id, content hash): the source's records with the batch's
    #: refs, and those planned so far in the batch.
    existing: dict[str, tuple[str, str]]
    ended: dict[reinsertion.FactKey, str]
    #: Content hash → record id: records a dispute ended whose content is erased but
    #: for what a reinsertion check needs (see credence.ledger.erasure).
    ended_hashes: dict[str, str]
    #: Subject id → the instant (microseconds) the person's birth date begins in China
    #: (from their resident identity number), or the organisation's founding date does
    #: (from its registration; no entry for one registered without it).
    born: dict[int, int]
    #: Subjects the identity authority voided as fictitious: their records are held.
    voided: set[int]
    rulebook: Rulebook
    at: datetime
    at_micros: int
    #: Record type → the subject kinds it applies to (values of SubjectKind).
    kinds: dict[str, frozenset[str]]
    #: (subject id, type) → occurrences (microseconds) of the source's records of a type
    #: with ``min_spacing_days`` about the subject: in the store, and planned so far.
    spaced: dict[tuple[int, str], list[int]]
    #: The record types that raise a score (the volume limits count them).
    positive: frozenset[str]
    #: Subject id → the source's positives about it in the store within the burst
    #: window (no backfill run's), for the subjects the spacing look-up read.
    burst_counted: dict[int, int]


def _plan_one(
    index: int,
    rec: RecordIn,
    subject: SubjectRef | CredenceError,
    batch: _Batch,
    public_id: str,
) -> _Planned:
    """One record of a batch: refused (an error raised), a duplicate, or created (its
    row and journal entry, and its reinsertion step if it reinstates a record)."""
    rt, subject = _admissible(rec, subject, batch)
    occurred_at = to_micros(rec.occurred_at)
    intake = batch.rulebook.intake
    hold: str | None = None
    if occurred_at < batch.born.get(subject.id, occurred_at):
        if intake.before_birth is IntakeAction.REFUSE:
            # Never the birth date or the identifier: the message goes back to the
            # source and into import reports.
            if subject.kind == _PERSON:
                raise InvalidInput(
                    "the record occurred before the subject was born (by the birth date "
                    "of their resident identity number): check occurred_at and the "
                    "subject it names",
                    code="occurred_before_birth",
                )
            raise InvalidInput(
                "the record occurred before the organisation was founded (by the founding "
                "date it was registered with): check occurred_at and the subject it names",
                code="occurred_before_founding",
            )
        hold = holds.BEFORE_BIRTH
    if subject.id in batch.voided:
        hold = holds.IDENTITY_VOIDED
    digest = journal.record_content_hash(
        subject_id=subject.public_id,
        record_type=rt.code,
        occurred_at=rec.occurred_at,
        quantity=rec.quantity,
        decision_ref=rec.decision_ref,
    )
    duplicate = _duplicate(index, rec, digest, batch)
    if duplicate is not None:
        return duplicate
    # After the duplicate check: a resend is a duplicate, not a record too close to itself.
    spaced = batch.spaced.get((subject.id, rt.code)) if rt.min_spacing_days else None
    if spaced is not None and hold is None:
        assert rt.min_spacing_days is not None
        gap = rt.min_spacing_days * MICROS_PER_DAY
        if any(abs(occurred_at - other) < gap for other in spaced):
            if intake.spacing is IntakeAction.REFUSE:
                raise InvalidInput(
                    f"a {rt.code} record covers a period of {rt.min_spacing_days:g} days: "
                    "this one occurred closer than that to another of the same type from "
                    "this source about this subject; check occurred_at, or retract the "
                    "other if it was wrong",
                    code="closer_than_period",
                )
            hold = holds.SPACING
    reinstates = reinsertion.reinstated(
        batch.ended,
        batch.ended_hashes,
        (subject.id, rt.code, occurred_at, rec.decision_ref),
        digest,
        certified=rec.certified,
    )
    batch.existing[rec.source_ref] = (public_id, digest)  # a repeat in the batch: duplicate
    if spaced is not None and hold is None:
        spaced.append(occurred_at)
    row = (
        public_id,
        batch.source_id,
        rec.source_ref,
        subject.id,
        rt.code,
        occurred_at,
        batch.at_micros,
        rec.quantity,
        rec.decision_ref,
        digest,
        None,  # backfill_run_id: set by _volume_holds if a run exempts the record
    )
    # The entry names the record; its content is the row's, which the entry lists.
    entry = (
        journal.EventKind.RECORD.value,
        subject.id,
        batch.at_micros,
        journal.canonical({"record": public_id}),
    )
    result = RecordResult(
        index=index, source_ref=rec.source_ref, status="created", record_id=public_id
    )
    event = None if reinstates is None else _reinsertion(rt, public_id, reinstates, subject, batch)
    planned = _Planned(result, row, entry, event)
    if hold is not None:
        _hold_planned(planned, hold)
    return planned


def _admissible(
    rec: RecordIn, subject: SubjectRef | CredenceError, batch: _Batch
) -> tuple[RecordType, SubjectRef]:
    """The record's type and subject, if the rulebook, the source's registration and the
    subject admit it; else the refusal, raised."""
    rulebook = batch.rulebook
    rt = rulebook.record_type(rec.record_type)
    if rt is None:
        raise InvalidInput(
            f"unknown record type {rec.record_type!r}; the rulebook in force "
            f"({rulebook.version}) lists the types Credence accepts",
            code="unknown_record_type",
        )
    if rec.record_type not in batch.allowed:
        raise Forbidden(
            f"source {batch.source_code!r} is not registered for record type {rec.record_type!r}",
            code="record_type_not_registered",
        )
    if rec.occurred_at > batch.at:
        raise InvalidInput(
            "occurred_at is in the future; only facts that have happened can be recorded",
            code="occurred_in_future",
        )
    if rt.negative and not rec.decision_ref:
        raise InvalidInput(
            f"a {rt.code} record lowers a score and needs decision_ref: the reference of the "
            f"final decision or registered default ({rt.evidence.value}) it rests on",
            code="decision_reference_required",
        )
    if rt.quantity is None and rec.quantity is not None:
        raise InvalidInput(
            f"record type {rt.code!r} has no quantity; leave quantity out",
            code="unexpected_quantity",
        )
    if rt.quantity is not None and rec.quantity is None:
        raise InvalidInput(
            f"record type {rt.code!r} needs quantity (in {rt.quantity.unit})",
            code="quantity_required",
        )
    if isinstance(subject, CredenceError):
        raise subject
    if subject.kind not in batch.kinds[rt.code]:
        raise InvalidInput(
            f"record type {rt.code!r} does not apply to a {subject.kind}",
            code="record_type_not_for_subject_kind",
        )
    return rt, subject


def _duplicate(index: int, rec: RecordIn, digest: str, batch: _Batch) -> _Planned | None:
    """The record's result if its ``source_ref`` is taken: a duplicate when the content is
    the same (a resend), a conflict when it is not; None for a new ``source_ref``."""
    seen = batch.existing.get(rec.source_ref)
    if seen is None:
        return None
    public_id, seen_digest = seen
    if seen_digest != digest:
        raise Conflict(
            f"source_ref {rec.source_ref!r} was already used for a record with other "
            f"content ({public_id}); retract it and send the correction with a new "
            "source_ref",
            code="source_ref_conflict",
            details={"record_id": public_id},
        )
    if rec.certified and (
        public_id in batch.ended.values() or public_id in batch.ended_hashes.values()
    ):
        raise Conflict(
            f"record {public_id} was deleted after a dispute; to reinsert it, send it "
            "again with certified: true under a new source_ref (a resend under the old "
            "one is only a duplicate of the deleted record)",
            code="reinsertion_needs_new_source_ref",
            details={"record_id": public_id},
        )
    return _Planned(
        RecordResult(
            index=index, source_ref=rec.source_ref, status="duplicate", record_id=public_id
        )
    )


def _reinsertion(
    rt: RecordType, public_id: str, reinstates: str, subject: SubjectRef, batch: _Batch
) -> Event:
    """The step of a certified reinsertion, with its notice to the subject."""
    at = batch.at
    return Event(
        kind=journal.EventKind.RECORD_REINSERTED,
        at=at,
        subject_id=subject.id,
        data={"record": public_id, "reinstates": reinstates, "source": batch.source_code, "at": at},
        notice=Notice(
            f"{rt.name} (record {reinstates}), removed after your dispute, is back on your "
            f"file as record {public_id} since {at:%Y-%m-%d}: {batch.source_name} certified "
            "that it is complete and accurate. You may dispute it again with new "
            "information, and add a statement to it."
        ),
    )


def store_planned(session: Session, planned: Sequence[_Planned]) -> None:
    """Insert the rows of every created item, with their journal entries, in order:
    each record row carries its entry's number and a fresh salt, and each entry lists
    its row's digest."""
    created = [p for p in planned if p.row is not None and p.entry is not None]
    if created:
        ids = journal.allocate_ids(session, _RECORDS, len(created))
        seqs = journal.allocate(session, len(created))
        rows, entries = [], []
        salts = journal.new_salts(len(created))
        for p, record_id, seq, salt in zip(created, ids, seqs, salts, strict=True):
            assert p.row is not None
            assert p.entry is not None
            row = (record_id, *p.row, seq, salt)
            rows.append(row)
            listed = journal.listing(
                [("records", record_id, journal.digest(salt, _record_bytes(row)))]
            )
            entries.append((seq, *p.entry, listed))
        insert_rows(session, _RECORDS, STORED_ROW_COLUMNS, rows)
        insert_rows(session, _JOURNAL, journal.COLUMNS, entries)
        held = [
            (holds.ToHold(record_id, p.row[_SUBJECT], p.row[_SOURCE], p.hold), p.row[_RECEIVED])
            for p, record_id in zip(created, ids, strict=True)
            if p.hold is not None and p.row is not None
        ]
        if held:
            holds.place(session, [h for h, _ in held], at=from_micros(held[0][1]))
    # A certified reinsertion is a step of its own, after the record it reinserts.
    record_events(session, [p.reinsertion for p in planned if p.reinsertion is not None])


_RECORDS = Record.metadata.tables[Record.__tablename__]
_RETRACTIONS = Retraction.metadata.tables[Retraction.__tablename__]
_JOURNAL = journal.JournalEntry.metadata.tables[journal.JournalEntry.__tablename__]
#: A stored record row's columns, in the order :func:`store_planned` writes them.
STORED_ROW_COLUMNS = ("id", *RECORD_COLUMNS, *journal.JOURNAL_COLUMNS)
_RECORD_ENCODER = journal.covered("records").encoder


def _record_bytes(row: Sequence[Any]) -> bytes:
    return _RECORD_ENCODER(dict(zip(STORED_ROW_COLUMNS, row, strict=True)))


def submit_records(
    session: Session,
    *,
    source: Source,
    records: Sequence[RecordIn | CredenceError],
    rulebook: Rulebook,
    at: datetime,
    backfill: backfill_runs.Scope | None = None,
    replacing: int | None = None,
) -> list[RecordResult]:
    """Append a batch: every valid record is stored (held, if an intake check holds it),
    every invalid one reported. ``backfill``: the approved backfill run the batch is
    delivered under (:func:`credence.ledger.backfill.scope`); ``replacing``:
    the store id of the record a dispute's correction replaces.

    The caller commits; if the commit fails nothing is acknowledged.
    """
    planned = plan_records(
        session,
        source=source,
        records=records,
        rulebook=rulebook,
        at=at,
        backfill=backfill,
        replacing=replacing,
    )
    store_planned(session, planned)
    if backfill is not None:
        finish_backfill(session, backfill, at=at)
    return [p.result for p in planned]


def finish_backfill(session: Session, scope: backfill_runs.Scope, *, at: datetime) -> None:
    """Log what batches delivered under an approved run were exempted (once, after the
    last of them is stored: an import calls it after its last chunk)."""
    backfill_runs.deliver(session, scope, at=at)


def retract_record(
    session: Session,
    *,
    source: Source,
    record_id: str,
    reason: str,
    at: datetime,
    principal_id: int | None = None,
) -> tuple[Retraction | lifting.PendingChange, bool]:
    """A source withdraws its own record. Returns ``(retraction, created)``; retracting
    again returns the first retraction.

    A record that restricts someone (:func:`credence.ledger.lifting.lifts_a_sanction`)
    is not withdrawn now: the retraction is held as a pending change until a reviewer
    other than the source confirms it (:mod:`credence.ledger.lifting`), and the record
    counts meanwhile. That returns ``(change, created)``; asking again while it waits
    returns the same change (a resend), whatever the reason given. ``principal_id``
    is who asked (None from the command line or a test)."""
    record = session.scalar(select(Record).where(Record.public_id == record_id))
    if record is None or record.source_id != source.id:
        # The same answer for "absent" and "another source's": no probing of others' files.
        raise NotFound(f"source {source.code!r} has no record {record_id!r}", code="unknown_record")
    refuse_erased(record)
    existing = _retraction_of(session, record)
    if existing is not None:
        return existing, False
    rulebook = store.in_force(session, at).rulebook
    if lifting.pending_of(session, record.id) is not None or lifting.lifts_a_sanction(
        session, record, rulebook, at
    ):
        rt = rulebook.record_type(record.record_type)
        what = f"record {record.public_id} ({rt.name if rt else record.record_type})"

        def notice(change: str) -> str:
            return (
                f"{source.name} asked on {at:%Y-%m-%d %H:%M} UTC to withdraw {what}, which "
                f"restricts you, saying: {reason} A withdrawal that lifts a restriction "
                "takes effect only once a Credence reviewer other than whoever asked "
                f"confirms it (change {change}); until then the record still counts. You "
                "will be told whether it is confirmed or refused."
            )

        return lifting.request_change(
            session,
            record=record,
            kind=lifting.RETRACTION,
            reference=None,
            requested_by="source",
            principal_id=principal_id,
            reason=reason,
            correction=None,
            notice=notice,
            at=at,
        )
    return write_retraction(session, record=record, reason=reason, at=at)


def write_retraction(
    session: Session, *, record: Record, reason: str, at: datetime, change: str | None = None
) -> tuple[Retraction, bool]:
    """The retraction of ``record`` by its source, effective at ``at``: its row and its
    entry (naming the ``change`` a reviewer confirmed, if it was held). Returns
    ``(retraction, created)``; a record already retracted keeps its first retraction."""
    # Retractions of one record at once: one is stored, the others read it (see
    # insert_new), as a repeat would.
    retraction_id = insert_new(
        session,
        _RETRACTIONS,
        {
            "record_id": record.id,
            "source_id": record.source_id,
            "reason": reason,
            "received_at": at,
        },
        unique=("record_id",),
    )
    if retraction_id is None:
        existing = _retraction_of(session, record)
        assert existing is not None  # the row that took the record is committed
        return existing, False
    retraction = session.get_one(Retraction, retraction_id)
    record_event(
        session,
        kind=journal.EventKind.RETRACTION,
        at=at,
        subject_id=record.subject_id,
        data={"record": record.public_id, **({"change": change} if change else {})},
        rows=[retraction],
    )
    return retraction, True


def refuse_erased(record: Record) -> None:
    """:class:`NotFound` (``record_erased``) for a record whose content was erased:
    nothing of it is left to dispute, retract, repair or comment on."""
    if record.record_type is None:
        raise NotFound(
            f"record {record.public_id} was erased: its content is gone",
            code="record_erased",
        )


def _retraction_of(session: Session, record: Record) -> Retraction | None:
    return session.scalar(select(Retraction).where(Retraction.record_id == record.id))
