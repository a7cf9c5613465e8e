"""The tier each subject is currently shown in (derived state, kept to apply hysteresis)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant


class SubjectTier(journal.Journalled, Base):
    __tablename__ = "subject_tiers"

    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), primary_key=True)
    tier: Mapped[str] = mapped_column(String(8))
    total: Mapped[float] = mapped_column(Float)
    since: Mapped[datetime] = mapped_column(Instant)


# Written by a ``tier_changed`` entry when a subject is first shown a tier and each
# time it moves; ``total`` is the score that moved it (not refreshed in between).
_tiers = SubjectTier.__table__
journal.cover(_tiers, journal.encoder(_tiers, "subject_id", "tier", "total", "since"))
