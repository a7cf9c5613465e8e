"""Confirming or refusing a change that lifts a sanction: the second pair of eyes.

A retraction, or a dispute answered ``deleted`` or ``corrected``, of a record that
restricts someone is held as a pending change (:mod:`credence.ledger.lifting`). A
reviewer decides it here:

* **confirm**: the ending is written now, with this instant (the retraction, or the
  dispute's answer and its corrected record), then the confirmation's entry; the record
  stops counting in every engine from this instant on;
* **refuse**: the record keeps counting; a dispute stays open, its deadline running (its
  source may answer again, or let it lapse).

The rule of four eyes: whoever decides is a principal other than the one who asked, and
never a key of the source that asked for a retraction (:func:`check_four_eyes`; the
policy table lets only reviewers decide at all). A change whose record stopped counting
first by another cause (a dispute's deadline passed) is superseded: it can be neither
confirmed nor refused (``change_superseded``), and ``credence disputes sweep`` closes it.

Every decision is a journal entry that writes the change's row again, and the subject
is told. Free text enters the journal only as a SHA-256. Functions take the caller's
session and commit nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence import journal
from credence.disputes.service import apply_answer
from credence.disputes.tables import Dispute
from credence.errors import Conflict, Forbidden, InvalidInput
from credence.ledger import lifting
from credence.ledger import service as ledger
from credence.ledger.lifting import ChangeView, PendingChange
from credence.ledger.schemas import RecordIn
from credence.ledger.tables import Record
from credence.rulebook import store

#: The rule, as every refusal under it names it.
FOUR_EYES = (
    "four eyes: a change that lifts a sanction takes effect only when a reviewer other "
    "than whoever asked for it confirms it"
)


@dataclass(frozen=True)
class Decider:
    """Who confirms or refuses: the principal (None from the command line), and the
    source the caller speaks for, if it is one (only to name the rule to it)."""

    principal_id: int | None
    source_id: int | None = None


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def check_four_eyes(view: ChangeView, by: Decider) -> None:
    """Refuse (403, ``four_eyes``) a decision by whoever asked for the change: the same
    principal, or any key of the source that asked for its retraction (or answered the
    dispute)."""
    if by.source_id is not None and by.source_id == view.owner_source:
        raise Forbidden(
            f"{FOUR_EYES}: {view.source_name} asked for change {view.change_id}, so no key "
            "of that source may confirm or refuse it",
            code="four_eyes",
            details={"change_id": view.change_id, "rule": "four_eyes"},
        )
    if by.principal_id is not None and by.principal_id == view.requested_principal:
        asked = f"your answer to dispute {view.dispute_id}" if view.dispute_id else "your request"
        raise Forbidden(
            f"{FOUR_EYES}: change {view.change_id} is {asked}; another reviewer must "
            "confirm or refuse it",
            code="four_eyes",
            details={"change_id": view.change_id, "rule": "four_eyes"},
        )


def _decidable(
    session: Session, change_id: str, by: Decider, reason: str, at: datetime
) -> tuple[PendingChange, ChangeView, str]:
    """The change, its view and the reviewer's reasons, if ``by`` may decide it now."""
    view = lifting.get_change(session, change_id, at)
    check_four_eyes(view, by)
    if view.status == "superseded":
        raise Conflict(
            f"change {change_id} can no longer be decided: record {view.record_id} stopped "
            f"counting on {_when(view.ended_at or at)} ({view.ended_by}) first, so there is "
            "nothing left to confirm or refuse",
            code="change_superseded",
            details={"change_id": change_id, "ended_by": view.ended_by},
        )
    if view.status != "pending":
        raise Conflict(
            f"change {change_id} was already {view.status} on {_when(view.decided_at or at)}",
            code="change_decided",
            details={"change_id": change_id, "status": view.status},
        )
    reason = reason.strip()
    if not reason:
        raise InvalidInput("give your reasons: the subject reads them", code="reasons_required")
    change = session.scalars(
        select(PendingChange).where(PendingChange.public_id == change_id)
    ).one()
    return change, view, reason


def _taken(change_id: str) -> Conflict:
    return Conflict(
        f"change {change_id} was decided by another reviewer at the same moment",
        code="change_decided",
        details={"change_id": change_id},
    )


def _decision_data(view: ChangeView, reason: str) -> dict[str, str | None]:
    """What the entry of a confirmation or a refusal records (the reasons as a digest)."""
    return {
        "record": view.record_id,
        "kind": view.kind,
        "reasons_sha256": journal.text_digest(reason),
    }


def confirm_change(
    session: Session, *, change_id: str, by: Decider, reason: str, at: datetime
) -> ChangeView:
    """Confirm a held change: its ending is written now (effective at ``at``), then the
    confirmation; the subject is told."""
    change, view, reason = _decidable(session, change_id, by, reason, at)
    if not lifting.claim(session, change, "confirmed"):
        raise _taken(change_id)
    record = session.get_one(Record, change.record_id)
    if change.kind == lifting.RETRACTION:
        ledger.write_retraction(
            session, record=record, reason=change.reason, at=at, change=change.public_id
        )
        effect = f"Record {view.record_id} stopped counting on {_when(at)}."
    else:
        dispute = session.scalars(
            select(Dispute).where(Dispute.public_id == change.reference)
        ).one()
        correction = RecordIn.model_validate_json(change.correction) if change.correction else None
        answer = apply_answer(
            session,
            dispute=dispute,
            outcome="deleted" if change.kind == lifting.DISPUTE_DELETED else "corrected",
            explanation=change.reason,
            answered_by=change.requested_by,
            principal_id=change.requested_principal_id,
            correction=correction,
            rulebook=store.in_force(session, at).rulebook,
            at=at,
            change=change.public_id,
        )
        effect = f"Record {view.record_id} stopped counting on {_when(at)}."
        if answer.corrected_record_id is not None:
            fixed = session.get_one(Record, answer.corrected_record_id).public_id
            effect += f" Record {fixed} replaces it."
    lifting.decide(
        session,
        change,
        status="confirmed",
        principal_id=by.principal_id,
        reason=reason,
        at=at,
        kind=journal.EventKind.PENDING_CHANGE_CONFIRMED,
        data=_decision_data(view, reason),
        notice=(
            f"A Credence reviewer other than whoever asked confirmed {lifting.describe(view)}"
            f", asked for on {_when(view.requested_at)}: {reason} {effect}"
        ),
    )
    session.flush()
    return lifting.get_change(session, change_id, at)


def refuse_change(
    session: Session, *, change_id: str, by: Decider, reason: str, at: datetime
) -> ChangeView:
    """Refuse a held change: the record keeps counting; the subject is told."""
    change, view, reason = _decidable(session, change_id, by, reason, at)
    if not lifting.claim(session, change, "refused"):
        raise _taken(change_id)
    after = f"Record {view.record_id} still counts."
    if view.dispute_id is not None:
        deadline = session.scalars(
            select(Dispute.deadline).where(Dispute.public_id == view.dispute_id)
        ).one()
        after += (
            f" Your dispute {view.dispute_id} stays open: its answer is still due by "
            f"{_when(deadline)}; without one by then the record stops counting, as "
            "unverifiable."
        )
    lifting.decide(
        session,
        change,
        status="refused",
        principal_id=by.principal_id,
        reason=reason,
        at=at,
        kind=journal.EventKind.PENDING_CHANGE_REFUSED,
        data=_decision_data(view, reason),
        notice=(
            f"A Credence reviewer refused {lifting.describe(view)}, asked for on "
            f"{_when(view.requested_at)}: {reason} {after}"
        ),
    )
    session.flush()
    return lifting.get_change(session, change_id, at)
