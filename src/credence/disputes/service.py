"""Disputes: a subject contests a record, its source answers within a deadline.

The life of a dispute (due process, on the model of the US Fair Credit Reporting Act's
reinvestigation: the source must verify, correct or delete within a deadline)::

    opened ──► answered verified    the record stands
          ├──► answered corrected   the record's effect ends; the source's corrected
          │                         record is appended in the same transaction
          ├──► answered deleted     the record's effect ends
          └──► lapsed               no answer before the deadline: the record's effect
                                    ends at exactly the deadline (unverifiable)

The deadline is set when the dispute opens, from the rulebook in force: ``[dispute]
deadline_days`` (30 by default), or ``deadline_days_with_new_information`` (45) when the
subject brings new information. The answer is due strictly before it. The lapse is
exact and lazy: :mod:`credence.ledger.endings` ends the record's effect at the deadline
whether or not anything runs, so a score as of any instant is reproducible; :func:`sweep`
then writes the explicit ledger entry for each lapsed dispute. An answer after the
deadline is refused: a lapsed record comes back only if its source re-submits it with a
certification (see :func:`credence.ledger.service.plan_records`).

Every step writes a journal entry in the caller's transaction and tells the subject
(:func:`credence.notifications.service.record_event`). Free text (reasons, explanations,
statements) stays in the dispute tables and enters the journal only as a SHA-256: the
journal is what the transparency log publishes in proofs, and a subject's words may
carry personal data, even a national identifier.

Functions take the caller's session and commit nothing. Who may call them is decided by
the one policy layer (:mod:`credence.access.policy`) in the API and CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from credence import journal
from credence.db import insert_new
from credence.disputes.tables import Dispute, DisputeAnswer, DisputeLapse, Statement
from credence.errors import Conflict, Forbidden, InvalidInput, NotFound
from credence.ids import new_id
from credence.ledger import endings, lifting, registry
from credence.ledger import service as ledger
from credence.ledger.schemas import RecordIn
from credence.ledger.tables import Record, Source, Subject
from credence.notifications.service import Notice, record_event
from credence.rulebook.model import Rulebook
from credence.wording import coded

AnswerOutcome = Literal["verified", "corrected", "deleted"]
DisputeStatus = Literal["open", "verified", "corrected", "deleted", "lapsed"]
StatusFilter = Literal["open", "answered", "lapsed", "all"]

OUTCOMES: tuple[str, ...] = get_args(AnswerOutcome)
_ANSWERED: dict[str, DisputeStatus] = {
    "verified": "verified",
    "corrected": "corrected",
    "deleted": "deleted",
}

#: Longest statement a subject may attach to a record (characters).
MAX_STATEMENT = 500

_DISPUTES = Dispute.metadata.tables[Dispute.__tablename__]


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class Answerer:
    """Who answers a dispute: the source that reported the record, or a reviewer."""

    kind: Literal["source", "reviewer"]
    name: str
    principal_id: int | None = None


@dataclass(frozen=True)
class DisputeView:
    """A dispute and where it stands as of an instant."""

    dispute_id: str
    record_id: str
    #: None once the record is erased (its content is gone).
    record_type: str | None
    subject_id: str
    source: str
    source_name: str
    reason: str
    new_information: str | None
    opened_at: datetime
    deadline: datetime
    rulebook_version: str
    status: DisputeStatus
    outcome: str | None
    explanation: str | None
    answered_at: datetime | None
    answered_by: str | None
    corrected_record_id: str | None
    #: When the sweep wrote the lapse entry (the effect ended at the deadline regardless).
    lapse_recorded_at: datetime | None
    #: Internal ids, for authorisation (whose file, whose record); not shown.
    owner_subject: int
    owner_source: int
    #: An answer that awaits a second reviewer's confirmation (``chg_…``): the dispute
    #: is open until it is confirmed (see :mod:`credence.ledger.lifting`).
    pending_change: str | None = None


@dataclass(frozen=True)
class StatementView:
    record_id: str
    text: str
    at: datetime


# --- reading -------------------------------------------------------------------------


def record_on_file(session: Session, subject: Subject, record_id: str) -> Record:
    """A record on ``subject``'s file; :class:`NotFound` if absent or on another file
    (the same answer for both, so nobody probes other files)."""
    record = session.scalar(select(Record).where(Record.public_id == record_id))
    if record is None or record.subject_id != subject.id:
        raise NotFound(f"there is no record {record_id!r} on your file", code="unknown_record")
    ledger.refuse_erased(record)
    return record


def effect_ended(session: Session, record: Record, at: datetime) -> tuple[datetime, str] | None:
    """``(ended_at, cause)`` if the record's effect ended by a ledger entry at or before
    ``at`` (by the one definition, :mod:`credence.ledger.endings`), else None."""
    events = endings.ending_events(select(Record.id).where(Record.id == record.id)).subquery()
    found = session.execute(
        select(events.c.ended_at, events.c.cause).where(events.c.ended_at <= at)
    ).all()
    if not found:
        return None
    ended_at, cause = min(found, key=lambda e: (e[0], endings.CAUSE_ORDER.index(e[1])))
    return ended_at, cause


def _views(session: Session, query: Select[Any], at: datetime) -> list[DisputeView]:
    corrected = Record.__table__.alias("corrected")
    rows = session.execute(
        query.add_columns(
            Record.public_id,
            Record.record_type,
            Subject.public_id,
            Source.code,
            Source.name,
            DisputeAnswer,
            corrected.c.public_id,
            DisputeLapse.recorded_at,
            lifting.PendingChange.public_id,
        )
        .join(Record, Record.id == Dispute.record_id)
        .join(Subject, Subject.id == Dispute.subject_id)
        .join(Source, Source.id == Dispute.source_id)
        .outerjoin(DisputeAnswer, DisputeAnswer.dispute_id == Dispute.id)
        .outerjoin(corrected, corrected.c.id == DisputeAnswer.corrected_record_id)
        .outerjoin(DisputeLapse, DisputeLapse.dispute_id == Dispute.id)
        .outerjoin(
            lifting.PendingChange,
            (lifting.PendingChange.reference == Dispute.public_id)
            & (lifting.PendingChange.status == "pending"),
        )
        .order_by(Dispute.deadline, Dispute.id)
    ).all()
    views = []
    for d, record_id, record_type, subject_id, code, name, answer, fixed, swept, held in rows:
        answered = answer is not None and answer.answered_at <= at
        status: DisputeStatus
        if answered:
            status = _ANSWERED[answer.outcome]
        elif d.deadline <= at:
            status = "lapsed"
        else:
            status = "open"
        views.append(
            DisputeView(
                dispute_id=d.public_id,
                record_id=record_id,
                record_type=record_type,
                subject_id=subject_id,
                source=code,
                source_name=name,
                reason=d.reason,
                new_information=d.new_information,
                opened_at=d.opened_at,
                deadline=d.deadline,
                rulebook_version=d.rulebook_version,
                status=status,
                outcome=answer.outcome if answered else None,
                explanation=answer.explanation if answered else None,
                answered_at=answer.answered_at if answered else None,
                answered_by=answer.answered_by if answered else None,
                corrected_record_id=fixed if answered else None,
                lapse_recorded_at=swept if swept is not None and swept <= at else None,
                owner_subject=d.subject_id,
                owner_source=d.source_id,
                pending_change=held if status == "open" else None,
            )
        )
    return views


def get_dispute(session: Session, dispute_id: str, at: datetime) -> DisputeView:
    """One dispute as of ``at``; :class:`NotFound` if there is none."""
    found = _views(session, select(Dispute).where(Dispute.public_id == dispute_id), at)
    if not found:
        raise NotFound(f"no dispute {dispute_id!r}", code="unknown_dispute")
    return found[0]


def list_disputes(
    session: Session,
    *,
    at: datetime,
    status: StatusFilter = "open",
    source_id: int | None = None,
    subject_id: int | None = None,
) -> list[DisputeView]:
    """Disputes as of ``at``, earliest deadline first: a source's queue (``source_id``),
    a subject's own (``subject_id``), or all of them (neither, for reviewers)."""
    query = select(Dispute).where(Dispute.opened_at <= at)
    if source_id is not None:
        query = query.where(Dispute.source_id == source_id)
    if subject_id is not None:
        query = query.where(Dispute.subject_id == subject_id)
    answered = (
        select(DisputeAnswer.id)
        .where(DisputeAnswer.dispute_id == Dispute.id, DisputeAnswer.answered_at <= at)
        .correlate(Dispute)
        .exists()
    )
    if status == "open":
        query = query.where(Dispute.deadline > at, ~answered)
    elif status == "answered":
        query = query.where(answered)
    elif status == "lapsed":
        query = query.where(Dispute.deadline <= at, ~answered)
    return _views(session, query, at)


def _open_dispute_of(session: Session, record: Record, at: datetime) -> Dispute | None:
    """The record's unanswered dispute whose deadline is after ``at``, if any; also one
    opened after ``at``: a request that read the clock just before another opened a
    dispute must not open a second."""
    return session.scalar(
        select(Dispute).where(
            Dispute.record_id == record.id,
            Dispute.deadline > at,
            ~select(DisputeAnswer.id)
            .where(DisputeAnswer.dispute_id == Dispute.id)
            .correlate(Dispute)
            .exists(),
        )
    )


# --- opening -------------------------------------------------------------------------


def deadline_for(rulebook: Rulebook, opened_at: datetime, *, new_information: bool) -> datetime:
    """When the answer to a dispute opened at ``opened_at`` is due (exclusive)."""
    rules = rulebook.dispute
    days = rules.deadline_days_with_new_information if new_information else rules.deadline_days
    return opened_at + timedelta(days=days)


def open_dispute(
    session: Session,
    *,
    subject: Subject,
    record_id: str,
    reason: str,
    new_information: str | None,
    rulebook: Rulebook,
    at: datetime,
) -> DisputeView:
    """The subject disputes a record on their own file; the source's queue shows it at
    once. Refused for a record whose effect already ended, while another dispute of the
    record is open, and (without new information) after a dispute of it was answered
    ``verified``: a repeat dispute needs something the source has not yet seen."""
    reason = reason.strip()
    info = (new_information or "").strip() or None
    if not reason:
        raise InvalidInput("say what is wrong with the record", code="reason_required")
    record = record_on_file(session, subject, record_id)
    source = session.get_one(Source, record.source_id)
    deadline = deadline_for(rulebook, at, new_information=info is not None)
    while True:
        _may_open(session, record, record_id, info, at)
        # Disputes opened at once on one reading of the store all pass the checks above
        # and count the same disputes before theirs; the store keeps one dispute per
        # record and count (a unique index), the others store nothing and look again:
        # they find it open and get the refusal a second dispute gets. (No insert fails
        # on the server.) Each pass that stores nothing has seen a dispute the next
        # pass counts, so this ends.
        prior = session.scalar(
            select(func.count()).select_from(Dispute).where(Dispute.record_id == record.id)
        )
        inserted = insert_new(
            session,
            _DISPUTES,
            {
                "public_id": new_id("dsp"),
                "record_id": record.id,
                "subject_id": subject.id,
                "source_id": record.source_id,
                "reason": reason,
                "new_information": info,
                "opened_at": at,
                "deadline": deadline,
                "rulebook_version": rulebook.version,
                "prior_disputes": prior or 0,
            },
            unique=("record_id", "prior_disputes"),
        )
        if inserted is not None:
            break
    dispute = session.get_one(Dispute, inserted)
    rt = rulebook.record_type(record.record_type)
    record_event(
        session,
        kind=journal.EventKind.DISPUTE_OPENED,
        rows=[dispute],
        at=at,
        subject_id=subject.id,
        data={
            "dispute": dispute.public_id,
            "record": record.public_id,
            "subject": subject.public_id,
            "source": source.code,
            "deadline": dispute.deadline,
            "rulebook_version": rulebook.version,
            "reason_sha256": journal.text_digest(reason),
            "new_information_sha256": journal.text_digest(info) if info else None,
        },
        notice=Notice.coded_as(
            coded(
                "dispute_opened",
                dispute=dispute.public_id,
                record=record.public_id,
                record_type={
                    "code": record.record_type,
                    "name": rt.name if rt else record.record_type,
                },
                source=source.name,
                deadline=dispute.deadline,
            )
        ),
    )
    session.flush()
    return get_dispute(session, dispute.public_id, at)


def _may_open(
    session: Session, record: Record, record_id: str, info: str | None, at: datetime
) -> None:
    """Refuse a dispute of ``record`` now (see :func:`open_dispute`) if it may not open."""
    ended = effect_ended(session, record, at)
    if ended is not None:
        raise Conflict(
            f"record {record_id} stopped counting on {_when(ended[0])} ({ended[1]}); there "
            "is nothing left to dispute",
            code="record_not_in_effect",
        )
    already = _open_dispute_of(session, record, at)
    if already is not None:
        raise Conflict(
            f"dispute {already.public_id} of this record is already open; its answer is due "
            f"by {_when(already.deadline)}",
            code="dispute_already_open",
            details={"dispute_id": already.public_id, "deadline": already.deadline.isoformat()},
        )
    if info is None:
        verified = session.execute(
            select(Dispute.public_id, DisputeAnswer.answered_at, DisputeAnswer.explanation)
            .join(DisputeAnswer, DisputeAnswer.dispute_id == Dispute.id)
            .where(Dispute.record_id == record.id, DisputeAnswer.outcome == "verified")
            .order_by(DisputeAnswer.answered_at.desc())
            .limit(1)
        ).first()
        if verified is not None:
            raise Conflict(
                f"your dispute {verified[0]} of this record was answered on "
                f"{_when(verified[1])}: the source verified it ({verified[2]}). A new "
                "dispute of the same record needs new information the source has not "
                "seen; you may also add a statement to the record",
                code="repeat_dispute",
                details={"dispute_id": verified[0]},
            )


# --- answering -----------------------------------------------------------------------


def _correction(session: Session, correction: RecordIn, subject: Subject) -> RecordIn:
    named = (
        correction.subject_id == subject.public_id
        if correction.subject_id is not None
        else registry.get_subject(session, identifier=correction.identifier or "").id == subject.id
    )
    if not named:
        raise InvalidInput(
            "a correction must be about the same subject as the disputed record",
            code="correction_other_subject",
        )
    return correction


def answer_dispute(
    session: Session,
    *,
    dispute_id: str,
    outcome: str,
    explanation: str,
    by: Answerer,
    rulebook: Rulebook,
    at: datetime,
    correction: RecordIn | None = None,
) -> DisputeView:
    """Answer a dispute before its deadline: ``verified`` (the record stands),
    ``corrected`` (the source sends ``correction``; the disputed record's effect ends and
    the corrected record is appended, linked to the dispute) or ``deleted`` (the
    record's effect ends now). Refused once answered, and at or after the deadline: the
    record's effect has then ended as unverifiable, and a late answer cannot revive it.

    ``deleted`` or ``corrected`` of a record that restricts someone
    (:func:`credence.ledger.lifting.lifts_a_sanction`) is held instead: a pending change
    that takes effect only when a reviewer other than whoever answered confirms it
    (:mod:`credence.disputes.four_eyes`). The dispute stays open meanwhile, its deadline
    running: unconfirmed by then, it lapses as any unanswered dispute does."""
    if outcome not in OUTCOMES:
        raise InvalidInput(
            f"outcome must be one of {', '.join(OUTCOMES)}", code="invalid_dispute_outcome"
        )
    explanation = explanation.strip()
    if not explanation:
        raise InvalidInput(
            "explain the answer in words the subject can read", code="explanation_required"
        )
    dispute = session.scalar(select(Dispute).where(Dispute.public_id == dispute_id))
    if dispute is None or dispute.opened_at > at:
        raise NotFound(f"no dispute {dispute_id!r}", code="unknown_dispute")
    if session.scalar(select(DisputeAnswer.id).where(DisputeAnswer.dispute_id == dispute.id)):
        raise Conflict(f"dispute {dispute_id} is already answered", code="dispute_answered")
    if at >= dispute.deadline:
        raise Conflict(
            f"dispute {dispute_id} lapsed at {_when(dispute.deadline)} without an answer: the "
            "record stopped counting then, as unverifiable. It can come back only if you "
            "re-submit it with certified: true",
            code="dispute_lapsed",
        )
    record = session.get(Record, dispute.record_id)
    source = session.get(Source, dispute.source_id)
    subject = session.get(Subject, dispute.subject_id)
    assert record is not None  # foreign keys, all three
    assert source is not None
    assert subject is not None
    held = lifting.pending_of(session, record.id)
    if held is not None and held.reference == dispute.public_id:
        raise Conflict(
            f"dispute {dispute_id} was answered {held.kind.removeprefix('dispute_')} on "
            f"{_when(held.requested_at)}; that answer (change {held.public_id}) awaits a "
            "reviewer's confirmation, and the dispute takes no other answer meanwhile",
            code="answer_awaits_confirmation",
            details={"change_id": held.public_id},
        )
    if outcome == "corrected":
        if by.kind != "source":
            raise Forbidden(
                "only the source that reported the record can send its correction; a "
                "reviewer may answer verified or deleted",
                code="correction_needs_source",
            )
        if correction is None:
            raise InvalidInput(
                "an answer 'corrected' carries the corrected record in 'correction'",
                code="correction_required",
            )
        correction = _correction(session, correction, subject)
    elif correction is not None:
        raise InvalidInput(
            f"only an answer 'corrected' carries a correction, not {outcome!r}",
            code="correction_not_expected",
        )
    if outcome != "verified" and lifting.lifts_a_sanction(session, record, rulebook, at):
        _hold_answer(
            session,
            dispute=dispute,
            record=record,
            source=source,
            outcome=outcome,
            explanation=explanation,
            by=by,
            correction=correction,
            rulebook=rulebook,
            at=at,
        )
    else:
        apply_answer(
            session,
            dispute=dispute,
            outcome=outcome,
            explanation=explanation,
            answered_by=by.kind,
            principal_id=by.principal_id,
            correction=correction,
            rulebook=rulebook,
            at=at,
        )
    session.flush()
    return get_dispute(session, dispute_id, at)


def _checked_correction(
    session: Session, source: Source, correction: RecordIn, rulebook: Rulebook, at: datetime
) -> None:
    """Refuse a correction its source could not submit now (checked, nothing written)."""
    planned = ledger.plan_records(
        session, source=source, records=[correction], rulebook=rulebook, at=at
    )[0].result
    if planned.status != "created":
        raise _not_created(planned.error)


def _not_created(error: dict[str, Any] | None) -> InvalidInput:
    error = error or {}
    return InvalidInput(
        str(
            error.get("message")
            or "the correction repeats a record already sent; send it under a new source_ref"
        ),
        code=str(error.get("code") or "correction_not_new"),
        details={"correction": error.get("details")},
    )


def _hold_answer(
    session: Session,
    *,
    dispute: Dispute,
    record: Record,
    source: Source,
    outcome: str,
    explanation: str,
    by: Answerer,
    correction: RecordIn | None,
    rulebook: Rulebook,
    at: datetime,
) -> None:
    """Hold an answer that lifts a sanction until a second reviewer confirms it."""
    fixed: dict[str, Any] | None = None
    if correction is not None:
        _checked_correction(session, source, correction, rulebook, at)
        # Kept by the subject's public id, never by a national identifier.
        subject_id = session.get_one(Subject, dispute.subject_id).public_id
        fixed = correction.model_copy(
            update={"subject_id": subject_id, "identifier": None}
        ).model_dump(mode="json", exclude_none=True)
    rt = rulebook.record_type(record.record_type)
    what = f"record {record.public_id} ({rt.name if rt else record.record_type})"
    who = source.name if by.kind == "source" else "A Credence reviewer"

    def notice(change: str) -> str:
        return (
            f"{who} answered your dispute {dispute.public_id} of {what}: {outcome}. "
            f"{explanation} Because the record restricts you, this answer takes effect "
            "only once a Credence reviewer other than whoever answered confirms it (change "
            f"{change}); until then the record still counts. If it is not confirmed by "
            f"{_when(dispute.deadline)}, your dispute lapses then and the record stops "
            "counting, as unverifiable. You will be told of the outcome."
        )

    lifting.request_change(
        session,
        record=record,
        kind=lifting.DISPUTE_DELETED if outcome == "deleted" else lifting.DISPUTE_CORRECTED,
        reference=dispute.public_id,
        requested_by=by.kind,
        principal_id=by.principal_id,
        reason=explanation,
        correction=fixed,
        notice=notice,
        at=at,
    )


def apply_answer(
    session: Session,
    *,
    dispute: Dispute,
    outcome: str,
    explanation: str,
    answered_by: str,
    principal_id: int | None,
    correction: RecordIn | None,
    rulebook: Rulebook,
    at: datetime,
    change: str | None = None,
) -> DisputeAnswer:
    """Write the answer to ``dispute`` at ``at`` (checked by the caller): the corrected
    record first (``corrected``), the answer, their entries. Told to the subject, unless
    it is a held answer a reviewer confirmed (``change``: that confirmation tells)."""
    record = session.get_one(Record, dispute.record_id)
    source = session.get_one(Source, dispute.source_id)
    subject = session.get_one(Subject, dispute.subject_id)
    corrected: str | None = None
    corrected_pk: int | None = None
    if correction is not None:
        # Appended before the answer, so the reinsertion check sees the disputed record
        # still in effect: a correction is not a reinsertion.
        result = ledger.submit_records(
            session,
            source=source,
            records=[correction],
            rulebook=rulebook,
            at=at,
            replacing=record.id,
        )[0]
        if result.status != "created":
            raise _not_created(result.error)
        corrected = result.record_id
        corrected_pk = session.scalar(select(Record.id).where(Record.public_id == corrected))
    answer = DisputeAnswer(
        dispute_id=dispute.id,
        outcome=outcome,
        explanation=explanation,
        answered_at=at,
        answered_by=answered_by,
        principal_id=principal_id,
        corrected_record_id=corrected_pk,
    )
    rt = rulebook.record_type(record.record_type)
    dispute_id = dispute.public_id
    answer_params: dict[str, Any] = {
        # The source's name, or None: "A Credence reviewer" in the reader's language.
        "who": source.name if answered_by == "source" else None,
        "record": record.public_id,
        "record_type": {"code": record.record_type, "name": rt.name if rt else record.record_type},
        "dispute": dispute_id,
        "explanation": explanation,
    }
    told = {
        "verified": coded("dispute_verified", **answer_params),
        "corrected": coded("dispute_corrected", **answer_params, date=at, corrected=corrected),
        "deleted": coded("dispute_deleted", **answer_params, date=at),
    }[outcome]
    record_event(
        session,
        kind=journal.EventKind.DISPUTE_ANSWERED,
        rows=[answer],
        at=at,
        subject_id=subject.id,
        data={
            "dispute": dispute.public_id,
            "record": record.public_id,
            "outcome": outcome,
            "answered_by": answered_by,
            "source": source.code,
            "explanation_sha256": journal.text_digest(explanation),
            "corrected_record": corrected,
            **({"change": change} if change else {}),
        },
        notice=None if change else Notice.coded_as(told),
    )
    if corrected is not None:
        record_event(
            session,
            kind=journal.EventKind.RECORD_CORRECTED,
            at=at,
            subject_id=subject.id,
            data={"record": record.public_id, "corrected_by": corrected, "dispute": dispute_id},
        )
    return answer


# --- lapsing -------------------------------------------------------------------------


def sweep(session: Session, at: datetime) -> list[DisputeView]:
    """Write the explicit lapse entry of every dispute unanswered at its deadline (at or
    before ``at``) that has none yet; return those disputes.

    The record's effect ended at the deadline already (:mod:`credence.ledger.endings`);
    running the sweep late, twice or never changes no score. It makes the lapse a ledger
    entry of its own and tells the subject. It also closes, as superseded, every change
    held for confirmation whose record stopped counting meanwhile
    (:func:`credence.ledger.lifting.supersede_ended`): a held answer whose dispute lapsed
    first, above all.
    """
    due = session.scalars(
        select(Dispute)
        .where(
            Dispute.deadline <= at,
            ~select(DisputeAnswer.id)
            .where(DisputeAnswer.dispute_id == Dispute.id)
            .correlate(Dispute)
            .exists(),
            ~select(DisputeLapse.id)
            .where(DisputeLapse.dispute_id == Dispute.id)
            .correlate(Dispute)
            .exists(),
        )
        .order_by(Dispute.deadline, Dispute.id)
    ).all()
    for dispute in due:
        record = session.get(Record, dispute.record_id)
        source = session.get(Source, dispute.source_id)
        assert record is not None  # foreign keys, both
        assert source is not None
        lapse = DisputeLapse(dispute_id=dispute.id, lapsed_at=dispute.deadline, recorded_at=at)
        record_event(
            session,
            kind=journal.EventKind.DISPUTE_LAPSED,
            rows=[lapse],
            at=at,
            subject_id=dispute.subject_id,
            data={
                "dispute": dispute.public_id,
                "record": record.public_id,
                "source": source.code,
                "lapsed_at": dispute.deadline,
            },
            notice=Notice.coded_as(
                coded(
                    "dispute_lapsed",
                    source=source.name,
                    dispute=dispute.public_id,
                    deadline=dispute.deadline,
                    record=record.public_id,
                )
            ),
        )
    # An answer held for confirmation when its dispute lapsed: the lapse won (the record
    # stopped counting at the deadline); the held change is closed as superseded.
    lifting.supersede_ended(session, at)
    session.flush()
    return [get_dispute(session, d.public_id, at) for d in due]


# --- statements ----------------------------------------------------------------------


def add_statement(
    session: Session, *, subject: Subject, record_id: str, text: str, at: datetime
) -> StatementView:
    """Attach the subject's statement to a record on their file; it shows with the
    record on the file and in every explanation. A later statement replaces the earlier
    one on display; every one stays in the ledger."""
    text = text.strip()
    if not text:
        raise InvalidInput("the statement is empty", code="statement_empty")
    if len(text) > MAX_STATEMENT:
        raise InvalidInput(
            f"a statement has at most {MAX_STATEMENT} characters; this one has {len(text)}",
            code="statement_too_long",
        )
    record = record_on_file(session, subject, record_id)
    statement = Statement(record_id=record.id, subject_id=subject.id, text=text, at=at)
    record_event(
        session,
        kind=journal.EventKind.STATEMENT_ADDED,
        rows=[statement],
        at=at,
        subject_id=subject.id,
        data={
            "record": record.public_id,
            "subject": subject.public_id,
            "text_sha256": journal.text_digest(text),
        },
    )
    session.flush()
    return StatementView(record_id=record.public_id, text=text, at=at)
