"""Due-process tables: disputes and their answers and lapses, statements, repairs.

Like the rest of the ledger these are append-only: a dispute is never updated, its
answer is a new row (at most one per dispute), as is the explicit lapse the sweep
writes, and a repair decision is a new row next to the application. Every row has a
journal entry written in the same transaction (:mod:`credence.disputes.service`,
:mod:`credence.disputes.repair`).

Several of these rows end a record's effect (a dispute answered ``deleted`` or
``corrected``, a dispute left unanswered at its deadline, an approved repair); the one
definition of when a record's effect ends, over these tables and retractions, is
:mod:`credence.ledger.endings`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant


class Dispute(journal.Journalled, Base):
    """A subject contesting a record on their file, with the deadline for the answer."""

    __tablename__ = "disputes"
    __table_args__ = (
        # At most one open dispute per record: see ``prior_disputes``.
        Index("uq_disputes_record_prior", "record_id", "prior_disputes", unique=True),
        Index("ix_disputes_source_deadline", "source_id", "deadline"),
        Index("ix_disputes_subject_id", "subject_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"))
    #: The subject whose file the record is on (who opened the dispute).
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    #: The source that reported the record and must answer (its queue).
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    #: What the subject says is wrong.
    reason: Mapped[str] = mapped_column(Text)
    #: New information the subject brings, if any (it lengthens the deadline).
    new_information: Mapped[str | None] = mapped_column(Text, nullable=True)
    opened_at: Mapped[datetime] = mapped_column(Instant)
    #: Answer due strictly before this instant; unanswered by then, the record's effect
    #: ends at exactly this instant (unverifiable).
    deadline: Mapped[datetime] = mapped_column(Instant)
    #: The rulebook edition whose ``[dispute]`` periods set the deadline.
    rulebook_version: Mapped[str] = mapped_column(String(32))
    #: How many disputes of the record were opened before this one. Unique with
    #: ``record_id``: a dispute may open only when every earlier one of the record is
    #: closed (answered ``verified``; any other end ends the record's effect, and with
    #: it all disputes), so two disputes that both counted the same earlier ones, and
    #: would both be open, cannot both be stored. Whether a dispute is open depends on
    #: other rows and on time, which no partial index can read; this count does not.
    prior_disputes: Mapped[int] = mapped_column(Integer, server_default="0")


class DisputeAnswer(journal.Journalled, Base):
    """The answer to a dispute: ``verified``, ``corrected`` or ``deleted`` (at most one)."""

    __tablename__ = "dispute_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id"), unique=True)
    outcome: Mapped[str] = mapped_column(String(16))
    #: Why, in words the subject can read.
    explanation: Mapped[str] = mapped_column(Text)
    answered_at: Mapped[datetime] = mapped_column(Instant)
    #: ``source`` or ``reviewer``.
    answered_by: Mapped[str] = mapped_column(String(16))
    #: The answering principal (None when answered from the command line).
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), nullable=True)
    #: The record the source sent as the correction (outcome ``corrected``).
    corrected_record_id: Mapped[int | None] = mapped_column(ForeignKey("records.id"), nullable=True)


class DisputeLapse(journal.Journalled, Base):
    """The explicit ledger entry for a dispute left unanswered at its deadline.

    The record's effect ends at the deadline whether or not this row exists (scores are
    reproducible without any job running); the sweep writes it so that the lapse, like
    every other step, is an entry of its own.
    """

    __tablename__ = "dispute_lapses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id"), unique=True)
    #: When the record's effect ended: the dispute's deadline.
    lapsed_at: Mapped[datetime] = mapped_column(Instant)
    #: When the sweep wrote this entry (at or after ``lapsed_at``).
    recorded_at: Mapped[datetime] = mapped_column(Instant)


class Statement(journal.Journalled, Base):
    """A short statement a subject attached to a record on their file; the latest shows."""

    __tablename__ = "statements"
    __table_args__ = (Index("ix_statements_record_at", "record_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    text: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(Instant)


class Repair(journal.Journalled, Base):
    """A subject's application for early credit repair of a negative record."""

    __tablename__ = "repairs"
    __table_args__ = (
        Index("ix_repairs_record_id", "record_id"),
        Index("ix_repairs_subject_id", "subject_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    #: The subject's statement that the behaviour is corrected and will not recur.
    commitment: Mapped[str] = mapped_column(Text)
    #: JSON list of record ids on the file that show the correction (e.g. a
    #: judgment-performed record for the same case), found when the application came in.
    evidence: Mapped[str] = mapped_column(Text)
    applied_at: Mapped[datetime] = mapped_column(Instant)


class RepairDecision(journal.Journalled, Base):
    """A reviewer's decision on a repair application (at most one per application)."""

    __tablename__ = "repair_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repair_id: Mapped[int] = mapped_column(ForeignKey("repairs.id"), unique=True)
    approved: Mapped[bool] = mapped_column(Boolean)
    #: The reviewer's reasons, shown to the subject (required for a refusal and approval).
    reasons: Mapped[str] = mapped_column(Text)
    #: An approved repair ends the record's effect at this instant.
    decided_at: Mapped[datetime] = mapped_column(Instant)
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), nullable=True)


# --- what the log covers (see credence.journal.coverage) ---------------------------------

_disputes = Dispute.__table__
journal.cover(
    _disputes,
    journal.encoder(
        _disputes,
        "id",
        "public_id",
        "record_id",
        "subject_id",
        "source_id",
        "reason",
        "new_information",
        "opened_at",
        "deadline",
        "rulebook_version",
        "prior_disputes",
    ),
)
_answers = DisputeAnswer.__table__
journal.cover(
    _answers,
    journal.encoder(
        _answers,
        "id",
        "dispute_id",
        "outcome",
        "explanation",
        "answered_at",
        "answered_by",
        "principal_id",
        "corrected_record_id",
    ),
)
_lapses = DisputeLapse.__table__
journal.cover(_lapses, journal.encoder(_lapses, "id", "dispute_id", "lapsed_at", "recorded_at"))
_statements = Statement.__table__
journal.cover(
    _statements, journal.encoder(_statements, "id", "record_id", "subject_id", "text", "at")
)
_repairs = Repair.__table__
journal.cover(
    _repairs,
    journal.encoder(
        _repairs,
        "id",
        "public_id",
        "record_id",
        "subject_id",
        "commitment",
        "evidence",
        "applied_at",
    ),
)
_decisions = RepairDecision.__table__
journal.cover(
    _decisions,
    journal.encoder(
        _decisions, "id", "repair_id", "approved", "reasons", "decided_at", "principal_id"
    ),
)
