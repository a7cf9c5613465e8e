"""Approved backfill runs through the API, on SQLite and PostgreSQL: an operator
approves a run for a source with its scope and lists the runs; nobody else may; a
scope that cannot be is refused with a code; the approval is a journal entry that
``credence log verify`` checks, and it names an edited run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from credence.models import metadata
from credence.translog.verify import verify_log
from tests import tamper
from tests.client import Api, assert_envelope
from tests.due_process import journal_kinds

FROM = datetime(2019, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 1, 1, tzinfo=UTC)


def scope(source: str = "bank", **change: Any) -> dict[str, Any]:
    return {
        "source": source,
        "occurred_from": FROM.isoformat(),
        "occurred_until": UNTIL.isoformat(),
        "expected_records": 5000,
        **change,
    }


def approve(api: Api, role: str = "operator", **change: Any) -> Any:
    return api.call("POST", "/v1/backfill-runs", role, json=scope(**change))


def runs(api: Api, role: str = "operator") -> Any:
    return api.call("GET", "/v1/backfill-runs", role)


def test_an_operator_approves_a_run_and_lists_it(api: Api, sessions: sessionmaker[Session]) -> None:
    approved = approve(api)
    assert approved.status_code == 201, approved.text
    run = approved.json()
    assert run["run_id"].startswith("bkf_")
    assert run["source"] == "bank"
    assert datetime.fromisoformat(run["occurred_from"]) == FROM
    assert datetime.fromisoformat(run["occurred_until"]) == UNTIL
    assert run["expected_records"] == 5000
    assert run["exempted"] == 0
    assert datetime.fromisoformat(run["approved_at"]) == api.clock.now()
    # Instants without a zone are UTC.
    court = approve(
        api, source="court", occurred_from="2020-01-01", occurred_until="2021-01-01T00:00:00"
    )
    assert court.status_code == 201, court.text
    assert datetime.fromisoformat(court.json()["occurred_from"]) == datetime(2020, 1, 1, tzinfo=UTC)

    listed = runs(api)
    assert listed.status_code == 200, listed.text
    assert listed.json() == [run, court.json()]
    assert journal_kinds(sessions)["backfill_approved"] == 2


def test_only_operators_approve_or_list_runs(api: Api, sessions: sessionmaker[Session]) -> None:
    for role in ("bank", "court", "reviewer", "airline", "subject"):
        assert_envelope(approve(api, role), 403, "forbidden")
        assert_envelope(runs(api, role), 403, "forbidden")
    assert_envelope(api.call("POST", "/v1/backfill-runs", json=scope()), 401)
    assert_envelope(api.call("GET", "/v1/backfill-runs"), 401)
    assert runs(api).json() == []
    assert journal_kinds(sessions)["backfill_approved"] == 0


def test_a_scope_that_cannot_be_is_refused(api: Api, sessions: sessionmaker[Session]) -> None:
    assert_envelope(approve(api, source="no_such_source"), 404, "unknown_source")
    empty = approve(api, occurred_until=FROM.isoformat())
    assert_envelope(empty, 422, "backfill_period_empty")
    future = approve(api, occurred_from="2030-01-01", occurred_until="2031-01-01")
    assert_envelope(future, 422, "backfill_period_in_future")
    for volume in (0, -5, 10**12):
        assert_envelope(approve(api, expected_records=volume), 422, "backfill_volume_invalid")
    not_counts: list[Any] = ["5000", 2.5, True, None]
    for wrong in not_counts:
        assert_envelope(approve(api, expected_records=wrong), 422, "invalid_request")
    assert_envelope(approve(api, occurred_from="yesterday"), 422, "invalid_request")
    extra = api.call("POST", "/v1/backfill-runs", "operator", json=scope() | {"exempt": "all"})
    assert_envelope(extra, 422, "invalid_request")
    assert runs(api).json() == []
    assert journal_kinds(sessions)["backfill_approved"] == 0


def test_verify_passes_and_names_an_edited_run(
    api: Api, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    run = approve(api).json()["run_id"]
    with sessions() as session:
        report = verify_log(session)
        assert report.ok, [p.message for p in report.problems]
        row = session.execute(
            text("SELECT id, seq, expected_records FROM backfill_runs WHERE public_id = :p"),
            {"p": run},
        ).one()
    # An attacker widens the run's volume (or gives it to another source).
    table = metadata.tables["backfill_runs"]
    named = tamper.Named("backfill_runs", str(row.id), row.seq)
    court = api.world.sources["court"].id
    for edit in ({"expected_records": row.expected_records * 100}, {"source_id": court}):
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
