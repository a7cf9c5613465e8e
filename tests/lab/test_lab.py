"""The synthetic city: built through the real ledger path, valid, reproducible, plausible.

A small city (a few hundred subjects, 5,000 records over two years) on every backend;
the full-size build is timed by hand (``credence demo``), not here.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.identifiers import SubjectKind, validate_identifier
from credence.journal import JournalEntry
from credence.lab.city import CityStats, build_city, plan_city
from credence.lab.sources import DEMO_SOURCES
from credence.ledger.holds import RecordHold
from credence.ledger.tables import Record, Source, SourceRecordType, Subject
from credence.migrate import reset
from credence.rulebook.loader import default_rulebook
from credence.rulebook.model import Category

PERSONS = 300
ORGANISATIONS = 40
RECORDS = 5_000
#: Two years rather than the demo's five: half the deliveries (submit calls) to make.
YEARS = 2
SEED = 11


@dataclass
class City:
    stats: CityStats
    stages: dict[str, tuple[int, int]]


def build(sessions: sessionmaker[Session], clock: FixedClock, *, seed: int = SEED) -> City:
    stages: dict[str, tuple[int, int]] = {}

    def progress(stage: str, done: int, total: int) -> None:
        stages[stage] = (done, total)

    stats = build_city(
        sessions,
        persons=PERSONS,
        organisations=ORGANISATIONS,
        records=RECORDS,
        years=YEARS,
        seed=seed,
        now=clock.now(),
        progress=progress,
    )
    return City(stats, stages)


def export(sessions: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    """Everything a city is, without the random public ids: subjects by registration
    order (their dense id), records by what they say and who said it."""
    with sessions() as session:
        order = {
            sid: index
            for index, sid in enumerate(session.scalars(select(Subject.id).order_by(Subject.id)))
        }
        subjects = [
            ("subject", order[row.id], row.kind, row.identifier, row.name, row.region)
            for row in session.execute(
                select(Subject.id, Subject.kind, Subject.identifier, Subject.name, Subject.region)
            )
        ]
        records = [
            ("record", order[row.subject_id], *row[1:])
            for row in session.execute(
                select(
                    Record.subject_id,
                    Record.record_type,
                    Record.occurred_at,
                    Record.received_at,
                    Record.quantity,
                    Record.decision_ref,
                    Source.code,
                    Record.source_ref,
                ).join(Source, Source.id == Record.source_id)
            )
        ]
    return sorted(subjects) + sorted(records, key=repr)


def test_the_city_is_built_through_the_ledger_and_plausible(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    city = build(sessions, clock)
    stats, book = city.stats, default_rulebook()
    assert stats.records == RECORDS
    assert stats.subjects_by_kind == {"company": 38, "government": 2, "person": PERSONS}
    assert stats.rulebook_version == book.version
    assert city.stages == {
        "registering subjects": (PERSONS + ORGANISATIONS, PERSONS + ORGANISATIONS),
        "ingesting records": (RECORDS, RECORDS),
    }

    with sessions() as session:
        kinds = dict(
            session.execute(select(Subject.kind, func.count()).group_by(Subject.kind)).all()
        )
        by_type = dict(
            session.execute(
                select(Record.record_type, func.count()).group_by(Record.record_type)
            ).all()
        )
        by_source = dict(
            session.execute(
                select(Source.code, func.count())
                .join(Record, Record.source_id == Source.id)
                .group_by(Source.code)
            ).all()
        )
        journal = dict(
            session.execute(
                select(JournalEntry.kind, func.count()).group_by(JournalEntry.kind)
            ).all()
        )
        exempted = session.scalar(select(func.count()).where(Record.backfill_run_id.is_not(None)))
        held = session.scalar(select(func.count()).select_from(RecordHold))
        registered = set(
            session.execute(
                select(Source.code, SourceRecordType.record_type).join(
                    SourceRecordType, SourceRecordType.source_id == Source.id
                )
            ).all()
        )
        rows = session.execute(
            select(
                Subject.kind,
                Subject.identifier,
                Source.code,
                Record.subject_id,
                Record.record_type,
                Record.occurred_at,
                Record.received_at,
                Record.quantity,
                Record.decision_ref,
            )
            .join(Subject, Subject.id == Record.subject_id)
            .join(Source, Source.id == Record.source_id)
        ).all()

    assert kinds == stats.subjects_by_kind
    assert by_type == stats.records_by_type
    assert by_source == stats.records_by_source
    # One journal entry per append: the rulebook, each source, subject and record; and
    # the city loads through approved backfill runs (one per source that reports), so
    # nothing is held: every record is exempted from the volume limits by its run.
    assert journal.pop("backfill_approved") == len(by_source)
    assert journal.pop("backfill_delivered") >= len(by_source)
    assert journal == {
        "rulebook_published": 1,
        "source_registered": len(DEMO_SOURCES),
        "subject_registered": stats.subjects,
        "record": RECORDS,
    }
    assert exempted == RECORDS
    assert held == 0
    assert len(rows) == RECORDS

    # Every record is one the ledger should have accepted, and looks like a real one.
    defaults: dict[str, tuple[int, Any]] = {}
    for row in rows:
        rt = book.record_type(row.record_type)
        assert rt is not None
        assert SubjectKind(row.kind) in rt.subject_kinds
        assert (row.code, row.record_type) in registered
        assert validate_identifier(SubjectKind(row.kind), row.identifier) == row.identifier
        assert (row.quantity is not None) == (rt.quantity is not None)
        if rt.quantity is not None:
            assert 0 < row.quantity <= rt.quantity.max_units
        assert not rt.negative or row.decision_ref
        assert stats.start <= row.occurred_at <= row.received_at <= stats.now
        assert row.received_at - row.occurred_at < timedelta(days=21)
        if row.record_type == "judgment_default":
            assert row.decision_ref not in defaults  # case numbers are unique
            defaults[row.decision_ref] = (row.subject_id, row.occurred_at)
    # A satisfied judgment names a default of the same subject, from earlier.
    satisfied = [r for r in rows if r.record_type == "judgment_satisfied"]
    assert satisfied
    for row in satisfied:
        subject_id, occurred_at = defaults[row.decision_ref]
        assert subject_id == row.subject_id
        assert occurred_at < row.occurred_at

    assert_plausible(rows)


def assert_plausible(rows: Sequence[Any]) -> None:
    """What a city should look like, from its records (kind, record_type, code, subject_id)."""
    book = default_rulebook()

    def negative(code: str) -> bool:
        rt = book.record_type(code)
        assert rt is not None
        return rt.negative

    # Most people have few negative records; some have several.
    negatives = Counter(
        r.subject_id for r in rows if r.kind == "person" and negative(r.record_type)
    )
    per_person = [negatives.get(i, 0) for i in {r.subject_id for r in rows if r.kind == "person"}]
    per_person += [0] * (PERSONS - len(per_person))  # persons without any record
    assert statistics.median(per_person) <= 1
    assert max(per_person) >= 3
    # Organisations have records that only companies can have; persons never do.
    company_only = {
        rt.code for rt in book.record_types if rt.subject_kinds == (SubjectKind.COMPANY,)
    }
    assert len(company_only & {r.record_type for r in rows if r.kind == "company"}) >= 4
    assert not company_only & {r.record_type for r in rows if r.kind == "person"}
    # Many sources, every category, both signs.
    assert len({r.code for r in rows}) >= 8
    assert {book.record_type_index[r.record_type].category for r in rows} == set(Category)
    signs = Counter(negative(r.record_type) for r in rows)
    assert signs[True] > 0
    assert signs[False] > signs[True]  # positive information dominates


def test_the_same_seed_builds_the_same_city(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    first = build(sessions, clock)
    exported = export(sessions)
    reset(engine)
    second = build(sessions, clock)
    assert export(sessions) == exported
    assert second.stats.records_by_type == first.stats.records_by_type
    assert len(exported) == PERSONS + ORGANISATIONS + RECORDS


def test_another_seed_draws_another_city(clock: FixedClock) -> None:
    book = default_rulebook()
    one = plan_city(book, persons=50, organisations=5, records=500, seed=1, now=clock.now())
    two = plan_city(book, persons=50, organisations=5, records=500, seed=2, now=clock.now())
    again = plan_city(book, persons=50, organisations=5, records=500, seed=1, now=clock.now())
    assert [s.identifier for s in one.subjects] != [s.identifier for s in two.subjects]
    assert [s.identifier for s in one.subjects] == [s.identifier for s in again.subjects]
    assert one.decision_refs == again.decision_refs
    assert (one.occurred == again.occurred).all()
    assert len({s.identifier for s in one.subjects}) == 55


@pytest.mark.parametrize("records", [0, 1])
def test_tiny_cities_build(
    sessions: sessionmaker[Session], clock: FixedClock, records: int
) -> None:
    stats = build_city(sessions, persons=3, organisations=1, records=records, now=clock.now())
    assert stats.records == records
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Record)) == records


def test_government_bodies_have_records_of_their_own_conduct(clock: FixedClock) -> None:
    """The city draws the positive record types of public bodies, from their sources,
    for government bodies only, and more of them than of the negative ones."""
    book = default_rulebook()
    plan = plan_city(book, persons=1_000, organisations=200, records=20_000, now=clock.now())
    own = {
        rt.code
        for rt in book.record_types
        if rt.subject_kinds == (SubjectKind.GOVERNMENT,) and rt.points > 0
    }
    assert len(own) >= 3
    signs: Counter[bool] = Counter()
    drawn: Counter[str] = Counter()
    for s, t in zip(plan.subject.tolist(), plan.type_idx.tolist(), strict=True):
        code = plan.type_codes[t]
        rt = book.record_type_index[code]
        if plan.subjects[s].kind is SubjectKind.GOVERNMENT:
            drawn[code] += 1
            signs[rt.points > 0] += 1
        else:
            assert code not in own
    assert own <= set(drawn)
    assert signs[True] > signs[False] > 0
