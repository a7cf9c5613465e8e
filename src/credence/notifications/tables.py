"""The notification outbox: one row per message to a subject.

Unlike the ledger, this table is an outbox, not a record of facts: ``delivered_at`` and
``channel`` are filled in when a channel has delivered the message. The fact that
caused a notification (a dispute answered, a repair decided, ...) is itself a ledger
entry with its own journal entry; the notification only tells the subject about it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant


class Notification(Base):
    """A message to a subject about something that happened on their file."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_subject_at", "subject_id", "at"),
        Index("ix_notifications_delivered_at", "delivered_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The subject the message is for (and about).
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    #: What happened, machine-readable: ``dispute_opened``, ``repair_decided``, ...
    kind: Mapped[str] = mapped_column(String(32))
    #: The message in plain language, written for the subject.
    text: Mapped[str] = mapped_column(Text)
    #: The message as a code of :mod:`credence.wording` and its JSON parameters, from
    #: which it is rendered in the reader's language; NULL for a message written before
    #: messages were coded (shown from ``text``, in English).
    code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    params: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: When the event it reports happened (from the one clock).
    at: Mapped[datetime] = mapped_column(Instant)
    #: When a channel delivered it; None while it waits in the outbox.
    delivered_at: Mapped[datetime | None] = mapped_column(Instant, nullable=True)
    #: The channel that delivered it (``file``, ...); None while undelivered.
    channel: Mapped[str | None] = mapped_column(String(32), nullable=True)


journal.exempt(
    Notification.__table__,
    "an outbox of messages about steps that are journal entries of their own; "
    "delivered_at and channel change on delivery, and no score, decision or "
    "authorisation reads it",
)
