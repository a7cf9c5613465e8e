"""The ledger on every storage backend: registration, idempotent append, refusals,
retraction, and append-only journalling."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.errors import Conflict, Forbidden, InvalidIdentifier, NotFound
from credence.identifiers import (
    SubjectKind,
    date_in_china,
    guess_kind,
    make_resident_id,
    validate_credit_code,
)
from credence.journal import JournalEntry
from credence.ledger import registry, subject_file
from credence.ledger import service as ledger
from credence.ledger.schemas import SubjectIn
from credence.ledger.tables import Record, Retraction, Subject
from tests.world import World, build_world, company_id, history_run, person_id, rec, submit


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    return build_world(sessions, clock)


def count(sessions: sessionmaker[Session], column: object) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count(column))) or 0)  # type: ignore[arg-type]


def test_only_identity_authorities_register_subjects(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    with sessions.begin() as session, pytest.raises(Forbidden, match="identity authority"):
        registry.register_subject(
            session,
            source=session.merge(world.sources["bank"]),
            data=SubjectIn(kind=SubjectKind.PERSON, identifier=person_id(50), name="X"),
            at=clock.now(),
        )
    with sessions.begin() as session, pytest.raises(Forbidden, match="organisations"):
        registry.register_subject(
            session,
            source=session.merge(world.sources["civil_registry"]),
            data=SubjectIn(kind=SubjectKind.COMPANY, identifier=company_id(9), name="Y"),
            at=clock.now(),
        )


def test_invalid_identifiers_are_refused_with_the_reason(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    bad = person_id(7)[:-1] + ("0" if person_id(7)[-1] != "0" else "1")
    with sessions.begin() as session, pytest.raises(InvalidIdentifier, match="check character"):
        registry.register_subject(
            session,
            source=session.merge(world.sources["civil_registry"]),
            data=SubjectIn(kind=SubjectKind.PERSON, identifier=bad, name="X"),
            at=clock.now(),
        )
    assert count(sessions, Subject.id) == 4


def test_registering_again_returns_the_same_subject(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    with sessions.begin() as session:
        subject, created = registry.register_subject(
            session,
            source=session.merge(world.sources["civil_registry"]),
            data=SubjectIn(kind=SubjectKind.PERSON, identifier=person_id(0), name="P0"),
            at=clock.now(),
        )
    assert not created
    assert subject.public_id == world.people[0].public_id
    with sessions() as session:
        found = registry.get_subject(session, identifier=person_id(0))
        assert found.public_id == world.people[0].public_id
        with pytest.raises(NotFound):
            registry.get_subject(session, identifier=person_id(99))


def test_resend_is_idempotent_and_changed_content_conflicts(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    day = clock.now() - timedelta(days=10)
    first = rec("loan-1", p, "loan_repaid", day)
    assert submit(sessions, world, "bank", clock.now(), first) == ["created"]
    journal_before = count(sessions, JournalEntry.seq)
    assert submit(sessions, world, "bank", clock.now(), first) == ["duplicate"]
    assert count(sessions, Record.id) == 1
    assert count(sessions, JournalEntry.seq) == journal_before
    changed = rec("loan-1", p, "loan_repaid", day - timedelta(days=1))
    assert submit(sessions, world, "bank", clock.now(), changed) == ["source_ref_conflict"]
    assert count(sessions, Record.id) == 1


def test_identifier_and_subject_id_name_the_same_subject(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    day = clock.now() - timedelta(days=3)
    by_identifier: dict[str, object] = {
        "source_ref": "x-1",
        "identifier": person_id(1),
        "record_type": "loan_repaid",
        "occurred_at": day.isoformat(),
    }
    by_id = rec("x-1", world.people[1], "loan_repaid", day)
    assert submit(sessions, world, "bank", clock.now(), by_identifier, by_id) == [
        "created",
        "duplicate",
    ]


@pytest.mark.parametrize(
    ("record", "source", "code"),
    [
        ({"record_type": "attended_protest"}, "bank", "unknown_record_type"),
        (
            {"record_type": "traffic_violation", "decision_ref": "T-1"},
            "bank",
            "record_type_not_registered",
        ),
        ({"record_type": "loan_default"}, "bank", "decision_reference_required"),
        ({"record_type": "volunteer_service"}, "volunteers", "quantity_required"),
        ({"record_type": "loan_repaid", "quantity": 3}, "bank", "unexpected_quantity"),
        (
            {"record_type": "loan_repaid", "occurred_at": "2999-01-01T00:00:00Z"},
            "bank",
            "occurred_in_future",
        ),
        ({"record_type": "loan_repaid", "religion": "x"}, "bank", "invalid_record"),
        (
            {"record_type": "loan_repaid", "subject_id": "sub_nobody"},
            "bank",
            "unregistered_subject",
        ),
        (
            {"record_type": "contract_breach_judgment", "decision_ref": "C-1"},
            "court",
            "record_type_not_for_subject_kind",
        ),
    ],
)
def test_bad_records_are_refused_and_nothing_is_stored(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    world: World,
    record: dict[str, object],
    source: str,
    code: str,
) -> None:
    base = rec("bad-1", world.people[0], "loan_repaid", clock.now() - timedelta(days=1))
    journal_before = count(sessions, JournalEntry.seq)
    assert submit(sessions, world, source, clock.now(), {**base, **record}) == [code]
    assert count(sessions, Record.id) == 0
    assert count(sessions, JournalEntry.seq) == journal_before


def test_unknown_identifier_in_a_record_names_the_problem(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    bad = {
        "source_ref": "r",
        "identifier": "123",
        "record_type": "loan_repaid",
        "occurred_at": clock.now().isoformat(),
    }
    with sessions.begin() as session:
        results = ledger.submit_records(
            session,
            source=session.merge(world.sources["bank"]),
            records=ledger.parse_records([bad]),
            rulebook=world.edition.rulebook,
            at=clock.now(),
        )
    assert results[0].error is not None
    assert results[0].error["code"] == "invalid_identifier"
    assert "18 characters" in str(results[0].error["message"])


def test_a_batch_reports_each_record(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    day = clock.now() - timedelta(days=2)
    statuses = submit(
        sessions,
        world,
        "bank",
        clock.now(),
        rec("a", p, "loan_repaid", day),
        rec("b", p, "no_such_type", day),
        rec("a", p, "loan_repaid", day),
        rec("c", p, "loan_default", day, decision_ref="REG-2026-1"),
    )
    assert statuses == ["created", "unknown_record_type", "duplicate", "created"]
    assert count(sessions, Record.id) == 2


def test_retraction_is_a_new_entry_and_only_by_the_source(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p = world.people[0]
    submit(
        sessions,
        world,
        "bank",
        clock.now(),
        rec("d", p, "loan_default", clock.now(), decision_ref="REG-1"),
    )
    with sessions() as session:
        record_id = session.scalars(select(Record.public_id)).one()
    with sessions.begin() as session, pytest.raises(NotFound):
        ledger.retract_record(
            session,
            source=session.merge(world.sources["court"]),
            record_id=record_id,
            reason="not ours",
            at=clock.now(),
        )
    clock.advance(timedelta(hours=1))
    with sessions.begin() as session:
        _retraction, created = ledger.retract_record(
            session,
            source=session.merge(world.sources["bank"]),
            record_id=record_id,
            reason="registered in error",
            at=clock.now(),
        )
        assert created
    with sessions.begin() as session:
        _, again = ledger.retract_record(
            session,
            source=session.merge(world.sources["bank"]),
            record_id=record_id,
            reason="again",
            at=clock.now(),
        )
        assert not again
    assert count(sessions, Retraction.id) == 1
    with sessions() as session:
        views = subject_file.subject_records(session, world.people[0].id)
        assert views[0].ended_at == clock.now()
        kinds = session.scalars(select(JournalEntry.kind).order_by(JournalEntry.seq)).all()
        assert kinds[-2:] == ["record", "retraction"]


def test_conflicting_kind_for_an_existing_identifier(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    # A credit code is taken only for the kind of subject it belongs to: a company's is
    # refused for a government before any subject is looked for.
    with sessions.begin() as session, pytest.raises(InvalidIdentifier) as refused:
        registry.register_subject(
            session,
            source=session.merge(world.sources["business_registry"]),
            data=SubjectIn(kind=SubjectKind.GOVERNMENT, identifier=company_id(1), name="Gov"),
            at=clock.now(),
        )
    assert refused.value.code == "identifier_not_of_kind"
    assert refused.value.status == 422
    # Some resident identity numbers are also valid credit codes (of an organ of state:
    # "11" then digits, with a check character that happens to fit both): one registered
    # as either kind of subject is a conflict when registered as the other.
    both = [
        n
        for n in range(3, 200)
        if guess_kind(person_id(n), today=date_in_china(clock.now())) is SubjectKind.PERSON
        and _is_credit_code(person_id(n), SubjectKind.GOVERNMENT)
    ]
    assert len(both) >= 2
    first, second = (person_id(n) for n in both[:2])
    for identifier, kinds in (
        (first, (SubjectKind.PERSON, SubjectKind.GOVERNMENT)),
        (second, (SubjectKind.GOVERNMENT, SubjectKind.PERSON)),
    ):
        registered, other = kinds
        with sessions.begin() as session:
            _, created = registry.register_subject(
                session,
                source=session.merge(world.sources[AUTHORITY[registered]]),
                data=SubjectIn(kind=registered, identifier=identifier, name="Either"),
                at=clock.now(),
            )
        assert created
        with sessions.begin() as session, pytest.raises(Conflict) as conflict:
            registry.register_subject(
                session,
                source=session.merge(world.sources[AUTHORITY[other]]),
                data=SubjectIn(kind=other, identifier=identifier, name="Either"),
                at=clock.now(),
            )
        assert conflict.value.code == "subject_kind_conflict"
        assert registered.value in conflict.value.message
        assert identifier not in conflict.value.message
    with sessions() as session:
        kinds_stored = session.scalars(
            select(Subject.kind).where(Subject.identifier.in_([first, second]))
        ).all()
    assert sorted(kinds_stored) == ["government", "person"]


#: The source that registers each kind of subject in the test world.
AUTHORITY = {
    SubjectKind.PERSON: "civil_registry",
    SubjectKind.COMPANY: "business_registry",
    SubjectKind.GOVERNMENT: "business_registry",
}


def _is_credit_code(value: str, kind: SubjectKind) -> bool:
    try:
        validate_credit_code(value, kind=kind)
    except InvalidIdentifier:
        return False
    return True


@pytest.mark.parametrize(
    ("now", "born_on_the_day"),
    [
        # 20:00 UTC on 31 December is already 1 January in China.
        (datetime(1999, 12, 31, 20, tzinfo=UTC), date(2000, 1, 1)),
        (datetime(2099, 12, 31, 20, tzinfo=UTC), date(2100, 1, 1)),
    ],
)
def test_a_birth_date_is_checked_against_the_clocks_today(
    sessions: sessionmaker[Session], world: World, now: datetime, born_on_the_day: date
) -> None:
    # The clock stands decades from the machine's date: its date in China decides
    # whether a birth date is in the future, not the machine's.
    clock = FixedClock(now)
    civil = world.sources["civil_registry"]

    def register(born: date, sequence: int) -> Subject:
        identifier = make_resident_id("110105", born, sequence)
        with sessions.begin() as session:
            subject, created = registry.register_subject(
                session,
                source=session.merge(civil),
                data=SubjectIn(kind=SubjectKind.PERSON, identifier=identifier, name="Newborn"),
                at=clock.now(),
            )
            assert created
            session.expunge(subject)
        return subject

    register(born_on_the_day, 1)
    register(born_on_the_day - timedelta(days=1), 2)
    with pytest.raises(InvalidIdentifier, match="in the future"):
        register(born_on_the_day + timedelta(days=1), 3)
    clock.advance(timedelta(days=1))
    register(born_on_the_day + timedelta(days=1), 3)


def test_large_batches_round_trip_exactly(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    """Big batches take the bulk path (COPY on PostgreSQL); what is read back is exact."""
    p = world.people[0]
    start = clock.now() - timedelta(days=900)
    batch = [
        rec(
            f"bulk-{i}",
            p,
            "volunteer_service",
            start + timedelta(minutes=97 * i, microseconds=i),
            quantity=i / 7,
        )
        for i in range(1200)
    ]
    run = history_run(sessions, world, "volunteers", clock.now())
    statuses = submit(sessions, world, "volunteers", clock.now(), *batch, backfill_run=run)
    assert set(statuses) == {"created"}
    with sessions() as session:
        views = subject_file.subject_records(session, p.id)
        kinds = session.scalars(select(JournalEntry.kind).where(JournalEntry.kind == "record"))
        assert len(list(kinds)) == 1200
    by_ref = {v.source_ref: v for v in views}
    assert len(by_ref) == 1200
    for i in (0, 1, 599, 1199):
        view = by_ref[f"bulk-{i}"]
        assert view.occurred_at == start + timedelta(minutes=97 * i, microseconds=i)
        assert view.received_at == clock.now()
        assert view.quantity == i / 7
        assert view.decision_ref is None
