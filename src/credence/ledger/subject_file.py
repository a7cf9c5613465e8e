"""The subject's file: the ledger's read model.

Every record on a subject's file, with when and how its effect ended (the ending events
of :mod:`credence.ledger.endings`, the earliest per record) and what the features that
end records say about it (a challenge open, the subject's statement), in one statement:
the decision path reads it on every request. Also the file's erasures.

A subject's file holds the records of every subject read into it (a merge of the
identity authority, :mod:`credence.ledger.identities`): while alias A is read into B,
B's file is A's records and B's, and so is A's (the same person). Which subjects those
are is worked out in the same statement, as of the instant read (:func:`members`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    and_,
    bindparam,
    false,
    func,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from credence.clock import from_micros
from credence.db import Connectable, Instant, Prepared, as_direct
from credence.errors import NotFound
from credence.ledger import endings
from credence.ledger.holds import NEVER, RecordHold
from credence.ledger.tables import AliasEnd, Record, RecordErasure, Source, Subject, SubjectAlias


@dataclass(frozen=True)
class RecordView:
    """A record as read back for scoring and for the subject's file."""

    record_id: str
    source_code: str
    source_name: str
    source_ref: str
    record_type: str
    occurred_at: datetime
    received_at: datetime
    quantity: float | None
    decision_ref: str | None
    #: When the record's effect ended by a ledger entry, if it has (see
    #: :mod:`credence.ledger.endings`: retraction, dispute outcome or lapse, repair).
    ended_at: datetime | None
    #: What ended it: one of the causes in :data:`credence.ledger.endings.CAUSE_ORDER`.
    ended_by: str | None = None
    #: Whether the subject has a dispute of the record open (awaiting the source's answer).
    disputed: bool = False
    #: The subject's latest statement about the record, if any.
    statement: str | None = None
    #: A record held at intake (:mod:`credence.ledger.holds`): the hold's id, its cause,
    #: and ``held``, ``released`` or ``rejected`` (as of the instant read); None if the
    #: record was never held.
    hold_id: str | None = None
    hold_cause: str | None = None
    hold_status: str | None = None
    #: When a released record started to count (the release); None otherwise.
    released_at: datetime | None = None

    @property
    def counts_from(self) -> datetime:
        """When the record starts to count (:func:`credence.ledger.holds.effect_starts`):
        its receipt; for a held record its release, or never while it is held or once
        it is rejected."""
        if self.hold_status is None:
            return self.received_at
        if self.hold_status == "released" and self.released_at is not None:
            return self.released_at
        return NEVER


def subject_records(
    conn: Connectable,
    subject_id: int,
    *,
    record_types: Iterable[str] | None = None,
    at: datetime | None = None,
) -> list[RecordView]:
    """Every record on a subject's file (optionally only some types), with when and how
    each one's effect ended, whether it is disputed, and the subject's statement.

    With ``at``, the file as of that instant: endings, disputes and statements that came
    later are left out (a dispute's lapse at its deadline is an ending *at* the deadline,
    so it shows only from then on). Without ``at``, every ledger entry counts, and a
    dispute is shown open until it is answered.

    One prepared statement per shape, on whatever connection the caller has (a session's
    or the decision path's :class:`Direct`): the decision path runs it on every request.
    """
    types = None if record_types is None else tuple(sorted(set(record_types)))
    prepared = _prepared_file_query(at is not None, types)
    params: dict[str, Any] = {"subject_id": subject_id}
    if at is not None:
        params["at"] = at
    return views_direct(prepared.run(as_direct(conn), params), at)


@functools.lru_cache(maxsize=256)
def _prepared_file_query(as_of: bool, record_types: tuple[str, ...] | None) -> Prepared:
    query = file_query(as_of=as_of, some_types=record_types is not None)
    if record_types is None:
        return Prepared(query)
    return Prepared(query, record_types=list(record_types))


def views_direct(rows: Iterable[Sequence[Any]], at: datetime | None) -> list[RecordView]:
    """:func:`_views` of rows of a :func:`file_query` run on a :class:`Direct`
    connection (instants as stored: microseconds), as of ``at``."""
    return _views(
        (
            (*r[:5], from_micros(r[5]), from_micros(r[6]), r[7], r[8],
             None if r[9] is None else from_micros(r[9]), r[10], r[11], r[12],
             r[13], r[14], r[15], None if r[16] is None else from_micros(r[16]))
            for r in rows
        ),
        at,
    )  # fmt: skip


def _views(rows: Iterable[Sequence[Any]], at: datetime | None) -> list[RecordView]:
    """Record views from rows of :func:`_file_query`, one per record."""
    views: dict[str, RecordView] = {}
    for row in rows:
        ended_at, cause = row[9], row[10]
        if at is not None and ended_at is not None and ended_at > at:
            ended_at = cause = None  # ends after the instant read (a pending lapse)
        hold_status, decided_at = row[15], row[16]
        if at is not None and decided_at is not None and decided_at > at:
            hold_status, decided_at = "held", None  # decided after the instant read
        view = RecordView(
            record_id=row[0],
            source_code=row[1],
            source_name=row[2],
            source_ref=row[3],
            record_type=row[4],
            occurred_at=row[5],
            received_at=row[6],
            quantity=row[7],
            decision_ref=row[8],
            ended_at=ended_at,
            ended_by=cause,
            disputed=bool(row[11]),
            statement=row[12],
            hold_id=row[13],
            hold_cause=row[14],
            hold_status=hold_status,
            released_at=decided_at if hold_status == "released" else None,
        )
        seen = views.get(view.record_id)
        # A record with several ending events has a row for each: its effect ends at the
        # earliest (ties name the cause first in endings.CAUSE_ORDER).
        if seen is None or _ending_key(view) < _ending_key(seen):
            views[view.record_id] = view
    return list(views.values())


def file_query(
    *, as_of: bool, some_types: bool, by: str = "id", statements: bool = True
) -> Select[Any]:
    """The statement that reads a subject's file (see :func:`subject_records`): one row
    per record and ending event, the columns :func:`_views` reads. Build it once and
    keep it: building costs far more than running.

    ``by`` names the subject: ``"id"`` (bound parameter ``subject_id``), or its
    ``"public_id"`` or ``"identifier"`` (the compact national identifier), bound as
    ``key`` (the subject's id is then looked up in the statement). Without
    ``statements`` the subject's statements are not read (that column is NULL): the
    decision path never shows them. Other bound parameters: ``at`` (``as_of``),
    ``record_types`` (``some_types``).
    """
    at = bindparam("at", type_=Instant())
    subject: Select[Any]
    if by == "id":
        subject = select(bindparam("subject_id", type_=Integer).label("id"))
    else:
        key = Subject.public_id if by == "public_id" else Subject.identifier
        subject = select(Subject.id).where(key == bindparam("key"))
    # The subjects whose records are on the file (the subject, and those read into the
    # same file at the instant), worked out once (one common table expression: each use
    # of a list of subjects would be a temporary table of its own on SQLite, and as a
    # subquery per use, more plan nodes on PostgreSQL); the file's records are joined to
    # it, in the statement and in the narrowing of the ending events alike.
    on_file = _File(subject, at if as_of else None).members().cte("file_subjects")
    # The ending events themselves rather than their earliest (endings.effect_ends): one
    # row per event, so the cause comes along; the earliest is picked below, as
    # effect_ends picks it in SQL for the batch runner. Most records have no event.
    mine = select(Record.id).join_from(on_file, Record, Record.subject_id == on_file.c.subject_id)
    ends = endings.ending_events(mine).subquery("ending_events")
    # What the features that end records say of each (correlated subqueries, one row
    # per record: the online path stays one round trip).
    challenged, statement = _notes(at if as_of else None, statements=statements)
    hold = RecordHold.__table__.alias("hold")
    query = (
        select(
            Record.public_id,
            Source.code,
            Source.name,
            Record.source_ref,
            Record.record_type,
            Record.occurred_at,
            Record.received_at,
            Record.quantity,
            Record.decision_ref,
            ends.c.ended_at,
            ends.c.cause,
            challenged,
            statement,
            hold.c.public_id,
            hold.c.cause,
            hold.c.status,
            hold.c.decided_at,
        )
        .join_from(on_file, Record, Record.subject_id == on_file.c.subject_id)
        .join(Source, Source.id == Record.source_id)
        .outerjoin(ends, ends.c.record_id == Record.id)
        .outerjoin(hold, hold.c.record_id == Record.id)
        # An erased record is no longer on the file (its erasure is, see erasures()).
        .where(Record.record_type.is_not(None))
    )
    if some_types:
        query = query.where(Record.record_type.in_(bindparam("record_types", expanding=True)))
    return query


class _File:
    """Which subjects' records are on a subject's file at ``at`` (without ``at``: now,
    by every entry there is): the file's own subject, or the subject it is read into if
    it is an alias then (the file's *root*), and every alias read into the root then.
    Aliases never chain, so that is everyone.

    Look-ups by index of ``subject_aliases`` (by alias, by the subject read into), each
    empty for a subject never merged; :func:`file_query` works them out once per
    statement (a common table expression that the file's records are joined to). An
    alias counts from ``merged_at`` and up to, not at, the ``ended_at`` of its end, as
    :func:`credence.ledger.identities.aliases_at` reads it.
    """

    def __init__(self, subject: Select[Any], at: ColumnElement[Any] | None) -> None:
        #: A select of the subject's id, as ``id``.
        self.subject = subject
        self.at = at

    def _root(self, name: str) -> tuple[Any, ColumnElement[Any]]:
        """The subject joined to its merge in force (if it is an alias then), and the
        file's root: a FROM of one row, with names of its own (never correlated)."""
        subject = self.subject.subquery(f"{name}_subject")
        own = _ALIASES.alias(f"{name}_merge")
        joined = subject.outerjoin(
            own, and_(own.c.alias_subject_id == subject.c.id, *_in_force(own, self.at))
        )
        return joined, func.coalesce(own.c.into_subject_id, subject.c.id)

    def members(self) -> CompoundSelect[Any]:
        """The ids of the subjects on the file: the root, then the aliases read into it."""
        root_from, root = self._root("file")
        read_from, read_root = self._root("read")
        read_in = _ALIASES.alias("read_in")
        into_root = read_from.join(
            read_in,
            and_(read_in.c.into_subject_id == read_root, *_in_force(read_in, self.at)),
        )
        return union_all(
            select(root.label("subject_id")).select_from(root_from),
            select(read_in.c.alias_subject_id).select_from(into_root),
        )


def members(subject_id: ColumnElement[Any], at: ColumnElement[Any] | None) -> CompoundSelect[Any]:
    """The ids of the subjects whose records are on ``subject_id``'s file at ``at``
    (without ``at``: now): see :class:`_File`."""
    return _File(select(subject_id.label("id")), at).members()


_ALIASES = SubjectAlias.__table__


def _in_force(alias: Any, at: ColumnElement[Any] | None) -> list[ColumnElement[bool]]:
    """The conditions that ``alias`` (a name for ``subject_aliases``) is in force at
    ``at`` (merged by then, not ended by then); without ``at``, that it has not ended."""
    ended = select(AliasEnd.id).where(AliasEnd.alias_id == alias.c.id)
    if at is None:
        return [~ended.exists()]
    return [alias.c.merged_at <= at, ~ended.where(AliasEnd.ended_at <= at).exists()]


@dataclass(frozen=True)
class ErasureView:
    """A record erased from a subject's file: which, why, when, and its log entry."""

    record_id: str
    reason: str
    erased_at: datetime
    seq: int | None


def erasures(session: Session, subject_id: int) -> list[ErasureView]:
    """The erasures on a subject's file, newest first."""
    rows = session.execute(
        select(Record.public_id, RecordErasure.reason, RecordErasure.erased_at, RecordErasure.seq)
        .join(Record, Record.id == RecordErasure.record_id)
        .where(RecordErasure.subject_id == subject_id)
        .order_by(RecordErasure.erased_at.desc(), RecordErasure.id.desc())
    )
    return [ErasureView(*row) for row in rows]


def _notes(at: Any, *, statements: bool) -> tuple[ColumnElement[bool], Any]:
    """Whether a challenge of the record is open, and the subject's latest statement
    about it (NULL without ``statements``), from the registered ending sources."""
    sources = endings.sources()
    open_now = [s.challenged(Record.id, at).correlate(Record) for s in sources if s.challenged]
    said = [s.statement(Record.id, at).correlate(Record) for s in sources if s.statement]
    challenged = or_(*open_now) if open_now else false()
    return challenged, said[0] if statements and said else null()


def _ending_key(view: RecordView) -> tuple[bool, datetime | None, int]:
    """Orders the rows of one record: an ending before none, earlier before later."""
    if view.ended_at is None or view.ended_by is None:
        return (True, None, 0)
    return (False, view.ended_at, endings.CAUSE_ORDER.index(view.ended_by))


def record_entry_seqs(session: Session, subject_id: int) -> dict[str, int]:
    """The journal ``seq`` of the entry that wrote each record on a subject's file now
    (those of the subjects read into it included), by record public id (for linking
    each record of the file to its inclusion proof)."""
    on_file = members(bindparam("subject_id", subject_id, type_=Integer), None)
    rows = session.execute(
        select(Record.public_id, Record.seq).where(Record.subject_id.in_(on_file))
    )
    return {public_id: seq for public_id, seq in rows if seq is not None}


def record_entry_seq(session: Session, record_public_id: str) -> int:
    """The journal ``seq`` of the entry that wrote record ``record_public_id``."""
    found = session.execute(
        select(Record.id, Record.seq).where(Record.public_id == record_public_id)
    ).one_or_none()
    if found is None:
        raise NotFound(f"no record {record_public_id!r}", code="unknown_record")
    if found.seq is None:
        raise NotFound(
            f"record {record_public_id!r} has no journal entry", code="record_not_in_log"
        )
    return int(found.seq)
