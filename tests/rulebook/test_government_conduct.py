"""A government body rises through its own conduct, on every backend.

The default rulebook gives public bodies positive record types in government affairs:
a contract fulfilled on time, a court judgment complied with, disclosure duties met.
The demo's sources that may report them are registered as the demo registers them,
each with a key; a government body is registered by the business registry; each record
goes in through ``POST /v1/records`` and the score read back through the API rises by
exactly the record's decayed points (oracle: the formula written out here).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, issue_key
from credence.access.policy import Role
from credence.clock import FixedClock
from credence.identifiers import SubjectKind, make_credit_code
from credence.lab.sources import DEMO_SOURCES
from credence.ledger.registry import register_source
from credence.rulebook.loader import default_rulebook
from credence.rulebook.model import Category
from tests.client import Api
from tests.world import tier_for

#: The positive record types of public bodies' own conduct, in the order submitted.
GOVERNMENT_TYPES = (
    "public_contract_fulfilled",
    "public_judgment_complied",
    "disclosure_obligations_met",
)


def test_the_types_are_positive_government_affairs_of_government_bodies_only() -> None:
    book = default_rulebook()
    for code in GOVERNMENT_TYPES:
        rt = book.record_type(code)
        assert rt is not None, code
        assert rt.category is Category.GOVERNMENT_AFFAIRS
        assert rt.subject_kinds == (SubjectKind.GOVERNMENT,)
        assert rt.points > 0
        assert rt.domain is not None
        assert rt.statute is not None
        # Some demo source reports it, and the city draws it for government bodies.
        assert any(code in s.record_types for s in DEMO_SOURCES), code
    assert any(
        rt.category is Category.GOVERNMENT_AFFAIRS
        and SubjectKind.GOVERNMENT in rt.subject_kinds
        and rt.points < 0
        for rt in book.record_types
    )


def reporters(api: Api, sessions: sessionmaker[Session], clock: FixedClock) -> dict[str, str]:
    """Register the demo sources that report ``GOVERNMENT_TYPES`` (with the types the
    demo registers them for) and a key for each, and a key for the business registry;
    return the reporting source's key name by record type."""
    book = api.world.edition.rulebook
    by_type: dict[str, str] = {}
    with sessions.begin() as session:
        for spec in DEMO_SOURCES:
            if not set(spec.record_types) & set(GOVERNMENT_TYPES):
                continue
            source = register_source(
                session,
                code=spec.code,
                name=spec.name,
                kind=spec.kind,
                record_types=spec.record_types,
                rulebook=book,
                at=clock.now() - timedelta(days=400),
            )
            principal = create_principal(
                session, role=Role.SOURCE, name=spec.code, clock=clock, source_id=source.id
            )
            api.keys[spec.code] = issue_key(session, principal=principal, clock=clock)
            for code in set(spec.record_types) & set(GOVERNMENT_TYPES):
                by_type[code] = spec.code
        registry = api.world.sources["business_registry"]
        principal = create_principal(
            session, role=Role.SOURCE, name="business", clock=clock, source_id=registry.id
        )
        api.keys["business"] = issue_key(session, principal=principal, clock=clock)
    assert set(by_type) == set(GOVERNMENT_TYPES)
    return by_type


def score_of(api: Api, subject_id: str) -> dict[str, Any]:
    response = api.call(
        "GET", f"/v1/subjects/{subject_id}/score", "operator", params={"purpose": "audit"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def decayed(code: str, occurred: datetime, now: datetime) -> float:
    rt = default_rulebook().record_type(code)
    assert rt is not None
    age = (now - occurred).total_seconds() / 86_400
    return rt.points * 2 ** (-age / rt.half_life_days)


def test_a_government_body_rises_on_its_own_conduct(
    api: Api, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    by_type = reporters(api, sessions, clock)
    book = default_rulebook()
    registered = api.call(
        "POST",
        "/v1/subjects",
        "business",
        json={
            "kind": "government",
            "identifier": make_credit_code("1", "1", "371082", "000000042"),
            "name": "Harbour Water Authority",
        },
    )
    assert registered.status_code == 201, registered.text
    body = registered.json()
    assert body["kind"] == "government"
    subject_id = body["subject_id"]

    score = score_of(api, subject_id)
    assert score["total"] == book.scale.base
    now = clock.now()
    expected = 0.0
    for days, code in zip((40, 25, 10), GOVERNMENT_TYPES, strict=True):
        occurred = now - timedelta(days=days)
        submitted = api.call(
            "POST",
            "/v1/records",
            by_type[code],
            json={
                "records": [
                    {
                        "source_ref": f"{code}-1",
                        "subject_id": subject_id,
                        "record_type": code,
                        "occurred_at": occurred.isoformat(),
                    }
                ]
            },
        )
        assert submitted.status_code == 200, submitted.text
        assert submitted.json()["created"] == 1, submitted.text
        before = float(score["total"])
        score = score_of(api, subject_id)
        expected += decayed(code, occurred, now)
        total = float(score["total"])
        assert total > before, code
        assert math.isclose(total, book.scale.base + expected, rel_tol=1e-12)
        sub = score["sub_scores"]
        assert math.isclose(sub["government_affairs"], expected, rel_tol=1e-12)
        assert sub["judicial"] == sub["commercial"] == sub["social"] == 0
        assert score["tier"] == tier_for(book, total)
    # Three records of its own conduct: about 15 points above where it started.
    assert 14 < expected < 15


@pytest.mark.parametrize("kind", ["person", "company"])
def test_only_a_government_body_may_have_them(
    api: Api, sessions: sessionmaker[Session], clock: FixedClock, kind: str
) -> None:
    by_type = reporters(api, sessions, clock)
    subject = api.world.people[0] if kind == "person" else api.world.company
    occurred = (clock.now() - timedelta(days=5)).isoformat()
    for code in GOVERNMENT_TYPES:
        response = api.call(
            "POST",
            "/v1/records",
            by_type[code],
            json={
                "records": [
                    {
                        "source_ref": f"{code}-{kind}",
                        "subject_id": subject.public_id,
                        "record_type": code,
                        "occurred_at": occurred,
                    }
                ]
            },
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["created"] == 0
        assert answer["results"][0]["error"]["code"] == "record_type_not_for_subject_kind"
