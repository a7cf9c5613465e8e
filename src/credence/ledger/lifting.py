"""Four eyes on what lifts a sanction: changes held until a second reviewer confirms.

A change that would end the effect of a record that restricts someone (see
:mod:`credence.rulebook.sanctions`: a negative judicial or serious record, or one a
court-ordered service's rule names) is not applied when it is asked for. It is stored
as a *pending change* and takes effect only when a principal with the reviewer role
confirms it, who is neither the principal who asked nor, for a source's retraction, any
key of that source. The changes held so:

================== =================================================================
kind               asked for by
================== =================================================================
retraction         a source withdrawing its record (:func:`credence.ledger.service.
                   retract_record`)
dispute_deleted    a source or reviewer answering a dispute ``deleted``
dispute_corrected  a source answering a dispute ``corrected`` (its correction is kept
                   with the change and appended when it is confirmed)
================== =================================================================

(each kind is the ending cause it creates, :mod:`credence.ledger.endings`). Until it is
confirmed the record counts in every engine as before: nothing in scoring knows of
pending changes, because the ending (the retraction row, the dispute's answer) is only
written at the confirmation, with the confirmation's instant. The life of a change::

    pending ──► confirmed    the ending is written now; the record stops counting
           ├──► refused      the record keeps counting (a dispute stays open, its
           │                 deadline running)
           └──► superseded   the record stopped counting by another cause first (a
                             dispute's deadline passed: the lapse wins, exactly at the
                             deadline); there is nothing left to confirm

``superseded`` is lazy, like a dispute's lapse: a view as of an instant shows a change
superseded as soon as the record's effect has ended, and :func:`supersede_ended` (run
by ``credence disputes sweep``) writes its entry. A record has at most one change
pending: asking again for the same one returns it (a resend), anything else is refused
while it waits.

Every step is a journal entry (``pending_change_requested``, ``_confirmed``,
``_refused``, ``_superseded``) that writes the change's row again (a covered table), and
the subject is told of each. Confirming and refusing are the reviewers'
(:mod:`credence.disputes.four_eyes`); this module holds the table, the request and the
views. Functions take the caller's session and commit nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy import ForeignKey, Index, Integer, Select, String, Text, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from credence import journal
from credence.db import Base, Instant, insert_new
from credence.errors import Conflict, NotFound
from credence.ids import new_id
from credence.ledger import endings
from credence.ledger.tables import Record, Source, Subject
from credence.notifications.service import Notice, record_event
from credence.rulebook import sanctions
from credence.rulebook.model import Rulebook

#: The kinds of change held for confirmation: each is the ending cause it creates.
RETRACTION = endings.RETRACTION
DISPUTE_DELETED = endings.DISPUTE_DELETED
DISPUTE_CORRECTED = endings.DISPUTE_CORRECTED
KINDS = (RETRACTION, DISPUTE_DELETED, DISPUTE_CORRECTED)

ChangeStatus = Literal["pending", "confirmed", "refused", "superseded"]
ChangeFilter = Literal["pending", "decided", "all"]
Requester = Literal["source", "reviewer"]


class PendingChange(journal.Journalled, Base):
    """A change that lifts a sanction, held until a second reviewer decides it.

    Written by the request and written again (new ``seq``, new salt) by the entry that
    confirms, refuses or supersedes it: ``status`` and the ``decided_*`` columns are
    what those entries change.
    """

    __tablename__ = "pending_changes"
    __table_args__ = (
        # At most one change of a record pending: see ``attempt``.
        Index("uq_pending_changes_record_attempt", "record_id", "attempt", unique=True),
        Index("ix_pending_changes_subject_id", "subject_id"),
        Index("ix_pending_changes_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"))
    #: Whose file the record is on (who is told).
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    #: The record's source (a source's retraction: the source that asked).
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    #: One of :data:`KINDS`.
    kind: Mapped[str] = mapped_column(String(32))
    #: What the change answers, for the feature that applies it: the dispute's public
    #: id for a dispute's answer, None for a retraction.
    reference: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: ``source`` or ``reviewer``: who asked.
    requested_by: Mapped[str] = mapped_column(String(16))
    #: The principal who asked (None from the command line).
    requested_principal_id: Mapped[int | None] = mapped_column(
        ForeignKey("principals.id"), nullable=True
    )
    #: The retraction's reason, or the dispute answer's explanation.
    reason: Mapped[str] = mapped_column(Text)
    #: A dispute answered ``corrected``: the corrected record (JSON, the fields of
    #: ``POST /v1/records``, the subject by its public id), appended at confirmation.
    correction: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_at: Mapped[datetime] = mapped_column(Instant)
    #: How many changes of the record were asked for before this one. Unique with
    #: ``record_id``: a change may be asked for only when every earlier one of the
    #: record is decided, so two requests that counted the same earlier ones cannot
    #: both be stored (the same device as ``disputes.prior_disputes``).
    attempt: Mapped[int] = mapped_column(Integer)
    #: ``pending``, ``confirmed``, ``refused`` or ``superseded``.
    status: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime | None] = mapped_column(Instant, nullable=True)
    #: The reviewer who confirmed or refused it (None when superseded).
    decided_principal_id: Mapped[int | None] = mapped_column(
        ForeignKey("principals.id"), nullable=True
    )
    #: The reviewer's reasons; for a superseded change, what ended the record first.
    decided_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


_changes = PendingChange.__table__
journal.cover(
    _changes,
    journal.encoder(
        _changes,
        "id",
        "public_id",
        "record_id",
        "subject_id",
        "source_id",
        "kind",
        "reference",
        "requested_by",
        "requested_principal_id",
        "reason",
        "correction",
        "requested_at",
        "attempt",
        "status",
        "decided_at",
        "decided_principal_id",
        "decided_reason",
    ),
)
_CHANGES = PendingChange.metadata.tables[PendingChange.__tablename__]


@dataclass(frozen=True)
class ChangeView:
    """A change and where it stands as of an instant."""

    change_id: str
    kind: str
    record_id: str
    #: None once the record is erased.
    record_type: str | None
    subject_id: str
    source: str
    source_name: str
    #: The dispute a dispute's answer answers (``dsp_…``), None for a retraction.
    dispute_id: str | None
    requested_by: str
    requested_at: datetime
    reason: str
    correction: dict[str, Any] | None
    status: ChangeStatus
    decided_at: datetime | None
    decided_reason: str | None
    #: When and by what the record's effect ended, if it has by the instant read (a
    #: confirmed change's own ending, or what superseded it).
    ended_at: datetime | None
    ended_by: str | None
    #: Internal ids, for authorisation and the four-eyes rule; not shown.
    owner_subject: int
    owner_source: int
    requested_principal: int | None
    decided_principal: int | None


# --- what restricts, what ended ---------------------------------------------------------


def ending_of(session: Session, record_id: int, at: datetime) -> tuple[datetime, str] | None:
    """``(ended_at, cause)`` if the record's effect ended by a ledger entry at or before
    ``at`` (the one definition, :mod:`credence.ledger.endings`), else None."""
    return _endings(session, [record_id], at).get(record_id)


def _endings(
    session: Session, record_ids: list[int], at: datetime
) -> dict[int, tuple[datetime, str]]:
    """The earliest ending at or before ``at`` of each of ``record_ids`` that has one."""
    if not record_ids:
        return {}
    events = endings.ending_events(select(Record.id).where(Record.id.in_(record_ids))).subquery()
    found: dict[int, tuple[datetime, str]] = {}
    rows = session.execute(
        select(events.c.record_id, events.c.ended_at, events.c.cause).where(events.c.ended_at <= at)
    )
    for record_id, ended_at, cause in rows:
        seen = found.get(record_id)
        key = (ended_at, endings.CAUSE_ORDER.index(cause))
        if seen is None or key < (seen[0], endings.CAUSE_ORDER.index(seen[1])):
            found[record_id] = (ended_at, cause)
    return found


def lifts_a_sanction(session: Session, record: Record, rulebook: Rulebook, at: datetime) -> bool:
    """Whether ending ``record``'s effect at ``at`` lifts a sanction: its type restricts
    someone under ``rulebook`` (:func:`credence.rulebook.sanctions.restricts`) and its
    effect has not ended already. (Conservative: a record past its retention, or whose
    restriction a later record lifted, still asks for a second pair of eyes.)"""
    if not sanctions.restricts(rulebook, record.record_type):
        return False
    return ending_of(session, record.id, at) is None


def pending_of(session: Session, record_id: int) -> PendingChange | None:
    """The record's change whose decision is not written yet, if any (it may be
    superseded already, lazily: see :func:`change_status`)."""
    return session.scalar(
        select(PendingChange).where(
            PendingChange.record_id == record_id, PendingChange.status == "pending"
        )
    )


# --- asking -----------------------------------------------------------------------------


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def request_change(
    session: Session,
    *,
    record: Record,
    kind: str,
    reference: str | None,
    requested_by: Requester,
    principal_id: int | None,
    reason: str,
    correction: dict[str, Any] | None,
    notice: Callable[[str], str],
    at: datetime,
) -> tuple[PendingChange, bool]:
    """Hold a change of ``record`` for confirmation: ``(change, created)``.

    While a change of the record is pending, asking for the same one (same kind, same
    dispute) returns it, not created (a resend); asking for another is refused
    (``change_pending``, naming it). ``notice(change_id)`` is what the subject is told;
    the entry keeps the reason only as a SHA-256.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown change kind {kind!r}; known: {KINDS}")
    while True:
        held = pending_of(session, record.id)
        if held is not None:
            return _resent(held, kind, reference), False
        # Requests at once on one reading of the store count the same changes before
        # theirs; the unique index keeps one, the others store nothing and look again
        # (they then find it pending). No insert fails on the server.
        prior = session.scalar(
            select(func.count())
            .select_from(PendingChange)
            .where(PendingChange.record_id == record.id)
        )
        inserted = insert_new(
            session,
            _CHANGES,
            {
                "public_id": new_id("chg"),
                "record_id": record.id,
                "subject_id": record.subject_id,
                "source_id": record.source_id,
                "kind": kind,
                "reference": reference,
                "requested_by": requested_by,
                "requested_principal_id": principal_id,
                "reason": reason,
                "correction": _json(correction),
                "requested_at": at,
                "attempt": prior or 0,
                "status": "pending",
            },
            unique=("record_id", "attempt"),
        )
        if inserted is not None:
            break
    change = session.get_one(PendingChange, inserted)
    source = session.get_one(Source, record.source_id)
    record_event(
        session,
        kind=journal.EventKind.PENDING_CHANGE_REQUESTED,
        rows=[change],
        at=at,
        subject_id=record.subject_id,
        data={
            "change": change.public_id,
            "record": record.public_id,
            "kind": kind,
            "dispute": reference,
            "requested_by": requested_by,
            "source": source.code,
            "reason_sha256": journal.text_digest(reason),
        },
        notice=Notice(notice(change.public_id)),
    )
    return change, True


def _json(value: dict[str, Any] | None) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _resent(held: PendingChange, kind: str, reference: str | None) -> PendingChange:
    """``held`` if it is the change asked for again, else the refusal."""
    if held.kind == kind and held.reference == reference:
        return held
    raise Conflict(
        f"change {held.public_id} of this record ({held.kind}, asked for on "
        f"{_when(held.requested_at)}) awaits a reviewer's confirmation; no other change "
        "of the record can be asked for until it is confirmed or refused",
        code="change_pending",
        details={"change_id": held.public_id, "kind": held.kind},
    )


# --- deciding (the row written again) ----------------------------------------------------


def claim(session: Session, change: PendingChange, status: ChangeStatus) -> bool:
    """Move ``change`` from ``pending`` to ``status`` in the store, if it is still
    pending there: False when a concurrent decision took it first (on PostgreSQL the
    update waits for that transaction and then finds the row decided)."""
    done = session.execute(
        update(PendingChange)
        .where(PendingChange.id == change.id, PendingChange.status == "pending")
        .values(status=status)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(done, "rowcount", 0))


def decide(
    session: Session,
    change: PendingChange,
    *,
    status: ChangeStatus,
    principal_id: int | None,
    reason: str,
    at: datetime,
    kind: journal.EventKind,
    data: dict[str, Any],
    notice: str,
) -> None:
    """Write the decision of a change already :func:`claim` ed: the row again, its
    entry and the subject's notice."""
    change.status = status
    change.decided_at = at
    change.decided_principal_id = principal_id
    change.decided_reason = reason
    record_event(
        session,
        kind=kind,
        rows=[change],
        at=at,
        subject_id=change.subject_id,
        data={"change": change.public_id, **data},
        notice=Notice(notice),
    )


def describe(view: ChangeView) -> str:
    """The change in words for the subject: "the withdrawal of record … by …"."""
    what = f"record {view.record_id}" + (f" ({view.record_type})" if view.record_type else "")
    if view.kind == RETRACTION:
        return f"the withdrawal of {what} by {view.source_name}"
    answer = "deletion" if view.kind == DISPUTE_DELETED else "correction"
    by = view.source_name if view.requested_by == "source" else "a Credence reviewer"
    return f"the {answer} of {what} by {by} in answer to your dispute {view.dispute_id}"


def supersede_ended(session: Session, at: datetime) -> list[ChangeView]:
    """Write the ``superseded`` entry of every pending change whose record's effect
    ended by ``at`` by another cause (a dispute's lapse, mostly); return them. The
    record stopped counting at that ending whether or not this runs."""
    held = session.scalars(
        select(PendingChange)
        .where(PendingChange.status == "pending")
        .order_by(PendingChange.requested_at, PendingChange.id)
    ).all()
    ended = _endings(session, [c.record_id for c in held], at)
    closed = []
    for change in held:
        if change.record_id not in ended or not claim(session, change, "superseded"):
            continue
        ended_at, cause = ended[change.record_id]
        view = get_change(session, change.public_id, at)
        decide(
            session,
            change,
            status="superseded",
            principal_id=None,
            reason=f"the record stopped counting on {_when(ended_at)} ({cause}) first",
            at=at,
            kind=journal.EventKind.PENDING_CHANGE_SUPERSEDED,
            data={"record": view.record_id, "ended_by": cause, "ended_at": ended_at},
            notice=(
                f"{describe(view)[0].upper()}{describe(view)[1:]}, which awaited a "
                f"reviewer's confirmation, is closed: record {view.record_id} stopped "
                f"counting on {_when(ended_at)} ({_cause_text(cause)}), so there is "
                "nothing left to confirm."
            ),
        )
        closed.append(change.public_id)
    session.flush()
    return [get_change(session, c, at) for c in closed]


def _cause_text(cause: str) -> str:
    return {
        endings.RETRACTION: "withdrawn by its source",
        endings.DISPUTE_DELETED: "deleted after your dispute",
        endings.DISPUTE_CORRECTED: "corrected after your dispute",
        endings.DISPUTE_LAPSED: "your dispute was not answered in time: unverifiable",
        endings.REPAIR: "credit repair",
    }.get(cause, cause)


# --- reading ----------------------------------------------------------------------------


def change_status(stored: str, ended: tuple[datetime, str] | None) -> ChangeStatus:
    """A change's status as of an instant: as stored, except that a pending change
    whose record's effect has ended by then is superseded (before the sweep writes it)."""
    if stored == "pending" and ended is not None:
        return "superseded"
    return stored  # type: ignore[return-value]


def _views(session: Session, query: Select[Any], at: datetime) -> list[ChangeView]:
    rows = session.execute(
        query.add_columns(
            Record.public_id, Record.record_type, Subject.public_id, Source.code, Source.name
        )
        .join(Record, Record.id == PendingChange.record_id)
        .join(Subject, Subject.id == PendingChange.subject_id)
        .join(Source, Source.id == PendingChange.source_id)
        .order_by(PendingChange.requested_at.desc(), PendingChange.id.desc())
    ).all()
    ended = _endings(session, sorted({row[0].record_id for row in rows}), at)
    views = []
    for change, record_id, record_type, subject_id, code, name in rows:
        ending = ended.get(change.record_id)
        views.append(
            ChangeView(
                change_id=change.public_id,
                kind=change.kind,
                record_id=record_id,
                record_type=record_type,
                subject_id=subject_id,
                source=code,
                source_name=name,
                dispute_id=change.reference,
                requested_by=change.requested_by,
                requested_at=change.requested_at,
                reason=change.reason,
                correction=None if change.correction is None else orjson.loads(change.correction),
                status=change_status(change.status, ending),
                decided_at=change.decided_at,
                decided_reason=change.decided_reason,
                ended_at=None if ending is None else ending[0],
                ended_by=None if ending is None else ending[1],
                owner_subject=change.subject_id,
                owner_source=change.source_id,
                requested_principal=change.requested_principal_id,
                decided_principal=change.decided_principal_id,
            )
        )
    return views


def get_change(session: Session, change_id: str, at: datetime) -> ChangeView:
    """One change as of ``at``; :class:`NotFound` (``unknown_change``) if there is none."""
    found = _views(session, select(PendingChange).where(PendingChange.public_id == change_id), at)
    if not found:
        raise NotFound(f"no pending change {change_id!r}", code="unknown_change")
    return found[0]


def list_changes(
    session: Session,
    *,
    at: datetime,
    status: ChangeFilter = "pending",
    subject_id: int | None = None,
) -> list[ChangeView]:
    """Changes as of ``at``, newest first: those still awaiting a decision
    (``pending``), those decided or superseded (``decided``), or all; of one subject's
    file with ``subject_id``."""
    query = select(PendingChange).where(PendingChange.requested_at <= at)
    if subject_id is not None:
        query = query.where(PendingChange.subject_id == subject_id)
    if status == "pending":
        query = query.where(PendingChange.status == "pending")
    views = _views(session, query, at)
    if status == "pending":
        return [v for v in views if v.status == "pending"]
    if status == "decided":
        return [v for v in views if v.status != "pending"]
    return views
