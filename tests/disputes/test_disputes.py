"""Disputes on every backend: deadlines from the rulebook and the clock, answers, the
exact lazy lapse, certified reinsertion, repeat disputes, statements, the journal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from credence.access.keys import create_relying_party
from credence.cli import disputes as cli
from credence.cli import terminal
from credence.clock import FixedClock
from credence.context import Context
from credence.decisions.service import decide
from credence.disputes import service
from credence.disputes.service import Answerer, DisputeView
from credence.disputes.tables import DisputeLapse
from credence.errors import Conflict, Forbidden, InvalidInput, NotFound
from credence.journal import JournalEntry
from credence.ledger import service as ledger
from credence.ledger.schemas import RecordIn
from credence.ledger.tables import Subject
from credence.notifications.service import FileChannel, deliver_pending, for_subject
from credence.rulebook.model import Outcome
from credence.scoring.batch import score_population
from credence.settings import Settings
from tests.due_process import (
    contribution,
    journal_kinds,
    journal_order,
    notes,
    record_id,
    score_at,
)
from tests.world import World, build_world, rec, submit

US = timedelta(microseconds=1)
SOURCE = Answerer(kind="source", name="bank")
REVIEWER = Answerer(kind="reviewer", name="rev")


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    return build_world(sessions, clock)


def default(sessions: sessionmaker[Session], world: World, clock: FixedClock, ref: str) -> str:
    """A loan default on person 0's file, reported by the bank 10 days ago; its id."""
    day = clock.now() - timedelta(days=10)
    p = world.people[0]
    assert submit(
        sessions, world, "bank", clock.now(), rec(ref, p, "loan_default", day, decision_ref=ref)
    ) == ["created"]
    return record_id(sessions, ref)


def open_(
    sessions: sessionmaker[Session],
    world: World,
    clock: FixedClock,
    record: str,
    *,
    info: str | None = None,
    subject: Subject | None = None,
) -> DisputeView:
    with sessions.begin() as session:
        return service.open_dispute(
            session,
            subject=session.merge(subject or world.people[0]),
            record_id=record,
            reason="I repaid this loan on time",
            new_information=info,
            rulebook=world.edition.rulebook,
            at=clock.now(),
        )


def answer(
    sessions: sessionmaker[Session],
    world: World,
    clock: FixedClock,
    dispute: str,
    outcome: str,
    *,
    by: Answerer = SOURCE,
    correction: dict[str, object] | None = None,
) -> DisputeView:
    with sessions.begin() as session:
        return service.answer_dispute(
            session,
            dispute_id=dispute,
            outcome=outcome,
            explanation="Checked against our ledger.",
            by=by,
            rulebook=world.edition.rulebook,
            at=clock.now(),
            correction=RecordIn.model_validate(correction) if correction else None,
        )


def queue(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    *,
    status: service.StatusFilter = "open",
    source_id: int | None = None,
    subject_id: int | None = None,
) -> list[str]:
    with sessions() as session:
        found = service.list_disputes(
            session, at=clock.now(), status=status, source_id=source_id, subject_id=subject_id
        )
    return [d.dispute_id for d in found]


def test_deadline_comes_from_the_rulebook_and_the_clock(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    first = default(sessions, world, clock, "L-1")
    second = default(sessions, world, clock, "L-2")
    plain = open_(sessions, world, clock, first)
    assert plain.deadline == clock.now() + timedelta(days=30)
    assert plain.status == "open"
    assert plain.rulebook_version == world.edition.version
    clock.advance(timedelta(hours=5))
    informed = open_(sessions, world, clock, second, info="Bank statement of 2026-03-02")
    assert informed.deadline == clock.now() + timedelta(days=45)
    assert informed.new_information == "Bank statement of 2026-03-02"
    # At once in the bank's queue, earliest deadline first; not in the court's.
    bank, court = world.sources["bank"].id, world.sources["court"].id
    assert queue(sessions, clock, source_id=bank) == [plain.dispute_id, informed.dispute_id]
    assert queue(sessions, clock, source_id=court) == []
    assert queue(sessions, clock, subject_id=world.people[0].id) == [
        plain.dispute_id,
        informed.dispute_id,
    ]
    assert queue(sessions, clock, subject_id=world.people[1].id) == []


def test_a_subject_disputes_only_records_on_their_own_file(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    record = default(sessions, world, clock, "L-1")
    with pytest.raises(NotFound):
        open_(sessions, world, clock, record, subject=world.people[1])
    with pytest.raises(NotFound):
        open_(sessions, world, clock, "rec_nope")
    with sessions.begin() as session, pytest.raises(InvalidInput, match="what is wrong"):
        service.open_dispute(
            session,
            subject=session.merge(world.people[0]),
            record_id=record,
            reason="   ",
            new_information=None,
            rulebook=world.edition.rulebook,
            at=clock.now(),
        )


def test_unanswered_dispute_lapses_exactly_at_the_deadline(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    record = default(sessions, world, clock, "L-1")
    p = world.people[0]
    dispute = open_(sessions, world, clock, record)
    deadline = dispute.deadline
    # Nothing runs: the score as of any instant is already determined.
    clock.set(deadline + timedelta(days=3))
    before = score_at(sessions, world, p, deadline - US)
    at = score_at(sessions, world, p, deadline)
    assert contribution(before, record).status == "counting"
    assert contribution(before, record).record.disputed
    assert contribution(before, record).points < 0
    lapsed = contribution(at, record)
    assert (lapsed.status, lapsed.points) == ("unverifiable", 0.0)
    assert lapsed.record.ended_at == deadline
    assert lapsed.record.ended_by == "dispute_lapsed"
    assert not lapsed.record.disputed
    assert at.total > before.total
    # The batch runner reads the same ending.
    with sessions() as session:
        for instant, expected in ((deadline - US, before), (deadline, at)):
            population = score_population(session, world.edition, instant)
            i = list(population.subject_ids).index(p.id)
            assert population.totals[i] == pytest.approx(expected.total, rel=1e-12)
    with sessions() as session:
        assert service.get_dispute(session, dispute.dispute_id, clock.now()).status == "lapsed"
        assert service.get_dispute(session, dispute.dispute_id, deadline - US).status == "open"
    assert queue(sessions, clock, source_id=world.sources["bank"].id) == []
    assert queue(sessions, clock, status="lapsed") == [dispute.dispute_id]

    # A late answer does not revive the record.
    with pytest.raises(Conflict, match="lapsed") as late:
        answer(sessions, world, clock, dispute.dispute_id, "verified")
    assert late.value.code == "dispute_lapsed"

    # The sweep writes the explicit entry, once; scores do not move.
    with sessions.begin() as session:
        swept = service.sweep(session, clock.now())
    assert [d.dispute_id for d in swept] == [dispute.dispute_id]
    assert swept[0].lapse_recorded_at == clock.now()
    with sessions.begin() as session:
        assert service.sweep(session, clock.now()) == []
    with sessions() as session:
        lapse = session.scalars(select(DisputeLapse)).one()
        assert lapse.lapsed_at == deadline
    assert score_at(sessions, world, p, deadline - US).total == before.total
    assert score_at(sessions, world, p, deadline).total == at.total
    assert journal_kinds(sessions)["dispute_lapsed"] == 1
    assert [n.kind for n in notes(sessions, p)] == ["dispute_opened", "dispute_lapsed"]
    assert "stopped counting" in notes(sessions, p)[-1].text


def test_an_answer_just_before_the_deadline_counts(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    record = default(sessions, world, clock, "L-1")
    dispute = open_(sessions, world, clock, record)
    clock.set(dispute.deadline - US)
    answered = answer(sessions, world, clock, dispute.dispute_id, "verified")
    assert answered.status == "verified"
    clock.set(dispute.deadline + timedelta(days=1))
    score = score_at(sessions, world, world.people[0], clock.now())
    assert contribution(score, record).status == "counting"
    with sessions.begin() as session:
        assert service.sweep(session, clock.now()) == []
    with pytest.raises(Conflict, match="already answered"):
        answer(sessions, world, clock, dispute.dispute_id, "deleted")


def test_verified_stands_and_a_repeat_dispute_needs_new_information(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    record = default(sessions, world, clock, "L-1")
    first = open_(sessions, world, clock, record)
    with pytest.raises(Conflict, match="already open") as twice:
        open_(sessions, world, clock, record, info="more")
    assert twice.value.code == "dispute_already_open"
    clock.advance(timedelta(days=3))
    answer(sessions, world, clock, first.dispute_id, "verified")
    clock.advance(timedelta(days=1))
    with pytest.raises(Conflict, match="verified it") as repeat:
        open_(sessions, world, clock, record)
    assert repeat.value.code == "repeat_dispute"
    assert "Checked against our ledger." in repeat.value.message
    again = open_(sessions, world, clock, record, info="A letter from the bank")
    assert again.deadline == clock.now() + timedelta(days=45)
    score = score_at(sessions, world, world.people[0], clock.now())
    assert contribution(score, record).status == "counting"
    assert contribution(score, record).record.disputed


def test_deleted_ends_the_effect_and_reinsertion_needs_certification(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    record = default(sessions, world, clock, "L-1")
    dispute = open_(sessions, world, clock, record)
    clock.advance(timedelta(days=2))
    answered = answer(sessions, world, clock, dispute.dispute_id, "deleted")
    assert answered.status == "deleted"
    deleted_at = clock.now()
    assert contribution(score_at(sessions, world, p, deleted_at - US), record).points < 0
    gone = contribution(score_at(sessions, world, p, deleted_at), record)
    assert (gone.status, gone.points, gone.record.ended_at) == ("deleted", 0.0, deleted_at)

    clock.advance(timedelta(days=1))
    day = deleted_at - timedelta(days=12)
    same_fact = rec("L-1-again", p, "loan_default", day, decision_ref="L-1")
    # Re-ingestion under any source_ref is refused ...
    assert submit(sessions, world, "bank", clock.now(), same_fact) == [
        "reinsertion_requires_certification"
    ]
    # ... a resend under the old one is a duplicate of the deleted record, and with a
    # certification the source is told to use a new source_ref ...
    old = rec("L-1", p, "loan_default", day, decision_ref="L-1")
    assert submit(sessions, world, "bank", clock.now(), old) == ["duplicate"]
    assert submit(sessions, world, "bank", clock.now(), {**old, "certified": True}) == [
        "reinsertion_needs_new_source_ref"
    ]
    # ... certification is refused on a record that reinserts nothing ...
    other = rec("L-9", p, "loan_default", day, decision_ref="L-9", certified=True)
    assert submit(sessions, world, "bank", clock.now(), other) == ["certification_not_needed"]
    # ... and with a certification the record comes back and the subject is told.
    assert submit(sessions, world, "bank", clock.now(), {**same_fact, "certified": True}) == [
        "created"
    ]
    back = record_id(sessions, "L-1-again")
    score = score_at(sessions, world, p, clock.now())
    assert contribution(score, back).status == "counting"
    assert contribution(score, record).status == "deleted"
    told = notes(sessions, p)[-1]
    assert told.kind == "record_reinserted"
    assert record in told.text
    assert back in told.text
    assert "certified" in told.text
    assert journal_order(sessions)[-2:] == ["record", "record_reinserted"]
    with sessions() as session:
        entry = session.scalars(
            select(JournalEntry).where(JournalEntry.kind == "record_reinserted")
        ).one()
        assert record in entry.data
        assert back in entry.data


def test_a_lapsed_record_also_needs_certification_to_return(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    record = default(sessions, world, clock, "L-1")
    dispute = open_(sessions, world, clock, record)
    day = clock.now() - timedelta(days=10)
    again = rec("L-1b", p, "loan_default", day, decision_ref="L-1")
    # While the dispute is open the record still counts: sending it again is no reinsertion.
    assert submit(sessions, world, "bank", clock.now(), {**again, "certified": True}) == [
        "certification_not_needed"
    ]
    clock.set(dispute.deadline)
    assert submit(sessions, world, "bank", clock.now(), again) == [
        "reinsertion_requires_certification"
    ]


def test_corrected_replaces_the_record_with_a_linked_correction(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p, q = world.people[0], world.people[1]
    day = clock.now() - timedelta(days=40)
    submit(
        sessions,
        world,
        "tax_office",
        clock.now(),
        rec("T-1", p, "tax_arrears", day, decision_ref="TAX-1", quantity=20),
    )
    record = record_id(sessions, "T-1")
    dispute = open_(sessions, world, clock, record)
    clock.advance(timedelta(days=4))
    fixed = rec("T-1-fix", p, "tax_arrears", day, decision_ref="TAX-1", quantity=2)
    tax = Answerer(kind="source", name="tax_office")
    with pytest.raises(InvalidInput, match="carries the corrected record"):
        answer(sessions, world, clock, dispute.dispute_id, "corrected", by=tax)
    with pytest.raises(Forbidden, match="only the source"):
        answer(
            sessions, world, clock, dispute.dispute_id, "corrected", by=REVIEWER, correction=fixed
        )
    wrong = rec("T-1-fix", q, "tax_arrears", day, decision_ref="TAX-1", quantity=2)
    with pytest.raises(InvalidInput, match="same subject"):
        answer(sessions, world, clock, dispute.dispute_id, "corrected", by=tax, correction=wrong)
    with pytest.raises(InvalidInput, match="only an answer 'corrected'"):
        answer(sessions, world, clock, dispute.dispute_id, "verified", by=tax, correction=fixed)
    resent = rec("T-1", p, "tax_arrears", day, decision_ref="TAX-1", quantity=20)
    with pytest.raises(InvalidInput) as resend:
        answer(sessions, world, clock, dispute.dispute_id, "corrected", by=tax, correction=resent)
    assert resend.value.code == "correction_not_new"
    done = answer(sessions, world, clock, dispute.dispute_id, "corrected", by=tax, correction=fixed)
    new = record_id(sessions, "T-1-fix")
    assert (done.status, done.corrected_record_id) == ("corrected", new)
    score = score_at(sessions, world, p, clock.now())
    assert contribution(score, record).status == "corrected"
    assert contribution(score, new).status == "counting"
    assert contribution(score, new).points == pytest.approx(
        contribution(score_at(sessions, world, p, clock.now() - US), record).points / 10
    )
    assert journal_order(sessions)[-3:] == ["record", "dispute_answered", "record_corrected"]
    assert "replaces it" in notes(sessions, p)[-1].text


def test_a_reviewer_may_delete_but_the_records_end_once(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    record = default(sessions, world, clock, "L-1")
    dispute = open_(sessions, world, clock, record)
    clock.advance(timedelta(days=1))
    assert answer(sessions, world, clock, dispute.dispute_id, "deleted", by=REVIEWER).status == (
        "deleted"
    )
    assert "A Credence reviewer deleted" in notes(sessions, world.people[0])[-1].text
    clock.advance(timedelta(days=1))
    with pytest.raises(Conflict, match="stopped counting") as ended:
        open_(sessions, world, clock, record, info="x")
    assert ended.value.code == "record_not_in_effect"
    with pytest.raises(InvalidInput, match="outcome"):
        answer(sessions, world, clock, dispute.dispute_id, "maybe")
    with pytest.raises(NotFound):
        answer(sessions, world, clock, "dsp_nope", "deleted")


def test_statements_show_with_the_record(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    record = default(sessions, world, clock, "L-1")
    said_at = clock.now()
    with sessions.begin() as session:
        service.add_statement(
            session, subject=session.merge(p), record_id=record, text=" Lost my job. ", at=said_at
        )
    clock.advance(timedelta(days=1))
    with sessions.begin() as session:
        service.add_statement(
            session,
            subject=session.merge(p),
            record_id=record,
            text="Repaid since.",
            at=clock.now(),
        )
    assert contribution(score_at(sessions, world, p, clock.now()), record).record.statement == (
        "Repaid since."
    )
    assert contribution(score_at(sessions, world, p, said_at), record).record.statement == (
        "Lost my job."
    )
    for text, code in (("x" * 501, "statement_too_long"), ("  ", "statement_empty")):
        with sessions.begin() as session, pytest.raises(InvalidInput) as refused:
            service.add_statement(
                session, subject=session.merge(p), record_id=record, text=text, at=clock.now()
            )
        assert refused.value.code == code
    with sessions.begin() as session, pytest.raises(NotFound):
        service.add_statement(
            session,
            subject=session.merge(world.people[1]),
            record_id=record,
            text="not mine",
            at=clock.now(),
        )
    assert journal_kinds(sessions)["statement_added"] == 2
    with sessions() as session:
        data = session.scalars(
            select(JournalEntry.data).where(JournalEntry.kind == "statement_added")
        ).all()
    assert all("Repaid" not in d and "job" not in d for d in data)  # only a digest


def test_disputed_marks_the_record_in_decision_reasons(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    day = clock.now() - timedelta(days=5)
    submit(
        sessions,
        world,
        "court",
        clock.now(),
        rec("J", p, "judgment_default", day, decision_ref="Z-1"),
    )
    open_(sessions, world, clock, record_id(sessions, "J"))
    with sessions.begin() as session:
        party = create_relying_party(
            session, code="air", name="Air", services=["air_travel"], clock=clock
        )
        decision = decide(
            session,
            subject=session.merge(p),
            service_code="air_travel",
            edition=world.edition,
            at=clock.now(),
            party_id=party.id,
            principal_id=None,
        )
    assert decision.outcome is Outcome.DENY
    assert "disputed by the subject" in decision.reasons[0]


def test_every_step_is_a_journal_entry_and_a_notification(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    a, b, c = (default(sessions, world, clock, ref) for ref in ("L-1", "L-2", "L-3"))
    before = journal_kinds(sessions)
    da = open_(sessions, world, clock, a)
    db = open_(sessions, world, clock, b)
    open_(sessions, world, clock, c, info="receipt")
    clock.advance(timedelta(days=1))
    answer(sessions, world, clock, da.dispute_id, "verified")
    answer(sessions, world, clock, db.dispute_id, "deleted")
    with sessions.begin() as session:
        service.add_statement(
            session, subject=session.merge(p), record_id=a, text="I disagree.", at=clock.now()
        )
    clock.advance(timedelta(days=45))
    with sessions.begin() as session:
        service.sweep(session, clock.now())
    after = journal_kinds(sessions)
    assert after - before == {
        "dispute_opened": 3,
        "dispute_answered": 2,
        "statement_added": 1,
        "dispute_lapsed": 1,
    }
    kinds = [n.kind for n in notes(sessions, p)]
    assert kinds.count("dispute_opened") == 3
    assert kinds.count("dispute_answered") == 2
    assert kinds.count("dispute_lapsed") == 1
    with sessions() as session:
        journal = session.scalars(select(JournalEntry.data)).all()
        identifiers = session.scalars(select(Subject.identifier)).all()
    assert not any(ident in entry for ident in identifiers for entry in journal)
    # The file channel delivers the outbox, once.
    with sessions.begin() as session:
        assert deliver_pending(session, FileChannel(), clock.now()) == 6
        assert deliver_pending(session, FileChannel(), clock.now()) == 0
    with sessions() as session:
        delivered = for_subject(session, p.id)
    assert {(n.channel, n.delivered_at) for n in delivered} == {("file", clock.now())}


def test_a_failing_channel_leaves_the_notification_in_the_outbox(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    record = default(sessions, world, clock, "L-1")
    open_(sessions, world, clock, record)

    class Down:
        name = "sms"

        def deliver(self, notification: object, *, subject_id: int) -> None:
            raise OSError("gateway down")

    with sessions.begin() as session:
        assert deliver_pending(session, Down(), clock.now()) == 0
    with sessions.begin() as session:
        assert deliver_pending(session, FileChannel(), clock.now()) == 1


def test_retraction_of_a_disputed_record_ends_it_once(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    record = default(sessions, world, clock, "L-1")
    dispute = open_(sessions, world, clock, record)
    clock.advance(timedelta(days=1))
    with sessions.begin() as session:
        ledger.retract_record(
            session,
            source=session.merge(world.sources["bank"]),
            record_id=record,
            reason="sent in error",
            at=clock.now(),
        )
    retracted_at = clock.now()
    clock.set(dispute.deadline + timedelta(days=1))
    ended = contribution(score_at(sessions, world, p, clock.now()), record)
    # The earliest ending wins: the retraction, not the later lapse.
    assert (ended.status, ended.record.ended_at) == ("retracted", retracted_at)


def test_the_disputes_cli_sweeps_lists_and_answers(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    world: World,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def context(db: str | None = None) -> Context:
        return Context(settings=Settings(), engine=engine, sessions=sessions, clock=clock)

    monkeypatch.setattr(terminal, "open_context", context)
    runner = CliRunner(env={"COLUMNS": "200"})  # the ids must not wrap
    lapsing = open_(sessions, world, clock, default(sessions, world, clock, "L-1"))
    answered = open_(sessions, world, clock, default(sessions, world, clock, "L-2"))

    listed = runner.invoke(cli.app, ["list", "--source", "bank"])
    assert listed.exit_code == 0, listed.output
    assert lapsing.dispute_id in listed.output
    assert answered.dispute_id in listed.output
    court = runner.invoke(cli.app, ["list", "--source", "court"])
    assert lapsing.dispute_id not in court.output

    args = ["answer", answered.dispute_id, "--outcome", "deleted", "--explanation", "Error."]
    assert runner.invoke(cli.app, args).exit_code != 0  # neither --source nor --reviewer
    refused = runner.invoke(cli.app, [*args, "--source", "court"])
    assert refused.exit_code == 1
    assert "own records" in refused.output
    done = runner.invoke(cli.app, [*args, "--source", "bank"])
    assert done.exit_code == 0, done.output
    assert "deleted" in done.output

    at = lapsing.deadline.isoformat()
    swept = runner.invoke(cli.app, ["sweep", "--as-of", at])
    assert swept.exit_code == 0, swept.output
    assert lapsing.dispute_id in swept.output
    assert "1 disputes lapsed; 4 notifications delivered" in swept.output
    again = runner.invoke(cli.app, ["sweep", "--as-of", at])
    assert "0 disputes lapsed; 0 notifications delivered" in again.output
    clock.set(lapsing.deadline)
    lapsed = runner.invoke(
        cli.app, ["list", "--status", "lapsed", "--subject", world.people[0].public_id]
    )
    assert lapsing.dispute_id in lapsed.output
    assert answered.dispute_id not in lapsed.output
