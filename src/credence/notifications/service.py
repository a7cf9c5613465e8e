"""Telling subjects what happened on their file.

:func:`notify` writes a message to the outbox in the caller's transaction, so a
notification exists if and only if the event it reports was committed. Channels deliver
the outbox: :class:`FileChannel`, the default, delivers by showing the message on the
subject's own file (where every message is visible from the moment it is written), so
delivering only marks it delivered. Other channels (SMS, post, a government app) would
implement :class:`Channel` and be driven by the same :func:`deliver_pending`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence.notifications.tables import Notification

log = logging.getLogger("credence.notifications")

#: Longest message text; long enough for a dispute answer, short enough for an SMS gateway.
MAX_TEXT = 2000


@dataclass(frozen=True)
class NotificationView:
    """A notification as shown to the subject."""

    kind: str
    text: str
    at: datetime
    delivered_at: datetime | None
    channel: str | None


class Channel(Protocol):
    """A way to get a notification to its subject."""

    @property
    def name(self) -> str:
        """Short name stored with each notification the channel delivered."""
        ...

    def deliver(self, notification: NotificationView, *, subject_id: int) -> None:
        """Deliver one notification; raise to leave it in the outbox for a later try."""
        ...


class FileChannel:
    """The default channel: the subject's file. Every notification already shows there,
    so delivering it only needs marking it delivered."""

    @property
    def name(self) -> str:
        return "file"

    def deliver(self, notification: NotificationView, *, subject_id: int) -> None:
        return None


def _view(row: Notification) -> NotificationView:
    return NotificationView(
        kind=row.kind,
        text=row.text,
        at=row.at,
        delivered_at=row.delivered_at,
        channel=row.channel,
    )


def notify(session: Session, *, subject_id: int, kind: str, text: str, at: datetime) -> None:
    """Put a message for ``subject_id`` in the outbox (in the caller's transaction)."""
    session.add(Notification(subject_id=subject_id, kind=kind, text=text[:MAX_TEXT], at=at))


def deliver_pending(session: Session, channel: Channel, at: datetime) -> int:
    """Deliver every undelivered notification written at or before ``at``; return how many.

    A notification the channel fails to deliver (raises) stays in the outbox for the
    next run and the others are still delivered: one unreachable subject must not hold
    up everyone else's messages, and a failure must not undo the marks of messages
    already sent (which would send them twice).
    """
    pending = session.scalars(
        select(Notification)
        .where(Notification.delivered_at.is_(None), Notification.at <= at)
        .order_by(Notification.id)
    ).all()
    delivered = 0
    for row in pending:
        try:
            channel.deliver(_view(row), subject_id=row.subject_id)
        except Exception:
            log.warning("channel %s could not deliver notification %d", channel.name, row.id)
            continue
        row.delivered_at = at
        row.channel = channel.name
        delivered += 1
    session.flush()
    return delivered


def for_subject(session: Session, subject_id: int) -> list[NotificationView]:
    """Every notification for a subject, newest first (what their file shows)."""
    rows = session.scalars(
        select(Notification)
        .where(Notification.subject_id == subject_id)
        .order_by(Notification.at.desc(), Notification.id.desc())
    )
    return [_view(row) for row in rows]
