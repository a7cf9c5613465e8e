"""Score snapshots written by the batch scorer (``credence score``).

Online reads never depend on these: the online path computes from the ledger. The
snapshot serves population statistics and is compared to the online path in tests.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant


class ScoreSnapshot(Base):
    __tablename__ = "scores"

    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), primary_key=True)
    as_of: Mapped[datetime] = mapped_column(Instant)
    rulebook_version: Mapped[str] = mapped_column(String(32))
    total: Mapped[float] = mapped_column(Float)
    government_affairs: Mapped[float] = mapped_column(Float)
    commercial: Mapped[float] = mapped_column(Float)
    social: Mapped[float] = mapped_column(Float)
    judicial: Mapped[float] = mapped_column(Float)
    tier: Mapped[str] = mapped_column(String(8))


journal.exempt(
    ScoreSnapshot.__table__,
    "a snapshot `credence score` rebuilds from covered rows for population statistics; "
    "online scores and decisions never read it",
)
