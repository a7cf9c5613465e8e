"""Inquiries: every decision asked about a subject, kept on the subject's file."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant


class Inquiry(Base):
    __tablename__ = "inquiries"
    __table_args__ = (Index("ix_inquiries_subject_at", "subject_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    party_id: Mapped[int | None] = mapped_column(ForeignKey("relying_parties.id"), nullable=True)
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), nullable=True)
    service: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    terms: Mapped[str | None] = mapped_column(Text, nullable=True)
    score: Mapped[float] = mapped_column(Float)
    rulebook_version: Mapped[str] = mapped_column(String(32))
    #: JSON list of the reasons given (empty for a favourable outcome).
    reasons: Mapped[str] = mapped_column(Text)
    #: JSON list of the same reasons as codes with parameters (``[{"code", "params"}]``,
    #: :mod:`credence.wording`); NULL for a decision made before reasons were coded.
    reason_codes: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(Instant)


class LookupInquiry(Base):
    """A look-up of the subject by national identifier (``POST /v1/subjects/lookup``):
    who learnt the subject's id, and when. Shown with the decisions among the inquiries
    on the subject's file: whoever asked about them. A decision asked by identifier is
    an :class:`Inquiry` of its own and needs no row here."""

    __tablename__ = "lookup_inquiries"
    __table_args__ = (Index("ix_lookup_inquiries_subject_at", "subject_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), nullable=True)
    #: Who asked, by what they speak for: a relying party, a source, or neither (operator).
    party_id: Mapped[int | None] = mapped_column(ForeignKey("relying_parties.id"), nullable=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id"), nullable=True)
    at: Mapped[datetime] = mapped_column(Instant)


class RestrictionWarning(journal.Journalled, Base):
    """A subject warned that a restriction will apply (warn before punishing).

    The restriction applies only from ``effective_at``; a warning is cleared when the
    subject is no longer caught by the restriction, so a later catch warns again.
    """

    __tablename__ = "restriction_warnings"
    __table_args__ = (Index("ix_restriction_warnings_subject_service", "subject_id", "service"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    service: Mapped[str] = mapped_column(String(64))
    warned_at: Mapped[datetime] = mapped_column(Instant)
    effective_at: Mapped[datetime] = mapped_column(Instant)
    cleared_at: Mapped[datetime | None] = mapped_column(Instant, nullable=True)
    #: JSON list of the coded reasons that caught the subject (:mod:`credence.wording`);
    #: NULL for a warning issued before reasons were coded.
    reason_codes: Mapped[str | None] = mapped_column(Text, nullable=True)


# --- what the log covers (see credence.journal.coverage) ---------------------------------

journal.exempt(
    Inquiry.__table__,
    "what a decision answered, kept to show the subject who asked about them: written by "
    "the decision itself, and no score, decision or authorisation reads it",
)
journal.exempt(
    LookupInquiry.__table__,
    "who looked a subject up by identifier, kept to show the subject: no score, decision "
    "or authorisation reads it",
)
_warnings = RestrictionWarning.__table__
journal.cover(
    _warnings,
    journal.encoder(
        _warnings,
        "id",
        "subject_id",
        "service",
        "warned_at",
        "effective_at",
        "cleared_at",
        "reason_codes",
        added=("reason_codes",),
    ),
)
