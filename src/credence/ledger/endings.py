"""When a record's effect ends: the one definition, shared by every scoring runner.

A record counts from its receipt until the *earliest* of these ending events (every one
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
===================  ===================================================================

Expiry at the end of a record type's retention period is not here: it depends on the
rulebook, and the formula (:mod:`credence.scoring.formula`) applies it.

:func:`ending_events` lists the events; :func:`effect_ends` reduces them to the earliest
per record in SQL, for the batch path (:mod:`credence.scoring.batch`). The online path
(:func:`credence.ledger.service.subject_records`) reads the same :func:`ending_events` and
takes the earliest per record as it reads them, which also names the cause for the
subject's file (one statement instead of two unions: the online path runs on every
decision). Both rest on this one list of events, so they cannot disagree about which
records count; ``tests/test_batch.py`` holds them together.

The dispute and repair tables belong to :mod:`credence.disputes`; reading them here
(tables only, no service) keeps the definition in one place beside the ledger it reads.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Subquery,
    case,
    func,
    literal_column,
    or_,
    select,
    union_all,
)

from credence.disputes.tables import Dispute, DisputeAnswer, Repair, RepairDecision
from credence.ledger.tables import Retraction

RETRACTION = "retraction"
DISPUTE_DELETED = "dispute_deleted"
DISPUTE_CORRECTED = "dispute_corrected"
DISPUTE_LAPSED = "dispute_lapsed"
REPAIR = "repair"

#: Causes by which a dispute ended a record: such a record comes back only if its
#: source certifies it (a "reinsertion").
DISPUTE_CAUSES = frozenset({DISPUTE_DELETED, DISPUTE_CORRECTED, DISPUTE_LAPSED})

#: Which cause is named when two events end a record at the same instant.
CAUSE_ORDER = (RETRACTION, DISPUTE_DELETED, DISPUTE_CORRECTED, DISPUTE_LAPSED, REPAIR)


def _cause(name: str) -> ColumnElement[str]:
    # Inline SQL literals rather than bound parameters: PostgreSQL cannot type an
    # untyped parameter in a UNION branch.
    return literal_column(f"'{name}'", String).label("cause")


def ending_events(
    records: Select[Any] | None = None, *, causes: Collection[str] | None = None
) -> Select[Any]:
    """Every event that ends a record's effect: ``(record_id, ended_at, cause)``.

    ``records``, a select of record ids, narrows the events to those records (a
    subject's, say) so that reading one file does not scan every ending ever written;
    ``causes`` narrows them to some causes (the others' tables are not read at all).
    """

    def only(column: Any) -> list[ColumnElement[bool]]:
        return [column.in_(records)] if records is not None else []

    retractions = select(
        Retraction.record_id.label("record_id"),
        Retraction.received_at.label("ended_at"),
        _cause(RETRACTION),
    ).where(*only(Retraction.record_id))
    answered = (
        select(
            Dispute.record_id.label("record_id"),
            DisputeAnswer.answered_at.label("ended_at"),
            case(
                (
                    DisputeAnswer.outcome == "deleted",
                    literal_column(f"'{DISPUTE_DELETED}'", String),
                ),
                else_=literal_column(f"'{DISPUTE_CORRECTED}'", String),
            ).label("cause"),
        )
        .join(DisputeAnswer, DisputeAnswer.dispute_id == Dispute.id)
        .where(
            or_(DisputeAnswer.outcome == "deleted", DisputeAnswer.outcome == "corrected"),
            DisputeAnswer.answered_at < Dispute.deadline,
            *only(Dispute.record_id),
        )
    )
    lapsed = (
        select(
            Dispute.record_id.label("record_id"),
            Dispute.deadline.label("ended_at"),
            _cause(DISPUTE_LAPSED),
        )
        .outerjoin(DisputeAnswer, DisputeAnswer.dispute_id == Dispute.id)
        .where(
            or_(DisputeAnswer.id.is_(None), DisputeAnswer.answered_at >= Dispute.deadline),
            *only(Dispute.record_id),
        )
    )
    repaired = (
        select(
            Repair.record_id.label("record_id"),
            RepairDecision.decided_at.label("ended_at"),
            _cause(REPAIR),
        )
        .join(RepairDecision, RepairDecision.repair_id == Repair.id)
        .where(RepairDecision.approved.is_(True), *only(Repair.record_id))
    )
    branches = {
        RETRACTION: retractions,
        DISPUTE_DELETED: answered,
        DISPUTE_LAPSED: lapsed,
        REPAIR: repaired,
    }
    if causes is None:
        return select(union_all(*branches.values()).subquery())
    wanted = set(causes)
    unknown = wanted - set(CAUSE_ORDER)
    if unknown:
        raise ValueError(f"unknown ending causes {sorted(unknown)}; known: {CAUSE_ORDER}")
    # One branch yields both answered causes; the outer filter keeps the wanted one.
    keys = {DISPUTE_DELETED if c == DISPUTE_CORRECTED else c for c in wanted}
    chosen = [branch for cause, branch in branches.items() if cause in keys]
    events = union_all(*chosen).subquery() if len(chosen) > 1 else chosen[0].subquery()
    return select(events).where(events.c.cause.in_(sorted(wanted)))


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
