"""Suspending a source, through the API, on SQLite and PostgreSQL.

An operator suspends the bank (a reason from the catalogue): its next batch is stored
but held, counts in no engine (online score, nightly batch), and the subject is told.
Reinstated, its new records count again, while those held during the suspension wait
for a reviewer; a release makes them count from the release. Both steps are journal
entries ``credence log verify`` covers; the public status shows the suspension as of
before, during and after it. Only operators suspend; a resend is idempotent.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, issue_key
from credence.access.policy import Role
from credence.clock import FixedClock
from credence.journal import JournalEntry
from credence.ledger import holds
from credence.ledger.tables import Record, Subject
from credence.models import metadata
from credence.rulebook import store
from credence.scoring.batch import score_population
from credence.scoring.online import score_subject
from credence.translog.verify import verify_log
from tests import tamper
from tests.api.test_races import CONTENDERS, Service
from tests.api.test_races import service as service  # the fixture, re-exported
from tests.cli.conftest import Invoke
from tests.cli.conftest import cli as cli  # the fixture, re-exported
from tests.client import Api, assert_envelope
from tests.disputes.test_four_eyes_hostile import HOSTILE
from tests.due_process import journal_kinds


def me(api: Api) -> str:
    return api.world.people[0].public_id


def send(api: Api, *refs: str) -> list[dict[str, Any]]:
    records = [
        {
            "source_ref": ref,
            "subject_id": me(api),
            "record_type": "loan_repaid",
            "occurred_at": (api.clock.now() - timedelta(days=1)).isoformat(),
        }
        for ref in refs
    ]
    sent = api.call("POST", "/v1/records", "bank", json={"records": records})
    assert sent.status_code == 200, sent.text
    results: list[dict[str, Any]] = sent.json()["results"]
    return results


def suspend(api: Api, body: Any, role: str | None = "operator", code: str = "bank") -> Any:
    return api.call("POST", f"/v1/sources/{code}/suspension", role, json=body)


def reinstate(api: Api, role: str | None = "operator", code: str = "bank") -> Any:
    return api.call("POST", f"/v1/sources/{code}/reinstatement", role, json={})


def bank_status(api: Api, at: datetime | None = None) -> dict[str, Any]:
    params = {} if at is None else {"at": at.isoformat()}
    response = api.call("GET", "/v1/sources/status", None, params=params)
    assert response.status_code == 200, response.text
    [bank] = [s for s in response.json()["sources"] if s["code"] == "bank"]
    return bank  # type: ignore[no-any-return]


def online(api: Api, sessions: sessionmaker[Session], at: datetime | None = None) -> float:
    with sessions() as session:
        subject = session.scalars(select(Subject).where(Subject.public_id == me(api))).one()
        when = api.clock.now() if at is None else at
        return score_subject(session, subject, store.in_force(session, when), when).total


def nightly(api: Api, sessions: sessionmaker[Session]) -> float:
    with sessions() as session:
        now = api.clock.now()
        population = score_population(session, store.in_force(session, now), now)
        row = session.scalars(select(Subject.id).where(Subject.public_id == me(api))).one()
    return float(population.totals[list(population.subject_ids).index(row)])


def scores(api: Api, sessions: sessionmaker[Session]) -> tuple[float, float]:
    return online(api, sessions), nightly(api, sessions)


def test_a_suspended_sources_records_are_held_until_a_reviewer_decides(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    before = api.clock.now()
    api.clock.advance(timedelta(hours=1))
    assert bank_status(api)["suspension"] is None
    suspended = suspend(api, {"reason": "suspected_bribery"})
    assert suspended.status_code == 201, suspended.text
    body = suspended.json()
    assert body["source"] == "bank"
    assert body["reason"] == "suspected_bribery"
    assert body["explanation"]
    suspended_at = datetime.fromisoformat(body["suspended_at"])
    assert suspended_at == api.clock.now()
    assert body["reinstated_at"] is None
    # A resend answers the suspension in force.
    api.clock.advance(timedelta(minutes=5))
    again = suspend(api, {"reason": "suspected_bribery"})
    assert again.status_code == 200, again.text
    assert again.json() == body
    unchanged = scores(api, sessions)

    api.clock.advance(timedelta(hours=1))
    results = send(api, "S-1", "S-2")
    assert {r["status"] for r in results} == {"held"}
    assert {r["hold"]["code"] for r in results} == {"source_suspended"}
    assert scores(api, sessions) == unchanged
    notices = api.call("GET", f"/v1/subjects/{me(api)}/file", "subject").json()["notifications"]
    assert "records_held" in {n["kind"] for n in notices}
    during = api.clock.now()
    shown = bank_status(api)["suspension"]
    assert shown["reason"] == "suspected_bribery"
    assert datetime.fromisoformat(shown["since"]) == suspended_at

    api.clock.advance(timedelta(hours=1))
    reinstated = reinstate(api)
    assert reinstated.status_code == 200, reinstated.text
    assert datetime.fromisoformat(reinstated.json()["reinstated_at"]) == api.clock.now()
    assert_envelope(reinstate(api), 409, "source_not_suspended")
    api.clock.advance(timedelta(hours=1))
    [fresh] = send(api, "S-3")
    assert fresh["status"] == "created"
    counted = scores(api, sessions)
    assert counted[0] > unchanged[0]
    assert counted[1] > unchanged[1]
    # Those held during the suspension still wait for a reviewer.
    queue = api.call("GET", "/v1/holds", "reviewer").json()
    waiting = [h for h in queue if h["cause"] == "source_suspended"]
    assert [h["record_id"] for h in waiting] == [r["record_id"] for r in results]
    assert scores(api, sessions) == counted

    api.clock.advance(timedelta(hours=1))
    released = api.call(
        "POST",
        f"/v1/holds/{waiting[0]['hold_id']}/release",
        "reviewer",
        json={"reasons": "The bank's investigation cleared these repayments."},
    )
    assert released.status_code == 200, released.text
    after = scores(api, sessions)
    assert after[0] > counted[0]
    assert after[1] > counted[1]
    # From the release on: as of just before it, the record did not count (the score
    # then is the one before it, but for an hour's decay).
    just_before = online(api, sessions, api.clock.now() - timedelta(seconds=1))
    assert just_before == pytest.approx(counted[0], rel=1e-5)
    assert after[0] - just_before > 0.01

    # The public status, as of before, during and after.
    assert bank_status(api, before)["suspension"] is None
    assert bank_status(api, during)["suspension"]["reason"] == "suspected_bribery"
    assert bank_status(api)["suspension"] is None
    kinds = journal_kinds(sessions)
    assert kinds["source_suspended"] == kinds["source_reinstated"] == 1
    with sessions() as session:
        report = verify_log(session)
    assert report.ok, [p.message for p in report.problems]


def test_only_operators_suspend_and_reinstate(api: Api) -> None:
    for role in ("bank", "reviewer", "subject", "registry"):
        assert_envelope(suspend(api, {"reason": "source_request"}, role=role), 403, "forbidden")
        assert_envelope(reinstate(api, role=role), 403, "forbidden")
    assert suspend(api, {"reason": "source_request"}, role=None).status_code == 401
    assert reinstate(api, role=None).status_code == 401
    assert bank_status(api)["suspension"] is None


def test_a_legal_order_names_its_reference_and_unknowns_are_refused(api: Api) -> None:
    assert_envelope(suspend(api, {"reason": "legal_order"}), 422, "reference_required")
    assert_envelope(suspend(api, {"reason": "because"}), 422, "invalid_request")
    assert_envelope(
        suspend(api, {"reason": "source_request", "reference": "X-1"}), 422, "reference_unexpected"
    )
    assert_envelope(suspend(api, {"reason": "source_request"}, code="nope"), 404, "unknown_source")
    assert_envelope(reinstate(api, code="nope"), 404, "unknown_source")
    made = suspend(api, {"reason": "legal_order", "reference": "(2026) Hu 0105 Zhi 123"})
    assert made.status_code == 201, made.text
    shown = bank_status(api)["suspension"]
    assert shown["reason"] == "legal_order"
    assert shown["reference"] == "(2026) Hu 0105 Zhi 123"
    # The same source suspended for another reason answers the suspension in force.
    assert suspend(api, {"reason": "source_request"}).json()["reason"] == "legal_order"


@pytest.mark.parametrize("reference", HOSTILE)
def test_hostile_references_are_refused_or_kept_exactly(api: Api, reference: str) -> None:
    made = suspend(api, {"reason": "legal_order", "reference": reference})
    assert made.status_code in (201, 422), made.text
    if made.status_code == 422:
        assert made.json()["error"]["code"]
        assert bank_status(api)["suspension"] is None
        return
    assert made.json()["reference"] == reference
    assert bank_status(api)["suspension"]["reference"] == reference


def test_verify_names_an_edited_suspension(
    api: Api, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    assert suspend(api, {"reason": "data_quality_investigation"}).status_code == 201
    api.clock.advance(timedelta(hours=1))
    assert reinstate(api).status_code == 200
    with sessions() as session:
        assert verify_log(session).ok
        row = session.execute(text("SELECT id, seq FROM source_suspensions")).one()
    table = metadata.tables["source_suspensions"]
    named = tamper.Named("source_suspensions", str(row.id), row.seq)
    with tamper.attacker(engine) as conn:
        tamper.update(conn, table, {"id": row.id}, {"reinstated_at": None})
    with sessions() as session:
        messages = [p.message for p in verify_log(session).problems]
    assert named.found_in(messages), messages


def test_the_cli_suspends_and_reinstates(api: Api, cli: Invoke) -> None:
    refused = cli("sources", "suspend", "bank", "--reason", "because\x1b[2J")
    assert refused.exit_code == 1
    assert "unknown_reason" in refused.output
    assert "\x1b" not in refused.output
    done = cli("sources", "suspend", "bank", "--reason", "data_quality_investigation")
    assert done.exit_code == 0, done.output
    assert "suspended since" in done.output
    again = cli("sources", "suspend", "bank", "--reason", "source_request")
    assert again.exit_code == 0, again.output
    assert "already suspended" in again.output
    assert bank_status(api)["suspension"]["reason"] == "data_quality_investigation"
    shown = cli("sources", "status", columns=250)
    assert shown.exit_code == 0, shown.output
    assert "data_quality_investigation" in shown.output
    [held] = send(api, "C-1")
    assert held["hold"]["code"] == "source_suspended"
    back = cli("sources", "reinstate", "bank")
    assert back.exit_code == 0, back.output
    assert bank_status(api)["suspension"] is None
    not_suspended = cli("sources", "reinstate", "bank")
    assert not_suspended.exit_code == 1
    assert "source_not_suspended" in not_suspended.output


def test_no_batch_gets_through_unheld_once_a_suspension_is_acknowledged(
    service: Service, sessions: sessionmaker[Session]
) -> None:
    """One operator suspends the bank while four batches of it arrive at once: each batch
    is held whole or counts whole, and exactly those written after the suspension (in
    the log's order, which the source's turn makes the order of commits) are held."""
    with sessions.begin() as session:
        operator = create_principal(
            session, role=Role.OPERATOR, name="operator", clock=FixedClock(service.now())
        )
        service.keys["operator"] = issue_key(
            session, principal=operator, clock=FixedClock(service.now())
        )
    lock = threading.Lock()
    turns = iter(range(CONTENDERS))

    def attempt(client: httpx.Client) -> httpx.Response:
        with lock:
            turn = next(turns)
        if turn == 0:
            return service.call(
                "POST",
                "/v1/sources/bank/suspension",
                "operator",
                client=client,
                json={"reason": "suspected_bribery"},
            )
        records = [
            {
                "source_ref": f"RACE-{turn}-{i}",
                "subject_id": service.world.people[0].public_id,
                "record_type": "loan_repaid",
                "occurred_at": (service.now() - timedelta(days=1)).isoformat(),
            }
            for i in range(2)
        ]
        return service.call("POST", "/v1/records", "bank", client=client, json={"records": records})

    # Released together (a gate on a table would not see contenders waiting for the
    # source's turn, an advisory lock on PostgreSQL).
    clients = [service.client() for _ in range(CONTENDERS)]
    barrier = threading.Barrier(CONTENDERS)
    answers: list[httpx.Response | None] = [None] * CONTENDERS

    def contender(i: int) -> None:
        barrier.wait()
        answers[i] = attempt(clients[i])

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(CONTENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for client in clients:
        client.close()
    responses = [a for a in answers if a is not None]
    assert sorted(r.status_code for r in responses) == [200] * (CONTENDERS - 1) + [201]
    with sessions() as session:
        suspended = session.scalars(
            select(JournalEntry.seq).where(JournalEntry.kind == "source_suspended")
        ).one()
        rows = session.execute(
            select(Record.seq, holds.RecordHold.cause)
            .outerjoin(holds.RecordHold, holds.RecordHold.record_id == Record.id)
            .where(Record.source_ref.like("RACE-%"))
        ).all()
    assert len(rows) == 2 * (CONTENDERS - 1)
    for seq, cause in rows:
        assert seq is not None
        assert cause == ("source_suspended" if seq > suspended else None), (seq, suspended)
