"""Credit repair on every backend, and the lifting of judgment-defaulter restrictions
(judgment performed, settlement performed, enforcement ended)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.decisions.service import decide
from credence.disputes import repair, service
from credence.disputes.repair import RepairView
from credence.errors import Conflict, InvalidInput, NotFound
from credence.ledger import registry
from credence.ledger import service as ledger
from credence.ledger.tables import Subject
from credence.rulebook.model import Outcome
from credence.scoring.batch import score_population
from tests.due_process import (
    confirm_held,
    contribution,
    journal_kinds,
    notes,
    record_id,
    score_at,
)
from tests.world import World, build_world, rec, submit

US = timedelta(microseconds=1)


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    return build_world(sessions, clock)


def apply(
    sessions: sessionmaker[Session],
    world: World,
    clock: FixedClock,
    record: str,
    subject: Subject | None = None,
) -> RepairView:
    with sessions.begin() as session:
        return repair.apply_for_repair(
            session,
            subject=session.merge(subject or world.people[0]),
            record_id=record,
            commitment="I repaid the loan in full and set up automatic payments.",
            rulebook=world.edition.rulebook,
            at=clock.now(),
        )


def decide_repair(
    sessions: sessionmaker[Session], clock: FixedClock, repair_id: str, approve: bool
) -> RepairView:
    with sessions.begin() as session:
        return repair.decide_repair(
            session,
            repair_id=repair_id,
            approve=approve,
            reasons="Repayment confirmed by the bank." if approve else "No proof of repayment.",
            principal_id=None,
            at=clock.now(),
        )


def loan_default(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, days_ago: float
) -> tuple[str, datetime]:
    occurred = clock.now() - timedelta(days=days_ago)
    submit(
        sessions,
        world,
        "bank",
        clock.now(),
        rec("L-1", world.people[0], "loan_default", occurred, decision_ref="REG-1"),
    )
    return record_id(sessions, "L-1"), occurred


def test_repair_before_the_minimum_is_refused_with_the_date(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    record, occurred = loan_default(sessions, world, clock, days_ago=30)
    possible = occurred + timedelta(days=90)  # a general record: 3 months
    with pytest.raises(Conflict) as early:
        apply(sessions, world, clock, record)
    assert early.value.code == "repair_too_early"
    assert possible.date().isoformat() in early.value.message
    assert early.value.details == {"possible_from": possible.isoformat()}
    clock.set(possible - US)
    with pytest.raises(Conflict, match="you may apply"):
        apply(sessions, world, clock, record)
    clock.set(possible)
    applied = apply(sessions, world, clock, record)
    assert (applied.status, applied.record_id, applied.evidence) == ("pending", record, [])
    assert journal_kinds(sessions)["repair_applied"] == 1


def test_an_approved_repair_ends_the_effect_at_approval(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    record, _ = loan_default(sessions, world, clock, days_ago=120)
    applied = apply(sessions, world, clock, record)
    with sessions() as session:
        assert [r.repair_id for r in repair.list_repairs(session)] == [applied.repair_id]
        assert repair.list_repairs(session, subject_id=world.people[1].id) == []
    with pytest.raises(Conflict, match="awaits a decision"):
        apply(sessions, world, clock, record)
    clock.advance(timedelta(days=3))
    approved = decide_repair(sessions, clock, applied.repair_id, approve=True)
    assert (approved.status, approved.decided_at) == ("approved", clock.now())
    at = clock.now()
    before = score_at(sessions, world, p, at - US)
    after = score_at(sessions, world, p, at)
    assert contribution(before, record).status == "counting"
    assert (contribution(after, record).status, contribution(after, record).points) == (
        "repaired",
        0.0,
    )
    assert after.total > before.total
    with sessions() as session:
        population = score_population(session, world.edition, at)
        i = list(population.subject_ids).index(p.id)
        assert math.isclose(population.totals[i], after.total, rel_tol=1e-12)
        assert repair.list_repairs(session) == []
    with pytest.raises(Conflict, match="already decided"):
        decide_repair(sessions, clock, applied.repair_id, approve=False)
    with pytest.raises(Conflict, match="stopped counting") as ended:
        apply(sessions, world, clock, record)
    assert ended.value.code == "record_not_in_effect"
    assert [n.kind for n in notes(sessions, p)] == ["repair_applied", "repair_decided"]
    assert "approved" in notes(sessions, p)[-1].text
    assert journal_kinds(sessions)["repair_decided"] == 1


def test_a_refused_repair_gives_reasons_and_the_record_stands(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    record, _ = loan_default(sessions, world, clock, days_ago=100)
    applied = apply(sessions, world, clock, record)
    refused = decide_repair(sessions, clock, applied.repair_id, approve=False)
    assert (refused.status, refused.reasons) == ("refused", "No proof of repayment.")
    assert contribution(score_at(sessions, world, p, clock.now()), record).status == "counting"
    told = notes(sessions, p)[-1]
    assert told.kind == "repair_decided"
    assert "refused" in told.text
    assert "No proof of repayment." in told.text
    clock.advance(timedelta(days=10))
    assert apply(sessions, world, clock, record).status == "pending"  # may apply again
    with sessions.begin() as session, pytest.raises(InvalidInput, match="reasons"):
        repair.decide_repair(
            session,
            repair_id=applied.repair_id,
            approve=True,
            reasons=" ",
            principal_id=None,
            at=clock.now(),
        )
    with sessions.begin() as session, pytest.raises(NotFound):
        repair.decide_repair(
            session,
            repair_id="rep_nope",
            approve=True,
            reasons="x",
            principal_id=None,
            at=clock.now(),
        )


def test_only_negative_records_in_effect_are_repaired(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    day = clock.now() - timedelta(days=400)
    submit(
        sessions,
        world,
        "bank",
        clock.now(),
        rec("good", p, "loan_repaid", day),
        rec("old", p, "loan_default", day, decision_ref="REG-OLD"),
    )
    with pytest.raises(InvalidInput, match="does not lower") as positive:
        apply(sessions, world, clock, record_id(sessions, "good"))
    assert positive.value.code == "repair_not_applicable"
    with pytest.raises(Conflict, match="retention") as expired:
        apply(sessions, world, clock, record_id(sessions, "old"))
    assert expired.value.code == "record_expired"
    with pytest.raises(NotFound):
        apply(sessions, world, clock, record_id(sessions, "old"), subject=world.people[1])
    with sessions.begin() as session, pytest.raises(InvalidInput, match="corrected"):
        repair.apply_for_repair(
            session,
            subject=session.merge(p),
            record_id=record_id(sessions, "old"),
            commitment="",
            rulebook=world.edition.rulebook,
            at=clock.now(),
        )


def test_repair_shows_the_evidence_of_correction(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    listed = clock.now() - timedelta(days=400)  # a serious record: one year
    submit(
        sessions,
        world,
        "court",
        clock.now(),
        rec("J", p, "judgment_default", listed, decision_ref="(2025)Zhi-5"),
        rec("S-other", p, "judgment_satisfied", listed, decision_ref="(2025)Zhi-9"),
        rec("S", p, "judgment_satisfied", clock.now(), decision_ref="(2025)Zhi-5"),
    )
    applied = apply(sessions, world, clock, record_id(sessions, "J"))
    assert applied.evidence == [record_id(sessions, "S")]
    with sessions() as session:
        assert repair.get_repair(session, applied.repair_id) == applied
        with pytest.raises(NotFound):
            repair.get_repair(session, "rep_nope")


# --- judgment-defaulter restrictions lift (SPC provisions, 2015) ------------------------


def air_travel(sessions: sessionmaker[Session], clock: FixedClock, world: World) -> Outcome:
    with sessions.begin() as session:
        return decide(
            session,
            subject=session.merge(world.people[0]),
            service_code="air_travel",
            edition=world.edition,
            at=clock.now(),
            party_id=None,
            principal_id=None,
        ).outcome


def listed(sessions: sessionmaker[Session], clock: FixedClock, world: World) -> str:
    day = clock.now() - timedelta(days=20)
    submit(
        sessions,
        world,
        "court",
        clock.now(),
        rec("J", world.people[0], "judgment_default", day, decision_ref="(2026)Zhi-1"),
    )
    assert air_travel(sessions, clock, world) is Outcome.DENY
    return record_id(sessions, "J")


def test_a_performed_settlement_lifts_the_restrictions(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    listed(sessions, clock, world)
    with sessions.begin() as session:
        world.sources["mediation"] = registry.register_source(
            session,
            code="mediation",
            name="Court mediation centre",
            kind="court",
            record_types=["settlement_performed"],
            rulebook=world.edition.rulebook,
            at=clock.now(),
        )
    clock.advance(timedelta(days=1))
    p = world.people[0]
    other = rec("M-0", p, "settlement_performed", clock.now(), decision_ref="(2026)Zhi-2")
    assert submit(sessions, world, "mediation", clock.now(), other) == ["created"]
    assert air_travel(sessions, clock, world) is Outcome.DENY
    same = rec("M-1", p, "settlement_performed", clock.now(), decision_ref="(2026)Zhi-1")
    assert submit(sessions, world, "mediation", clock.now(), same) == ["created"]
    assert air_travel(sessions, clock, world) is Outcome.ALLOW


def test_enforcement_ended_by_retraction_lifts_the_restrictions(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    record = listed(sessions, clock, world)
    clock.advance(timedelta(days=1))
    with sessions.begin() as session:
        ledger.retract_record(
            session,
            source=session.merge(world.sources["court"]),
            record_id=record,
            reason="enforcement terminated",
            at=clock.now(),
        )
    # Held for a second reviewer: the ban holds until the retraction is confirmed.
    assert air_travel(sessions, clock, world) is Outcome.DENY
    confirm_held(sessions, record, clock.now())
    assert air_travel(sessions, clock, world) is Outcome.ALLOW


def test_enforcement_ended_by_a_dispute_answer_lifts_the_restrictions(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    record = listed(sessions, clock, world)
    with sessions.begin() as session:
        dispute = service.open_dispute(
            session,
            subject=session.merge(world.people[0]),
            record_id=record,
            reason="The creditor withdrew the enforcement application.",
            new_information=None,
            rulebook=world.edition.rulebook,
            at=clock.now(),
        )
    assert air_travel(sessions, clock, world) is Outcome.DENY  # disputed, still in force
    clock.advance(timedelta(days=2))
    with sessions.begin() as session:
        service.answer_dispute(
            session,
            dispute_id=dispute.dispute_id,
            outcome="deleted",
            explanation="Enforcement was terminated on the creditor's application.",
            by=service.Answerer(kind="source", name="court"),
            rulebook=world.edition.rulebook,
            at=clock.now(),
        )
    # Held for a second reviewer: the ban holds until the answer is confirmed.
    assert air_travel(sessions, clock, world) is Outcome.DENY
    confirm_held(sessions, record, clock.now())
    assert air_travel(sessions, clock, world) is Outcome.ALLOW
