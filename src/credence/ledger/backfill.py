"""Approved backfill runs: the one way a source's history is loaded without the volume
limits.

A source joining Credence, or a registry loading its past, sends years of records at
once: a burst by any measure. Only a run an operator approved for that source, logged
with its scope, is exempt from the rulebook's burst and new-identity limits
(:class:`credence.rulebook.model.Intake`), never a record's ``occurred_at`` alone (a
bribed source simply backdates). The scope is:

* the **source** (only its keys may deliver under the run);
* the **period** the records occurred in (``occurred_from`` inclusive to
  ``occurred_until`` exclusive);
* the **expected volume**: at most this many records are exempted, in total.

A record outside the scope is checked like any other (it may be held); plausibility
(before birth or founding, a streak type's spacing) always applies. Approval is an
operator's step, journalled (``backfill_approved``); each batch delivered under a run
writes a delivery row with how many of its records the run exempted
(``backfill_delivered``), so the volume used is the sum of those rows and the log proves
which exemptions were given. Functions take the caller's session and commit nothing.

A run is of one of two kinds (``kind``): ``approved`` (above), or ``outage_catch_up``,
which intake opens by itself when a source recovers from an outage
(:mod:`credence.ledger.catchup`): its scope also names the record types it covers, and
it exempts from the burst limit only. A catch-up run is never named by a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from credence import journal
from credence.clock import to_micros
from credence.db import Base, Instant
from credence.errors import Forbidden, InvalidInput, NotFound
from credence.ids import new_id
from credence.ledger import turns
from credence.ledger.tables import Source
from credence.notifications.service import record_event

#: The largest volume one run may expect (a national registry's load is split into runs).
MAX_EXPECTED = 500_000_000

#: A run's kinds: one an operator approved, and an outage's catch-up intake opened.
APPROVED = "approved"
OUTAGE_CATCH_UP = "outage_catch_up"


class BackfillRun(journal.Journalled, Base):
    """A backfill an operator approved for a source, with its scope."""

    __tablename__ = "backfill_runs"
    __table_args__ = (
        # One catch-up per source, outage and record types (runs approved by an operator
        # leave both NULL, so never meet here).
        Index(
            "ux_backfill_runs_catch_up",
            "source_id",
            "outage_since",
            "record_types",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), index=True)
    occurred_from: Mapped[datetime] = mapped_column(Instant)
    occurred_until: Mapped[datetime] = mapped_column(Instant)
    expected_records: Mapped[int] = mapped_column(Integer)
    #: The operator who approved it (None from the command line).
    approved_principal_id: Mapped[int | None] = mapped_column(
        ForeignKey("principals.id"), nullable=True
    )
    approved_at: Mapped[datetime] = mapped_column(Instant)
    #: :data:`APPROVED` or :data:`OUTAGE_CATCH_UP`; NULL on runs approved before the
    #: column existed (migration 0016), which are approved runs.
    kind: Mapped[str | None] = mapped_column(String(20), nullable=True)
    #: A catch-up's record types, comma-separated and sorted; NULL: every type.
    record_types: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: A catch-up's outage: since when its types were in outage; NULL for approved runs.
    outage_since: Mapped[datetime | None] = mapped_column(Instant, nullable=True)

    @property
    def is_catch_up(self) -> bool:
        return self.kind == OUTAGE_CATCH_UP


class BackfillDelivery(journal.Journalled, Base):
    """One batch delivered under a run: how many of its records the run exempted."""

    __tablename__ = "backfill_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("backfill_runs.id"), index=True)
    exempted: Mapped[int] = mapped_column(Integer)
    delivered_at: Mapped[datetime] = mapped_column(Instant)


_runs = BackfillRun.__table__
journal.cover(
    _runs,
    journal.encoder(
        _runs,
        "id",
        "public_id",
        "source_id",
        "occurred_from",
        "occurred_until",
        "expected_records",
        "approved_principal_id",
        "approved_at",
        "kind",
        "record_types",
        "outage_since",
        added=("kind", "record_types", "outage_since"),
    ),
)
_deliveries = BackfillDelivery.__table__
journal.cover(_deliveries, journal.encoder(_deliveries, "id", "run_id", "exempted", "delivered_at"))


@dataclass
class Scope:
    """A run as intake checks a batch against it: the period in microseconds and the
    volume still exemptable (counted down as the batch is planned)."""

    run_id: int
    public_id: str
    source_id: int
    occurred_from_us: int
    occurred_until_us: int
    remaining: int
    #: The record types the run covers (an outage's catch-up); None: every type.
    record_types: frozenset[str] | None = None
    #: Whether the run exempts from the burst limit only (an outage's catch-up), not
    #: from the new-identity limit too (an approved run).
    burst_only: bool = False
    #: Records of the batch being planned that the run exempted.
    exempted: int = 0

    def exempts(self, occurred_us: int, record_type: str) -> bool:
        """Whether the run exempts one more record of ``record_type`` that occurred at
        ``occurred_us`` (and counts it if so)."""
        if (
            self.remaining > 0
            and self.occurred_from_us <= occurred_us < self.occurred_until_us
            and (self.record_types is None or record_type in self.record_types)
        ):
            self.remaining -= 1
            self.exempted += 1
            return True
        return False


@dataclass(frozen=True)
class RunView:
    run_id: str
    source: str
    occurred_from: datetime
    occurred_until: datetime
    expected_records: int
    exempted: int
    approved_at: datetime
    #: :data:`APPROVED` or :data:`OUTAGE_CATCH_UP`.
    kind: str = APPROVED


def approve(
    session: Session,
    *,
    source: Source,
    occurred_from: datetime,
    occurred_until: datetime,
    expected_records: int,
    principal_id: int | None,
    at: datetime,
) -> BackfillRun:
    """Approve a backfill run for ``source`` (an operator's step, journalled)."""
    if occurred_until <= occurred_from:
        raise InvalidInput(
            "occurred_until must be after occurred_from", code="backfill_period_empty"
        )
    if occurred_from > at:
        raise InvalidInput(
            "a backfill loads the past: occurred_from must not be in the future",
            code="backfill_period_in_future",
        )
    if not 0 < expected_records <= MAX_EXPECTED:
        raise InvalidInput(
            f"expected_records must be between 1 and {MAX_EXPECTED:,}",
            code="backfill_volume_invalid",
        )
    run = BackfillRun(
        public_id=new_id("bkf"),
        source_id=source.id,
        occurred_from=occurred_from,
        occurred_until=occurred_until,
        expected_records=expected_records,
        approved_principal_id=principal_id,
        approved_at=at,
        kind=APPROVED,
    )
    record_event(
        session,
        kind=journal.EventKind.BACKFILL_APPROVED,
        at=at,
        data={
            "run": run.public_id,
            "source": source.code,
            "occurred_from": occurred_from,
            "occurred_until": occurred_until,
            "expected_records": expected_records,
        },
        rows=[run],
    )
    return run


def used(session: Session, run_id: int) -> int:
    """Records the run has exempted so far (its deliveries)."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(BackfillDelivery.exempted), 0)).where(
                BackfillDelivery.run_id == run_id
            )
        )
        or 0
    )


def scope(session: Session, run_public_id: str, source_id: int) -> Scope:
    """The run ``run_public_id`` as a batch of ``source_id`` is checked against it:
    :class:`NotFound` for no such run, :class:`Forbidden` for another source's."""
    run = session.scalars(select(BackfillRun).where(BackfillRun.public_id == run_public_id)).first()
    if run is None:
        raise NotFound(f"no backfill run {run_public_id!r}", code="unknown_backfill_run")
    if run.source_id != source_id:
        raise Forbidden(
            f"backfill run {run_public_id} was approved for another source",
            code="backfill_run_of_another_source",
        )
    if run.is_catch_up:
        raise Forbidden(
            f"backfill run {run_public_id} is an outage catch-up, which intake applies by "
            "itself: deliver the missed records without naming it",
            code="backfill_run_is_catch_up",
        )
    turns.take_sources(session, [source_id])  # the volume left is read in the source's turn
    return Scope(
        run_id=run.id,
        public_id=run.public_id,
        source_id=run.source_id,
        occurred_from_us=to_micros(run.occurred_from),
        occurred_until_us=to_micros(run.occurred_until),
        remaining=max(run.expected_records - used(session, run.id), 0),
    )


def deliver(session: Session, run: Scope, *, at: datetime) -> None:
    """Log what a batch delivered under ``run`` was exempted (after it is stored)."""
    delivery = BackfillDelivery(run_id=run.run_id, exempted=run.exempted, delivered_at=at)
    record_event(
        session,
        kind=journal.EventKind.BACKFILL_DELIVERED,
        at=at,
        data={"run": run.public_id, "exempted": run.exempted},
        rows=[delivery],
    )


def list_runs(session: Session) -> list[RunView]:
    used = (
        select(
            BackfillDelivery.run_id,
            func.sum(BackfillDelivery.exempted).label("exempted"),
        )
        .group_by(BackfillDelivery.run_id)
        .subquery()
    )
    rows = session.execute(
        select(
            BackfillRun.public_id,
            Source.code,
            BackfillRun.occurred_from,
            BackfillRun.occurred_until,
            BackfillRun.expected_records,
            func.coalesce(used.c.exempted, 0),
            BackfillRun.approved_at,
            func.coalesce(BackfillRun.kind, APPROVED),
        )
        .join(Source, Source.id == BackfillRun.source_id)
        .outerjoin(used, used.c.run_id == BackfillRun.id)
        .order_by(BackfillRun.id)
    ).all()
    return [RunView(*r) for r in rows]
