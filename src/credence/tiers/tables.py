"""The tier each subject is currently shown in (derived state, kept to apply hysteresis)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from credence.db import Base, Instant


class SubjectTier(Base):
    __tablename__ = "subject_tiers"

    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), primary_key=True)
    tier: Mapped[str] = mapped_column(String(8))
    total: Mapped[float] = mapped_column(Float)
    since: Mapped[datetime] = mapped_column(Instant)
