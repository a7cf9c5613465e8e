"""Published rulebook versions. Every version stays readable forever."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant


class PublishedRulebook(journal.Journalled, Base):
    __tablename__ = "rulebooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(32), unique=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The file exactly as published (TOML).
    text: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(Instant)


# The text as published and its SHA-256: what scoring and decisions apply.
_rulebooks = PublishedRulebook.__table__
journal.cover(
    _rulebooks,
    journal.encoder(_rulebooks, "id", "version", "content_hash", "text", "published_at"),
)
