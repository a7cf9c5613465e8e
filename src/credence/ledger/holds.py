"""Records held at intake: stored and logged, counting nowhere until a reviewer decides.

Intake stores a record but *holds* it when the rulebook's intake checks say so
(:class:`credence.rulebook.model.Intake`): a burst of positives from one source about one
subject, a new identity's positives beyond its limit, a record of a subject the identity
authority voided as fictitious, every record from a suspended source
(:mod:`credence.ledger.suspension`) (and, if a rulebook holds rather than refuses them, a
record before the subject's birth or too close to another of its streak type). The
record is on the subject's file, marked held, and the subject is told. The life of a
hold::

    held ──► released    the record counts from the release's instant on
        └──► rejected    the record never counts

So a held record's effect starts late or never: :func:`effect_starts` is the one
definition, read by every scoring engine beside the record's receipt (the online path
and the subject's file through :mod:`credence.ledger.subject_file`, the nightly batch,
and the columnar and Spark engines through the export's ``received_at``, which is when a
record starts to count). A score as of an instant before a release never counts the
record, whenever it is computed.

Every step is a journal entry: ``records_held`` (the hold rows of one subject in one
batch), ``hold_released`` and ``hold_rejected`` (the row written again). Releasing and
rejecting are the reviewers'. Functions take the caller's session and commit nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Subquery,
    Text,
    case,
    literal,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from credence import journal
from credence.db import Base, Instant
from credence.errors import Conflict, InvalidInput, NotFound
from credence.ids import new_ordered_ids
from credence.ledger.tables import Record, Source, Subject
from credence.notifications.service import Notice, record_event
from credence.wording import coded

#: Why a record is held (a hold's ``cause``).
BURST = "burst"
NEW_IDENTITY = "new_identity"
SPACING = "spacing"
BEFORE_BIRTH = "before_birth"
IDENTITY_VOIDED = "identity_voided"
SOURCE_SUSPENDED = "source_suspended"
CAUSES = (BURST, NEW_IDENTITY, SPACING, BEFORE_BIRTH, IDENTITY_VOIDED, SOURCE_SUSPENDED)

#: What each cause means, for the source (in its reply) and the subject (on the file).
CAUSE_TEXT = {
    BURST: (
        "more positive records from one source about one subject in the rulebook's "
        "window than it allows"
    ),
    NEW_IDENTITY: (
        "more positive records than the rulebook allows for an identity registered so recently"
    ),
    SPACING: "closer to another record of its type from the same source than its period",
    BEFORE_BIRTH: "dated before the subject was born or founded",
    IDENTITY_VOIDED: "about an identity the identity authority voided as fictitious",
    SOURCE_SUSPENDED: (
        "from a source Credence has suspended: its records count only once a reviewer releases them"
    ),
}

HoldStatus = Literal["held", "released", "rejected"]
HoldFilter = Literal["held", "decided", "all"]
Outcome = Literal["released", "rejected"]

#: The start of a record that does not count yet (held) or ever (rejected), in
#: microseconds: after every instant, like an effect that has not ended.
NEVER_US = (1 << 63) - 1
#: The same, as a datetime (the online path's instants).
NEVER = datetime.max.replace(tzinfo=UTC)


class RecordHold(journal.Journalled, Base):
    """A record held at intake. Written by the intake's ``records_held`` entry and
    written again (new ``seq``, new salt) by the entry that releases or rejects it."""

    __tablename__ = "record_holds"
    __table_args__ = (
        Index("ix_record_holds_subject_id", "subject_id"),
        Index("ix_record_holds_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"), unique=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    #: One of :data:`CAUSES`.
    cause: Mapped[str] = mapped_column(String(32))
    held_at: Mapped[datetime] = mapped_column(Instant)
    #: ``held``, ``released`` or ``rejected``.
    status: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime | None] = mapped_column(Instant, nullable=True)
    decided_principal_id: Mapped[int | None] = mapped_column(
        ForeignKey("principals.id"), nullable=True
    )
    #: The reviewer's reasons (the subject reads them; the journal keeps their digest).
    decided_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


_holds = RecordHold.__table__
journal.cover(
    _holds,
    journal.encoder(
        _holds,
        "id",
        "public_id",
        "record_id",
        "subject_id",
        "source_id",
        "cause",
        "held_at",
        "status",
        "decided_at",
        "decided_principal_id",
        "decided_reason",
    ),
)


# --- when a held record starts to count: the one definition ----------------------------


def effect_starts(records: Select[Any] | None = None) -> Subquery:
    """``(record_id, starts_at)`` of every held record (narrowed to ``records``, a select
    of record ids): ``starts_at`` in microseconds is its release's instant, or
    :data:`NEVER_US` while it is held and once it is rejected. A record absent from it
    counts from its receipt (join it with an outer join; :func:`counts_from`)."""
    raw = BigInteger()
    query = select(
        RecordHold.record_id.label("record_id"),
        case(
            (RecordHold.status == "released", type_coerce(RecordHold.decided_at, raw)),
            else_=literal(NEVER_US, raw),
        ).label("starts_at"),
    )
    if records is not None:
        query = query.where(RecordHold.record_id.in_(records))
    return query.subquery("effect_starts")


def counts_from(received_us: Any, starts: Subquery) -> Any:
    """The instant (microseconds, a SQL expression) a record starts to count: its
    receipt, or, if it was held, what :func:`effect_starts` gives (outer-joined as
    ``starts``)."""
    raw = BigInteger()
    return case(
        (starts.c.record_id.is_(None), type_coerce(received_us, raw)),
        else_=starts.c.starts_at,
    )


# --- placing holds ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToHold:
    """A record intake holds: its store id, subject, source and cause."""

    record_id: int
    subject_id: int
    source_id: int
    cause: str


def place(session: Session, held: Sequence[ToHold], *, at: datetime) -> list[RecordHold]:
    """Hold records just stored: one hold row each, and per subject one ``records_held``
    entry listing them, with the subject's notice."""
    if not held:
        return []
    ids = new_ordered_ids("hld", len(held))
    by_subject: dict[int, list[RecordHold]] = defaultdict(list)
    for item, public_id in zip(held, ids, strict=True):
        if item.cause not in CAUSES:
            raise ValueError(f"unknown hold cause {item.cause!r}; known: {CAUSES}")
        by_subject[item.subject_id].append(
            RecordHold(
                public_id=public_id,
                record_id=item.record_id,
                subject_id=item.subject_id,
                source_id=item.source_id,
                cause=item.cause,
                held_at=at,
                status="held",
            )
        )
    records = dict(
        session.execute(
            select(Record.id, Record.public_id).where(Record.id.in_([h.record_id for h in held]))
        ).all()
    )
    placed: list[RecordHold] = []
    for subject_id, rows in by_subject.items():
        causes = sorted({r.cause for r in rows})
        record_event(
            session,
            kind=journal.EventKind.RECORDS_HELD,
            at=at,
            subject_id=subject_id,
            data={
                "holds": [
                    {"hold": r.public_id, "record": records[r.record_id], "cause": r.cause}
                    for r in rows
                ]
            },
            rows=rows,
            notice=Notice.coded_as(
                coded(
                    "records_held_one" if len(rows) == 1 else "records_held_many",
                    count=len(rows),
                    date=at,
                    causes=causes,
                )
            ),
        )
        placed.extend(rows)
    return placed


# --- views ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldView:
    """A hold as a reviewer, the subject's file and the API show it."""

    hold_id: str
    record_id: str
    record_type: str | None
    subject_id: str
    source: str
    cause: str
    held_at: datetime
    status: HoldStatus
    decided_at: datetime | None
    decided_reason: str | None
    #: Internal id of the subject's row (authorisation); not shown.
    owner_subject: int

    @property
    def explanation(self) -> str:
        return CAUSE_TEXT.get(self.cause, self.cause)


def _views(query: Any) -> Any:
    return (
        query.join(Record, Record.id == RecordHold.record_id)
        .join(Subject, Subject.id == RecordHold.subject_id)
        .join(Source, Source.id == RecordHold.source_id)
        .order_by(RecordHold.id)
    )


_VIEW_COLUMNS = (
    RecordHold.public_id,
    Record.public_id,
    Record.record_type,
    Subject.public_id,
    Source.code,
    RecordHold.cause,
    RecordHold.held_at,
    RecordHold.status,
    RecordHold.decided_at,
    RecordHold.decided_reason,
    RecordHold.subject_id,
)


def _view(row: Sequence[Any]) -> HoldView:
    return HoldView(*row)


def list_holds(
    session: Session, *, status: HoldFilter = "held", limit: int = 500
) -> list[HoldView]:
    """Holds for the reviewers' queue, oldest first."""
    query = _views(select(*_VIEW_COLUMNS))
    if status == "held":
        query = query.where(RecordHold.status == "held")
    elif status == "decided":
        query = query.where(RecordHold.status != "held")
    return [_view(r) for r in session.execute(query.limit(limit)).all()]


def holds_of(session: Session, subject_id: int) -> dict[int, HoldView]:
    """The holds of a subject's records, by the record's store id (the file)."""
    rows = session.execute(
        _views(select(RecordHold.record_id, *_VIEW_COLUMNS)).where(
            RecordHold.subject_id == subject_id
        )
    ).all()
    return {row[0]: _view(row[1:]) for row in rows}


def get_hold(session: Session, hold_id: str) -> HoldView:
    row = session.execute(
        _views(select(*_VIEW_COLUMNS)).where(RecordHold.public_id == hold_id)
    ).first()
    if row is None:
        raise NotFound(f"no hold {hold_id!r}", code="unknown_hold")
    return _view(row)


# --- deciding ---------------------------------------------------------------------------


def _decided(view: HoldView, outcome: Outcome) -> HoldView:
    """A hold decided already: the same decision asked again is a resend (its view); the
    other is refused (``hold_decided``)."""
    if view.status == outcome:
        return view
    when = f" on {view.decided_at:%Y-%m-%d %H:%M} UTC" if view.decided_at else ""
    raise Conflict(
        f"hold {view.hold_id} was already {view.status}{when}",
        code="hold_decided",
        details={"hold_id": view.hold_id, "status": view.status},
    )


def decide(
    session: Session,
    *,
    hold_id: str,
    outcome: Outcome,
    principal_id: int | None,
    reason: str,
    at: datetime,
) -> tuple[HoldView, bool]:
    """Release or reject a held record; ``(view, decided_now)``. Deciding again the same
    way is a resend (the first decision, ``False``); the other way is refused
    (``hold_decided``)."""
    view = get_hold(session, hold_id)
    if view.status != "held":
        return _decided(view, outcome), False
    reason = reason.strip()
    if not reason:
        raise InvalidInput("give your reasons: the subject reads them", code="reasons_required")
    claimed = session.execute(
        update(RecordHold)
        .where(RecordHold.public_id == hold_id, RecordHold.status == "held")
        .values(status=outcome)
        .execution_options(synchronize_session=False)
    )
    if not getattr(claimed, "rowcount", 0):  # another reviewer decided it just now
        session.expire_all()
        return _decided(get_hold(session, hold_id), outcome), False
    hold = session.scalars(select(RecordHold).where(RecordHold.public_id == hold_id)).one()
    session.refresh(hold)
    hold.status = outcome
    hold.decided_at = at
    hold.decided_principal_id = principal_id
    hold.decided_reason = reason
    told = {
        "record": view.record_id,
        "held_since": view.held_at,
        "cause": [view.cause],
        "reason": reason,
    }
    record_event(
        session,
        kind=(
            journal.EventKind.HOLD_RELEASED
            if outcome == "released"
            else journal.EventKind.HOLD_REJECTED
        ),
        at=at,
        subject_id=hold.subject_id,
        data={
            "hold": hold.public_id,
            "record": view.record_id,
            "reasons_sha256": journal.text_digest(reason),
        },
        rows=[hold],
        notice=Notice.coded_as(
            coded("hold_released", **told, at=at)
            if outcome == "released"
            else coded("hold_rejected", **told)
        ),
    )
    session.flush()
    return get_hold(session, hold_id), True
