"""Recording a step: its journal entry and the subject's notice, stored together or not
at all, the notice bounded and free of national identifiers, the kind typed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence import journal
from credence.clock import FixedClock
from credence.identifiers import guess_kind, mask
from credence.journal import EventKind, JournalEntry
from credence.notifications.service import (
    MAX_TEXT,
    Event,
    Notice,
    NoticeKind,
    notify,
    record_event,
    record_events,
)
from credence.notifications.tables import Notification
from credence.tiers.tables import SubjectTier
from tests.world import build_world, company_id, person_id


@dataclass(frozen=True)
class Setup:
    sessions: sessionmaker[Session]
    at: datetime
    subject_id: int
    other_id: int


@pytest.fixture
def setup(sessions: sessionmaker[Session], clock: FixedClock) -> Setup:
    world = build_world(sessions, clock, people=2)
    return Setup(sessions, clock.now(), world.people[0].id, world.people[1].id)


def stored(sessions: sessionmaker[Session]) -> tuple[list[JournalEntry], list[Notification]]:
    """The entries a test wrote (not the world's registrations) and every notification."""
    with sessions() as session:
        entries = session.scalars(
            select(JournalEntry)
            .where(JournalEntry.kind == EventKind.TIER_CHANGED.value)
            .order_by(JournalEntry.seq)
        ).all()
        notices = session.scalars(select(Notification).order_by(Notification.id)).all()
        session.expunge_all()
    return list(entries), list(notices)


def fail_after(sessions: sessionmaker[Session], step: Callable[[Session], object]) -> None:
    """Run ``step`` in a transaction that then fails."""
    with sessions.begin() as session:
        step(session)
        raise RuntimeError("a later step of the transaction fails")


def tier_changed(session: Session, s: Setup, text: str, **notice: NoticeKind) -> int:
    row = SubjectTier(subject_id=s.subject_id, tier="A", total=900.0, since=s.at)
    return record_event(
        session,
        kind=EventKind.TIER_CHANGED,
        at=s.at,
        subject_id=s.subject_id,
        data={"from": None, "to": "A"},
        rows=[row],
        notice=Notice(text, notice.get("kind")),
    )


def adverse(session: Session, s: Setup, text: str) -> None:
    """A notice that reports no entry of its own."""
    notify(session, subject_id=s.subject_id, kind=NoticeKind.ADVERSE_DECISION, text=text, at=s.at)


def test_the_entry_and_its_notice_are_stored_together_or_not_at_all(setup: Setup) -> None:
    with pytest.raises(RuntimeError):
        fail_after(setup.sessions, lambda session: tier_changed(session, setup, "Hi."))
    assert stored(setup.sessions) == ([], [])
    with setup.sessions() as session:
        assert session.scalar(select(func.count()).select_from(SubjectTier)) == 0

    with setup.sessions.begin() as session:
        seq = tier_changed(session, setup, "Your tier is A.")
    entries, notices = stored(setup.sessions)
    assert [e.seq for e in entries] == [seq]
    assert entries[0].data == journal.canonical({"from": None, "to": "A"})
    assert [(t, k) for t, k, _ in journal.parse_listing(entries[0].rows)] == [
        ("subject_tiers", setup.subject_id)
    ]
    assert [(n.subject_id, n.kind, n.text, n.at) for n in notices] == [
        (setup.subject_id, "tier_changed", "Your tier is A.", setup.at)
    ]


def test_a_notice_has_the_entrys_kind_unless_it_names_its_own(setup: Setup) -> None:
    with setup.sessions.begin() as session:
        tier_changed(session, setup, "Warned.", kind=NoticeKind.RESTRICTION_WARNING)
    assert [n.kind for n in stored(setup.sessions)[1]] == ["restriction_warning"]


def test_the_kind_is_typed_and_a_notice_needs_a_subject(setup: Setup) -> None:
    with setup.sessions() as session:
        with pytest.raises(ValueError, match="not a journal event kind"):
            record_event(
                session,
                kind="tier_changed",  # type: ignore[arg-type]
                at=setup.at,
                subject_id=setup.subject_id,
                data={},
                notice=Notice("Hello."),
            )
        with pytest.raises(ValueError, match="needs the subject"):
            record_event(
                session, kind=EventKind.KEY_ISSUED, at=setup.at, data={}, notice=Notice("x")
            )
        session.commit()
    with setup.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 0
        assert not session.scalars(
            select(JournalEntry).where(JournalEntry.kind == EventKind.KEY_ISSUED.value)
        ).all()


def test_the_notice_text_is_bounded(setup: Setup) -> None:
    with setup.sessions.begin() as session:
        tier_changed(session, setup, "y" * (MAX_TEXT + 500))
        adverse(session, setup, "z" * (MAX_TEXT * 2))
    assert [len(n.text) for n in stored(setup.sessions)[1]] == [MAX_TEXT, MAX_TEXT]


def test_no_national_identifier_reaches_a_notice(setup: Setup) -> None:
    person, company = person_id(0), company_id(1)
    # Free text (a source's explanation, a reviewer's reasons) may carry one, in any case.
    text = f"About {person} ({person.lower()}), of {company}: see rec_{person}."
    with setup.sessions.begin() as session:
        tier_changed(session, setup, text)
        adverse(session, setup, text)
        record_events(
            session,
            [
                Event(
                    EventKind.RECORD_REINSERTED,
                    setup.at,
                    {"record": "rec_1"},
                    setup.subject_id,
                    Notice(text),
                )
            ],
        )
    notices = stored(setup.sessions)[1]
    assert len(notices) == 3
    for notice in notices:
        for identifier in (person, company):
            assert identifier.lower() not in notice.text.lower()
        assert notice.text == (
            f"About {mask(person)} ({mask(person)}), of {mask(company)}: see rec_{mask(person)}."
        )
    # What only looks like one (the wrong check digit, 18 hex digits of an id) stays.
    wrong = next(
        n
        for n in (person[:-1] + d for d in "0123456789")
        if guess_kind(n, today=setup.at.date()) is None
    )
    plain = f"Records {wrong} and 0123456789abcdef01."
    with setup.sessions.begin() as session:
        adverse(session, setup, plain)
    assert stored(setup.sessions)[1][-1].text == plain


def test_record_events_numbers_the_entries_in_order_and_writes_their_notices(
    setup: Setup,
) -> None:
    events = [
        Event(
            EventKind.TIER_CHANGED,
            setup.at,
            {"to": "B", "n": i},
            subject_id=subject,
            notice=Notice(f"Notice {i}.") if i != 1 else None,
        )
        for i, subject in enumerate([setup.subject_id, setup.other_id, setup.other_id])
    ]
    with setup.sessions.begin() as session:
        seqs = record_events(session, events)
    entries, notices = stored(setup.sessions)
    assert [e.seq for e in entries] == seqs == sorted(seqs)
    assert [(e.subject_id, e.data, e.rows) for e in entries] == [
        (e.subject_id, journal.canonical(e.data), "[]") for e in events
    ]
    assert [(n.subject_id, n.kind, n.text) for n in notices] == [
        (setup.subject_id, "tier_changed", "Notice 0."),
        (setup.other_id, "tier_changed", "Notice 2."),
    ]
    with pytest.raises(RuntimeError):
        fail_after(setup.sessions, lambda session: record_events(session, events))
    after = stored(setup.sessions)
    assert [e.seq for e in after[0]] == seqs
    assert [n.id for n in after[1]] == [n.id for n in notices]
