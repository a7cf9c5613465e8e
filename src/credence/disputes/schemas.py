"""Request and response bodies of the dispute, statement and repair endpoints.

Unknown fields are refused (``extra="forbid"``) on everything a caller sends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from credence.disputes.repair import RepairView
from credence.disputes.service import MAX_STATEMENT, DisputeView
from credence.ledger.schemas import RecordIn


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DisputeIn(_In):
    """A subject disputes a record on their own file."""

    record_id: str = Field(min_length=1, max_length=40, description="The record (rec_…).")
    reason: str = Field(min_length=1, max_length=2000, description="What is wrong with it.")
    new_information: str | None = Field(
        default=None,
        max_length=5000,
        description="Information the source has not seen; the answer is then due in 45 days "
        "(the rulebook's deadline_days_with_new_information) instead of 30.",
    )


class AnswerIn(_In):
    """The source's (or a reviewer's) answer to a dispute."""

    outcome: Literal["verified", "corrected", "deleted"] = Field(
        description="verified: the record stands; corrected: the record is replaced by "
        "'correction'; deleted: the record stops counting now."
    )
    explanation: str = Field(
        min_length=1, max_length=2000, description="Why, in words the subject can read."
    )
    correction: RecordIn | None = Field(
        default=None,
        description="With outcome 'corrected' only (sources only): the corrected record, "
        "under a new source_ref, about the same subject.",
    )


class DisputeOut(BaseModel):
    dispute_id: str
    record_id: str
    record_type: str | None = Field(description="null once the record is erased")
    subject_id: str
    source: str
    source_name: str
    reason: str
    new_information: str | None
    opened_at: datetime
    deadline: datetime = Field(description="The answer is due before this instant.")
    rulebook_version: str
    status: Literal["open", "verified", "corrected", "deleted", "lapsed"]
    outcome: str | None
    explanation: str | None
    answered_at: datetime | None
    answered_by: str | None
    corrected_record_id: str | None
    lapse_recorded_at: datetime | None
    pending_change: str | None = Field(
        default=None,
        description="An answer deleted or corrected of a record that restricts the subject "
        "awaits a second reviewer's confirmation (this change): the dispute stays open, "
        "and lapses at its deadline if the answer is not confirmed by then.",
    )

    @classmethod
    def of(cls, view: DisputeView) -> DisputeOut:
        return cls(
            dispute_id=view.dispute_id,
            record_id=view.record_id,
            record_type=view.record_type,
            subject_id=view.subject_id,
            source=view.source,
            source_name=view.source_name,
            reason=view.reason,
            new_information=view.new_information,
            opened_at=view.opened_at,
            deadline=view.deadline,
            rulebook_version=view.rulebook_version,
            status=view.status,
            outcome=view.outcome,
            explanation=view.explanation,
            answered_at=view.answered_at,
            answered_by=view.answered_by,
            corrected_record_id=view.corrected_record_id,
            lapse_recorded_at=view.lapse_recorded_at,
            pending_change=view.pending_change,
        )


class StatementIn(_In):
    text: str = Field(
        min_length=1,
        max_length=MAX_STATEMENT,
        description=f"Your statement about the record (at most {MAX_STATEMENT} characters); "
        "it shows with the record on your file and in every explanation.",
    )


class StatementOut(BaseModel):
    record_id: str
    text: str
    at: datetime


class RepairIn(_In):
    """A subject applies for credit repair of a negative record on their file."""

    record_id: str = Field(min_length=1, max_length=40, description="The record (rec_…).")
    commitment: str = Field(
        min_length=1,
        max_length=2000,
        description="How you corrected the behaviour, and your commitment that it will not recur.",
    )


class RepairDecisionIn(_In):
    approve: bool
    reasons: str = Field(min_length=1, max_length=2000, description="Why; the subject reads them.")


class RepairOut(BaseModel):
    repair_id: str
    record_id: str
    record_type: str | None = Field(description="null once the record is erased")
    subject_id: str
    commitment: str
    evidence: list[str] = Field(
        description="Records on the file showing the correction (e.g. the judgment performed)."
    )
    applied_at: datetime
    status: Literal["pending", "approved", "refused"]
    reasons: str | None
    decided_at: datetime | None

    @classmethod
    def of(cls, view: RepairView) -> RepairOut:
        return cls(
            repair_id=view.repair_id,
            record_id=view.record_id,
            record_type=view.record_type,
            subject_id=view.subject_id,
            commitment=view.commitment,
            evidence=view.evidence,
            applied_at=view.applied_at,
            status=view.status,
            reasons=view.reasons,
            decided_at=view.decided_at,
        )
