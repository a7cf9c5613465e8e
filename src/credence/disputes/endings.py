"""How disputes and repairs end records' effect, reported to the ledger.

The ledger owns the definition of when a record counts (:mod:`credence.ledger.endings`)
but not these tables: this module gives it their ending events, and, for the subject's
file, whether a dispute of a record is open and the subject's latest statement. It is
provided when the ``credence.disputes`` package is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, case, exists, or_, select

from credence.disputes.tables import Dispute, DisputeAnswer, Repair, RepairDecision, Statement
from credence.ledger import endings
from credence.ledger.endings import (
    DISPUTE_CORRECTED,
    DISPUTE_DELETED,
    DISPUTE_LAPSED,
    REPAIR,
    Branch,
    EndingSource,
    Records,
    cause_literal,
    only,
)


def _dispute_branches(records: Records) -> Sequence[Branch]:
    answered = (
        select(
            Dispute.record_id.label("record_id"),
            DisputeAnswer.answered_at.label("ended_at"),
            case(
                (DisputeAnswer.outcome == "deleted", cause_literal(DISPUTE_DELETED)),
                else_=cause_literal(DISPUTE_CORRECTED),
            ).label("cause"),
        )
        .join(DisputeAnswer, DisputeAnswer.dispute_id == Dispute.id)
        .where(
            or_(DisputeAnswer.outcome == "deleted", DisputeAnswer.outcome == "corrected"),
            DisputeAnswer.answered_at < Dispute.deadline,
            *only(Dispute.record_id, records),
        )
    )
    lapsed = (
        select(
            Dispute.record_id.label("record_id"),
            Dispute.deadline.label("ended_at"),
            cause_literal(DISPUTE_LAPSED).label("cause"),
        )
        .outerjoin(DisputeAnswer, DisputeAnswer.dispute_id == Dispute.id)
        .where(
            or_(DisputeAnswer.id.is_(None), DisputeAnswer.answered_at >= Dispute.deadline),
            *only(Dispute.record_id, records),
        )
    )
    return [
        Branch(frozenset({DISPUTE_DELETED, DISPUTE_CORRECTED}), answered),
        Branch(frozenset({DISPUTE_LAPSED}), lapsed),
    ]


def _challenged(
    record_id: ColumnElement[Any], at: BindParameter[Any] | None
) -> ColumnElement[bool]:
    """A dispute of the record is open: unanswered (as of ``at``: opened by then, its
    deadline not passed, no answer by then)."""
    mine = select(Dispute.id).where(Dispute.record_id == record_id)
    answer = select(DisputeAnswer.id).where(DisputeAnswer.dispute_id == Dispute.id)
    if at is None:
        return exists(mine.where(~answer.correlate(Dispute).exists()))
    answered = answer.where(DisputeAnswer.answered_at <= at).correlate(Dispute).exists()
    return exists(mine.where(Dispute.opened_at <= at, Dispute.deadline > at, ~answered))


def _statement(record_id: ColumnElement[Any], at: BindParameter[Any] | None) -> Any:
    """The subject's latest statement about the record (as of ``at``)."""
    query = select(Statement.text).where(Statement.record_id == record_id)
    if at is not None:
        query = query.where(Statement.at <= at)
    return query.order_by(Statement.at.desc(), Statement.id.desc()).limit(1).scalar_subquery()


def _disputed_subjects(among: Callable[[Any], ColumnElement[bool]]) -> Select[Any]:
    """Empty unless one of the subjects (``among`` gives the condition on a subject id
    column) has disputed something."""
    return select(Dispute.id).where(among(Dispute.__table__.c.subject_id)).limit(1)


def _repair_branches(records: Records) -> Sequence[Branch]:
    repaired = (
        select(
            Repair.record_id.label("record_id"),
            RepairDecision.decided_at.label("ended_at"),
            cause_literal(REPAIR).label("cause"),
        )
        .join(RepairDecision, RepairDecision.repair_id == Repair.id)
        .where(RepairDecision.approved.is_(True), *only(Repair.record_id, records))
    )
    return [Branch(frozenset({REPAIR}), repaired)]


DISPUTES = EndingSource(
    name="disputes",
    causes=endings.DISPUTE_CAUSES,
    branches=_dispute_branches,
    challenged=_challenged,
    statement=_statement,
    subjects_with_events=_disputed_subjects,
)
REPAIRS = EndingSource(name="repairs", causes=frozenset({REPAIR}), branches=_repair_branches)

endings.provide(DISPUTES)
endings.provide(REPAIRS)

__all__ = ["DISPUTES", "REPAIRS"]
