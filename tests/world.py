"""A small world for tests: the default rulebook, a few sources and subjects.

Plain functions, not fixtures, so any test module can build exactly what it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import Clock
from credence.context import Context
from credence.identifiers import SubjectKind, make_credit_code, make_resident_id
from credence.ledger import backfill, registry
from credence.ledger import service as ledger
from credence.ledger.schemas import RecordIn, SubjectIn
from credence.ledger.tables import Source, Subject
from credence.rulebook import store
from credence.rulebook.loader import default_text
from credence.rulebook.model import Rulebook
from credence.settings import Settings

SOURCES: dict[str, tuple[str | None, list[str]]] = {
    "civil_registry": ("person", []),
    "business_registry": ("organisation", ["annual_report_filed"]),
    "bank": (
        None,
        ["loan_repaid", "loan_default", "credit_card_default", "on_time_payment_streak"],
    ),
    "court": (
        None,
        ["judgment_default", "judgment_satisfied", "fraud_judgment", "contract_breach_judgment"],
    ),
    "tax_office": (None, ["tax_paid_on_time", "tax_arrears", "tax_evasion_penalty"]),
    "traffic_police": (None, ["traffic_violation", "drunk_driving_penalty"]),
    "volunteers": (None, ["volunteer_service", "blood_donation", "heroic_act"]),
}


@dataclass
class World:
    sources: dict[str, Source]
    people: list[Subject]
    company: Subject
    edition: store.Edition


#: Birth dates of :func:`person_id` lie in the 40 years from 1980 (before any clock a
#: test uses, :data:`tests.conftest.T0` six years back included).
FIRST_BIRTH = date(1980, 1, 1)
BIRTH_DAYS = 40 * 365


def person_id(n: int) -> str:
    """A valid resident identity number, a different one for each ``n`` below 73,000.

    Born 97 n days after :data:`FIRST_BIRTH`, wrapped within :data:`BIRTH_DAYS` (for
    n <= 150 the numbers tests were written with); 97 and the span are coprime, so n
    below :data:`BIRTH_DAYS` have a birth date each, and with the sequence part (n mod
    1000) the number repeats only every 73,000 (their least common multiple)."""
    return make_resident_id("110105", FIRST_BIRTH + timedelta(days=(97 * n) % BIRTH_DAYS), n)


def company_id(n: int) -> str:
    return make_credit_code("9", "1", "371082", f"{n:09d}")


def build_world(
    sessions: sessionmaker[Session],
    clock: Clock,
    *,
    people: int = 3,
    names: Sequence[str] | None = None,
    company_name: str = "Acme",
) -> World:
    """Publish the default rulebook six years back, register the sources and subjects:
    ``people`` persons (``person_id(i)``, named ``names[i]`` or ``P<i>``) and a company
    (``company_id(1)``, named ``company_name``)."""
    if names is None:
        names = [f"P{i}" for i in range(people)]
    if len(names) != people:
        raise ValueError(f"{people} people need {people} names, not {len(names)}")
    with sessions.begin() as session:
        published = clock.now() - timedelta(days=365 * 6)
        edition = store.publish(session, text=default_text(), at=published)
        sources = {
            code: registry.register_source(
                session,
                code=code,
                name=code.replace("_", " ").title(),
                kind=code,
                record_types=types,
                rulebook=edition.rulebook,
                at=published,
                identity_authority_for=authority,
            )
            for code, (authority, types) in SOURCES.items()
        }
        subjects = [
            registry.register_subject(
                session,
                source=sources["civil_registry"],
                data=SubjectIn(kind=SubjectKind.PERSON, identifier=person_id(i), name=names[i]),
                at=published,
            )[0]
            for i in range(people)
        ]
        company = registry.register_subject(
            session,
            source=sources["business_registry"],
            data=SubjectIn(kind=SubjectKind.COMPANY, identifier=company_id(1), name=company_name),
            at=published,
        )[0]
        session.expunge_all()
    return World(sources, subjects, company, edition)


def submit(
    sessions: sessionmaker[Session],
    world: World,
    source: str,
    at: datetime,
    *records: dict[str, object],
    backfill_run: str | None = None,
) -> list[str]:
    """Submit records as ``source`` at ``at`` (under an approved ``backfill_run``, if
    given); return their statuses (or error codes)."""
    with sessions.begin() as session:
        results = ledger.submit_records(
            session,
            source=session.merge(world.sources[source]),
            records=ledger.parse_records(list(records)),
            rulebook=world.edition.rulebook,
            at=at,
            backfill=(
                None
                if backfill_run is None
                else backfill.scope(session, backfill_run, world.sources[source].id)
            ),
        )
    return [r.status if r.error is None else str(r.error["code"]) for r in results]


def history_run(
    sessions: sessionmaker[Session], world: World, source: str, at: datetime, *, years: int = 10
) -> str:
    """An approved backfill run for ``source``'s history (the ``years`` before ``at``):
    for tests that load a past in one go, which the intake's volume limits would hold."""
    with sessions.begin() as session:
        return backfill.approve(
            session,
            source=session.merge(world.sources[source]),
            occurred_from=at - timedelta(days=366 * years),
            occurred_until=at + timedelta(microseconds=1),
            expected_records=1_000_000,
            principal_id=None,
            at=at,
        ).public_id


def rec(
    ref: str, subject: Subject, record_type: str, occurred_at: datetime, **extra: object
) -> dict[str, object]:
    return {
        "source_ref": ref,
        "subject_id": subject.public_id,
        "record_type": record_type,
        "occurred_at": occurred_at.isoformat(),
        **extra,
    }


__all__ = ["RecordIn", "World", "build_world", "history_run", "rec", "submit"]


def tier_for(book: Rulebook, total: float) -> str:
    """The test's own oracle for the tier of a total: the first tier, highest first,
    whose ``min_score`` the total reaches."""
    for tier in book.tiers:
        if total >= tier.min_score:
            return tier.code
    return book.tiers[-1].code


def store_context(
    engine: Engine, sessions: sessionmaker[Session], clock: Clock, key: Path
) -> Context:
    """A context on a test store whose log is signed with the key at ``key`` (created
    when first needed): what an export or a log check runs in."""
    settings = Settings(db_url=str(engine.url), log_key_path=str(key))
    return Context(settings=settings, engine=engine, sessions=sessions, clock=clock)
