"""The rulebook's intake checks, one by one, on SQLite and PostgreSQL (rulebook 2026.3).

* spacing: a streak type's records from one source about one subject at least their
  period apart; another source, a resend, or a retracted neighbour does not count;
* burst: more than 12 positives from one source about one subject in 30 days holds the
  batch that crosses the line (negatives, other sources and other subjects unaffected);
* new identity: a subject registered less than a year ago gains at most 12 positives
  from all sources together; an old one is not limited;
* backfill runs: records within an approved run's scope (source, period, volume) are
  exempt from both limits, the rest are not; plausibility still applies;
* founding: no record about an organisation before the founding date it registered;
* a voided identity: its records stop counting at the void and new ones are held.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.errors import Forbidden
from credence.identifiers import SubjectKind, make_credit_code, make_resident_id
from credence.ledger import backfill, identities, registry
from credence.ledger import service as ledger
from credence.ledger.schemas import SubjectIn
from credence.ledger.tables import Record, Subject
from credence.scoring.batch import score_population
from credence.scoring.online import score_subject
from tests.world import FIRST_BIRTH, World, history_run, rec, submit


def _new_person(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, n: int
) -> Subject:
    with sessions.begin() as session:
        subject, created = registry.register_subject(
            session,
            source=session.merge(world.sources["civil_registry"]),
            data=SubjectIn(
                kind=SubjectKind.PERSON,
                identifier=make_resident_id("110108", date(1985, 1, 1) + timedelta(days=n), n),
                name=f"Fresh {n}",
            ),
            at=clock.now(),
        )
        assert created
        session.expunge(subject)
    return subject


def _codes(statuses: list[str]) -> Counter[str]:
    return Counter(statuses)


def test_streaks_no_closer_than_their_period(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    now = clock.now()
    first = rec("S-1", p, "on_time_payment_streak", now - timedelta(days=400))
    assert submit(sessions, world, "bank", now, first) == ["created"]
    # A resend is a duplicate, not a record too close to itself.
    assert submit(sessions, world, "bank", now, first) == ["duplicate"]
    close = rec("S-2", p, "on_time_payment_streak", now - timedelta(days=100))
    assert submit(sessions, world, "bank", now, close) == ["closer_than_period"]
    # A year on is fine; two in one batch are checked against each other.
    later = rec("S-3", p, "on_time_payment_streak", now - timedelta(days=35))
    twin = rec("S-4", p, "on_time_payment_streak", now - timedelta(days=34))
    assert submit(sessions, world, "bank", now, later, twin) == ["created", "closer_than_period"]
    # Another subject, another type: unaffected. A retracted neighbour stands in no way.
    other = rec("S-5", world.people[1], "on_time_payment_streak", now - timedelta(days=100))
    assert submit(sessions, world, "bank", now, other) == ["created"]
    with sessions.begin() as session:
        record_id = session.scalars(
            select(Record.public_id).where(Record.source_ref == "S-3")
        ).one()
        ledger.retract_record(
            session,
            source=session.merge(world.sources["bank"]),
            record_id=record_id,
            reason="wrong account",
            at=now,
        )
    again = rec("S-6", p, "on_time_payment_streak", now - timedelta(days=30))
    assert submit(sessions, world, "bank", now + timedelta(seconds=1), again) == ["created"]


def test_a_burst_from_one_source_is_held_whole(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p, q = world.people[0], world.people[1]
    now = clock.now()

    def repaid(prefix: str, who: Subject, n: int) -> list[dict[str, object]]:
        return [
            rec(f"{prefix}-{i}", who, "loan_repaid", now - timedelta(days=i + 1)) for i in range(n)
        ]

    # 12 in the window is the limit: stored and counting.
    assert set(submit(sessions, world, "bank", now, *repaid("A", p, 12))) == {"created"}
    # The 13th, a week later, crosses it: held, with negatives untouched.
    clock.advance(timedelta(days=7))
    default = rec("A-def", p, "loan_default", now - timedelta(days=3), decision_ref="REG-1")
    assert submit(sessions, world, "bank", clock.now(), *repaid("B", p, 1), default) == [
        "held",
        "created",
    ]
    # Another subject in the same batch as a burst: only the burst's subject is held.
    mixed = [*repaid("C", q, 2), *repaid("D", p, 3)]
    assert submit(sessions, world, "bank", clock.now(), *mixed) == ["created"] * 2 + ["held"] * 3
    # Past the window, the source may report again.
    clock.advance(timedelta(days=31))
    assert submit(sessions, world, "bank", clock.now(), *repaid("E", p, 2)) == ["created"] * 2


def test_a_new_identity_gains_at_most_the_limit_from_every_source(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    fresh = _new_person(sessions, world, clock, 1)
    now = clock.now()
    six = [
        rec(f"T-{i}", fresh, "volunteer_service", now - timedelta(days=i + 1), quantity=2)
        for i in range(6)
    ]
    more = [rec(f"U-{i}", fresh, "loan_repaid", now - timedelta(days=i + 1)) for i in range(6)]
    assert submit(sessions, world, "volunteers", now, *six) == ["created"] * 6
    assert submit(sessions, world, "bank", now, *more) == ["created"] * 6
    # The 13th positive from yet another source is held; backdated or not.
    late = rec("V-1", fresh, "tax_paid_on_time", now - timedelta(days=3 * 365))
    assert submit(sessions, world, "tax_office", now, late) == ["held"]
    # A subject registered years ago is not limited by it.
    old = world.people[2]
    many = [
        rec(f"W-{i}", old, "volunteer_service", now - timedelta(days=i + 1), quantity=1)
        for i in range(12)
    ]
    assert submit(sessions, world, "volunteers", now, *many) == ["created"] * 12
    # A year after registration the identity is no longer new.
    clock.advance(timedelta(days=366))
    later = rec("V-2", fresh, "tax_paid_on_time", clock.now() - timedelta(days=1))
    assert submit(sessions, world, "tax_office", clock.now(), later) == ["created"]


def test_an_approved_backfill_run_exempts_only_its_scope(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    fresh = _new_person(sessions, world, clock, 2)
    now = clock.now()
    run = history_run(sessions, world, "bank", now, years=2)
    history = [
        rec(f"H-{i}", fresh, "loan_repaid", now - timedelta(days=20 * i + 1)) for i in range(30)
    ]
    assert submit(sessions, world, "bank", now, *history, backfill_run=run) == ["created"] * 30
    # Outside the run's period (before it): not exempt, so held (a new identity's burst).
    old = [rec(f"O-{i}", fresh, "loan_repaid", now - timedelta(days=900 + i)) for i in range(13)]
    assert set(submit(sessions, world, "bank", now, *old, backfill_run=run)) == {"held"}
    # Plausibility still applies inside a run.
    streaks = [
        rec("ST-1", fresh, "on_time_payment_streak", now - timedelta(days=200)),
        rec("ST-2", fresh, "on_time_payment_streak", now - timedelta(days=100)),
    ]
    assert submit(sessions, world, "bank", now, *streaks, backfill_run=run) == [
        "created",
        "closer_than_period",
    ]
    # Another source's run refuses the whole batch.
    other = history_run(sessions, world, "volunteers", now)
    with pytest.raises(Forbidden) as refused:
        submit(
            sessions, world, "bank", now, rec("X-1", fresh, "loan_repaid", now), backfill_run=other
        )
    assert refused.value.code == "backfill_run_of_another_source"
    # A run counts down its volume: past it, records are checked like any other.
    with sessions.begin() as session:
        small = backfill.approve(
            session,
            source=session.merge(world.sources["volunteers"]),
            occurred_from=now - timedelta(days=365),
            occurred_until=now,
            expected_records=3,
            principal_id=None,
            at=now,
        ).public_id
    hours = [
        rec(f"Y-{i}", fresh, "volunteer_service", now - timedelta(days=i + 1), quantity=1)
        for i in range(16)
    ]
    statuses = submit(sessions, world, "volunteers", now, *hours, backfill_run=small)
    # 3 exempted; the other 13 cross the new identity's limit (its 13 held bank records
    # count: a source cannot retry its way past a limit), so they are held whole.
    assert _codes(statuses) == {"created": 3, "held": 13}


def test_no_record_before_an_organisation_was_founded(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    with sessions.begin() as session:
        company, _ = registry.register_subject(
            session,
            source=session.merge(world.sources["business_registry"]),
            data=SubjectIn(
                kind=SubjectKind.COMPANY,
                identifier=make_credit_code("9", "1", "371082", "000077001"),
                name="New Harbour Co",
                founded_on=date(2019, 5, 1),
            ),
            at=clock.now(),
        )
        session.expunge(company)
    before = rec("F-1", company, "loan_repaid", clock.now().replace(year=2019, month=4, day=30))
    after = rec("F-2", company, "loan_repaid", clock.now().replace(year=2019, month=5, day=2))
    assert submit(sessions, world, "bank", clock.now(), before, after) == [
        "occurred_before_founding",
        "created",
    ]
    # A company registered without a founding date is not checked.
    old = rec("F-3", world.company, "loan_repaid", clock.now().replace(year=1999))
    assert submit(sessions, world, "bank", clock.now(), old) == ["created"]


def test_a_voided_identity_counts_nothing_from_the_void_and_new_records_are_held(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    real = world.people[0]
    with sessions() as session:
        name = session.get_one(Subject, real.id).name
    # A twin: same name and birth date as the real person, the next sequence number.
    twin_id = make_resident_id("110105", FIRST_BIRTH, 1)
    with sessions.begin() as session:
        twin, _ = registry.register_subject(
            session,
            source=session.merge(world.sources["civil_registry"]),
            data=SubjectIn(kind=SubjectKind.PERSON, identifier=twin_id, name=name, region=None),
            at=clock.now(),
        )
        session.expunge(twin)
        flags = identities.flags_of(session, twin.id)
    assert flags, "the twin was not flagged"
    now = clock.now()
    assert submit(
        sessions, world, "bank", now, rec("Z-1", twin, "loan_repaid", now - timedelta(days=2))
    ) == ["created"]
    clock.advance(timedelta(days=1))
    with sessions.begin() as session:
        identities.resolve_flag(
            session,
            flag_id=flags[0].flag_id,
            outcome="voided",
            authority=session.merge(world.sources["civil_registry"]),
            principal_id=None,
            reason="No such person at the registered address.",
            at=clock.now(),
        )
    voided_at = clock.now()
    clock.advance(timedelta(hours=1))
    assert submit(sessions, world, "bank", clock.now(), rec("Z-2", twin, "loan_repaid", now)) == [
        "held"
    ]
    with sessions() as session:
        subject = session.get_one(Subject, twin.id)
        edition = world.edition
        before = score_subject(session, subject, edition, voided_at - timedelta(seconds=1))
        after = score_subject(session, subject, edition, clock.now())
        population = score_population(session, edition, clock.now())
    assert before.total > 1000.0
    assert after.total == 1000.0
    assert sorted(c.status for c in after.contributions) == ["held", "voided"]
    index = list(population.subject_ids).index(twin.id)
    assert float(population.totals[index]) == 1000.0
