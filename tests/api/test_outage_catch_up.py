"""An outage's catch-up through the API, on SQLite and PostgreSQL (issue 14, item 2).

The bank declares it reports loan repayments weekly (7 days, 7 of grace) and does, one
per person a week, for eight weeks; then it goes silent for twenty weeks (in outage two
weeks in) and sends the missed weeks at once: twenty repayments per person, past the
burst limit of 12 positives from one source about one subject in 30 days.

* nothing is held: intake opened one catch-up run (in the log, listed to operators),
  whose volume is what the bank missed at its usual rate (12 records in the four weeks
  before it went silent, over 140 days: 60), used by this batch and a later one;
  ``credence log verify`` passes;
* backdating more than it missed: the excess is held as a burst;
* records dated before the silence are not exempt;
* a new identity's positives are held past the new-identity limit, catch-up or not,
  and count towards it later;
* two batches at once after the outage open one run.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.identifiers import SubjectKind
from credence.journal import JournalEntry
from credence.ledger import freshness, registry
from credence.ledger.backfill import OUTAGE_CATCH_UP, BackfillDelivery, BackfillRun
from credence.ledger.schemas import SubjectIn
from credence.ledger.tables import Subject
from tests.api.test_intake_races import statuses, through_two_processes
from tests.api.test_races import Service, count
from tests.api.test_races import service as service  # the fixture, re-exported
from tests.cli.conftest import Invoke
from tests.cli.conftest import cli as cli  # the fixture, re-exported
from tests.client import Api
from tests.conftest import T0
from tests.world import World, person_id, submit

#: The bank's last report before its silence: twenty weeks before the tests' clock.
SILENT_WEEKS = 20
LAST = T0 - timedelta(weeks=SILENT_WEEKS)
#: Weeks of steady history before the silence.
HISTORY_WEEKS = 8


def steady_history(sessions: sessionmaker[Session], world: World, people: list[Subject]) -> None:
    """The bank declares loan_repaid=7+7 and reports one repayment per person a week,
    the last week at :data:`LAST`."""
    with sessions.begin() as session:
        freshness.declare(
            session,
            source=session.merge(world.sources["bank"]),
            cadences=[freshness.Cadence("loan_repaid", 7, 7)],
            at=LAST - timedelta(weeks=HISTORY_WEEKS + 1),
        )
    for week in range(HISTORY_WEEKS):
        at = LAST - timedelta(weeks=week)
        batch = [
            repaid(f"H{week}-{n}", who, at - timedelta(days=1)) for n, who in enumerate(people)
        ]
        assert submit(sessions, world, "bank", at, *batch) == ["created"] * len(people)


def repaid(ref: str, who: Subject, occurred: datetime) -> dict[str, object]:
    return {
        "source_ref": ref,
        "subject_id": who.public_id,
        "record_type": "loan_repaid",
        "occurred_at": occurred.isoformat(),
    }


def missed(who: Subject, tag: str, weeks: int = SILENT_WEEKS) -> list[dict[str, object]]:
    """The weekly repayments of ``who`` the bank did not send while silent."""
    return [
        repaid(f"{tag}-{week}", who, LAST + timedelta(weeks=week, hours=-1))
        for week in range(1, weeks + 1)
    ]


def send(api: Api, records: list[dict[str, object]]) -> list[dict[str, Any]]:
    answer = api.call("POST", "/v1/records", "bank", json={"records": records})
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    return results


def outcome(results: list[dict[str, Any]]) -> Counter[str]:
    """Created, or held with its cause."""
    return Counter(
        r["status"] if r["status"] != "held" else f"held:{r['hold']['code']}" for r in results
    )


def kinds(sessions: sessionmaker[Session]) -> Counter[str]:
    with sessions() as session:
        return Counter(session.scalars(select(JournalEntry.kind)))


def catch_up_runs(api: Api) -> list[dict[str, Any]]:
    listed = api.call("GET", "/v1/backfill-runs", "operator")
    assert listed.status_code == 200, listed.text
    return [run for run in listed.json() if run["kind"] == OUTAGE_CATCH_UP]


def test_the_missed_weeks_sent_at_once_are_not_a_burst(
    api: Api, sessions: sessionmaker[Session], clock: FixedClock, cli: Invoke
) -> None:
    people = api.world.people
    steady_history(sessions, api.world, people)
    first = send(api, missed(people[0], "A") + missed(people[1], "B"))
    assert outcome(first) == {"created": 40}
    # A later batch of the same catch-up (the bank no longer in outage) uses what is left.
    clock.advance(timedelta(hours=1))
    assert outcome(send(api, missed(people[2], "C"))) == {"created": 20}

    [run] = catch_up_runs(api)
    assert run["source"] == "bank"
    assert (run["expected_records"], run["exempted"]) == (60, 60)
    assert run["occurred_from"].startswith(LAST.date().isoformat())
    logged = kinds(sessions)
    assert logged["outage_catch_up_opened"] == 1
    assert logged["backfill_delivered"] == 2
    assert logged["records_held"] == 0
    # Past its volume, the run exempts nothing: a burst is a burst again.
    clock.advance(timedelta(hours=1))
    more = [repaid(f"D-{i}", people[0], LAST + timedelta(days=i + 1)) for i in range(13)]
    assert outcome(send(api, more)) == {"held:burst": 13}
    verified = cli("log", "verify")
    assert verified.exit_code == 0, verified.output
    # Operators see it in the command line's list too, by its kind.
    listed = cli("backfill", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(r["kind"], r["exempted"]) for r in json.loads(listed.output)] == [
        (OUTAGE_CATCH_UP, 60)
    ]


def test_backdating_more_than_was_missed_is_a_burst(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    people = api.world.people
    steady_history(sessions, api.world, people)
    # The 60 missed, and 13 more for the first person within the silence: the excess.
    extra = [
        repaid(f"X-{i}", people[0], LAST + timedelta(weeks=i + 1, hours=-2)) for i in range(13)
    ]
    results = send(
        api, [*missed(people[0], "A"), *missed(people[1], "B"), *missed(people[2], "C"), *extra]
    )
    assert outcome(results) == {"created": 60, "held:burst": 13}
    assert {r["source_ref"] for r in results if r["status"] == "held"} == {
        e["source_ref"] for e in extra
    }


def test_records_dated_before_the_silence_are_not_exempt(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    people = api.world.people
    steady_history(sessions, api.world, people)
    # First in the batch, so they would take the volume if their dates let them.
    older = [repaid(f"O-{i}", people[1], LAST - timedelta(days=30, hours=i)) for i in range(13)]
    batch = [*older, *missed(people[0], "A"), *missed(people[1], "B"), *missed(people[2], "C")]
    results = send(api, batch)
    assert outcome(results) == {"created": 60, "held:burst": 13}
    assert {r["source_ref"] for r in results if r["status"] == "held"} == {
        o["source_ref"] for o in older
    }


def test_a_catch_up_does_not_exempt_a_new_identity(
    api: Api, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    world = api.world
    with sessions.begin() as session:
        fresh = registry.register_subject(
            session,
            source=session.merge(world.sources["civil_registry"]),
            data=SubjectIn(kind=SubjectKind.PERSON, identifier=person_id(40), name="Fresh"),
            at=LAST - timedelta(weeks=HISTORY_WEEKS + 2),
        )[0]
        session.expunge(fresh)
    people = [*world.people, fresh]
    steady_history(sessions, world, people)  # 8 of the new identity's 12
    results = send(
        api, [r for who, tag in zip(people, "ABCF", strict=True) for r in missed(who, tag)]
    )
    assert outcome(results) == {"created": 60, "held:new_identity": 20}
    assert {r["source_ref"][0] for r in results if r["status"] == "held"} == {"F"}
    # What the catch-up took in counts towards the limit later on.
    clock.advance(timedelta(days=1))
    later = send(api, [repaid("F-later", fresh, clock.now() - timedelta(hours=1))])
    assert outcome(later) == {"held:new_identity": 1}


def test_two_batches_at_once_after_an_outage_open_one_run(
    service: Service, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    people = service.world.people
    steady_history(sessions, service.world, people)
    bodies = [{"records": missed(who, tag)} for who, tag in zip(people, "AB", strict=True)]
    answers = through_two_processes(service, sessions, clock, bodies)
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert statuses(answers) == Counter({"created": 40})
    engine = service.engine
    catch_ups = select(func.count()).where(BackfillRun.kind == OUTAGE_CATCH_UP)
    assert count(engine, catch_ups) == 1
    assert count(engine, select(func.sum(BackfillDelivery.exempted))) == 40
    assert (
        count(engine, select(func.count()).where(JournalEntry.kind == "outage_catch_up_opened"))
        == 1
    )


def test_a_catch_up_run_is_never_named_and_a_suspended_source_opens_none(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    people = api.world.people
    steady_history(sessions, api.world, people)
    suspended = api.call(
        "POST", "/v1/sources/bank/suspension", "operator", json={"reason": "suspected_bribery"}
    )
    assert suspended.status_code == 201, suspended.text
    # Held (a burst, with no catch-up while suspended; held anyway while suspended).
    assert outcome(send(api, missed(people[0], "S"))) == {"held:burst": 20}
    assert catch_up_runs(api) == []
    reinstated = api.call("POST", "/v1/sources/bank/reinstatement", "operator", json={})
    assert reinstated.status_code in (200, 201), reinstated.text
    # The held batch was a report: the bank is no longer in outage, so nothing to catch up.
    assert outcome(send(api, missed(people[1], "T"))) == {"held:burst": 20}
    assert catch_up_runs(api) == []


def test_a_client_cannot_name_a_catch_up_run(api: Api, sessions: sessionmaker[Session]) -> None:
    people = api.world.people
    steady_history(sessions, api.world, people)
    assert outcome(send(api, missed(people[0], "A", weeks=13))) == {"created": 13}
    [run] = catch_up_runs(api)
    body = {"backfill_run": run["run_id"], "records": missed(people[1], "B")}
    refused = api.call("POST", "/v1/records", "bank", json=body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "backfill_run_is_catch_up"


def test_an_approved_run_named_takes_precedence_for_its_records(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    """The bank names an approved run covering the first ten silent weeks: those records
    are the approved run's (exempt from both limits), the other ten the catch-up's."""
    people = api.world.people
    steady_history(sessions, api.world, people)
    approved = api.call(
        "POST",
        "/v1/backfill-runs",
        "operator",
        json={
            "source": "bank",
            "occurred_from": LAST.isoformat(),
            "occurred_until": (LAST + timedelta(weeks=10)).isoformat(),
            "expected_records": 1000,
        },
    )
    assert approved.status_code == 201, approved.text
    body = {"backfill_run": approved.json()["run_id"], "records": missed(people[0], "A")}
    answer = api.call("POST", "/v1/records", "bank", json=body)
    assert answer.status_code == 200, answer.text
    assert outcome(answer.json()["results"]) == {"created": 20}
    by_kind = {run["kind"]: run["exempted"] for run in catch_up_runs(api)}
    listed = api.call("GET", "/v1/backfill-runs", "operator").json()
    assert {run["kind"]: run["exempted"] for run in listed} == {
        "approved": 10,
        OUTAGE_CATCH_UP: 10,
    }
    assert by_kind == {OUTAGE_CATCH_UP: 10}
