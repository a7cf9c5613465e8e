"""The journal table: one row per step of the ledger, in order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from credence.db import Base, Instant
from credence.journal.coverage import exempt


class JournalEntry(Base):
    """One append to the ledger, in order; the leaf data of the transparency log.

    ``seq`` is given by the writer (:func:`credence.journal.rows.allocate`), so that the
    rows a step writes can carry it. ``kind`` is an
    :class:`~credence.journal.kinds.EventKind` value; ``subject_id``
    names the subject whose file the step is on, if any (the foreign key names the
    ledger's table by name only: this package imports no feature).
    """

    __tablename__ = "journal"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subjects.id"), nullable=True)
    at: Mapped[datetime] = mapped_column(Instant)
    #: Canonical JSON (sorted keys, no whitespace) of what the step was, without the
    #: content of the rows it wrote (those are listed in ``rows``).
    data: Mapped[str] = mapped_column(Text)
    #: The covered rows the step wrote: JSON ``[[table, key, digest], ...]`` (see
    #: :mod:`credence.journal.rows`).
    rows: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")


exempt(
    JournalEntry.__table__,
    "the journal itself: its rows are the log's leaves, which checkpoints sign",
)
