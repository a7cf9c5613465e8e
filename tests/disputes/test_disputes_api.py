"""Due process over HTTP: disputes (verified, corrected, deleted, lapsed), certified
reinsertion, statements, credit repair and retention, each role seeing what it may."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from tests.client import Api, assert_envelope
from tests.due_process import journal_kinds

US = timedelta(microseconds=1)


def me(api: Api) -> str:
    return api.world.people[0].public_id


def send(api: Api, role: str, *records: dict[str, Any]) -> list[dict[str, Any]]:
    response = api.call("POST", "/v1/records", role, json={"records": list(records)})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def loan_default(api: Api, ref: str = "L-1", days_ago: float = 10, **extra: Any) -> str:
    """A loan default on the subject's file, reported by the bank; its record id."""
    occurred = api.clock.now() - timedelta(days=days_ago)
    body = {
        "source_ref": ref,
        "subject_id": me(api),
        "record_type": "loan_default",
        "occurred_at": occurred.isoformat(),
        "decision_ref": f"REG-{ref}",
        **extra,
    }
    [result] = send(api, "bank", body)
    assert result["status"] == "created", result
    return str(result["record_id"])


def dispute(api: Api, record: str, **extra: Any) -> dict[str, Any]:
    response = api.call(
        "POST",
        "/v1/disputes",
        "subject",
        json={"record_id": record, "reason": "I paid this loan on time.", **extra},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def answer(api: Api, dispute_id: str, outcome: str, role: str = "bank", **extra: Any) -> Any:
    return api.call(
        "POST",
        f"/v1/disputes/{dispute_id}/answer",
        role,
        json={"outcome": outcome, "explanation": "We checked our books.", **extra},
    )


def my_file(api: Api) -> dict[str, Any]:
    response = api.call("GET", f"/v1/subjects/{me(api)}/file", "subject")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def on_file(api: Api, record: str) -> dict[str, Any]:
    contributions = my_file(api)["score"]["contributions"]
    found: dict[str, Any] = next(c for c in contributions if c["record_id"] == record)
    return found


def score_as_of(api: Api, at: datetime) -> dict[str, Any]:
    response = api.call(
        "GET", f"/v1/subjects/{me(api)}/score", "subject", params={"as_of": at.isoformat()}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def kinds(api: Api) -> list[str]:
    return [n["kind"] for n in reversed(my_file(api)["notifications"])]


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [d["dispute_id"] for d in response.json()]


def test_a_dispute_reaches_the_source_queue_and_is_verified(api: Api) -> None:
    record = loan_default(api)
    opened = dispute(api, record)
    d = opened["dispute_id"]
    assert opened["status"] == "open"
    assert datetime.fromisoformat(opened["deadline"]) == api.clock.now() + timedelta(days=30)
    assert opened["source"] == "bank"
    # Who sees it: the source about its records, the subject, reviewers; nobody else.
    assert ids(api.call("GET", "/v1/disputes", "bank")) == [d]
    assert ids(api.call("GET", "/v1/disputes", "court")) == []
    assert ids(api.call("GET", "/v1/disputes", "reviewer")) == [d]
    assert ids(api.call("GET", "/v1/disputes", "subject")) == [d]
    assert ids(api.call("GET", "/v1/disputes", "other")) == []
    assert_envelope(api.call("GET", "/v1/disputes", "airline"), 403)
    assert_envelope(api.call("GET", "/v1/disputes", "operator"), 403)
    assert_envelope(api.call("GET", "/v1/disputes"), 401)
    for role in ("bank", "subject", "reviewer"):
        assert api.call("GET", f"/v1/disputes/{d}", role).json()["dispute_id"] == d
    assert (
        "own file" in assert_envelope(api.call("GET", f"/v1/disputes/{d}", "other"), 403)["message"]
    )
    assert_envelope(api.call("GET", f"/v1/disputes/{d}", "court"), 403)
    assert_envelope(api.call("GET", "/v1/disputes/dsp_nope", "reviewer"), 404, "unknown_dispute")
    # Nobody else opens or answers it.
    assert_envelope(
        api.call("POST", "/v1/disputes", "other", json={"record_id": record, "reason": "x"}), 403
    )
    assert_envelope(
        api.call("POST", "/v1/disputes", "bank", json={"record_id": record, "reason": "x"}), 403
    )
    assert_envelope(answer(api, d, "deleted", role="court"), 403)
    assert_envelope(answer(api, d, "deleted", role="subject"), 403)
    # Marked as disputed on the file and in the explanation.
    shown = on_file(api, record)
    assert (shown["disputed"], shown["status"]) == (True, "counting")

    api.clock.advance(timedelta(days=7))
    verified = answer(api, d, "verified")
    assert verified.status_code == 200, verified.text
    assert (verified.json()["status"], verified.json()["answered_by"]) == ("verified", "source")
    assert ids(api.call("GET", "/v1/disputes", "bank")) == []
    assert ids(api.call("GET", "/v1/disputes", "bank", params={"status": "answered"})) == [d]
    shown = on_file(api, record)
    assert (shown["disputed"], shown["status"]) == (False, "counting")
    assert kinds(api) == ["dispute_opened", "dispute_answered"]
    assert "verified" in my_file(api)["notifications"][0]["text"]

    # A repeat dispute needs new information; with it, the deadline is 45 days.
    repeat = api.call("POST", "/v1/disputes", "subject", json={"record_id": record, "reason": "x"})
    assert "verified" in assert_envelope(repeat, 409, "repeat_dispute")["message"]
    again = dispute(api, record, new_information="The bank's own receipt of 2026-05-02.")
    assert datetime.fromisoformat(again["deadline"]) == api.clock.now() + timedelta(days=45)
    second = api.call("POST", "/v1/disputes", "subject", json={"record_id": record, "reason": "x"})
    assert_envelope(second, 409, "dispute_already_open")


def test_a_source_corrects_a_record_through_the_api(api: Api) -> None:
    record = loan_default(api, days_ago=40)
    d = dispute(api, record)["dispute_id"]
    api.clock.advance(timedelta(days=2))
    occurred = api.clock.now() - timedelta(days=30)
    correction = {
        "source_ref": "L-1-fixed",
        "subject_id": me(api),
        "record_type": "credit_card_default",
        "occurred_at": occurred.isoformat(),
        "decision_ref": "REG-L-1",
    }
    assert_envelope(answer(api, d, "corrected"), 422, "correction_required")
    assert_envelope(
        answer(api, d, "corrected", role="reviewer", correction=correction),
        403,
        "correction_needs_source",
    )
    assert_envelope(
        answer(api, d, "corrected", correction={**correction, "extra": 1}), 422, "invalid_request"
    )
    done = answer(api, d, "corrected", correction=correction)
    assert done.status_code == 200, done.text
    new = done.json()["corrected_record_id"]
    assert on_file(api, record)["status"] == "corrected"
    assert on_file(api, new)["status"] == "counting"
    assert on_file(api, new)["record_type"] == "credit_card_default"
    assert kinds(api)[-1] == "dispute_answered"
    assert new in my_file(api)["notifications"][0]["text"]


def test_deleted_records_return_only_when_certified(api: Api) -> None:
    occurred = api.clock.now() - timedelta(days=10)
    record = loan_default(api)
    d = dispute(api, record)["dispute_id"]
    api.clock.advance(timedelta(days=1))
    deleted = answer(api, d, "deleted")
    assert deleted.json()["status"] == "deleted"
    shown = on_file(api, record)
    assert (shown["status"], shown["points"], shown["disputed"]) == ("deleted", 0.0, False)
    assert datetime.fromisoformat(shown["ended_at"]) == api.clock.now()

    api.clock.advance(timedelta(days=1))
    again = {
        "source_ref": "L-1-resent",
        "subject_id": me(api),
        "record_type": "loan_default",
        "occurred_at": occurred.isoformat(),
        "decision_ref": "REG-L-1",
    }
    [refused] = send(api, "bank", again)
    assert refused["status"] == "rejected"
    assert refused["error"]["code"] == "reinsertion_requires_certification"
    assert record in refused["error"]["message"]
    [certified] = send(api, "bank", {**again, "certified": True})
    assert certified["status"] == "created"
    assert on_file(api, certified["record_id"])["status"] == "counting"
    assert kinds(api) == ["dispute_opened", "dispute_answered", "record_reinserted"]
    assert "certified" in my_file(api)["notifications"][0]["text"]
    [needless] = send(
        api, "bank", {**again, "source_ref": "other", "decision_ref": "X", "certified": True}
    )
    assert needless["error"]["code"] == "certification_not_needed"


def test_an_unanswered_dispute_lapses_exactly_at_its_deadline(api: Api) -> None:
    record = loan_default(api)
    opened = dispute(api, record, new_information="My bank statement shows the payment.")
    deadline = datetime.fromisoformat(opened["deadline"])
    assert deadline == api.clock.now() + timedelta(days=45)
    api.clock.set(deadline + timedelta(hours=1))
    before = score_as_of(api, deadline - US)
    at = score_as_of(api, deadline)
    then = next(c for c in before["contributions"] if c["record_id"] == record)
    now = next(c for c in at["contributions"] if c["record_id"] == record)
    assert then["status"] == "counting"
    assert then["disputed"] is True
    assert then["points"] < 0
    assert (now["status"], now["points"]) == ("unverifiable", 0.0)
    assert at["total"] > before["total"]
    d = opened["dispute_id"]
    assert api.call("GET", f"/v1/disputes/{d}", "subject").json()["status"] == "lapsed"
    assert_envelope(answer(api, d, "verified"), 409, "dispute_lapsed")
    assert on_file(api, record)["status"] == "unverifiable"


def test_statements_show_on_the_file_and_in_every_explanation(api: Api) -> None:
    record = loan_default(api)
    said = api.call(
        "POST", f"/v1/records/{record}/statement", "subject", json={"text": "I was in hospital."}
    )
    assert said.status_code == 201, said.text
    assert said.json()["text"] == "I was in hospital."
    assert on_file(api, record)["statement"] == "I was in hospital."
    explained = score_as_of(api, api.clock.now())
    assert next(c for c in explained["contributions"] if c["record_id"] == record)["statement"] == (
        "I was in hospital."
    )
    too_long = api.call(
        "POST", f"/v1/records/{record}/statement", "subject", json={"text": "x" * 501}
    )
    assert_envelope(too_long, 422, "invalid_request")
    for role in ("other", "bank", "reviewer"):
        assert_envelope(
            api.call("POST", f"/v1/records/{record}/statement", role, json={"text": "no"}), 403
        )
    assert_envelope(
        api.call("POST", "/v1/records/rec_nope/statement", "subject", json={"text": "x"}),
        404,
        "unknown_record",
    )


def test_repair_through_the_api(api: Api) -> None:
    record = loan_default(api, days_ago=30)
    possible = api.clock.now() - timedelta(days=30) + timedelta(days=90)
    early = api.call(
        "POST", "/v1/repairs", "subject", json={"record_id": record, "commitment": "Repaid."}
    )
    error = assert_envelope(early, 409, "repair_too_early")
    assert possible.date().isoformat() in error["message"]
    assert datetime.fromisoformat(error["details"]["possible_from"]) == possible
    assert_envelope(
        api.call("POST", "/v1/repairs", "other", json={"record_id": record, "commitment": "x"}),
        403,
    )
    api.clock.set(possible)
    applied = api.call(
        "POST", "/v1/repairs", "subject", json={"record_id": record, "commitment": "Repaid."}
    )
    assert applied.status_code == 201, applied.text
    r = applied.json()["repair_id"]
    assert [x["repair_id"] for x in api.call("GET", "/v1/repairs", "reviewer").json()] == [r]
    assert [x["repair_id"] for x in api.call("GET", "/v1/repairs", "subject").json()] == [r]
    assert api.call("GET", "/v1/repairs", "other").json() == []
    assert_envelope(api.call("GET", "/v1/repairs", "bank"), 403)
    assert api.call("GET", f"/v1/repairs/{r}", "subject").json()["status"] == "pending"
    assert_envelope(api.call("GET", f"/v1/repairs/{r}", "other"), 403)
    decision = {"approve": True, "reasons": "The bank confirms full repayment."}
    for role in ("subject", "bank", "operator"):
        assert_envelope(api.call("POST", f"/v1/repairs/{r}/decision", role, json=decision), 403)
    api.clock.advance(timedelta(days=2))
    approved = api.call("POST", f"/v1/repairs/{r}/decision", "reviewer", json=decision)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    shown = on_file(api, record)
    assert (shown["status"], shown["points"]) == ("repaired", 0.0)
    assert datetime.fromisoformat(shown["ended_at"]) == api.clock.now()
    assert kinds(api)[-2:] == ["repair_applied", "repair_decided"]
    assert_envelope(
        api.call("POST", f"/v1/repairs/{r}/decision", "reviewer", json=decision),
        409,
        "repair_decided",
    )


def test_a_refused_repair_gives_reasons(api: Api) -> None:
    record = loan_default(api, days_ago=100)
    applied = api.call(
        "POST", "/v1/repairs", "subject", json={"record_id": record, "commitment": "Repaid."}
    ).json()
    refused = api.call(
        "POST",
        f"/v1/repairs/{applied['repair_id']}/decision",
        "reviewer",
        json={"approve": False, "reasons": "The loan is still unpaid."},
    ).json()
    assert (refused["status"], refused["reasons"]) == ("refused", "The loan is still unpaid.")
    assert on_file(api, record)["status"] == "counting"
    assert "The loan is still unpaid." in my_file(api)["notifications"][0]["text"]


def test_after_retention_a_record_stops_counting_without_anyone_acting(api: Api) -> None:
    occurred = api.clock.now() - timedelta(days=364)
    [ticket] = send(
        api,
        "traffic",
        {
            "source_ref": "T-1",
            "subject_id": me(api),
            "record_type": "traffic_violation",
            "occurred_at": occurred.isoformat(),
            "decision_ref": "TICKET-1",
        },
    )
    record = ticket["record_id"]
    counting = on_file(api, record)
    assert counting["status"] == "counting"
    assert counting["points"] < 0
    api.clock.set(occurred + timedelta(days=365))  # a minor record: at most one year
    expired = on_file(api, record)
    assert (expired["status"], expired["points"], expired["ended_at"]) == ("expired", 0.0, None)
    assert_envelope(
        api.call("POST", "/v1/repairs", "subject", json={"record_id": record, "commitment": "x"}),
        409,
        "record_expired",
    )


def test_every_step_over_http_is_a_journal_entry(api: Api, sessions: sessionmaker[Session]) -> None:
    before = journal_kinds(sessions)
    a, b = loan_default(api, "L-1", days_ago=100), loan_default(api, "L-2", days_ago=100)
    da = dispute(api, a)["dispute_id"]
    answer(api, da, "deleted")
    db = dispute(api, b)["dispute_id"]
    api.call("POST", f"/v1/records/{b}/statement", "subject", json={"text": "Disagree."})
    repaired = api.call(
        "POST", "/v1/repairs", "subject", json={"record_id": b, "commitment": "Repaid."}
    ).json()
    api.call(
        "POST",
        f"/v1/repairs/{repaired['repair_id']}/decision",
        "reviewer",
        json={"approve": False, "reasons": "Not yet."},
    )
    send(
        api,
        "bank",
        {
            "source_ref": "L-1-back",
            "subject_id": me(api),
            "record_type": "loan_default",
            "occurred_at": (api.clock.now() - timedelta(days=100)).isoformat(),
            "decision_ref": "REG-L-1",
            "certified": True,
        },
    )
    assert db
    after = journal_kinds(sessions) - before
    assert after == {
        "record": 3,
        "dispute_opened": 2,
        "dispute_answered": 1,
        "statement_added": 1,
        "repair_applied": 1,
        "repair_decided": 1,
        "record_reinserted": 1,
    }


def test_dispute_input_is_checked(api: Api) -> None:
    record = loan_default(api)
    assert_envelope(
        api.call("POST", "/v1/disputes", "subject", json={"record_id": "rec_x", "reason": "x"}),
        404,
        "unknown_record",
    )
    assert_envelope(
        api.call(
            "POST",
            "/v1/disputes",
            "subject",
            json={"record_id": record, "reason": "x", "political_view": "y"},
        ),
        422,
    )
    assert_envelope(
        api.call("POST", "/v1/disputes", "subject", json={"record_id": record, "reason": ""}),
        422,
    )
    d = dispute(api, record)["dispute_id"]
    assert_envelope(answer(api, d, "maybe"), 422, "invalid_request")
    assert_envelope(api.call("GET", "/v1/disputes", "reviewer", params={"status": "x"}), 422)
