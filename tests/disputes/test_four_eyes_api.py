"""Four eyes on what lifts a sanction, through the API, on SQLite and PostgreSQL.

A court's retraction of a judgment default (which denies air travel: the default
rulebook's court-ordered ``air_travel`` service), or a dispute of it answered deleted,
waits for a reviewer other than whoever asked; the ban holds until then and lifts at the
confirmation's instant. A refusal keeps the ban; a dispute's deadline that passes while
an answer waits wins (the record stops counting at the deadline, as lapsed, and the
held answer is closed as superseded); a second retraction while one waits is a resend;
a retraction that lifts nothing takes effect at once. ``credence log verify`` passes
after all of it and names an edited pending-change row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, issue_key
from credence.access.policy import Role
from credence.disputes import service as disputes
from credence.ledger.lifting import PendingChange
from credence.models import metadata
from credence.translog.verify import verify_log
from tests import tamper
from tests.client import Api, assert_envelope
from tests.due_process import journal_kinds

US = timedelta(microseconds=1)


def me(api: Api) -> str:
    return api.world.people[0].public_id


def add_key(api: Api, sessions: sessionmaker[Session], name: str, role: Role, **link: int) -> None:
    """A key of a principal of its own, under ``name``."""
    with sessions.begin() as session:
        principal = create_principal(session, role=role, name=name, clock=api.clock, **link)
        api.keys[name] = issue_key(session, principal=principal, clock=api.clock)


def another_court_key(api: Api, sessions: sessionmaker[Session]) -> None:
    """A second principal of the court, with a key of its own ("court2")."""
    add_key(api, sessions, "court2", Role.SOURCE, source_id=api.world.sources["court"].id)


def send(api: Api, role: str, record: dict[str, Any]) -> str:
    response = api.call("POST", "/v1/records", role, json={"records": [record]})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["status"] == "created", result
    return str(result["record_id"])


def judgment_default(api: Api, ref: str = "ZHI-1") -> str:
    """A court's judgment default on the subject's file; its record id."""
    return send(
        api,
        "court",
        {
            "source_ref": ref,
            "subject_id": me(api),
            "record_type": "judgment_default",
            "occurred_at": (api.clock.now() - timedelta(days=20)).isoformat(),
            "decision_ref": f"(2026)Zhi-{ref}",
        },
    )


def may_fly(api: Api) -> bool:
    response = api.call(
        "POST", "/v1/decisions", "airline", json={"subject_id": me(api), "service": "air_travel"}
    )
    assert response.status_code == 200, response.text
    outcome = response.json()["outcome"]
    assert outcome in ("allow", "deny")
    return bool(outcome == "allow")


def retract(api: Api, record: str, role: str = "court", reason: str = "wrong person") -> Any:
    return api.call("POST", f"/v1/records/{record}/retraction", role, json={"reason": reason})


def decide(api: Api, change: str, verb: str, role: str = "reviewer") -> Any:
    return api.call(
        "POST",
        f"/v1/pending-changes/{change}/{verb}",
        role,
        json={"reasons": "Checked against the court's enforcement register."},
    )


def my_file(api: Api) -> dict[str, Any]:
    response = api.call("GET", f"/v1/subjects/{me(api)}/file", "subject")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def contribution(api: Api, record: str, at: datetime | None = None) -> dict[str, Any]:
    params = {} if at is None else {"as_of": at.isoformat()}
    response = api.call("GET", f"/v1/subjects/{me(api)}/score", "subject", params=params)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = next(
        c for c in response.json()["contributions"] if c["record_id"] == record
    )
    return found


def notice_kinds(api: Api) -> list[str]:
    return [n["kind"] for n in reversed(my_file(api)["notifications"])]


def pending(api: Api, status: str = "pending") -> list[str]:
    response = api.call("GET", "/v1/pending-changes", "reviewer", params={"status": status})
    assert response.status_code == 200, response.text
    return [c["change_id"] for c in response.json()]


def test_a_courts_retraction_of_a_judgment_default_waits_for_a_second_reviewer(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    record = judgment_default(api)
    assert not may_fly(api)
    counted = contribution(api, record)["points"]
    assert counted < 0
    api.clock.advance(timedelta(hours=1))
    asked_at = api.clock.now()

    held = retract(api, record, reason="Entered against the wrong person.")
    assert held.status_code == 202, held.text
    body = held.json()
    assert body["status"] == "pending_confirmation"
    assert body["created"] is True
    assert body["retracted_at"] is None
    change = body["pending_change"]
    assert change["kind"] == "retraction"
    assert change["status"] == "pending"
    assert change["record_id"] == record
    assert change["requested_by"] == "source"
    assert datetime.fromisoformat(change["requested_at"]) == asked_at
    change_id = change["change_id"]

    # Until a second reviewer confirms, the ban holds and the record counts as before.
    api.clock.advance(timedelta(days=2))
    assert not may_fly(api)
    assert contribution(api, record)["status"] == "counting"
    assert contribution(api, record)["ended_at"] is None
    assert pending(api) == [change_id]
    # The subject's file shows it: who asked, when, why.
    [shown] = my_file(api)["pending_changes"]
    assert shown["change_id"] == change_id
    assert shown["status"] == "pending"
    assert shown["source_name"] == "Court"
    assert shown["reason"] == "Entered against the wrong person."
    assert datetime.fromisoformat(shown["requested_at"]) == asked_at
    assert "pending_change_requested" in notice_kinds(api)

    # Never a key of the court that asked: neither its own nor another of its keys.
    another_court_key(api, sessions)
    for court in ("court", "court2"):
        refused = assert_envelope(decide(api, change_id, "confirmation", court), 403, "four_eyes")
        assert "four eyes" in refused["message"]
        assert refused["details"]["rule"] == "four_eyes"
    # Nor anyone but a reviewer.
    for role in ("operator", "subject", "bank", "airline"):
        assert_envelope(decide(api, change_id, "confirmation", role), 403)
    assert not may_fly(api)

    api.clock.advance(timedelta(hours=3))
    confirmed_at = api.clock.now()
    confirmed = decide(api, change_id, "confirmation")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed"
    assert confirmed.json()["ended_by"] == "retraction"
    assert may_fly(api)
    # The effect ends at the confirmation's instant, not at the request's.
    ended = contribution(api, record)
    assert datetime.fromisoformat(ended["ended_at"]) == confirmed_at
    assert contribution(api, record, confirmed_at - US)["ended_at"] is None
    assert contribution(api, record, confirmed_at - US)["status"] == "counting"
    assert "pending_change_confirmed" in notice_kinds(api)
    assert my_file(api)["pending_changes"][0]["status"] == "confirmed"
    assert pending(api) == []
    assert pending(api, "decided") == [change_id]
    # A resend now gets the retraction, as any repeat does.
    again = retract(api, record)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "retracted"
    assert again.json()["created"] is False
    assert datetime.fromisoformat(again.json()["retracted_at"]) == confirmed_at
    # Deciding twice is refused.
    assert_envelope(decide(api, change_id, "confirmation"), 409, "change_decided")
    assert_envelope(decide(api, change_id, "refusal"), 409, "change_decided")
    kinds = journal_kinds(sessions)
    assert kinds["pending_change_requested"] == kinds["pending_change_confirmed"] == 1
    assert kinds["retraction"] == 1


def test_the_reviewer_who_answered_a_dispute_cannot_confirm_the_answer(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    record = judgment_default(api)
    opened = api.call(
        "POST",
        "/v1/disputes",
        "subject",
        json={"record_id": record, "reason": "I paid the judgment debt in full."},
    )
    assert opened.status_code == 201, opened.text
    dispute = opened.json()["dispute_id"]
    answered = api.call(
        "POST",
        f"/v1/disputes/{dispute}/answer",
        "reviewer",
        json={"outcome": "deleted", "explanation": "The creditor confirms payment."},
    )
    assert answered.status_code == 202, answered.text
    assert answered.json()["status"] == "open"
    change_id = answered.json()["pending_change"]
    assert change_id
    assert not may_fly(api)
    # A second answer while it waits is refused, naming the held one.
    again = api.call(
        "POST",
        f"/v1/disputes/{dispute}/answer",
        "court",
        json={"outcome": "verified", "explanation": "The order stands."},
    )
    assert assert_envelope(again, 409, "answer_awaits_confirmation")["details"] == {
        "change_id": change_id
    }

    refused = assert_envelope(decide(api, change_id, "confirmation"), 403, "four_eyes")
    assert f"dispute {dispute}" in refused["message"]
    assert not may_fly(api)

    add_key(api, sessions, "reviewer2", Role.REVIEWER)
    confirmed = decide(api, change_id, "confirmation", "reviewer2")
    assert confirmed.status_code == 200, confirmed.text
    assert may_fly(api)
    view = api.call("GET", f"/v1/disputes/{dispute}", "subject").json()
    assert view["status"] == "deleted"
    assert view["answered_by"] == "reviewer"
    assert view["pending_change"] is None
    assert datetime.fromisoformat(view["answered_at"]) == api.clock.now()


def test_a_refusal_keeps_the_ban(api: Api, sessions: sessionmaker[Session]) -> None:
    record = judgment_default(api)
    change_id = retract(api, record).json()["pending_change"]["change_id"]
    api.clock.advance(timedelta(days=1))
    refused = decide(api, change_id, "refusal")
    assert refused.status_code == 200, refused.text
    assert refused.json()["status"] == "refused"
    assert refused.json()["decided_reason"] == "Checked against the court's enforcement register."
    api.clock.advance(timedelta(days=1))
    assert not may_fly(api)
    assert contribution(api, record)["ended_at"] is None
    assert my_file(api)["pending_changes"][0]["status"] == "refused"
    assert "pending_change_refused" in notice_kinds(api)
    assert_envelope(decide(api, change_id, "confirmation"), 409, "change_decided")
    # The court may ask again: a new change, waiting again.
    again = retract(api, record)
    assert again.status_code == 202, again.text
    assert again.json()["created"] is True
    assert again.json()["pending_change"]["change_id"] != change_id
    assert not may_fly(api)
    kinds = journal_kinds(sessions)
    assert kinds["pending_change_refused"] == 1
    assert kinds["retraction"] == 0


def test_the_lapse_wins_over_an_answer_awaiting_confirmation(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    record = judgment_default(api)
    opened = api.call(
        "POST",
        "/v1/disputes",
        "subject",
        json={"record_id": record, "reason": "The judgment was set aside."},
    )
    dispute = opened.json()["dispute_id"]
    deadline = datetime.fromisoformat(opened.json()["deadline"])
    api.clock.advance(timedelta(days=1))
    answered = api.call(
        "POST",
        f"/v1/disputes/{dispute}/answer",
        "court",
        json={"outcome": "deleted", "explanation": "Set aside on retrial."},
    )
    assert answered.status_code == 202, answered.text
    change_id = answered.json()["pending_change"]
    assert my_file(api)["pending_changes"][0]["dispute_id"] == dispute

    # Nobody confirms before the deadline: the dispute lapses at exactly the deadline.
    api.clock.advance(deadline - api.clock.now() + timedelta(days=1))
    assert may_fly(api)
    lapsed = contribution(api, record)
    assert datetime.fromisoformat(lapsed["ended_at"]) == deadline
    assert contribution(api, record, deadline - US)["ended_at"] is None
    view = api.call("GET", f"/v1/disputes/{dispute}", "subject").json()
    assert view["status"] == "lapsed"
    # The held answer is superseded, before any sweep: nothing is left to decide.
    assert pending(api) == []
    assert pending(api, "decided") == [change_id]
    [shown] = my_file(api)["pending_changes"]
    assert shown["status"] == "superseded"
    assert shown["ended_by"] == "dispute_lapsed"
    assert datetime.fromisoformat(shown["ended_at"]) == deadline
    for verb in ("confirmation", "refusal"):
        assert_envelope(decide(api, change_id, verb), 409, "change_superseded")
    assert may_fly(api)

    # The sweep writes the lapse and closes the held change, each by an entry.
    with sessions.begin() as session:
        assert [d.dispute_id for d in disputes.sweep(session, api.clock.now())] == [dispute]
    kinds = journal_kinds(sessions)
    assert kinds["dispute_lapsed"] == kinds["pending_change_superseded"] == 1
    assert kinds["dispute_answered"] == 0
    assert notice_kinds(api)[-2:] == ["dispute_lapsed", "pending_change_superseded"]
    [shown] = my_file(api)["pending_changes"]
    assert shown["status"] == "superseded"
    assert datetime.fromisoformat(shown["decided_at"]) == api.clock.now()
    # Running it again writes nothing more.
    with sessions.begin() as session:
        assert disputes.sweep(session, api.clock.now()) == []
    assert journal_kinds(sessions)["pending_change_superseded"] == 1


def test_a_second_retraction_while_one_waits_is_a_resend(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    record = judgment_default(api)
    first = retract(api, record, reason="Entered twice.")
    assert first.status_code == 202, first.text
    api.clock.advance(timedelta(minutes=5))
    # Another key of the court, another reason: the same answer a resend gets.
    another_court_key(api, sessions)
    for role in ("court", "court2"):
        again = retract(api, record, role, reason="Please withdraw it.")
        assert again.status_code == 202, again.text
        assert again.json() == {**first.json(), "created": False}
    # A dispute answer that would end the record is refused while the retraction waits.
    dispute = api.call(
        "POST", "/v1/disputes", "subject", json={"record_id": record, "reason": "Not mine."}
    ).json()["dispute_id"]
    answered = api.call(
        "POST",
        f"/v1/disputes/{dispute}/answer",
        "court",
        json={"outcome": "deleted", "explanation": "Entered twice."},
    )
    change_id = first.json()["pending_change"]["change_id"]
    assert assert_envelope(answered, 409, "change_pending")["details"]["change_id"] == change_id
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(PendingChange)) == 1
    assert journal_kinds(sessions)["pending_change_requested"] == 1
    assert not may_fly(api)


def test_a_retraction_that_lifts_no_sanction_takes_effect_at_once(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    ticket = send(
        api,
        "traffic",
        {
            "source_ref": "T-1",
            "subject_id": me(api),
            "record_type": "traffic_violation",
            "occurred_at": (api.clock.now() - timedelta(days=3)).isoformat(),
            "decision_ref": "TP-1",
        },
    )
    repaid = send(
        api,
        "bank",
        {
            "source_ref": "R-1",
            "subject_id": me(api),
            "record_type": "loan_repaid",
            "occurred_at": (api.clock.now() - timedelta(days=3)).isoformat(),
        },
    )
    for role, record in (("traffic", ticket), ("bank", repaid)):
        done = retract(api, record, role)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "retracted"
        assert done.json()["pending_change"] is None
        assert datetime.fromisoformat(done.json()["retracted_at"]) == api.clock.now()
        assert datetime.fromisoformat(contribution(api, record)["ended_at"]) == api.clock.now()
    # A judgment default whose effect ended already (its dispute lapsed) lifts nothing
    # either: its retraction is written at once.
    record = judgment_default(api)
    opened = api.call(
        "POST", "/v1/disputes", "subject", json={"record_id": record, "reason": "Not mine."}
    )
    api.clock.advance(timedelta(days=31))
    assert datetime.fromisoformat(contribution(api, record)["ended_at"]) == datetime.fromisoformat(
        opened.json()["deadline"]
    )
    assert retract(api, record).status_code == 200
    assert my_file(api)["pending_changes"] == []
    assert journal_kinds(sessions)["pending_change_requested"] == 0


def test_verify_passes_after_every_step_and_names_an_edited_pending_change(
    api: Api, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    # Held and confirmed, held and refused, held and superseded by a lapse.
    confirmed = retract(api, judgment_default(api, "V-1")).json()["pending_change"]
    assert decide(api, confirmed["change_id"], "confirmation").status_code == 200
    refused = retract(api, judgment_default(api, "V-2")).json()["pending_change"]
    assert decide(api, refused["change_id"], "refusal").status_code == 200
    lapsing = judgment_default(api, "V-3")
    dispute = api.call(
        "POST", "/v1/disputes", "subject", json={"record_id": lapsing, "reason": "Not mine."}
    ).json()["dispute_id"]
    held = api.call(
        "POST",
        f"/v1/disputes/{dispute}/answer",
        "court",
        json={"outcome": "deleted", "explanation": "Listed in error."},
    )
    assert held.status_code == 202, held.text
    api.clock.advance(timedelta(days=40))
    with sessions.begin() as session:
        disputes.sweep(session, api.clock.now())
    with sessions() as session:
        report = verify_log(session)
        assert report.ok, [p.message for p in report.problems]
        statuses = sorted(session.scalars(select(PendingChange.status)))
    assert statuses == ["confirmed", "refused", "superseded"]

    # An attacker turns the refusal back into a pending change (and, another time,
    # rewrites whose retraction it was): verify names the row and the entry.
    table = metadata.tables["pending_changes"]
    with sessions() as session:
        row = session.execute(
            text("SELECT id, seq FROM pending_changes WHERE public_id = :p"),
            {"p": refused["change_id"]},
        ).one()
    named = tamper.Named("pending_changes", str(row.id), row.seq)
    for edit in ({"status": "pending"}, {"reason": "Quashed on appeal."}):
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
