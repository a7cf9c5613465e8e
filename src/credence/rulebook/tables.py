"""Published rulebook versions. Every version stays readable forever."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant
from credence.rulebook.loader import content_hash


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


def _text_unchanged(row: Mapping[str, Any]) -> str | None:
    if content_hash(row["text"]) == row["content_hash"]:
        return None
    return (
        f"rulebook {row['version']}: its text does not hash to its recorded SHA-256 "
        "(edited after publication); it does not load"
    )


journal.cover(
    _rulebooks,
    journal.encoder(_rulebooks, "id", "version", "content_hash", "text", "published_at"),
    check=journal.ContentCheck("rulebook", _text_unchanged),
)
