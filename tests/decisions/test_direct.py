"""The online decision path: the API's direct path against the router's, the stores,
the caches (keys, rulebook editions) and the group commit, on every backend."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import PREFIX_LEN, create_principal, create_relying_party, issue_key
from credence.access.policy import Role
from credence.access.tables import ApiKey, RelyingParty
from credence.api.app import create_app
from credence.clock import FixedClock
from credence.context import Context
from credence.db import Direct
from credence.decisions.direct import DirectStore, run_writes
from credence.decisions.service import decide, decide_with
from credence.decisions.tables import Inquiry, RestrictionWarning
from credence.errors import CredenceError
from credence.ledger import registry
from credence.ledger import service as ledger
from credence.ledger.schemas import RecordIn
from credence.notifications.tables import Notification
from credence.rulebook import store
from credence.rulebook.loader import default_text
from credence.settings import Settings
from tests.world import World, build_world, rec, submit

SERVICES = (
    "air_travel",
    "loan_rate_discount",
    "deposit_free_rental",
    "community_perks",
    "public_procurement_bid",
)


@dataclass
class Online:
    app: Any
    client: TestClient
    world: World
    keys: dict[str, str]
    clock: FixedClock
    sessions: sessionmaker[Session]
    engine: Engine
    party_id: int

    def decide(self, body: dict[str, Any], key: str = "party", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} | kw.pop("headers", {})
        response: httpx.Response = self.client.post(
            "/v1/decisions", json=body, headers=headers, **kw
        )
        return response

    def routed(self, body: dict[str, Any], key: str = "party") -> httpx.Response:
        """The same request, answered by the router alone (no direct path)."""
        direct, self.app.direct = self.app.direct, None
        try:
            return self.decide(body, key)
        finally:
            self.app.direct = direct

    def count(self, table: Any) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(table)) or 0


@pytest.fixture
def online(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> Online:
    world = build_world(sessions, clock)
    now = clock.now()
    people = world.people
    submit(
        sessions,
        world,
        "court",
        now - timedelta(days=40),
        rec(
            "c1", people[0], "judgment_default", now - timedelta(days=50), decision_ref="(2026)Z-1"
        ),
        rec("c2", world.company, "judgment_default", now - timedelta(days=45), decision_ref="Z-2"),
    )
    submit(
        sessions,
        world,
        "bank",
        now - timedelta(days=30),
        rec("b1", people[1], "loan_default", now - timedelta(days=60), decision_ref="HCB-1"),
        rec("b2", people[2], "loan_repaid", now - timedelta(days=20)),
        rec("b3", people[2], "on_time_payment_streak", now - timedelta(days=10)),
        rec("b4", world.company, "loan_default", now - timedelta(days=90), decision_ref="HCB-2"),
    )
    submit(
        sessions,
        world,
        "volunteers",
        now - timedelta(days=5),
        rec("v1", people[2], "volunteer_service", now - timedelta(days=6), quantity=120),
    )
    settings = Settings(db_url=str(engine.url), log_key_path=str(tmp_path / "log.key"))
    ctx = Context(settings=settings, engine=engine, sessions=sessions, clock=clock)
    keys: dict[str, str] = {}
    with sessions.begin() as session:
        party = create_relying_party(
            session, code="party", name="Party", services=SERVICES, clock=clock
        )
        party_id = party.id
        for name, role, link in (
            ("party", Role.RELYING_PARTY, {"party_id": party.id}),
            ("bank", Role.SOURCE, {"source_id": world.sources["bank"].id}),
            ("operator", Role.OPERATOR, {}),
        ):
            principal = create_principal(session, role=role, name=name, clock=clock, **link)
            keys[name] = issue_key(session, principal=principal, clock=clock)
    app = create_app(ctx)
    client = TestClient(app, raise_server_exceptions=False)
    return Online(app, client, world, keys, clock, sessions, engine, party_id)


def _without_id(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "decision_id"}


def test_the_direct_path_answers_as_the_router_does(online: Online) -> None:
    subjects = [*online.world.people, online.world.company]
    compared = 0
    for subject in subjects:
        for service in SERVICES:
            body = {"subject_id": subject.public_id, "service": service}
            direct, routed = online.decide(body), online.routed(body)
            assert direct.status_code == routed.status_code, (service, direct.text)
            assert direct.headers["content-type"] == routed.headers["content-type"]
            if direct.status_code == 200:
                assert _without_id(direct.json()) == _without_id(routed.json())
                compared += 1
            else:
                assert direct.json() == routed.json()
    assert compared >= 10
    # Every decision, whichever path took it, is on the subject's file.
    assert online.count(Inquiry) == 2 * compared


def test_errors_keep_their_envelope_on_the_direct_path(online: Online) -> None:
    person = online.world.people[0].public_id
    cases: list[tuple[dict[str, Any], str, int, str | None]] = [
        ({"subject_id": "sub_nobody", "service": "air_travel"}, "party", 404, "unknown_subject"),
        ({"subject_id": person, "service": "space_travel"}, "party", 404, "unknown_service"),
        ({"subject_id": person, "service": "fast_track_permits"}, "party", 403, None),
        ({"subject_id": person, "identifier": "x", "service": "air_travel"}, "party", 422, None),
        ({"service": "air_travel"}, "party", 422, None),
        ({"subject_id": person, "service": "air_travel"}, "bank", 403, "forbidden"),
        ({"subject_id": "sub_nobody", "service": "air_travel"}, "bank", 403, "forbidden"),
        ({"subject_id": person, "identifier": "x", "service": "air_travel"}, "bank", 403, None),
        ({"subject_id": person, "service": "air_travel", "extra": 1}, "party", 422, None),
    ]
    for body, key, status, code in cases:
        direct, routed = online.decide(body, key), online.routed(body, key)
        assert direct.status_code == routed.status_code == status, (body, direct.text)
        assert direct.json() == routed.json()
        if code is not None:
            assert direct.json()["error"]["code"] == code
    bad_json = online.client.post(
        "/v1/decisions",
        content=b"{nope",
        headers={
            "Authorization": f"Bearer {online.keys['party']}",
            "Content-Type": "application/json",
        },
    )
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["code"] == "malformed_json"
    unknown_key = online.client.post(
        "/v1/decisions",
        json={"subject_id": person, "service": "air_travel"},
        headers={"Authorization": "Bearer cr_rp_nope"},
    )
    assert unknown_key.status_code == 401
    assert unknown_key.headers["www-authenticate"] == "Bearer"


def test_by_identifier_and_a_restriction_with_a_warning(online: Online) -> None:
    from tests.world import company_id, person_id

    by_id = online.decide({"identifier": person_id(0), "service": "air_travel"})
    assert by_id.status_code == 200
    assert by_id.json()["outcome"] == "deny"
    # A restriction with a warning period writes the warning through the ORM: the direct
    # path hands it to the router, which warns before it punishes.
    warned = online.decide({"identifier": company_id(1), "service": "public_procurement_bid"})
    assert warned.status_code == 200, warned.text
    assert warned.json()["outcome"] == "allow"
    assert warned.json()["warnings"]
    assert online.count(RestrictionWarning) == 1


def test_direct_and_session_stores_decide_alike(online: Online) -> None:
    at = online.clock.now()
    subjects = [*online.world.people, online.world.company]
    for subject in subjects:
        for service in SERVICES[:4]:
            if service != "loan_rate_discount" and subject is online.world.company:
                continue
            with online.sessions.begin() as session:
                edition = store.in_force(session, at)
                expected = decide(
                    session,
                    subject=subject,
                    service_code=service,
                    edition=edition,
                    at=at,
                    party_id=online.party_id,
                    principal_id=None,
                )
            writes: list[Any] = []
            with Direct(online.engine) as direct:
                ref = registry.subject_ref(direct, public_id=subject.public_id)
                got = decide_with(
                    DirectStore(direct, writes),
                    subject=ref,
                    service_code=service,
                    edition=store.in_force(direct, at),
                    at=at,
                    party_id=online.party_id,
                    principal_id=None,
                )
                run_writes(direct, writes)
                direct.commit()
            assert replace(got, decision_id=expected.decision_id) == expected
    with online.sessions() as session:
        rows = session.scalars(select(Inquiry).order_by(Inquiry.id)).all()
        pairs: dict[tuple[int, str], list[Inquiry]] = {}
        for row in rows:
            pairs.setdefault((row.subject_id, row.service), []).append(row)
        for first, second in pairs.values():
            assert (first.outcome, first.score, first.reasons, first.at) == (
                second.outcome,
                second.score,
                second.reasons,
                second.at,
            )
        notes = session.scalars(select(Notification).order_by(Notification.id)).all()
        assert notes
        assert len(notes) % 2 == 0
        assert notes[0].at == at


def test_decisions_asked_together_are_committed_together(online: Online) -> None:
    people = online.world.people
    headers = {"Authorization": f"Bearer {online.keys['party']}"}

    async def ask_many() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=online.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/v1/decisions",
                        json={"subject_id": people[i % 3].public_id, "service": SERVICES[i % 4]},
                        headers=headers,
                    )
                    for i in range(24)
                )
            )

    answers = asyncio.run(ask_many())
    assert [a.status_code for a in answers] == [200] * 24
    # Answered only once committed: every inquiry is there, each under its own id.
    with online.sessions() as session:
        stored = set(session.scalars(select(Inquiry.public_id)))
    assert {a.json()["decision_id"] for a in answers} <= stored
    assert len(stored) == 24


def test_a_revoked_key_is_refused_at_once_here_and_elsewhere(online: Online) -> None:
    body = {"subject_id": online.world.people[2].public_id, "service": "air_travel"}
    assert online.decide(body).status_code == 200
    # Through this process (the API): refused from the next request on.
    revoked = online.client.post(
        f"/v1/keys/{online.keys['party'][:PREFIX_LEN]}/revocation",
        headers={"Authorization": f"Bearer {online.keys['operator']}"},
    )
    assert revoked.status_code == 200, revoked.text
    assert online.decide(body).status_code == 401

    # By another process (a key issued, then revoked, in the store directly): accepted,
    # then refused, by the very next request, on the direct path and the router alike.
    with online.sessions.begin() as session:
        party = session.scalar(select(RelyingParty).where(RelyingParty.code == "party"))
        assert party is not None
        principal = create_principal(
            session, role=Role.RELYING_PARTY, name="p2", party_id=party.id, clock=online.clock
        )
        online.keys["party2"] = issue_key(session, principal=principal, clock=online.clock)
    assert online.decide(body, "party2").status_code == 200
    assert online.routed(body, "party2").status_code == 200
    with online.sessions.begin() as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.prefix == online.keys["party2"][:PREFIX_LEN])
            .values(revoked_at=online.clock.now())
        )
    for refused in (online.decide(body, "party2"), online.routed(body, "party2")):
        assert refused.status_code == 401
        assert refused.json()["error"]["details"]["reason"] == "revoked"


def test_a_new_edition_applies_from_its_publication(online: Online) -> None:
    body = {"subject_id": online.world.people[2].public_id, "service": "air_travel"}
    assert online.decide(body).json()["rulebook_version"] == "2026.5"
    text = default_text().replace('version = "2026.5"', 'version = "2026.9"', 1)
    with online.sessions.begin() as session:
        store.publish(session, text=text, at=online.clock.now() + timedelta(hours=1))
    assert online.decide(body).json()["rulebook_version"] == "2026.5"
    online.clock.advance(timedelta(hours=1))
    assert online.decide(body).json()["rulebook_version"] == "2026.9"
    assert online.routed(body).json()["rulebook_version"] == "2026.9"


def test_parse_records_in_one_pass_or_one_by_one(online: Online) -> None:
    person = online.world.people[0].public_id
    good = {
        "source_ref": " r1 ",
        "subject_id": person,
        "record_type": "loan_repaid",
        "occurred_at": "2026-01-01T00:00:00+08:00",
    }
    bad = {**good, "occurred_at": "yesterday"}
    together = ledger.parse_records([good, good])
    first = together[0]
    assert isinstance(first, RecordIn)
    assert isinstance(together[1], RecordIn)
    assert first.source_ref == "r1"
    assert first.occurred_at.utcoffset() == timedelta(0)
    mixed = ledger.parse_records([good, bad, good])
    assert isinstance(mixed[0], RecordIn)
    assert isinstance(mixed[2], RecordIn)
    assert isinstance(mixed[1], CredenceError)
    assert mixed[1].code == "invalid_record"
    assert mixed[0] == first


def test_the_one_statement_read_answers_as_the_router_does(online: Online) -> None:
    """Once the newest edition is known, the direct path reads the subject, their
    records, the registration and the newest edition's hash in one statement; its
    answers and errors are the router's, and a newly published edition is noticed."""
    from tests.world import company_id, person_id

    person = online.world.people[0].public_id
    assert online.decide({"subject_id": person, "service": "air_travel"}).status_code == 200
    assert online.app.direct._decider.newest.get(online.clock.now()) is not None  # now in use
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"subject_id": "sub_nobody", "service": "air_travel"}, 404, "unknown_subject"),
        ({"identifier": person_id(7), "service": "air_travel"}, 404, "unknown_subject"),
        ({"identifier": person_id(0), "service": "community_perks"}, 200, None),
        ({"identifier": company_id(1), "service": "loan_rate_discount"}, 200, None),
        ({"subject_id": person, "service": "space_travel"}, 404, "unknown_service"),
        ({"subject_id": person, "service": "fast_track_permits"}, 403, None),
        ({"subject_id": online.world.company.public_id, "service": "air_travel"}, 422, None),
    ]
    for subject in online.world.people:
        for service in SERVICES[:4]:
            cases.append(({"subject_id": subject.public_id, "service": service}, 200, None))
    for body, status, code in cases:
        direct, routed = online.decide(body), online.routed(body)
        assert direct.status_code == routed.status_code == status, (body, direct.text)
        if status == 200:
            assert _without_id(direct.json()) == _without_id(routed.json()), body
        else:
            assert direct.json() == routed.json(), body
        if code is not None:
            assert direct.json()["error"]["code"] == code

    # A new edition in force from now: the next decision reads it (the hash differs).
    body = {"subject_id": online.world.people[2].public_id, "service": "air_travel"}
    text = default_text().replace('version = "2026.5"', 'version = "2026.10"', 1)
    with online.sessions.begin() as session:
        store.publish(session, text=text, at=online.clock.now())
    assert online.decide(body).json()["rulebook_version"] == "2026.10"
    assert online.decide(body).json()["rulebook_version"] == "2026.10"
