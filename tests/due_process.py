"""Helpers shared by the dispute and repair tests (plain functions, like ``world``)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.disputes import four_eyes
from credence.journal import JournalEntry
from credence.ledger.lifting import PendingChange
from credence.ledger.tables import Record, Subject
from credence.notifications.service import NotificationView, for_subject
from credence.scoring.online import Contribution, Score, score_subject
from tests.world import World


def record_id(sessions: sessionmaker[Session], source_ref: str) -> str:
    """The public id of the (only) record sent under ``source_ref``."""
    with sessions() as session:
        return session.scalars(
            select(Record.public_id).where(Record.source_ref == source_ref)
        ).one()


def score_at(
    sessions: sessionmaker[Session], world: World, subject: Subject, at: datetime
) -> Score:
    with sessions() as session:
        return score_subject(session, session.merge(subject), world.edition, at)


def contribution(score: Score, record: str) -> Contribution:
    return next(c for c in score.contributions if c.record.record_id == record)


def journal_kinds(sessions: sessionmaker[Session]) -> Counter[str]:
    with sessions() as session:
        return Counter(session.scalars(select(JournalEntry.kind)))


def journal_order(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(JournalEntry.kind).order_by(JournalEntry.seq)))


def notes(sessions: sessionmaker[Session], subject: Subject) -> list[NotificationView]:
    """The subject's notifications, oldest first."""
    with sessions() as session:
        return list(reversed(for_subject(session, subject.id)))


def confirm_held(sessions: sessionmaker[Session], record: str, at: datetime) -> str:
    """Confirm, at ``at``, the change of ``record`` (public id) held for a second
    reviewer (a retraction or a dispute's answer of a record that restricts someone);
    the change's id."""
    with sessions.begin() as session:
        change = session.scalars(
            select(PendingChange.public_id)
            .join(Record, Record.id == PendingChange.record_id)
            .where(Record.public_id == record, PendingChange.status == "pending")
        ).one()
        four_eyes.confirm_change(
            session,
            change_id=change,
            by=four_eyes.Decider(principal_id=None),
            reason="Checked against the court's decision.",
            at=at,
        )
    return change
