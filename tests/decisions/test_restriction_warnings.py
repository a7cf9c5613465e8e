"""Warn before punishing: restrictions with a warning period apply only after it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.decisions.service import Decision, decide
from credence.journal import JournalEntry
from credence.ledger import service as ledger
from credence.ledger.tables import Record, Subject
from credence.notifications.tables import Notification
from credence.rulebook.model import Outcome
from tests.due_process import confirm_held
from tests.world import World, build_world, rec, submit


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    return build_world(sessions, clock)


def ask(
    sessions: sessionmaker[Session], clock: FixedClock, world: World, subject: Subject, service: str
) -> Decision:
    with sessions.begin() as session:
        return decide(
            session,
            subject=session.merge(subject),
            service_code=service,
            edition=world.edition,
            at=clock.now(),
            party_id=None,
            principal_id=None,
        )


def notices(sessions: sessionmaker[Session], subject: Subject, kind: str) -> list[str]:
    with sessions() as session:
        query = select(Notification.text).where(
            Notification.subject_id == subject.id, Notification.kind == kind
        )
        return list(session.scalars(query))


def test_a_restriction_with_a_warning_period_waits_for_it(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    service = world.edition.rulebook.service("public_procurement_bid")
    assert service is not None
    assert service.warning_days > 0
    assert not service.court_ordered
    company = world.company
    submit(
        sessions,
        world,
        "court",
        clock.now(),
        rec(
            "f1",
            company,
            "fraud_judgment",
            clock.now() - timedelta(days=2),
            decision_ref="(2026)Min-3",
        ),
    )
    first = ask(sessions, clock, world, company, "public_procurement_bid")
    assert first.outcome is Outcome.ALLOW
    assert first.warnings
    assert "warned" in first.warnings[0]
    warned = notices(sessions, company, "restriction_warning")
    assert len(warned) == 1
    clock.advance(timedelta(days=service.warning_days) - timedelta(seconds=1))
    assert ask(sessions, clock, world, company, "public_procurement_bid").outcome is Outcome.ALLOW
    assert len(notices(sessions, company, "restriction_warning")) == 1  # warned once
    clock.advance(timedelta(seconds=1))
    applied = ask(sessions, clock, world, company, "public_procurement_bid")
    assert applied.outcome is Outcome.DENY
    assert "(2026)Min-3" in " ".join(applied.reasons)
    assert notices(sessions, company, "adverse_decision")


def test_once_no_longer_caught_a_later_catch_warns_again(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    company = world.company
    submit(
        sessions,
        world,
        "court",
        clock.now(),
        rec("f1", company, "fraud_judgment", clock.now(), decision_ref="F-1"),
    )
    ask(sessions, clock, world, company, "public_procurement_bid")
    with sessions.begin() as session:
        record_id = session.scalars(select(Record.public_id)).one()
        ledger.retract_record(
            session,
            source=session.merge(world.sources["court"]),
            record_id=record_id,
            reason="quashed on appeal",
            at=clock.now(),
        )
    confirm_held(sessions, record_id, clock.now())  # the judgment restricts: four eyes
    clock.advance(timedelta(days=1))
    assert ask(sessions, clock, world, company, "public_procurement_bid").warnings == []
    submit(
        sessions,
        world,
        "court",
        clock.now(),
        rec("f2", company, "fraud_judgment", clock.now(), decision_ref="F-2"),
    )
    again = ask(sessions, clock, world, company, "public_procurement_bid")
    assert again.outcome is Outcome.ALLOW
    assert again.warnings
    assert len(notices(sessions, company, "restriction_warning")) == 2
    with sessions() as session:
        kinds = list(session.scalars(select(JournalEntry.kind)))
    assert kinds.count("warning_issued") == 2
    assert kinds.count("warning_cleared") == 1


def test_court_ordered_restrictions_apply_at_once(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    person = world.people[0]
    submit(
        sessions,
        world,
        "court",
        clock.now(),
        rec("j1", person, "judgment_default", clock.now(), decision_ref="J-1"),
    )
    decision = ask(sessions, clock, world, person, "air_travel")
    assert decision.outcome is Outcome.DENY
    assert decision.warnings == []
    assert notices(sessions, person, "adverse_decision")
