"""Telling subjects what happened on their file, and recording the steps that do.

:func:`record_event` is how a feature records a step: it appends the step's journal
entry (with the covered rows it wrote) and, given a :class:`Notice`, the subject's
notification, both in the caller's transaction, so the notice exists if and only if the
entry it reports was committed. :func:`record_events` is its bulk form, for entries that
list no rows (one journal insert, then the notices). :func:`notify` writes a message
that reports no entry of its own (an adverse decision, kept as an inquiry).

Every message is bounded to :data:`MAX_TEXT` characters, and any valid national
identifier in it (a resident identity number or a unified social credit code, which
free text from a source or a reviewer might carry) is masked: a notice may travel
through channels that must not see one.

Channels deliver the outbox: :class:`FileChannel`, the default, delivers by showing the
message on the subject's own file (where every message is visible from the moment it is
written), so delivering only marks it delivered. Other channels (SMS, post, a government app) would
implement :class:`Channel` and be driven by the same :func:`deliver_pending`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from credence import journal
from credence.errors import InvalidIdentifier
from credence.identifiers import mask, validate_any
from credence.notifications.tables import Notification
from credence.wording import Coded, Names, UnknownCode, render

log = logging.getLogger("credence.notifications")

#: Longest message text; long enough for a dispute answer, short enough for an SMS gateway.
MAX_TEXT = 2000

#: A run of 18 or more letters and digits, the longest there is: one of exactly 18 is
#: what a national identifier looks like.
_CANDIDATE = re.compile(r"[0-9A-Za-z]{18,}")


class NoticeKind(StrEnum):
    """The kinds of notification that are not named after the journal entry they
    report (every other notification's kind is its entry's :class:`~credence.journal.EventKind`)."""

    #: A restriction will apply from a date (its entry is a ``warning_issued``).
    RESTRICTION_WARNING = "restriction_warning"
    #: A relying party's request was denied (no entry: the inquiry is on the file).
    ADVERSE_DECISION = "adverse_decision"


@dataclass(frozen=True)
class Notice:
    """What to tell the subject about a step: the message, in plain language, and its
    kind when it is not the step's own; ``coded``: the same message as a code with
    parameters (:mod:`credence.wording`), stored beside the text so that it is shown
    in the reader's language (see :meth:`coded_as`)."""

    text: str
    kind: NoticeKind | None = None
    coded: Coded | None = None

    @classmethod
    def coded_as(cls, message: Coded, kind: NoticeKind | None = None) -> Notice:
        """The notice of a coded message, its text the message in English."""
        return cls(render(message["code"], message["params"]), kind, message)


@dataclass(frozen=True)
class Event:
    """A step for :func:`record_events`: a journal entry that lists no rows, and the
    subject's notice, if any."""

    kind: journal.EventKind
    at: datetime
    data: dict[str, Any]
    subject_id: int | None = None
    notice: Notice | None = None


@dataclass(frozen=True)
class NotificationView:
    """A notification as shown to the subject."""

    kind: str
    text: str
    at: datetime
    delivered_at: datetime | None
    channel: str | None
    #: The message's code and parameters (None for a message written before messages
    #: were coded): what :meth:`text_in` renders.
    code: str | None = None
    params: dict[str, Any] | None = None

    def text_in(self, locale: str, names: Names | None = None) -> tuple[str, bool]:
        """The message in ``locale`` (``en``, ``zh-CN``) and whether it is in that
        language: a message written before messages were coded, or whose code this
        release does not know, is its stored English text (``False`` unless English
        was asked for)."""
        if self.code is not None and self.params is not None:
            try:
                return render(self.code, self.params, locale, names), True
            except UnknownCode:
                pass
        return self.text, locale == "en"


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
        code=row.code,
        params=orjson.loads(row.params) if row.params is not None else None,
    )


def _masked(found: re.Match[str]) -> str:
    run = found.group()
    if len(run) != 18:
        return run
    try:
        validate_any(run)
    except InvalidIdentifier:
        return run
    return mask(run)


def safe_text(text: str) -> str:
    """``text`` as a notification stores it: any valid national identifier in it masked,
    and cut to :data:`MAX_TEXT` characters."""
    return _CANDIDATE.sub(_masked, text)[:MAX_TEXT]


def safe_params(value: Any) -> Any:
    """A message's parameters as a notification stores them: any valid national
    identifier in any of their strings masked (as in :func:`safe_text`)."""
    if isinstance(value, str):
        return _CANDIDATE.sub(_masked, value)
    if isinstance(value, dict):
        return {k: safe_params(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_params(v) for v in value]
    return value


def notification_row(
    *,
    subject_id: int,
    kind: journal.EventKind | NoticeKind,
    text: str,
    at: datetime,
    coded: Coded | None = None,
) -> dict[str, Any]:
    """The columns of a notification as every writer stores it (see :func:`safe_text`
    and :func:`safe_params`); for a writer that inserts the row itself."""
    return {
        "subject_id": subject_id,
        "kind": kind.value,
        "text": safe_text(text),
        "at": at,
        "code": coded["code"] if coded is not None else None,
        "params": orjson.dumps(safe_params(coded["params"])).decode()
        if coded is not None
        else None,
    }


def notify(
    session: Session,
    *,
    subject_id: int,
    kind: journal.EventKind | NoticeKind,
    text: str,
    at: datetime,
    coded: Coded | None = None,
) -> None:
    """Put a message for ``subject_id`` in the outbox (in the caller's transaction);
    ``coded``: the same message as a code with parameters."""
    row = notification_row(subject_id=subject_id, kind=kind, text=text, at=at, coded=coded)
    session.add(Notification(**row))


def _noticed(
    kind: journal.EventKind, subject_id: int | None, notice: Notice, at: datetime
) -> Notification:
    journal.checked(kind)  # a kind is an EventKind, refused before anything is written
    if subject_id is None:
        raise ValueError("a notice needs the subject the entry is about")
    row = notification_row(
        subject_id=subject_id,
        kind=notice.kind or kind,
        text=notice.text,
        at=at,
        coded=notice.coded,
    )
    return Notification(**row)


def record_event(
    session: Session,
    *,
    kind: journal.EventKind,
    at: datetime,
    data: dict[str, Any],
    subject_id: int | None = None,
    rows: Sequence[Any] = (),
    notice: Notice | None = None,
) -> int:
    """Record one step in the caller's transaction; its journal sequence number.

    Appends the journal entry (see :func:`credence.journal.append`: ``rows`` are the
    covered rows the step wrote) and then, given ``notice``, the notification of subject
    ``subject_id`` (of the notice's kind, else the entry's).
    """
    noticed = None if notice is None else _noticed(kind, subject_id, notice, at)
    seq = journal.append(session, kind=kind, at=at, data=data, subject_id=subject_id, rows=rows)
    if noticed is not None:
        session.add(noticed)
    return seq


def record_events(session: Session, events: Sequence[Event]) -> list[int]:
    """Bulk form of :func:`record_event` for steps that list no rows: their entries
    numbered in order and appended in one insert, then their notices; the numbers."""
    notices = [
        _noticed(e.kind, e.subject_id, e.notice, e.at) for e in events if e.notice is not None
    ]
    seqs = journal.allocate(session, len(events))
    journal.append_many(
        session,
        [
            {
                "seq": seq,
                "kind": e.kind,
                "at": e.at,
                "subject_id": e.subject_id,
                "data": journal.canonical(e.data),
                "rows": journal.listing(()),
            }
            for e, seq in zip(events, seqs, strict=True)
        ],
    )
    session.add_all(notices)
    return seqs


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
