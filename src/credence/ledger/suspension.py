"""Suspending a source: its new records held for reviewers until it is reinstated.

An operator suspends a source with a reason from :data:`REASONS` (a catalogue: no free
text reaches public output; a legal order names its reference). While the source is
suspended, intake stores every new record from it but holds it
(:data:`credence.ledger.holds.SOURCE_SUSPENDED`): it is on the subject's file, marked
held, the subject is told, and it counts in no engine until a reviewer releases or
rejects it. Reinstating the source lets records arriving afterwards count as usual;
those held during the suspension stay held: a suspension is for a source suspected of
being bought (among other reasons), so nothing is released automatically.

Both steps take the source's turn at intake (:mod:`credence.ledger.turns`) before they
read or write, and intake reads the suspension within that turn: once a suspension is
acknowledged, no batch of the source gets through unheld; a batch that took its turn
first was received before it.

A suspension is one row of ``source_suspensions``, written by a ``source_suspended``
entry and written again (new ``seq``, new salt) by the ``source_reinstated`` entry that
ends it; both rows are covered by ``credence log verify``. The suspension in force at
any past instant reads again from the rows (:func:`as_of`). Functions take the caller's
session and commit nothing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Literal, get_args

from sqlalchemy import ColumnElement, ForeignKey, Index, Integer, String, Text, and_, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from credence import journal
from credence.db import Base, Instant
from credence.errors import Conflict, InvalidInput
from credence.ledger import turns
from credence.ledger.freshness import Readable
from credence.ledger.tables import Source
from credence.notifications.service import record_event

#: The reasons a source may be suspended for, with what they mean in public.
REASONS: Mapping[str, str] = MappingProxyType(
    {
        "suspected_bribery": ("suspected of reporting records in exchange for payment or favour"),
        "data_quality_investigation": "its records are under investigation for their quality",
        "legal_order": "a legal order requires it",
        "source_request": "at the source's own request",
    }
)
#: The catalogue's codes, as a type (the API's schema lists them).
Reason = Literal["suspected_bribery", "data_quality_investigation", "legal_order", "source_request"]
assert set(get_args(Reason)) == set(REASONS)
#: The reasons that name a reference (the order's number, as the court gives it).
WITH_REFERENCE = frozenset({"legal_order"})
#: The longest reference kept.
MAX_REFERENCE = 120


class SourceSuspension(journal.Journalled, Base):
    """A source's suspension: from ``suspended_at`` until ``reinstated_at`` (None: in
    force). Written by a ``source_suspended`` entry, written again by the
    ``source_reinstated`` one."""

    __tablename__ = "source_suspensions"
    __table_args__ = (Index("ix_source_suspensions_source_id", "source_id", "suspended_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    #: One of :data:`REASONS`.
    reason: Mapped[str] = mapped_column(String(40))
    reference: Mapped[str | None] = mapped_column(Text, nullable=True)
    suspended_at: Mapped[datetime] = mapped_column(Instant)
    suspended_principal_id: Mapped[int | None] = mapped_column(
        ForeignKey("principals.id"), nullable=True
    )
    reinstated_at: Mapped[datetime | None] = mapped_column(Instant, nullable=True)
    reinstated_principal_id: Mapped[int | None] = mapped_column(
        ForeignKey("principals.id"), nullable=True
    )


_table = SourceSuspension.__table__
journal.cover(
    _table,
    journal.encoder(
        _table,
        "id",
        "source_id",
        "reason",
        "reference",
        "suspended_at",
        "suspended_principal_id",
        "reinstated_at",
        "reinstated_principal_id",
    ),
)


@dataclass(frozen=True)
class Suspension:
    """A suspension as the API and the public status show it."""

    source: str
    reason: str
    reference: str | None
    suspended_at: datetime
    reinstated_at: datetime | None

    @property
    def explanation(self) -> str:
        return REASONS[self.reason]


def _view(row: SourceSuspension, code: str) -> Suspension:
    return Suspension(code, row.reason, row.reference, row.suspended_at, row.reinstated_at)


def check_reason(reason: str, reference: str | None) -> None:
    """Refuse a reason outside the catalogue, a legal order without its reference, a
    reference for another reason, and a reference with control or format characters,
    surrounding blanks or more than :data:`MAX_REFERENCE` characters."""
    if reason not in REASONS:
        raise InvalidInput(
            f"unknown reason {reason!r}; known: {', '.join(REASONS)}", code="unknown_reason"
        )
    if reason not in WITH_REFERENCE:
        if reference is not None:
            raise InvalidInput(
                f"only {', '.join(sorted(WITH_REFERENCE))} names a reference",
                code="reference_unexpected",
            )
        return
    if reference is None or not reference.strip():
        raise InvalidInput(f"a {reason} suspension names its reference", code="reference_required")
    if (
        len(reference) > MAX_REFERENCE
        or reference != reference.strip()
        or any(unicodedata.category(c).startswith("C") for c in reference)
    ):
        raise InvalidInput(
            f"a reference is at most {MAX_REFERENCE} printable characters, without "
            "surrounding blanks",
            code="invalid_reference",
        )


def _now_in_force(source_id: int) -> ColumnElement[bool]:
    return and_(SourceSuspension.source_id == source_id, SourceSuspension.reinstated_at.is_(None))


def _current(session: Session, source_id: int) -> SourceSuspension | None:
    return session.scalars(select(SourceSuspension).where(_now_in_force(source_id))).first()


def in_force(session: Session, source_id: int) -> bool:
    """Whether the source is suspended now (read by intake within the source's turn)."""
    found = session.scalar(select(SourceSuspension.id).where(_now_in_force(source_id)).limit(1))
    return found is not None


def suspend(
    session: Session,
    *,
    source: Source,
    reason: str,
    reference: str | None = None,
    principal_id: int | None,
    at: datetime,
) -> tuple[Suspension, bool]:
    """Suspend ``source`` from ``at``; ``(suspension, suspended_now)``. A source already
    suspended answers the suspension in force (``False``): a resend changes nothing."""
    check_reason(reason, reference)
    turns.take_sources(session, [source.id])  # no batch of the source in between
    current = _current(session, source.id)
    if current is not None:
        return _view(current, source.code), False
    row = SourceSuspension(
        source_id=source.id,
        reason=reason,
        reference=reference,
        suspended_at=at,
        suspended_principal_id=principal_id,
    )
    session.add(row)
    session.flush()
    data: dict[str, object] = {"source": source.code, "reason": reason}
    if reference is not None:
        data["reference_sha256"] = journal.text_digest(reference)
    record_event(session, kind=journal.EventKind.SOURCE_SUSPENDED, at=at, data=data, rows=[row])
    return _view(row, source.code), True


def reinstate(
    session: Session, *, source: Source, principal_id: int | None, at: datetime
) -> Suspension:
    """End ``source``'s suspension at ``at``: records received afterwards count as
    usual; those held during it stay held for a reviewer. A source not suspended is a
    conflict (``source_not_suspended``)."""
    turns.take_sources(session, [source.id])
    current = _current(session, source.id)
    if current is None:
        raise Conflict(f"source {source.code} is not suspended", code="source_not_suspended")
    current.reinstated_at = at
    current.reinstated_principal_id = principal_id
    session.flush()
    record_event(
        session,
        kind=journal.EventKind.SOURCE_REINSTATED,
        at=at,
        data={"source": source.code},
        rows=[current],
    )
    return _view(current, source.code)


def as_of(conn: Readable, at: datetime) -> dict[int, Suspension]:
    """By source id, the suspension in force at ``at`` (suspended by then, not yet
    reinstated)."""
    rows = conn.execute(
        select(
            SourceSuspension.source_id,
            Source.code,
            SourceSuspension.reason,
            SourceSuspension.reference,
            SourceSuspension.suspended_at,
        )
        .join(Source, Source.id == SourceSuspension.source_id)
        .where(
            SourceSuspension.suspended_at <= at,
            or_(SourceSuspension.reinstated_at.is_(None), SourceSuspension.reinstated_at > at),
        )
        .order_by(SourceSuspension.suspended_at)
    )
    return {
        # Never its end, if later: the status as of ``at`` is the same whenever asked.
        source_id: Suspension(code, reason, reference, since, None)
        for source_id, code, reason, reference, since in rows
    }
