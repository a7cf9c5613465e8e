"""The reviewers' queue of records held at intake, through the API, on SQLite and
PostgreSQL: a reviewer lists held records, releases one and rejects another, with
reasons the subject reads; nobody else may; a second decision the same way is a resend
and the other way a conflict; ``credence log verify`` passes after every step and names
an edited hold row."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from credence.journal import JournalEntry
from credence.ledger import holds
from credence.ledger.tables import Record
from credence.models import metadata
from credence.translog.verify import verify_log
from tests import tamper
from tests.client import Api, assert_envelope
from tests.disputes.test_four_eyes_hostile import HOSTILE
from tests.due_process import journal_kinds

REASONS = "The bank's statements show the repayments were made."


def me(api: Api) -> str:
    return api.world.people[0].public_id


def hold_records(api: Api, sessions: sessionmaker[Session], *refs: str) -> list[str]:
    """Loan repayments from the bank on the first person's file, stored through the API
    and then held (as intake holds a burst); the holds' ids, in order."""
    records = [
        {
            "source_ref": ref,
            "subject_id": me(api),
            "record_type": "loan_repaid",
            "occurred_at": (api.clock.now() - timedelta(days=3)).isoformat(),
        }
        for ref in refs
    ]
    sent = api.call("POST", "/v1/records", "bank", json={"records": records})
    assert sent.status_code == 200, sent.text
    ids = [r["record_id"] for r in sent.json()["results"]]
    with sessions.begin() as session:
        rows = {
            r.public_id: r
            for r in session.execute(
                select(Record.id, Record.public_id, Record.subject_id, Record.source_id).where(
                    Record.public_id.in_(ids)
                )
            )
        }
        placed = holds.place(
            session,
            [
                holds.ToHold(rows[i].id, rows[i].subject_id, rows[i].source_id, holds.BURST)
                for i in ids
            ],
            at=api.clock.now(),
        )
        return [p.public_id for p in placed]


def queue(api: Api, status: str | None = None, role: str = "reviewer") -> Any:
    params = {} if status is None else {"status": status}
    return api.call("GET", "/v1/holds", role, params=params)


def listed(api: Api, status: str | None = None) -> list[str]:
    response = queue(api, status)
    assert response.status_code == 200, response.text
    return [h["hold_id"] for h in response.json()]


def decide(api: Api, hold: str, verb: str, role: str = "reviewer", reasons: Any = REASONS) -> Any:
    return api.call("POST", f"/v1/holds/{hold}/{verb}", role, json={"reasons": reasons})


def notice_kinds(api: Api) -> list[str]:
    response = api.call("GET", f"/v1/subjects/{me(api)}/file", "subject")
    assert response.status_code == 200, response.text
    return [n["kind"] for n in reversed(response.json()["notifications"])]


def test_a_reviewer_lists_releases_and_rejects_held_records(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    held_at = api.clock.now()
    first, second, third = hold_records(api, sessions, "H-1", "H-2", "H-3")
    assert listed(api) == [first, second, third]
    assert listed(api, "held") == [first, second, third]
    assert listed(api, "decided") == []
    [shown, *_] = queue(api).json()
    assert shown["status"] == "held"
    assert shown["cause"] == "burst"
    assert shown["explanation"]
    assert shown["subject_id"] == me(api)
    assert shown["source"] == "bank"
    assert shown["record_type"] == "loan_repaid"
    assert datetime.fromisoformat(shown["held_at"]) == held_at
    assert shown["decided_at"] is None
    assert shown["decided_reason"] is None

    api.clock.advance(timedelta(hours=2))
    released = decide(api, first, "release")
    assert released.status_code == 200, released.text
    body = released.json()
    assert body["hold_id"] == first
    assert body["status"] == "released"
    assert body["decided_reason"] == REASONS
    assert datetime.fromisoformat(body["decided_at"]) == api.clock.now()

    api.clock.advance(timedelta(hours=1))
    rejected = decide(api, second, "rejection", reasons="Not a repayment: a refinancing.")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decided_reason"] == "Not a repayment: a refinancing."

    assert listed(api) == [third]
    assert listed(api, "decided") == [first, second]
    assert listed(api, "all") == [first, second, third]
    statuses = {h["hold_id"]: h["status"] for h in queue(api, "all").json()}
    assert statuses == {first: "released", second: "rejected", third: "held"}
    kinds = journal_kinds(sessions)
    assert kinds["hold_released"] == kinds["hold_rejected"] == 1
    # The subject is told of both decisions.
    notices = notice_kinds(api)
    assert "hold_released" in notices
    assert "hold_rejected" in notices


def test_only_reviewers_see_and_decide_the_queue(api: Api, sessions: sessionmaker[Session]) -> None:
    [hold] = hold_records(api, sessions, "H-1")
    for role in ("bank", "court", "airline", "subject", "operator"):
        assert_envelope(queue(api, role=role), 403, "forbidden")
        for verb in ("release", "rejection"):
            assert_envelope(decide(api, hold, verb, role), 403, "forbidden")
            # Even of a hold that does not exist: the role is refused first.
            assert_envelope(decide(api, "hld_nope", verb, role), 403, "forbidden")
    assert_envelope(api.call("GET", "/v1/holds"), 401)
    assert_envelope(api.call("POST", f"/v1/holds/{hold}/release", json={"reasons": "x"}), 401)
    assert listed(api) == [hold]
    assert journal_kinds(sessions)["hold_released"] == 0


def test_deciding_again_is_a_resend_or_a_conflict(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    released, rejected = hold_records(api, sessions, "H-1", "H-2")
    first = decide(api, released, "release")
    assert first.status_code == 200, first.text
    api.clock.advance(timedelta(minutes=5))
    again = decide(api, released, "release", reasons="Other words.")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()  # the first decision, unchanged
    refused = assert_envelope(decide(api, released, "rejection"), 409, "hold_decided")
    assert refused["details"] == {"hold_id": released, "status": "released"}

    assert decide(api, rejected, "rejection").status_code == 200
    assert decide(api, rejected, "rejection").json()["status"] == "rejected"
    assert_envelope(decide(api, rejected, "release"), 409, "hold_decided")
    kinds = journal_kinds(sessions)
    assert kinds["hold_released"] == kinds["hold_rejected"] == 1


def test_unknown_holds_and_missing_reasons(api: Api, sessions: sessionmaker[Session]) -> None:
    [hold] = hold_records(api, sessions, "H-1")
    for verb in ("release", "rejection"):
        assert_envelope(decide(api, "hld_nope", verb), 404, "unknown_hold")
        for blank in ("", "   \n "):
            assert_envelope(decide(api, hold, verb, reasons=blank), 422, "reasons_required")
        missing = api.call("POST", f"/v1/holds/{hold}/{verb}", "reviewer", json={})
        assert_envelope(missing, 422, "reasons_required")
    assert_envelope(queue(api, "pending"), 422)
    assert listed(api) == [hold]


@pytest.mark.parametrize("reasons", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_reasons_are_refused_or_kept_exactly(
    api: Api, sessions: sessionmaker[Session], reasons: str
) -> None:
    [hold] = hold_records(api, sessions, "H-1")
    answer = decide(api, hold, "rejection", reasons=reasons)
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 422:
        assert answer.json()["error"]["code"]
        assert listed(api) == [hold]
        return
    assert answer.json()["decided_reason"] == reasons.strip()
    [shown] = queue(api, "decided").json()
    assert shown["decided_reason"] == reasons.strip()
    with sessions() as session:
        data = " ".join(str(d) for d in session.scalars(select(JournalEntry.data)))
    assert reasons.strip() not in data  # the journal keeps a digest, never the text


def test_verify_passes_and_names_an_edited_hold(
    api: Api, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    released, rejected, _ = hold_records(api, sessions, "H-1", "H-2", "H-3")
    assert decide(api, released, "release").status_code == 200
    assert decide(api, rejected, "rejection").status_code == 200
    with sessions() as session:
        report = verify_log(session)
        assert report.ok, [p.message for p in report.problems]
        row = session.execute(
            text("SELECT id, seq FROM record_holds WHERE public_id = :p"), {"p": rejected}
        ).one()
    # An attacker turns the rejection into a release (or back into a hold): verify names
    # the row and the entry that wrote it.
    table = metadata.tables["record_holds"]
    named = tamper.Named("record_holds", str(row.id), row.seq)
    for edit in ({"status": "released"}, {"status": "held"}):
        with tamper.attacker(engine) as conn:
            before = tamper.read(conn, table, {"id": row.id})
            assert before is not None
            tamper.update(conn, table, {"id": row.id}, edit)
        with sessions() as session:
            messages = [p.message for p in verify_log(session).problems]
        assert named.found_in(messages), messages
        with tamper.attacker(engine) as conn:
            tamper.update(conn, table, {"id": row.id}, {k: before[k] for k in edit})
        with sessions() as session:
            assert verify_log(session).ok
