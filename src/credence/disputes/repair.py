"""Credit repair: ending a negative record's effect early, once the subject corrected
the behaviour (on the model of China's credit repair measures of 2023 and 2026).

Each record type's severity class sets two periods:

* ``repair_after_days``, the minimum: from ``occurred_at`` plus this many days the
  subject may apply for repair, with a commitment statement. Earlier, the application
  is refused with the date it becomes possible.
* ``max_days``, the maximum: the loader keeps every negative type's retention within it,
  so after retention the record stops counting in the formula without anyone acting.

A reviewer approves or refuses an application, with reasons. An approved repair ends
the record's effect at the instant of approval (:mod:`credence.ledger.endings`). The
application shows the evidence of correction found on the file: records of the types
that lift the record's type (``lifted_by``) with the same decision reference, such as a
judgment-performed record for the same case.

Like disputes, every step is a journal entry (free text only as a SHA-256) and the
subject is told of every outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from credence import journal
from credence.disputes.service import effect_ended, record_on_file
from credence.disputes.tables import Repair, RepairDecision
from credence.errors import Conflict, InvalidInput, NotFound
from credence.ids import new_id
from credence.ledger import endings
from credence.ledger.tables import Record, Subject
from credence.notifications.service import Notice, record_event
from credence.rulebook.model import RecordType, Rulebook
from credence.wording import coded

RepairStatus = Literal["pending", "approved", "refused"]
RepairFilter = Literal["pending", "decided", "all"]


@dataclass(frozen=True)
class RepairView:
    """A repair application and where it stands."""

    repair_id: str
    record_id: str
    #: None once the record is erased (its content is gone).
    record_type: str | None
    subject_id: str
    commitment: str
    #: Records on the file that show the behaviour was corrected.
    evidence: list[str]
    applied_at: datetime
    status: RepairStatus
    reasons: str | None
    decided_at: datetime | None
    #: Internal id of the subject, for authorisation; not shown.
    owner_subject: int


def _day(at: datetime) -> str:
    return f"{at:%Y-%m-%d}"


def possible_from(record: Record, rt: RecordType, rulebook: Rulebook) -> datetime:
    """The earliest instant the subject may apply to repair ``record``."""
    days = rulebook.severity_classes[rt.severity].repair_after_days
    return record.occurred_at + timedelta(days=days)


def _evidence(session: Session, record: Record, rt: RecordType, at: datetime) -> list[str]:
    """Records on the same file, in effect at ``at``, of a type that lifts ``rt`` and for
    the same decision (a judgment performed, a settlement performed, ...)."""
    if not rt.lifted_by or record.decision_ref is None:
        return []
    ended = endings.effect_ends(select(Record.id).where(Record.subject_id == record.subject_id))
    rows = session.scalars(
        select(Record.public_id)
        .outerjoin(ended, ended.c.record_id == Record.id)
        .where(
            Record.subject_id == record.subject_id,
            Record.record_type.in_(sorted(rt.lifted_by)),
            Record.decision_ref == record.decision_ref,
            Record.received_at <= at,
            (ended.c.ended_at.is_(None)) | (ended.c.ended_at > at),
        )
        .order_by(Record.occurred_at, Record.id)
    )
    return list(rows)


def _views(session: Session, query: Select[Any]) -> list[RepairView]:
    rows = session.execute(
        query.add_columns(Record.public_id, Record.record_type, Subject.public_id, RepairDecision)
        .join(Record, Record.id == Repair.record_id)
        .join(Subject, Subject.id == Repair.subject_id)
        .outerjoin(RepairDecision, RepairDecision.repair_id == Repair.id)
        .order_by(Repair.applied_at, Repair.id)
    ).all()
    views = []
    for repair, record_id, record_type, subject_id, decision in rows:
        status: RepairStatus = "pending"
        if decision is not None:
            status = "approved" if decision.approved else "refused"
        views.append(
            RepairView(
                repair_id=repair.public_id,
                record_id=record_id,
                record_type=record_type,
                subject_id=subject_id,
                commitment=repair.commitment,
                evidence=list(orjson.loads(repair.evidence)),
                applied_at=repair.applied_at,
                status=status,
                reasons=decision.reasons if decision is not None else None,
                decided_at=decision.decided_at if decision is not None else None,
                owner_subject=repair.subject_id,
            )
        )
    return views


def get_repair(session: Session, repair_id: str) -> RepairView:
    """One repair application; :class:`NotFound` if there is none."""
    found = _views(session, select(Repair).where(Repair.public_id == repair_id))
    if not found:
        raise NotFound(f"no repair application {repair_id!r}", code="unknown_repair")
    return found[0]


def list_repairs(
    session: Session, *, status: RepairFilter = "pending", subject_id: int | None = None
) -> list[RepairView]:
    """Repair applications, oldest first: the reviewers' queue (``pending``), or a
    subject's own (``subject_id``)."""
    query = select(Repair)
    if subject_id is not None:
        query = query.where(Repair.subject_id == subject_id)
    decided = (
        select(RepairDecision.id)
        .where(RepairDecision.repair_id == Repair.id)
        .correlate(Repair)
        .exists()
    )
    if status == "pending":
        query = query.where(~decided)
    elif status == "decided":
        query = query.where(decided)
    return _views(session, query)


def apply_for_repair(
    session: Session,
    *,
    subject: Subject,
    record_id: str,
    commitment: str,
    rulebook: Rulebook,
    at: datetime,
) -> RepairView:
    """The subject applies to repair a negative record on their file.

    Refused for a record that does not lower the score, whose effect already ended or
    whose retention already ran out, while another application for it awaits a
    decision, and before the severity class's minimum period (with the date it becomes
    possible).
    """
    commitment = commitment.strip()
    if not commitment:
        raise InvalidInput(
            "state how you corrected the behaviour and that it will not recur",
            code="commitment_required",
        )
    record = record_on_file(session, subject, record_id)
    rt = rulebook.record_type(record.record_type)
    if rt is None or not rt.negative:
        raise InvalidInput(
            f"record {record_id} does not lower your score; only negative records are repaired",
            code="repair_not_applicable",
        )
    ended = effect_ended(session, record, at)
    if ended is not None:
        raise Conflict(
            f"record {record_id} stopped counting on {_day(ended[0])}; there is nothing to repair",
            code="record_not_in_effect",
        )
    expiry = record.occurred_at + timedelta(days=rt.retention_days)
    if expiry <= at:
        raise Conflict(
            f"record {record_id} stopped counting on {_day(expiry)}, at the end of its "
            "retention period; there is nothing to repair",
            code="record_expired",
        )
    earliest = possible_from(record, rt, rulebook)
    if at < earliest:
        days = rulebook.severity_classes[rt.severity].repair_after_days
        raise Conflict(
            f"a {rt.severity.value} record can be repaired only {days} days after it "
            f"occurred; you may apply for repair of record {record_id} from "
            f"{_day(earliest)}",
            code="repair_too_early",
            details={"possible_from": earliest.isoformat()},
        )
    pending = session.scalar(
        select(Repair.public_id).where(
            Repair.record_id == record.id,
            ~select(RepairDecision.id)
            .where(RepairDecision.repair_id == Repair.id)
            .correlate(Repair)
            .exists(),
        )
    )
    if pending is not None:
        raise Conflict(
            f"your application {pending} to repair this record awaits a decision",
            code="repair_pending",
            details={"repair_id": pending},
        )
    evidence = _evidence(session, record, rt, at)
    repair = Repair(
        public_id=new_id("rep"),
        record_id=record.id,
        subject_id=subject.id,
        commitment=commitment,
        evidence=orjson.dumps(evidence).decode(),
        applied_at=at,
    )
    record_event(
        session,
        kind=journal.EventKind.REPAIR_APPLIED,
        rows=[repair],
        at=at,
        subject_id=subject.id,
        data={
            "repair": repair.public_id,
            "record": record.public_id,
            "subject": subject.public_id,
            "commitment_sha256": journal.text_digest(commitment),
            "evidence": evidence,
        },
        notice=Notice.coded_as(
            coded(
                "repair_applied",
                repair=repair.public_id,
                record=record.public_id,
                record_type={"code": rt.code, "name": rt.name},
            )
        ),
    )
    session.flush()
    return get_repair(session, repair.public_id)


def decide_repair(
    session: Session,
    *,
    repair_id: str,
    approve: bool,
    reasons: str,
    principal_id: int | None,
    at: datetime,
) -> RepairView:
    """A reviewer approves or refuses a repair application, giving reasons either way.
    Approval ends the record's effect at ``at``."""
    reasons = reasons.strip()
    if not reasons:
        raise InvalidInput(
            "give the reasons for the decision; the subject reads them", code="reasons_required"
        )
    repair = session.scalar(select(Repair).where(Repair.public_id == repair_id))
    if repair is None:
        raise NotFound(f"no repair application {repair_id!r}", code="unknown_repair")
    if session.scalar(select(RepairDecision.id).where(RepairDecision.repair_id == repair.id)):
        raise Conflict(f"repair application {repair_id} is already decided", code="repair_decided")
    record = session.get(Record, repair.record_id)
    assert record is not None  # a foreign key
    decision = RepairDecision(
        repair_id=repair.id,
        approved=approve,
        reasons=reasons,
        decided_at=at,
        principal_id=principal_id,
    )
    if approve:
        told = coded(
            "repair_approved", repair=repair_id, record=record.public_id, date=at, reasons=reasons
        )
    else:
        told = coded("repair_refused", repair=repair_id, record=record.public_id, reasons=reasons)
    record_event(
        session,
        kind=journal.EventKind.REPAIR_DECIDED,
        rows=[decision],
        at=at,
        subject_id=repair.subject_id,
        data={
            "repair": repair.public_id,
            "record": record.public_id,
            "approved": approve,
            "reasons_sha256": journal.text_digest(reasons),
        },
        notice=Notice.coded_as(told),
    )
    session.flush()
    return get_repair(session, repair_id)
