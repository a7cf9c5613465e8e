"""A source's record in public, on SQLite and PostgreSQL: its retraction rate and the
share of disputes upheld against it, each suppressed below 10 cases and shown from 10,
as of any instant."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.disputes import service as disputes
from credence.disputes.service import Answerer
from credence.ledger import service as ledger
from credence.watch.status import MIN_CASES, Rate, SourceStatus, status
from tests.due_process import record_id
from tests.world import World, rec, submit

DAY = timedelta(days=1)
US = timedelta(microseconds=1)


def source_at(sessions: sessionmaker[Session], code: str, at: datetime) -> SourceStatus:
    with sessions() as session:
        return next(s for s in status(session, at).sources if s.code == code)


def suppressed(what: str) -> Rate:
    return Rate(None, None, f"fewer than 10 {what}")


def test_the_retraction_rate_is_shown_from_10_records(
    sessions: sessionmaker[Session], world: World, clock: FixedClock
) -> None:
    assert MIN_CASES == 10
    start = clock.now() - 60 * DAY
    refs = [f"V-{n}" for n in range(10)]
    for n, ref in enumerate(refs[:9]):
        at = start + n * DAY
        done = submit(
            sessions,
            world,
            "volunteers",
            at,
            rec(ref, world.people[n % 3], "volunteer_service", at - DAY, quantity=3.0),
        )
        assert done == ["created"]
    retracted = start + 20 * DAY
    with sessions.begin() as session:
        ledger.retract_record(
            session,
            source=session.merge(world.sources["volunteers"]),
            record_id=record_id(sessions, refs[0]),
            reason="Reported twice.",
            at=retracted,
        )
    tenth = start + 30 * DAY
    done = submit(
        sessions,
        world,
        "volunteers",
        tenth,
        rec(refs[9], world.people[0], "volunteer_service", tenth - DAY, quantity=3.0),
    )
    assert done == ["created"]

    rate = "records reported"
    # Nine records: no figure, whether one was retracted or not.
    assert source_at(sessions, "volunteers", retracted - US).retraction_rate == suppressed(rate)
    assert source_at(sessions, "volunteers", tenth - US).retraction_rate == suppressed(rate)
    # The tenth: one of ten retracted.
    assert source_at(sessions, "volunteers", tenth).retraction_rate == Rate(0.1, 10, None)
    # A source that reported nothing.
    assert source_at(sessions, "court", tenth).retraction_rate == suppressed(rate)


def test_the_share_of_disputes_upheld_is_shown_from_10_decided(
    sessions: sessionmaker[Session], world: World, clock: FixedClock
) -> None:
    book = world.edition.rulebook
    reported = clock.now() - 100 * DAY
    refs = [f"D-{n}" for n in range(12)]
    for n, ref in enumerate(refs):
        owner = world.people[n % 3]
        done = submit(
            sessions,
            world,
            "bank",
            reported,
            rec(ref, owner, "loan_default", reported - 10 * DAY, decision_ref=ref),
        )
        assert done == ["created"]
    opened = reported + DAY
    dispute_ids = []
    with sessions.begin() as session:
        for n, ref in enumerate(refs):
            dispute_ids.append(
                disputes.open_dispute(
                    session,
                    subject=session.merge(world.people[n % 3]),
                    record_id=record_id(sessions, ref),
                    reason="I repaid this loan on time",
                    new_information=None,
                    rulebook=book,
                    at=opened,
                ).dispute_id
            )

    def answer(dispute: str, outcome: str, at: datetime, by: str = "source") -> None:
        with sessions.begin() as session:
            disputes.answer_dispute(
                session,
                dispute_id=dispute,
                outcome=outcome,
                explanation="Checked against our ledger.",
                by=Answerer(kind="reviewer" if by == "reviewer" else "source", name=by),
                rulebook=book,
                at=at,
            )

    # Nine answered: four deleted (one by a reviewer), five verified; a tenth deleted a
    # day later; two left to lapse at the deadline.
    answered = opened + 5 * DAY
    for n, outcome in enumerate(["deleted"] * 4 + ["verified"] * 5):
        answer(dispute_ids[n], outcome, answered, "reviewer" if n == 0 else "bank")
    answer(dispute_ids[9], "deleted", answered + DAY)
    deadline = disputes.deadline_for(book, opened, new_information=False)

    upheld = "disputes decided"
    # Opened, none decided; then nine answered.
    assert source_at(sessions, "bank", opened).disputes_upheld == suppressed(upheld)
    assert source_at(sessions, "bank", answered).disputes_upheld == suppressed(upheld)
    # The tenth: five of ten went the subjects' way.
    assert source_at(sessions, "bank", answered + DAY).disputes_upheld == Rate(0.5, 10, None)
    # At the deadline the two unanswered lapse, against the bank: seven of twelve.
    assert source_at(sessions, "bank", deadline - US).disputes_upheld == Rate(0.5, 10, None)
    assert source_at(sessions, "bank", deadline).disputes_upheld == Rate(7 / 12, 12, None)
    # The court had none.
    assert source_at(sessions, "court", deadline).disputes_upheld == suppressed(upheld)
    # The bank's records: twelve reported, none retracted.
    assert source_at(sessions, "bank", deadline).retraction_rate == Rate(0.0, 12, None)
