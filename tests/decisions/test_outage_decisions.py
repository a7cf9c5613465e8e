"""Decisions while a source is in outage, through the API, on SQLite and PostgreSQL.

A decision carries the completeness of each category its service reads (which sources
are in outage, since when, which of their types are silent) and says how the service
met an incomplete category, as its rulebook declares (``on_outage``): the loan rate
discount fails closed (no reward on incomplete repayment data, the outage named as the
reason), the community perks and the travel restrictions fail open (decided on the
records held). The API's direct path and the session path decide alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, create_relying_party, issue_key
from credence.access.policy import Role
from credence.decisions.service import decide
from credence.ledger import freshness
from credence.ledger.freshness import Cadence
from credence.ledger.registry import get_subject
from credence.ledger.subject_file import subject_records
from credence.rulebook import store
from credence.rulebook.model import Category
from credence.scoring.online import compute, score_subject
from tests.client import Api
from tests.world import World, rec, submit

DAY = timedelta(days=1)
COMMERCIAL = frozenset({Category.COMMERCIAL})
SERVICES = ["loan_rate_discount", "community_perks", "air_travel"]


@pytest.fixture
def party(api: Api, sessions: sessionmaker[Session]) -> Api:
    """The API with the key of a relying party registered for :data:`SERVICES`."""
    with sessions.begin() as session:
        registered = create_relying_party(
            session, code="party", name="A Party", services=SERVICES, clock=api.clock
        )
        principal = create_principal(
            session, role=Role.RELYING_PARTY, name="party", clock=api.clock, party_id=registered.id
        )
        api.keys["party"] = issue_key(session, principal=principal, clock=api.clock)
    return api


class Silence:
    """The bank reports six weekly repayments of the first person (a discount, under the
    type's bound of 30 points, so that decay shows)
    until ``last`` and is in outage from ``since``; the court declared weekly judgment
    defaults, reported one (the second person's) right after and nothing since: it has
    been in outage longer. Volunteers declared nothing: never in outage."""

    def __init__(self, sessions: sessionmaker[Session], world: World, now: datetime) -> None:
        declared = now - 100 * DAY
        with sessions.begin() as session:
            for code, record_type in (("bank", "loan_repaid"), ("court", "judgment_default")):
                freshness.declare(
                    session,
                    source=session.merge(world.sources[code]),
                    cadences=[Cadence(record_type, 7, 3)],
                    at=declared,
                )
        first, second = world.people[0], world.people[1]
        reports = [declared + DAY + 7 * k * DAY for k in range(6)]  # under the bound
        for n, at in enumerate(reports):
            sent = rec(f"R-{n}", first, "loan_repaid", at - DAY)
            assert submit(sessions, world, "bank", at, sent) == ["created"]
        self.court_report = declared + 2 * DAY
        default = rec("J-1", second, "judgment_default", declared, decision_ref="J-1")
        assert submit(sessions, world, "court", self.court_report, default) == ["created"]
        self.last = reports[-1]
        self.since = self.last + 10 * DAY
        self.court_since = self.court_report + 10 * DAY
        assert self.since < now


def ask(api: Api, world: World, n: int, service: str) -> dict[str, Any]:
    response = api.call(
        "POST",
        "/v1/decisions",
        "party",
        json={"subject_id": world.people[n].public_id, "service": service},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_category(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["category"]: c for c in body["completeness"]}


def test_a_reward_that_fails_closed_is_withheld_while_its_category_is_incomplete(
    party: Api, sessions: sessionmaker[Session]
) -> None:
    world, now = party.world, party.clock.now()
    silence = Silence(sessions, world, now)

    # Before the outage: the discount, on complete data.
    party.clock.set(silence.since - DAY)
    before = ask(party, world, 0, "loan_rate_discount")
    assert before["outcome"] == "reward", before
    assert by_category(before) == {
        "commercial": {"category": "commercial", "complete": True, "missing": []}
    }
    assert before["outage_handling"] is None

    # In outage: no reward on incomplete repayment data, and the outage is the reason.
    party.clock.set(now)
    during = ask(party, world, 0, "loan_rate_discount")
    assert during["outcome"] == "deny"
    commercial = by_category(during)["commercial"]
    assert commercial["complete"] is False
    [missing] = commercial["missing"]
    assert missing["source"] == "bank"
    assert missing["record_types"] == ["loan_repaid"]
    assert datetime.fromisoformat(missing["since"]) == silence.since
    handling = during["outage_handling"]
    assert handling["mode"] == "closed"
    assert handling["changed_outcome"] is True
    assert during["reasons"] == [handling["text"]]
    assert "Bank" in handling["text"]
    assert f"{silence.since:%Y-%m-%d}" in handling["text"]
    assert "fails closed" in handling["text"]
    assert during["cited_records"] == []
    assert during["how_to_dispute"]  # adverse: how to dispute, as every denial

    # Social perks read no category the bank or the court report on: complete.
    perks = ask(party, world, 0, "community_perks")
    assert by_category(perks) == {"social": {"category": "social", "complete": True, "missing": []}}
    assert perks["outage_handling"] is None


def test_a_restriction_fails_open_and_says_what_is_missing(
    party: Api, sessions: sessionmaker[Session]
) -> None:
    world, now = party.world, party.clock.now()
    silence = Silence(sessions, world, now)
    body = ask(party, world, 1, "air_travel")
    # The judgment default held still restricts: nobody is restricted or freed because
    # the court is silent.
    assert body["outcome"] == "deny"
    assert any("J-1" in reason for reason in body["reasons"])
    judicial = by_category(body)["judicial"]
    assert judicial["complete"] is False
    assert [(m["source"], m["record_types"]) for m in judicial["missing"]] == [
        ("court", ["judgment_default"])
    ]
    assert datetime.fromisoformat(judicial["missing"][0]["since"]) == silence.court_since
    handling = body["outage_handling"]
    assert handling["mode"] == "open"
    assert handling["changed_outcome"] is False
    assert "fails open" in handling["text"]
    assert "60 days" in handling["text"]
    # A person with no judicial record: allowed, and told the data is incomplete too.
    free = ask(party, world, 0, "air_travel")
    assert free["outcome"] == "allow"
    assert free["reasons"] == []
    assert free["outage_handling"]["mode"] == "open"


def test_the_session_path_decides_as_the_api_does(
    party: Api, sessions: sessionmaker[Session]
) -> None:
    world, now = party.world, party.clock.now()
    Silence(sessions, world, now)
    api_body = ask(party, world, 0, "loan_rate_discount")
    with sessions.begin() as session:
        decision = decide(
            session,
            subject=get_subject(session, public_id=world.people[0].public_id),
            service_code="loan_rate_discount",
            edition=store.in_force(session, now),
            at=now,
            party_id=None,
            principal_id=None,
        )
    assert decision.outcome.value == api_body["outcome"] == "deny"
    assert decision.reasons == api_body["reasons"]
    assert decision.outage_handling is not None
    assert decision.outage_handling.text == api_body["outage_handling"]["text"]
    assert [c.complete for c in decision.completeness] == [False]
    # The score the decision read froze the bank's records at the outage's start: the
    # same as the file's score of the category, higher than without the freeze.
    with sessions() as session:
        subject = get_subject(session, public_id=world.people[0].public_id)
        edition = store.in_force(session, now)
        frozen = score_subject(session, subject, edition, now, categories=COMMERCIAL)
        records = subject_records(session, subject.id, at=now)
        plain = compute([r for r in records if r.record_type == "loan_repaid"], edition, now)
    assert decision.score == frozen.total > plain.total


def test_a_score_states_the_completeness_of_every_category(
    party: Api, sessions: sessionmaker[Session]
) -> None:
    world, now = party.world, party.clock.now()
    silence = Silence(sessions, world, now)

    def completeness(at: datetime) -> dict[str, dict[str, Any]]:
        response = party.get(
            f"/v1/subjects/{world.people[0].public_id}/score",
            "operator",
            params={"as_of": at.isoformat(), "purpose": "audit"},
        )
        assert response.status_code == 200, response.text
        return by_category(response.json())

    during = completeness(now)
    assert list(during) == ["government_affairs", "commercial", "social", "judicial"]
    assert [c for c, v in during.items() if v["complete"]] == ["government_affairs", "social"]
    assert [m["source"] for m in during["commercial"]["missing"]] == ["bank"]
    assert [m["source"] for m in during["judicial"]["missing"]] == ["court"]
    assert datetime.fromisoformat(during["judicial"]["missing"][0]["since"]) == (
        silence.court_since
    )
    # As of an instant before either outage: every category complete.
    before = completeness(silence.court_report + DAY)
    assert all(v["complete"] and v["missing"] == [] for v in before.values())
