"""A batch's reply counts the records the intake's checks held, on SQLite and
PostgreSQL: a bank's history about one person (more positives than the burst limit)
sent bare is stored and held, and the reply says so, beside each record's status."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.ledger.holds import RecordHold
from tests.client import Api

#: More loan repayments than the default rulebook's burst limit (12 in 30 days).
HISTORY = 20


def test_the_reply_counts_held_records(api: Api, sessions: sessionmaker[Session]) -> None:
    first = api.clock.now() - timedelta(days=30 * (HISTORY + 1))
    records = [
        {
            "source_ref": f"BARE-{i}",
            "subject_id": api.world.people[0].public_id,
            "record_type": "loan_repaid",
            "occurred_at": (first + timedelta(days=30 * i)).isoformat(),
        }
        for i in range(HISTORY)
    ]
    sent = api.call("POST", "/v1/records", "bank", json={"records": records})
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert {r["status"] for r in body["results"]} == {"held"}
    assert {r["hold"]["code"] for r in body["results"]} == {"burst"}
    assert (body["created"], body["duplicates"], body["rejected"], body["held"]) == (
        0,
        0,
        0,
        HISTORY,
    )
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(RecordHold)) == HISTORY
    again = api.call("POST", "/v1/records", "bank", json={"records": records})
    assert (again.json()["duplicates"], again.json()["held"]) == (HISTORY, 0)
