"""Response and request bodies of the HTTP API (its OpenAPI schema)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from credence.clock import Instant
from credence.decisions.service import Decision
from credence.ledger.holds import CAUSE_TEXT
from credence.ledger.lifting import ChangeView
from credence.ledger.schemas import NO_NUL, RecordResult
from credence.ledger.subject_file import RecordView
from credence.scoring.completeness import Completeness
from credence.scoring.online import Score


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class EditionOut(Out):
    version: str
    content_hash: str
    published_at: datetime


class RulebookOut(EditionOut):
    rulebook: dict[str, Any] = Field(description="The rulebook as published, parsed.")
    purposes: dict[str, Any] = Field(
        description="The fixed catalogue of purposes and the categories each may read."
    )
    domains: dict[str, Any] = Field(
        description="The fixed catalogue of conduct domains a record type may belong to, "
        "and the statutes each may cite."
    )
    statutes: dict[str, Any] = Field(
        description="The fixed catalogue of statutes a record type may rest on (English "
        "and Chinese titles)."
    )


class SubjectRef(Out):
    subject_id: str
    kind: str


class SubjectRegistered(SubjectRef):
    created: bool


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identifier: str = Field(min_length=1, max_length=40, description="National identifier.")


class RecordBatchIn(BaseModel):
    """A batch of records. Each item has the shape of ``RecordIn`` (see the import docs):
    ``source_ref``, ``subject_id`` or ``identifier``, ``record_type``, ``occurred_at``,
    optional ``quantity``, ``decision_ref`` and ``certified`` (only to reinsert a record
    deleted after a dispute). Each is checked on its own."""

    model_config = ConfigDict(extra="forbid")
    records: list[Any] = Field(min_length=1)
    backfill_run: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        pattern=NO_NUL,
        description="The approved backfill run (bkf_…) the batch is delivered under: its "
        "records within the run's scope are exempt from the intake's volume limits. An "
        "unknown run (404 unknown_backfill_run), another source's (403 "
        "backfill_run_of_another_source) or an outage's catch-up, which intake applies "
        "by itself (403 backfill_run_is_catch_up), refuses the whole batch.",
    )


class BatchOut(BaseModel):
    created: int
    duplicates: int
    rejected: int
    held: int = Field(
        description="Records stored but held for a reviewer by the intake's checks (each "
        "result says why): they count for nothing until released."
    )
    results: list[RecordResult]


class RetractIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000)


class ChangeOut(BaseModel):
    """A change that lifts a sanction, held until a reviewer other than whoever asked
    confirms it: a source's retraction, or a dispute answered deleted or corrected, of
    a record that restricts someone. The record counts until it is confirmed."""

    change_id: str
    kind: Literal["retraction", "dispute_deleted", "dispute_corrected"]
    record_id: str
    record_type: str | None = Field(description="null once the record is erased")
    subject_id: str
    source: str = Field(description="The record's source (code).")
    source_name: str
    dispute_id: str | None = Field(description="The dispute a held answer answers.")
    requested_by: Literal["source", "reviewer"]
    requested_at: datetime
    reason: str = Field(description="The retraction's reason or the answer's explanation.")
    correction: dict[str, Any] | None = Field(
        description="A held correction: the record appended when the change is confirmed."
    )
    status: Literal["pending", "confirmed", "refused", "superseded"] = Field(
        description="superseded: the record stopped counting first by another cause (a "
        "dispute's deadline passed: the lapse wins)."
    )
    decided_at: datetime | None
    decided_reason: str | None = Field(description="The reviewer's reasons.")
    ended_at: datetime | None = Field(description="When the record stopped counting, if it has.")
    ended_by: str | None

    @classmethod
    def of(cls, view: ChangeView) -> ChangeOut:
        return cls(
            change_id=view.change_id,
            kind=view.kind,
            record_id=view.record_id,
            record_type=view.record_type,
            subject_id=view.subject_id,
            source=view.source,
            source_name=view.source_name,
            dispute_id=view.dispute_id,
            requested_by=view.requested_by,
            requested_at=view.requested_at,
            reason=view.reason,
            correction=view.correction,
            status=view.status,
            decided_at=view.decided_at,
            decided_reason=view.decided_reason,
            ended_at=view.ended_at,
            ended_by=view.ended_by,
        )


class ChangeDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reasons: str = Field(
        min_length=1, max_length=2000, description="Why, in words the subject can read."
    )


class HoldOut(Out):
    """A record held at intake: stored and on the subject's file, but counting in no
    score until a reviewer releases it (it counts from the release on) or rejects it
    (it never counts)."""

    hold_id: str
    record_id: str
    record_type: str | None = Field(description="null once the record is erased")
    subject_id: str
    source: str = Field(description="The record's source (code).")
    cause: str = Field(
        description="Why it is held: burst, new_identity, spacing, before_birth or "
        "identity_voided (explanation says it in words)."
    )
    explanation: str
    held_at: datetime
    status: Literal["held", "released", "rejected"]
    decided_at: datetime | None
    decided_reason: str | None = Field(description="The reviewer's reasons.")


class HoldDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    # Blank or missing reasons are refused by the service (422 reasons_required).
    reasons: str = Field(
        default="", max_length=2000, description="Why, in words the subject can read."
    )


class BackfillRunIn(BaseModel):
    """A backfill run to approve: the source whose history it loads, the period its
    records occurred in (from inclusive, until exclusive) and how many it may exempt."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=64, pattern=NO_NUL, description="Code.")
    occurred_from: Instant
    occurred_until: Instant
    expected_records: int = Field(strict=True, description="At most this many are exempted.")


class BackfillRunOut(Out):
    """An approved backfill run: records of its source that occurred in its period,
    delivered under it, are exempt from intake's burst and new-identity limits, up to
    the expected volume; plausibility always applies."""

    run_id: str = Field(description="What a source names as backfill_run when delivering.")
    source: str
    occurred_from: datetime
    occurred_until: datetime
    expected_records: int
    exempted: int = Field(description="Records exempted so far, of expected_records.")
    approved_at: datetime
    kind: Literal["approved", "outage_catch_up"] = Field(
        default="approved",
        description="approved: by an operator. outage_catch_up: opened by intake when "
        "the source reported again after an outage, for what it missed at its usual "
        "rate; exempt from the burst limit only, and never named by a client.",
    )


class RetractionOut(BaseModel):
    record_id: str
    status: Literal["retracted", "pending_confirmation"] = Field(
        description="retracted: the record stopped counting at retracted_at. "
        "pending_confirmation (answered 202): the record restricts someone, so the "
        "retraction waits for a reviewer's confirmation (pending_change) and the record "
        "counts until then."
    )
    retracted_at: datetime | None
    created: bool = Field(
        description="false for a resend: the retraction, or the change awaiting "
        "confirmation, was asked for before."
    )
    pending_change: ChangeOut | None = None


class ReasonOut(BaseModel):
    code: str
    text: str
    points: float


class BoundOut(BaseModel):
    """A bound of the rulebook (bounded returns) that cut what the subject's records add."""

    scope: str = Field(description="record_type (the type's max_points) or category (its cap)")
    code: str
    records: int = Field(description="Records behind the points")
    within: int = Field(description="How many of them, the weightiest first, count")
    before: float = Field(description="Points before the bound")
    after: float = Field(description="Points that count")
    text: str


class FrozenOut(BaseModel):
    """Why a record's age stopped: its source was in outage at the score's instant."""

    source_name: str
    since: datetime = Field(description="When the source's outage began.")
    days: float = Field(description="Days of the record's age the outage took away.")
    max_days: int = Field(description="The rulebook's maximum freeze, in days.")
    decaying_since: datetime | None = Field(
        description="When the maximum ran out and the record began to decay again."
    )
    text: str


class ContributionOut(BaseModel):
    record_id: str
    record_type: str
    name: str
    category: str | None
    source: str
    source_name: str
    occurred_at: datetime
    received_at: datetime
    quantity: float | None
    decision_ref: str | None
    weight: float
    points: float
    status: str
    ended_at: datetime | None
    disputed: bool = Field(
        default=False, description="The subject has a dispute of this record open."
    )
    statement: str | None = Field(
        default=None, description="The subject's statement about this record."
    )
    held: RecordHoldOut | None = Field(
        default=None,
        description=(
            "Set when intake held the record for review: it counts for nothing until a "
            "reviewer releases it (from then on) and never if rejected."
        ),
    )
    frozen: FrozenOut | None = Field(
        default=None,
        description=(
            "Set when the record's source is in outage: its age counts to the outage's "
            "start, for at most the rulebook's maximum (outages are not behaviour)."
        ),
    )


class RecordHoldOut(BaseModel):
    hold_id: str
    cause: str
    explanation: str
    status: str = Field(description="held, released or rejected (as of the score's instant)")
    released_at: datetime | None = None


class MissingSourceOut(Out):
    source: str = Field(description="The source in outage (its code).")
    source_name: str
    since: datetime = Field(description="When its outage began.")
    record_types: list[str] = Field(description="Its silent record types of this category.")


class CompletenessOut(Out):
    category: str
    complete: bool = Field(description="No source that reports on it is in outage.")
    missing: list[MissingSourceOut] = Field(
        description="The sources in outage that report on the category (empty if complete)."
    )


class OutageHandlingOut(Out):
    mode: str = Field(description="open or closed: what the service does (the rulebook's).")
    changed_outcome: bool = Field(
        description="Failing closed withheld a reward the records held would have granted."
    )
    text: str = Field(description="What is missing and what the service did about it.")


class ScoreOut(BaseModel):
    subject_id: str
    as_of: datetime
    rulebook_version: str
    rulebook_hash: str
    base: float
    range: tuple[float, float]
    total: float
    tier: str
    sub_scores: dict[str, float]
    reasons: list[ReasonOut]
    bounds: list[BoundOut] = Field(
        description="What the rulebook's bounded returns cut: repetition past a bound adds nothing"
    )
    contributions: list[ContributionOut]
    completeness: list[CompletenessOut] = Field(
        default_factory=list,
        description="Each category: complete, or the sources in outage that report on it "
        "(their records stop decaying while they are silent).",
    )


class CodedOut(BaseModel):
    """A reason or warning as a code with parameters (the catalogue of
    ``credence.wording``), from which its words are rendered in a reader's language."""

    code: str
    params: dict[str, Any]


class InquiryOut(BaseModel):
    decision_id: str
    asked_by: str
    service: str
    purpose: str
    outcome: str
    terms: str | None
    reasons: list[str]
    reason_codes: list[CodedOut] | None = Field(
        default=None,
        description="The same reasons as codes with parameters; null for a decision made "
        "before reasons were coded (its reasons are in English only).",
    )
    at: datetime


class NotificationOut(BaseModel):
    kind: str
    text: str
    code: str | None = Field(
        default=None,
        description="The message's code (credence.wording), rendered from `params` in a "
        "reader's language; null for a message written before messages were coded.",
    )
    params: dict[str, Any] | None = None
    at: datetime
    delivered_at: datetime | None
    channel: str | None


class AccessOut(BaseModel):
    """One read of the file: who, in what role, what they read, why, and when."""

    role: str
    actor: str
    action: str
    what: str
    purpose: str = Field(
        description="The purpose declared, as logged: a code of the catalogue "
        "(dispute_handling, repair_review, audit, legal_order:<reference>), 'own file' "
        "for your own reads, 'operations' for an operator's action."
    )
    purpose_label: str = Field(description="The purpose in plain words.")
    legal_order_reference: str | None = Field(
        description="For a read under a legal order: the order's reference."
    )
    at: datetime


class ErasureOut(BaseModel):
    """A record erased from the file: only its id, why and when remain."""

    record_id: str
    reason: str = Field(description="retention_ended or dispute_deleted")
    erased_at: datetime
    log_entry: int | None = Field(default=None, description="The erasure's log entry (seq).")


class FileOut(BaseModel):
    subject_id: str
    kind: str
    name: str
    registered_at: datetime
    score: ScoreOut
    inquiries: list[InquiryOut]
    erasures: list[ErasureOut] = Field(
        default_factory=list,
        description="Records whose content was erased (retention ended, or deleted after a "
        "dispute), newest first: their content is gone from every table and answer.",
    )
    shown_tier: str | None = Field(
        default=None,
        description="The tier shown with hysteresis (updated by the nightly rescore); "
        "score.tier is the raw tier of the score as of now.",
    )
    log_entries: dict[str, int] = Field(
        default_factory=dict,
        description="The transparency-log entry (seq) of each record, by record id: fetch "
        "its proof at /v1/log/proof/inclusion?seq=… and check it against the signed "
        "checkpoint at /v1/log/checkpoint.",
    )
    accessed_by: list[AccessOut] = Field(
        default_factory=list, description="Who read this file or score, when and why."
    )
    notifications: list[NotificationOut] = Field(
        default_factory=list, description="What happened on the file, newest first."
    )
    pending_changes: list[ChangeOut] = Field(
        default_factory=list,
        description="Changes that lift a sanction on this file (a retraction, or a "
        "dispute's answer, of a record that restricts you), held for a reviewer's "
        "confirmation, and what became of them; newest first. A pending one does not "
        "count yet: the record still does.",
    )


class DecisionIn(BaseModel):
    # The direct decision path validates its bodies with this model before the request
    # guard (credence.api.errors.RequestGuard) sees them: a NUL is refused here (by a
    # pattern, as in RecordIn), and the request goes on to the guard, which answers 422
    # as for any other endpoint.
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    subject_id: str | None = Field(default=None, max_length=40, pattern=NO_NUL)
    identifier: str | None = Field(
        default=None,
        max_length=40,
        pattern=NO_NUL,
        description="National identifier, instead of subject_id.",
    )


class DecisionOut(BaseModel):
    decision_id: str
    subject_id: str
    service: str
    service_name: str
    kind: str
    purpose: str
    categories: list[str]
    outcome: str
    terms: str | None
    reasons: list[str]
    reason_codes: list[CodedOut] = Field(
        default_factory=list,
        description="The same reasons as codes with parameters, in the same order: what "
        "`reasons` is rendered from (in English), and any reader renders in their language.",
    )
    cited_records: list[str]
    score: float
    range: tuple[float, float]
    as_of: datetime
    rulebook_version: str
    rulebook_hash: str
    how_to_dispute: str | None
    dispute_deadline_days: int | None
    warnings: list[str] = Field(
        default_factory=list,
        description="Set when a restriction is pending after a warning (warn before punishing).",
    )
    warning_codes: list[CodedOut] = Field(
        default_factory=list, description="The same warnings as codes with parameters."
    )
    completeness: list[CompletenessOut] = Field(
        default_factory=list,
        description="Each category the service reads: complete, or the sources in outage.",
    )
    outage_handling: OutageHandlingOut | None = Field(
        default=None,
        description="How the service met an incomplete category (the rulebook's on_outage); "
        "null when every category is complete.",
    )


def score_out(subject_id: str, score: Score) -> ScoreOut:
    """The API form of a score and its explanation."""
    return ScoreOut(
        subject_id=subject_id,
        as_of=score.as_of,
        rulebook_version=score.rulebook_version,
        rulebook_hash=score.rulebook_hash,
        base=score.base,
        range=(score.minimum, score.maximum),
        total=score.total,
        tier=score.tier,
        sub_scores={c.value: v for c, v in score.sub_scores.items()},
        reasons=[ReasonOut(code=r.code, text=r.text, points=r.points) for r in score.reasons],
        bounds=[BoundOut(**asdict(b)) for b in score.bounds],
        completeness=[CompletenessOut(**completeness_fields(c)) for c in score.completeness],
        contributions=[
            ContributionOut(
                record_id=c.record.record_id,
                record_type=c.record.record_type,
                name=c.name,
                category=c.category.value if c.category else None,
                source=c.record.source_code,
                source_name=c.record.source_name,
                occurred_at=c.record.occurred_at,
                received_at=c.record.received_at,
                quantity=c.record.quantity,
                decision_ref=c.record.decision_ref,
                weight=c.weight,
                points=c.points,
                status=c.status,
                ended_at=c.record.ended_at,
                disputed=c.record.disputed,
                statement=c.record.statement,
                held=_held(c.record),
                frozen=None
                if c.frozen is None
                else FrozenOut(**asdict(c.frozen), text=c.frozen.text),
            )
            for c in score.contributions
        ],
    )


def _held(record: RecordView) -> RecordHoldOut | None:
    if record.hold_id is None or record.hold_cause is None or record.hold_status is None:
        return None
    return RecordHoldOut(
        hold_id=record.hold_id,
        cause=record.hold_cause,
        explanation=CAUSE_TEXT.get(record.hold_cause, record.hold_cause),
        status=record.hold_status,
        released_at=record.released_at,
    )


def decision_out(decision: Decision) -> DecisionOut:
    return DecisionOut(**decision_fields(decision))


def decision_fields(decision: Decision) -> dict[str, Any]:
    """The fields of :class:`DecisionOut` for a decision, as plain values: what
    :func:`decision_out` validates, and what the API's direct decision path serialises
    (with orjson, to the same JSON)."""
    adverse = decision.adverse
    return {
        "decision_id": decision.decision_id,
        "subject_id": decision.subject_id,
        "service": decision.service,
        "service_name": decision.service_name,
        "kind": decision.kind.value,
        "purpose": decision.purpose,
        "categories": list(decision.categories),
        "outcome": decision.outcome.value,
        "terms": decision.terms,
        "reasons": decision.reasons,
        "reason_codes": decision.reason_codes,
        "cited_records": decision.cited_records,
        "score": decision.score,
        "range": (decision.score_min, decision.score_max),
        "as_of": decision.as_of,
        "rulebook_version": decision.rulebook_version,
        "rulebook_hash": decision.rulebook_hash,
        "how_to_dispute": decision.how_to_dispute if adverse else None,
        "dispute_deadline_days": decision.dispute_deadline_days if adverse else None,
        "warnings": decision.warnings,
        "warning_codes": decision.warning_codes,
        "completeness": [completeness_fields(c) for c in decision.completeness],
        "outage_handling": None
        if decision.outage_handling is None
        else {
            "mode": decision.outage_handling.mode.value,
            "changed_outcome": decision.outage_handling.changed_outcome,
            "text": decision.outage_handling.text,
        },
    }


def completeness_fields(c: Completeness) -> dict[str, Any]:
    """The fields of :class:`CompletenessOut` for one category, as plain values."""
    return {
        "category": c.category.value,
        "complete": c.complete,
        "missing": [
            {
                "source": m.source,
                "source_name": m.source_name,
                "since": m.since,
                "record_types": list(m.record_types),
            }
            for m in c.missing
        ],
    }
