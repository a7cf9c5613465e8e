"""Delivering under an approved backfill run through ``POST /v1/records``, on SQLite and
PostgreSQL: a bank's history about one person (more positives than the burst limit) is
held when sent bare and counts when sent under the bank's run; records outside the
run's period are checked like any others; an unknown run or another source's refuses
the whole batch, and nothing of it is stored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.ledger.holds import RecordHold
from credence.ledger.tables import Record
from credence.translog.verify import verify_log
from tests.client import Api, assert_envelope
from tests.due_process import journal_kinds

#: More loan repayments than the default rulebook's burst limit (12 in 30 days).
HISTORY = 20


def history(api: Api, tag: str) -> list[dict[str, Any]]:
    """The bank's loan repayments about the first person, a month apart, the last of
    them a month ago."""
    first = api.clock.now() - timedelta(days=30 * (HISTORY + 1))
    return [
        {
            "source_ref": f"{tag}-{i}",
            "subject_id": api.world.people[0].public_id,
            "record_type": "loan_repaid",
            "occurred_at": (first + timedelta(days=30 * i)).isoformat(),
        }
        for i in range(HISTORY)
    ]


def approve(api: Api, source: str = "bank", expected: int = 1000, until: str = "2026-05-01") -> str:
    response = api.call(
        "POST",
        "/v1/backfill-runs",
        "operator",
        json={
            "source": source,
            "occurred_from": "2015-01-01",
            "occurred_until": until,
            "expected_records": expected,
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["run_id"])


def send(api: Api, records: list[dict[str, Any]], run: Any = None) -> Any:
    body: dict[str, Any] = {"records": records}
    if run is not None:
        body["backfill_run"] = run
    return api.call("POST", "/v1/records", "bank", json=body)


def counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """Records stored and records held."""
    with sessions() as session:
        records = session.scalar(select(func.count()).select_from(Record)) or 0
        held = session.scalar(select(func.count()).select_from(RecordHold)) or 0
    return records, held


def exempted(api: Api) -> dict[str, int]:
    response = api.call("GET", "/v1/backfill-runs", "operator")
    assert response.status_code == 200, response.text
    return {r["run_id"]: r["exempted"] for r in response.json()}


def test_a_history_is_held_bare_and_counts_under_an_approved_run(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    records, held = counts(sessions)
    bare = send(api, history(api, "BARE"))
    assert bare.status_code == 200, bare.text
    assert {r["status"] for r in bare.json()["results"]} == {"held"}
    assert bare.json()["held"] == HISTORY
    assert bare.json()["created"] == 0
    assert counts(sessions) == (records + HISTORY, held + HISTORY)

    run = approve(api)
    under = send(api, history(api, "RUN"), run)
    assert under.status_code == 200, under.text
    assert {r["status"] for r in under.json()["results"]} == {"created"}
    assert under.json()["created"] == HISTORY
    assert under.json()["held"] == 0
    assert counts(sessions) == (records + 2 * HISTORY, held + HISTORY)
    assert exempted(api) == {run: HISTORY}
    kinds = journal_kinds(sessions)
    assert kinds["backfill_approved"] == kinds["backfill_delivered"] == 1

    # Sent again under the run: duplicates, nothing exempted twice.
    again = send(api, history(api, "RUN"), run)
    assert again.status_code == 200, again.text
    assert again.json()["duplicates"] == HISTORY
    assert exempted(api) == {run: HISTORY}
    with sessions() as session:
        report = verify_log(session)
        assert report.ok, [p.message for p in report.problems]


def test_records_outside_the_runs_scope_are_checked_like_any_others(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    records, held = counts(sessions)
    run = approve(api, expected=5)
    # The run exempts five; the other fifteen are more than the burst limit: held.
    some = send(api, history(api, "SOME"), run)
    assert some.status_code == 200, some.text
    statuses = [r["status"] for r in some.json()["results"]]
    assert statuses.count("created") == 5
    assert statuses.count("held") == HISTORY - 5
    assert exempted(api) == {run: 5}
    # The run is used up: none of the next batch is exempt.
    later = send(api, history(api, "LATER"), run)
    assert {r["status"] for r in later.json()["results"]} == {"held"}
    # Records that occurred after a run's period are not exempt either.
    other = approve(api, until="2020-01-01")
    after = send(api, history(api, "AFTER"), other)
    assert after.status_code == 200, after.text
    assert {r["status"] for r in after.json()["results"]} == {"held"}
    assert exempted(api) == {run: 5, other: 0}
    assert counts(sessions) == (records + 3 * HISTORY, held + 3 * HISTORY - 5)


def test_an_unknown_run_or_another_sources_refuses_the_batch(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    before = counts(sessions)
    assert_envelope(send(api, history(api, "X"), "bkf_nope"), 404, "unknown_backfill_run")
    courts = approve(api, source="court")
    refused = send(api, history(api, "X"), courts)
    assert_envelope(refused, 403, "backfill_run_of_another_source")
    for wrong in (17, "", "x" * 200, ["bkf_1"]):
        assert_envelope(send(api, history(api, "X"), wrong), 422)
    assert counts(sessions) == before
    assert exempted(api) == {courts: 0}
    assert journal_kinds(sessions)["backfill_delivered"] == 0
