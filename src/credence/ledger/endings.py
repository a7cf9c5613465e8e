"""When a record's effect ends: the one definition, shared by every scoring runner, and
the interface through which other features end records.

A record counts from its receipt until the *earliest* of its ending events (every one
of them an append to the ledger, none of them an update):

===================  ===================================================================
cause                ends at
===================  ===================================================================
retraction           the retraction's ``received_at`` (the source withdrew the record)
dispute_deleted      the answer's ``answered_at`` (the source could not stand by it)
dispute_corrected    the answer's ``answered_at`` (a corrected record replaces it)
dispute_lapsed       the dispute's ``deadline``, when no answer came before it
                     (unverifiable): exact and lazy, so a score as of any instant is the
                     same whether or not the sweep has written its lapse entry yet; an
                     answer at or after the deadline does not revive the record
repair               the approving repair decision's ``decided_at``
identity_voided      the instant the identity authority voided the record's subject as
                     fictitious (every record of it, received before or after)
===================  ===================================================================

Expiry at the end of a record type's retention period is not here: it depends on the
rulebook, and scoring applies it.

The ledger owns retractions and voids. Disputes and repairs are features above the ledger: they
report their endings through :class:`EndingSource`, which they :func:`provide` when
their package is imported (``credence.disputes``), so the ledger never reads their
tables by name. A source may also say, for the subject's file, whether a record is
under challenge and what the subject said about it (:class:`EndingSource.challenged`,
:class:`EndingSource.statement`). Every cause of :data:`CAUSE_ORDER` must have a source
before any ending is read: a process that has not loaded them gets an error, never a
score that counts a deleted record.

:func:`ending_events` lists the events; :func:`effect_ends` reduces them to the earliest
per record in SQL, for the batch path (:mod:`credence.scoring.batch`). The subject's
file (:mod:`credence.ledger.file`) reads the same :func:`ending_events` and takes the
earliest per record as it reads them, which also names the cause. Both rest on this one
list of events, so they cannot disagree about which records count.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    String,
    Subquery,
    func,
    literal_column,
    select,
    union_all,
)

from credence.ledger.tables import IdentityVoid, Record, Retraction

RETRACTION = "retraction"
DISPUTE_DELETED = "dispute_deleted"
DISPUTE_CORRECTED = "dispute_corrected"
DISPUTE_LAPSED = "dispute_lapsed"
REPAIR = "repair"
IDENTITY_VOIDED = "identity_voided"

#: Causes by which a dispute ended a record: such a record comes back only if its
#: source certifies it (a "reinsertion").
DISPUTE_CAUSES = frozenset({DISPUTE_DELETED, DISPUTE_CORRECTED, DISPUTE_LAPSED})

#: Which cause is named when two events end a record at the same instant; every cause
#: the ledger knows.
CAUSE_ORDER = (
    RETRACTION,
    DISPUTE_DELETED,
    DISPUTE_CORRECTED,
    DISPUTE_LAPSED,
    REPAIR,
    IDENTITY_VOIDED,
)

#: Narrows events to some records: a select of record ids, or None for every record.
Records = Select[Any] | None


def cause_literal(name: str) -> ColumnElement[str]:
    """A cause as an inline SQL literal (PostgreSQL cannot type an untyped bound
    parameter in a UNION branch)."""
    return literal_column(f"'{name}'", String)


def only(column: Any, records: Records) -> list[ColumnElement[bool]]:
    """The condition that narrows a branch's ``column`` (a record id) to ``records``."""
    return [column.in_(records)] if records is not None else []


@dataclass(frozen=True)
class Branch:
    """One select of ending events, ``(record_id, ended_at, cause)``, and the causes it
    can name."""

    causes: frozenset[str]
    select: Select[Any, Any, Any]


@dataclass(frozen=True)
class EndingSource:
    """What a feature that ends records' effect gives the ledger.

    ``branches(records)`` selects its ending events for ``records``. ``challenged(record_id,
    at)`` is a condition true while the subject's challenge of the record is open
    (``at``: the instant read, or None for now); ``statement(record_id, at)`` the
    subject's latest statement about it; ``subjects_with_events(among)`` a cheap select,
    empty when none of the subjects that ``among(subject_id_column)`` names can have an
    event (the intake's reinsertion check skips the join for almost every batch).
    """

    name: str
    causes: frozenset[str]
    branches: Callable[[Records], Sequence[Branch]]
    challenged: Callable[[Any, BindParameter[Any] | None], Any] | None = None
    statement: Callable[[Any, BindParameter[Any] | None], Any] | None = None
    subjects_with_events: Callable[[Callable[[Any], ColumnElement[bool]]], Select[Any]] | None = (
        None
    )


def _retractions(records: Records) -> Sequence[Branch]:
    query = select(
        Retraction.record_id.label("record_id"),
        Retraction.received_at.label("ended_at"),
        cause_literal(RETRACTION).label("cause"),
    ).where(*only(Retraction.record_id, records))
    return [Branch(frozenset({RETRACTION}), query)]


RETRACTIONS = EndingSource("retractions", frozenset({RETRACTION}), _retractions)


def _voids(records: Records) -> Sequence[Branch]:
    query = (
        select(
            Record.id.label("record_id"),
            IdentityVoid.voided_at.label("ended_at"),
            cause_literal(IDENTITY_VOIDED).label("cause"),
        )
        .join(IdentityVoid, IdentityVoid.subject_id == Record.subject_id)
        .where(*only(Record.id, records))
    )
    return [Branch(frozenset({IDENTITY_VOIDED}), query)]


#: A subject the identity authority voided as fictitious: its records stop counting then.
VOIDS = EndingSource("voids", frozenset({IDENTITY_VOIDED}), _voids)

_sources: dict[str, EndingSource] = {RETRACTIONS.name: RETRACTIONS, VOIDS.name: VOIDS}


def provide(source: EndingSource) -> None:
    """Register a feature's endings (once per name; providing it again replaces it)."""
    unknown = source.causes - set(CAUSE_ORDER)
    if unknown:
        raise ValueError(f"unknown ending causes {sorted(unknown)}; known: {CAUSE_ORDER}")
    _sources[source.name] = source


def sources() -> list[EndingSource]:
    """Every registered source; fails unless every cause has one."""
    found = list(_sources.values())
    covered = set().union(*(s.causes for s in found))
    missing = [c for c in CAUSE_ORDER if c not in covered]
    if missing:
        raise RuntimeError(
            f"no ending source for {missing}: the features that end records (credence."
            "disputes) are not loaded in this process"
        )
    return found


def ending_events(records: Records = None, *, causes: Collection[str] | None = None) -> Select[Any]:
    """Every event that ends a record's effect: ``(record_id, ended_at, cause)``.

    ``records``, a select of record ids, narrows the events to those records (a
    subject's, say) so that reading one file does not scan every ending ever written;
    ``causes`` narrows them to some causes (the others' tables are not read at all).
    """
    wanted = set(CAUSE_ORDER) if causes is None else set(causes)
    unknown = wanted - set(CAUSE_ORDER)
    if unknown:
        raise ValueError(f"unknown ending causes {sorted(unknown)}; known: {CAUSE_ORDER}")
    chosen = [
        branch
        for source in sources()
        if source.causes & wanted
        for branch in source.branches(records)
        if branch.causes & wanted
    ]
    events = (
        union_all(*(b.select for b in chosen)).subquery()
        if len(chosen) > 1
        else chosen[0].select.subquery()
    )
    narrow = any(not b.causes <= wanted for b in chosen)
    return select(events).where(events.c.cause.in_(sorted(wanted))) if narrow else select(events)


def effect_ends(records: Select[Any] | None = None) -> Subquery:
    """The instant each ended record's effect ends: ``(record_id, ended_at)``, the
    earliest of its :func:`ending_events`. Records that have not ended are absent (join
    it with an outer join)."""
    events = ending_events(records).subquery("ending_events")
    return (
        select(events.c.record_id, func.min(events.c.ended_at).label("ended_at"))
        .group_by(events.c.record_id)
        .subquery("effect_ends")
    )
