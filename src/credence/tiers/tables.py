"""The tier each subject is currently shown in (derived state, kept to apply hysteresis)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant


class SubjectTier(Base):
    __tablename__ = "subject_tiers"

    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), primary_key=True)
    tier: Mapped[str] = mapped_column(String(8))
    total: Mapped[float] = mapped_column(Float)
    since: Mapped[datetime] = mapped_column(Instant)


# The row is which subject has a shown tier; its tier, total and since are to be what
# the subject's tier entries say. Today a first tier is stored without an entry and the
# total is updated by every rescore: the next step makes each of those an entry.
_tiers = SubjectTier.__table__
journal.cover(
    _tiers,
    journal.encoder(_tiers, "subject_id"),
    later={
        "tier": journal.EventKind.TIER_CHANGED,
        "total": journal.EventKind.TIER_CHANGED,
        "since": journal.EventKind.TIER_CHANGED,
    },
)
