"""Keeping each subject's shown tier, and telling them when it changes.

The raw tier of a score (``Score.tier``) is a pure function of the ledger and the
instant. The *shown* tier adds hysteresis (:mod:`credence.tiers.hysteresis`), so it needs
the previous one: it is kept in ``subject_tiers`` and updated by the batch rescore and
whenever a subject's score is computed for them. A first tier and every change are a
journal entry that writes the row (its ``total`` is the score that set the tier, not
refreshed in between); a change is also a notification.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence import journal
from credence.ledger.tables import Subject
from credence.notifications.service import Notice, record_event
from credence.rulebook.model import Rulebook
from credence.tiers.hysteresis import next_tier, rank
from credence.tiers.tables import SubjectTier
from credence.wording import coded


def shown_tier(session: Session, subject_id: int) -> str | None:
    return session.scalar(select(SubjectTier.tier).where(SubjectTier.subject_id == subject_id))


def _chunks(ids: list[int], size: int = 900) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


@dataclass(frozen=True)
class TierMoves:
    """How many shown tiers an update set for the first time, raised and lowered."""

    first: int = 0
    up: int = 0
    down: int = 0

    @property
    def changed(self) -> int:
        return self.up + self.down


def update_tiers(
    session: Session,
    book: Rulebook,
    at: datetime,
    scores: Iterable[tuple[int, float, Sequence[float]]],
) -> TierMoves:
    """Apply hysteresis to each ``(subject_id, total, against)`` (``against``: negative
    records weighing against the subject, by severity, least severe first: what tier
    conditions read); store, notify and journal every change. Returns how many tiers
    were set first, moved up and moved down."""
    pairs = {subject_id: (total, against) for subject_id, total, against in scores}
    ids = sorted(pairs)
    current: dict[int, SubjectTier] = {}
    for chunk in _chunks(ids):
        query = select(SubjectTier).where(SubjectTier.subject_id.in_(chunk))
        current.update((found.subject_id, found) for found in session.scalars(query))
    first: list[SubjectTier] = []
    changes: list[tuple[SubjectTier, str]] = []
    for subject_id in ids:
        total, against = pairs[subject_id]
        row = current.get(subject_id)
        if row is None:
            tier = next_tier(book, None, total, against)
            first.append(SubjectTier(subject_id=subject_id, tier=tier, total=total, since=at))
            continue
        tier = next_tier(book, row.tier, total, against)
        if tier != row.tier:
            changes.append((row, row.tier))
            row.tier, row.total, row.since = tier, total, at
    for row in first:
        # A first tier is shown without a notice (nothing moved), but it is an entry.
        record_event(
            session,
            kind=journal.EventKind.TIER_CHANGED,
            at=at,
            subject_id=row.subject_id,
            data={"from": None, "to": row.tier, "rulebook": book.version},
            rows=[row],
        )
    public: dict[int, str] = {}
    for chunk in _chunks([row.subject_id for row, _ in changes]):
        rows = session.execute(select(Subject.id, Subject.public_id).where(Subject.id.in_(chunk)))
        public.update((subject_id, public_id) for subject_id, public_id in rows)
    up = 0
    for row, previous in changes:
        subject_id, tier, total = row.subject_id, row.tier, row.total
        direction = "up" if rank(book, tier) < rank(book, previous) else "down"
        up += direction == "up"
        record_event(
            session,
            kind=journal.EventKind.TIER_CHANGED,
            at=at,
            subject_id=subject_id,
            data={
                "subject": public[subject_id],
                "from": previous,
                "to": tier,
                "rulebook": book.version,
            },
            rows=[row],
            notice=Notice.coded_as(
                coded(
                    f"tier_changed_{direction}",
                    previous=previous,
                    tier=tier,
                    score=total,
                    version=book.version,
                )
            ),
        )
    session.flush()
    return TierMoves(first=len(first), up=up, down=len(changes) - up)
