"""Reviewers deciding one held record at once, on SQLite and PostgreSQL: one decision
wins; the others get what they would get one after the other (the same decision: the
resend's 200; the other: 409 ``hold_decided``); one journal entry; never a 5xx."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, issue_key
from credence.access.policy import Role
from credence.clock import FixedClock
from credence.journal import JournalEntry
from credence.ledger import holds
from credence.ledger.tables import Record
from tests.api.test_races import CONTENDERS, Service, count, race
from tests.api.test_races import service as service  # the fixture, re-exported


def held_record(service: Service, sessions: sessionmaker[Session], clock: FixedClock) -> str:
    """A loan repayment from the bank, held; the hold's id. Adds a reviewer's key."""
    with sessions.begin() as session:
        reviewer = create_principal(session, role=Role.REVIEWER, name="reviewer", clock=clock)
        service.keys["reviewer"] = issue_key(session, principal=reviewer, clock=clock)
    record = {
        "source_ref": "H-RACE",
        "subject_id": service.world.people[0].public_id,
        "record_type": "loan_repaid",
        "occurred_at": (service.now() - timedelta(days=3)).isoformat(),
    }
    sent = service.call("POST", "/v1/records", "bank", json={"records": [record]})
    assert sent.status_code == 200, sent.text
    with sessions.begin() as session:
        row = session.execute(
            select(Record.id, Record.subject_id, Record.source_id).where(
                Record.public_id == sent.json()["results"][0]["record_id"]
            )
        ).one()
        [hold] = holds.place(
            session,
            [holds.ToHold(row.id, row.subject_id, row.source_id, holds.BURST)],
            at=service.now(),
        )
        return hold.public_id


def test_decisions_of_one_hold_at_once_make_one_decision(
    service: Service, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    hold = held_record(service, sessions, clock)
    # Three contenders release, two reject.
    verbs = iter(["release", "rejection", "release", "rejection", "release"])
    lock = threading.Lock()

    def attempt(client: httpx.Client) -> httpx.Response:
        with lock:
            verb = next(verbs)
        return service.call(
            "POST",
            f"/v1/holds/{hold}/{verb}",
            "reviewer",
            client=client,
            json={"reasons": f"{verb}: checked against the bank's statements"},
        )

    responses = race(service, "record_holds", attempt)
    decided = [r for r in responses if r.status_code == 200]
    conflicts = [r for r in responses if r.status_code == 409]
    assert len(decided) + len(conflicts) == CONTENDERS, [r.text for r in responses]
    outcomes = {r.json()["status"] for r in decided}
    assert len(outcomes) == 1, outcomes
    [outcome] = outcomes
    # Every contender that asked for the winning decision got it; the others, 409.
    assert len(decided) == (3 if outcome == "released" else 2)
    assert {r.json()["error"]["code"] for r in conflicts} == {"hold_decided"}
    assert len({r.json()["decided_reason"] for r in decided}) == 1
    assert len({r.text for r in decided}) == 1
    engine = service.engine
    entries = select(func.count()).where(JournalEntry.kind.in_(["hold_released", "hold_rejected"]))
    assert count(engine, entries) == 1
    status = select(holds.RecordHold.status).where(holds.RecordHold.public_id == hold)
    with engine.connect() as conn:
        assert conn.scalar(status) == outcome
