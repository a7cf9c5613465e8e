"""Purpose-bound decisions: outcomes, specific reasons, lifting, inquiries, binding."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_relying_party
from credence.clock import FixedClock
from credence.decisions.service import Decision, decide
from credence.decisions.tables import Inquiry
from credence.errors import Forbidden, InvalidInput
from credence.identifiers import SubjectKind
from credence.ledger import registry
from credence.ledger.schemas import SubjectIn
from credence.ledger.tables import Subject
from credence.rulebook.model import Category, Outcome
from tests.world import World, build_world, person_id, rec, submit


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    return build_world(sessions, clock)


@pytest.fixture
def party(sessions: sessionmaker[Session], clock: FixedClock, world: World) -> int:
    with sessions.begin() as session:
        services = [s.code for s in world.edition.rulebook.services]
        return create_relying_party(
            session, code="desk", name="One-stop desk", services=services, clock=clock
        ).id


def ask(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    world: World,
    subject: Subject,
    service: str,
    party: int | None,
) -> Decision:
    with sessions.begin() as session:
        return decide(
            session,
            subject=session.merge(subject),
            service_code=service,
            edition=world.edition,
            at=clock.now(),
            party_id=party,
            principal_id=None,
        )


def test_judgment_default_restricts_air_travel_until_satisfied(
    sessions: sessionmaker[Session], clock: FixedClock, world: World, party: int
) -> None:
    p = world.people[0]
    ok = ask(sessions, clock, world, p, "air_travel", party)
    assert ok.outcome is Outcome.ALLOW
    assert ok.reasons == []
    day = clock.now() - timedelta(days=30)
    submit(
        sessions,
        world,
        "court",
        clock.now(),
        rec("j1", p, "judgment_default", day, decision_ref="(2026)Zhi-88"),
    )
    denied = ask(sessions, clock, world, p, "air_travel", party)
    assert denied.outcome is Outcome.DENY
    assert 1 <= len(denied.reasons) <= 4
    assert "(2026)Zhi-88" in denied.reasons[0]
    assert "score too low" not in " ".join(denied.reasons).lower()
    assert denied.cited_records
    assert denied.how_to_dispute
    # Satisfaction of another judgment does not lift this one ...
    clock.advance(timedelta(days=1))
    submit(
        sessions,
        world,
        "court",
        clock.now(),
        rec("s0", p, "judgment_satisfied", clock.now(), decision_ref="(2025)Zhi-1"),
    )
    assert ask(sessions, clock, world, p, "air_travel", party).outcome is Outcome.DENY
    # ... satisfaction of this one does.
    submit(
        sessions,
        world,
        "court",
        clock.now(),
        rec("s1", p, "judgment_satisfied", clock.now(), decision_ref="(2026)Zhi-88"),
    )
    assert ask(sessions, clock, world, p, "air_travel", party).outcome is Outcome.ALLOW


def test_reward_and_adverse_reward_decision(
    sessions: sessionmaker[Session], clock: FixedClock, world: World, party: int
) -> None:
    good, bad = world.people[0], world.people[1]
    start = clock.now() - timedelta(days=200)
    submit(
        sessions,
        world,
        "bank",
        clock.now(),
        *[rec(f"g{i}", good, "loan_repaid", start + timedelta(days=i)) for i in range(10)],
        *[
            rec(f"s{i}", good, "on_time_payment_streak", start + timedelta(days=i))
            for i in range(3)
        ],
    )
    granted = ask(sessions, clock, world, good, "loan_rate_discount", party)
    assert granted.outcome is Outcome.REWARD
    assert granted.terms
    submit(
        sessions,
        world,
        "bank",
        clock.now(),
        rec("d1", bad, "loan_default", start, decision_ref="REG-9"),
    )
    refused = ask(sessions, clock, world, bad, "loan_rate_discount", party)
    assert refused.outcome is Outcome.DENY
    assert any("REG-9" in r for r in refused.reasons)
    assert len(refused.reasons) <= 4
    nothing_yet = ask(sessions, clock, world, world.people[2], "loan_rate_discount", party)
    assert nothing_yet.outcome is Outcome.DENY
    assert nothing_yet.reasons
    assert all("score too low" not in r.lower() for r in nothing_yet.reasons)


def test_every_decision_is_an_inquiry_on_the_file(
    sessions: sessionmaker[Session], clock: FixedClock, world: World, party: int
) -> None:
    p = world.people[0]
    ask(sessions, clock, world, p, "air_travel", party)
    ask(sessions, clock, world, p, "community_perks", party)
    with sessions() as session:
        rows = session.scalars(select(Inquiry).where(Inquiry.subject_id == p.id)).all()
    assert sorted(r.service for r in rows) == ["air_travel", "community_perks"]
    assert all(r.party_id == party for r in rows)


def test_parties_ask_only_for_registered_services(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    with sessions.begin() as session:
        airline = create_relying_party(
            session, code="air", name="Air", services=["air_travel"], clock=clock
        ).id
    assert ask(sessions, clock, world, world.people[0], "air_travel", airline)
    with pytest.raises(Forbidden, match="not registered"):
        ask(sessions, clock, world, world.people[0], "loan_rate_discount", airline)


def test_services_apply_only_to_their_subject_kinds(
    sessions: sessionmaker[Session], clock: FixedClock, world: World, party: int
) -> None:
    with pytest.raises(InvalidInput, match="does not apply"):
        ask(sessions, clock, world, world.company, "community_perks", party)


OTHER_THAN_JUDICIAL = [
    ("bank", "loan_default", "REG"),
    ("bank", "loan_repaid", None),
    ("bank", "credit_card_default", "REG"),
    ("tax_office", "tax_evasion_penalty", "TAX"),
    ("traffic_police", "drunk_driving_penalty", "TP"),
    ("volunteers", "heroic_act", None),
]
_serial = itertools.count(1000)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    judicial=st.booleans(),
    others=st.lists(st.sampled_from(OTHER_THAN_JUDICIAL), max_size=6),
)
def test_records_outside_a_services_categories_never_change_its_outcome(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    world: World,
    party: int,
    judicial: bool,
    others: list[tuple[str, str, str | None]],
) -> None:
    service = world.edition.rulebook.service("air_travel")
    assert service is not None
    assert set(service.categories) == {Category.JUDICIAL}
    n = next(_serial)
    with sessions.begin() as session:
        subject, _ = registry.register_subject(
            session,
            source=session.merge(world.sources["civil_registry"]),
            data=SubjectIn(kind=SubjectKind.PERSON, identifier=person_id(n), name=f"H{n}"),
            at=clock.now(),
        )
        session.expunge(subject)
    day = clock.now() - timedelta(days=5)
    if judicial:
        submit(
            sessions,
            world,
            "court",
            clock.now(),
            rec(f"j{n}", subject, "judgment_default", day, decision_ref=f"J{n}"),
        )
    before = ask(sessions, clock, world, subject, "air_travel", party)
    for i, (source, code, ref) in enumerate(others):
        extra = {"decision_ref": f"{ref}-{n}-{i}"} if ref else {}
        submit(sessions, world, source, clock.now(), rec(f"o{n}-{i}", subject, code, day, **extra))
    after = ask(sessions, clock, world, subject, "air_travel", party)
    assert after.outcome == before.outcome
    assert after.score == before.score
    assert after.reasons == before.reasons
