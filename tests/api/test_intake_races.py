"""The intake's defences raced, on SQLite and PostgreSQL: the same request sent several
times at once, and batches that only together pass a limit.

* identical burst batches at once: one stores (held), the others are duplicates; one
  record and one hold per ``source_ref``, one ``records_held`` entry;
* releases of one hold at once: all get the resend's answer, one entry;
* a flag merged and its alias ended at once: one end, one ``subjects_unmerged``;
* one flagged subject merged into two files at once (two flags), or merged and voided
  at once: never both (no subject read into two files, no void of a merged file);
* approvals of one backfill scope at once: each 201 is one run and one entry;
* suspensions of one source at once: one 201, the others the resend's 200, one row;
* two batches under one backfill run at once: together they exempt at most the run's
  expected volume;
* two API processes (two apps on one store) each taking half a burst at once, or each
  a source's half of a new identity's positives: the limit still holds what passes it;
  identical batches through both: one stores, the other is told duplicate.

Never a 5xx. The races are forced as in :mod:`tests.api.test_races` (a barrier, and the
store's lock held on the table written until every contender waits to write).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, issue_key
from credence.access.policy import Role
from credence.api.app import create_app
from credence.clock import FixedClock
from credence.context import Context
from credence.identifiers import make_resident_id
from credence.journal import JournalEntry
from credence.ledger import holds
from credence.ledger.backfill import BackfillDelivery, BackfillRun
from credence.ledger.suspension import SourceSuspension
from credence.ledger.tables import AliasEnd, Record, SubjectAlias
from credence.settings import Settings
from credence.translog.verify import verify_log
from tests.api.test_races import CONTENDERS, RunningClock, Service, StoreGate, count, race
from tests.api.test_races import service as service  # the fixture, re-exported

NAME = "欧阳 Ouyang Qiaozhen"
#: The default rulebook's burst limit: positives from one source about one subject in
#: 30 days (docs/intake.md).
BURST_LIMIT = 12


def add_key(
    service: Service, sessions: sessionmaker[Session], clock: FixedClock, role: Role
) -> str:
    name = role.value
    with sessions.begin() as session:
        principal = create_principal(session, role=role, name=name, clock=clock)
        service.keys[name] = issue_key(session, principal=principal, clock=clock)
    return name


def positives(service: Service, prefix: str, n: int, person: int = 0) -> list[dict[str, Any]]:
    subject = service.world.people[person].public_id
    return [
        {
            "source_ref": f"{prefix}-{i}",
            "subject_id": subject,
            "record_type": "loan_repaid",
            "occurred_at": (service.now() - timedelta(days=40 + i)).isoformat(),
        }
        for i in range(n)
    ]


def entries(service: Service, kind: str) -> int:
    return count(service.engine, select(func.count()).where(JournalEntry.kind == kind))


def verified(service: Service) -> None:
    with Session(service.engine) as session:
        report = verify_log(session)
    assert report.ok, [p.message for p in report.problems]


# --- bursts and holds ---------------------------------------------------------------------


def at_once(
    service: Service, attempt: Callable[[httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """``attempt`` in :data:`CONTENDERS` threads released by a barrier, each with its
    own client (record batches in one process take turns in the intake, so no
    contender waits on the store's lock: :func:`race`'s gate would wait in vain)."""
    clients = [service.client() for _ in range(CONTENDERS)]
    barrier = threading.Barrier(CONTENDERS)
    answers: list[Any] = [None] * CONTENDERS

    def contender(i: int) -> None:
        barrier.wait()
        try:
            answers[i] = attempt(clients[i])
        except BaseException as exc:
            answers[i] = exc

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(CONTENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in clients:
        c.close()
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
    return answers


def test_identical_burst_batches_at_once_store_and_hold_once(service: Service) -> None:
    batch = {"records": positives(service, "B", BURST_LIMIT + 3)}

    def send(client: httpx.Client) -> httpx.Response:
        return service.call("POST", "/v1/records", "bank", client=client, json=batch)

    responses = at_once(service, send)
    assert [r.status_code for r in responses] == [200] * CONTENDERS
    found = sorted(
        (Counter(x["status"] for x in r.json()["results"]) for r in responses),
        key=lambda c: sorted(c.items()),
    )
    held = Counter({"held": BURST_LIMIT + 3})
    dup = Counter({"duplicate": BURST_LIMIT + 3})
    assert found == [dup] * (CONTENDERS - 1) + [held], found
    engine = service.engine
    assert count(engine, select(func.count()).select_from(Record)) == BURST_LIMIT + 3
    assert count(engine, select(func.count()).select_from(holds.RecordHold)) == BURST_LIMIT + 3
    assert entries(service, "records_held") == 1
    verified(service)


def test_identical_burst_batches_through_two_processes_at_once(
    service: Service, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    batch = {"records": positives(service, "T", BURST_LIMIT + 3)}
    answers = through_two_processes(service, sessions, clock, [batch, batch])
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    found = statuses(answers)
    assert found == Counter({"held": BURST_LIMIT + 3, "duplicate": BURST_LIMIT + 3}), found
    engine = service.engine
    assert count(engine, select(func.count()).select_from(Record)) == BURST_LIMIT + 3
    assert count(engine, select(func.count()).select_from(holds.RecordHold)) == BURST_LIMIT + 3
    verified(service)


def test_releases_of_one_hold_at_once_release_once(
    service: Service, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    reviewer = add_key(service, sessions, clock, Role.REVIEWER)
    sent = service.call(
        "POST", "/v1/records", "bank", json={"records": positives(service, "R", BURST_LIMIT + 1)}
    )
    assert sent.status_code == 200, sent.text
    listed = service.call("GET", "/v1/holds", reviewer)
    assert listed.status_code == 200, listed.text
    hold = listed.json()[0]["hold_id"]
    path = f"/v1/holds/{hold}/release"

    def release(client: httpx.Client) -> httpx.Response:
        body = {"reasons": "checked against the bank's statements"}
        return service.call("POST", path, reviewer, client=client, json=body)

    responses = race(service, "record_holds", release)
    resend = service.call("POST", path, reviewer, json={"reasons": "again"})
    assert resend.status_code == 200, resend.text
    assert [r.status_code for r in responses] == [200] * CONTENDERS
    assert all(r.json() == resend.json() for r in responses)
    assert entries(service, "hold_released") == 1
    verified(service)


def through_two_processes(
    service: Service,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    bodies: list[dict[str, Any]],
    senders: list[str] | None = None,
) -> list[httpx.Response]:
    """``POST /v1/records`` as the bank (or each body as its key in ``senders``), one
    body through each of two API processes at once (two apps, each with its own intake,
    on one store; in one process the intake takes batches in turn). On PostgreSQL
    neither has read the store before both are on their way (the ``records`` table is
    locked until both wait, on it or on intake's turns)."""
    engine = service.engine
    running = RunningClock(clock.now())
    clients = [
        TestClient(
            create_app(
                Context(
                    settings=Settings(db_url=str(engine.url)),
                    engine=engine,
                    sessions=sessions,
                    clock=running,
                )
            ),
            raise_server_exceptions=False,
        )
        for _ in bodies
    ]
    keys = [service.keys[name] for name in senders or ["bank"] * len(bodies)]
    barrier = threading.Barrier(len(bodies) + 1)
    answers: list[Any] = [None] * len(bodies)

    def contender(i: int) -> None:
        barrier.wait()
        headers = {"Authorization": f"Bearer {keys[i]}"}
        answers[i] = clients[i].post("/v1/records", json=bodies[i], headers=headers)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(len(bodies))]
    gate = StoreGate(engine, "records")
    with gate.held(len(bodies)) as all_waiting:
        for t in threads:
            t.start()
        barrier.wait()
        all_waiting()
    for t in threads:
        t.join(60)
    for c in clients:
        c.close()
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
    return answers


def statuses(answers: list[httpx.Response]) -> Counter[str]:
    return Counter(
        x["status"] for a in answers if a.status_code == 200 for x in a.json()["results"]
    )


def test_half_a_burst_through_each_of_two_processes_at_once_is_still_held(
    service: Service, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    """12 positives from the bank about one person through each of two processes at
    once: 24 together, past the limit of 12. One after the other the second batch is
    held; at once it must be too: never 24 positives counting."""
    bodies = [{"records": positives(service, f"P{n}", BURST_LIMIT)} for n in range(2)]
    found = statuses(through_two_processes(service, sessions, clock, bodies))
    assert found["created"] <= BURST_LIMIT, found


def test_a_new_identity_fed_by_two_sources_through_two_processes_at_once_is_held(
    service: Service, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    """A subject registered today, 7 positives from the bank and 7 from the volunteers'
    organisation through two processes at once: 14 together, past the new-identity
    limit of 12 from all sources (each source alone stays under its burst limit). One
    after the other the second batch is held; at once it must be too."""
    with sessions.begin() as session:
        source = service.world.sources["volunteers"]
        principal = create_principal(
            session, role=Role.SOURCE, name="volunteers", clock=clock, source_id=source.id
        )
        service.keys["volunteers"] = issue_key(session, principal=principal, clock=clock)
    subject = register(service, 7, name="司马 Sima Xinran")["subject_id"]
    bodies = [
        {
            "records": [
                {
                    "source_ref": f"N{sender}-{i}",
                    "subject_id": subject,
                    "record_type": record_type,
                    "occurred_at": (service.now() - timedelta(hours=1 + i)).isoformat(),
                    **extra,
                }
                for i in range(7)
            ]
        }
        for sender, record_type, extra in (
            ("bank", "loan_repaid", {}),
            ("volunteers", "volunteer_service", {"quantity": 2}),  # hours
        )
    ]
    answers = through_two_processes(service, sessions, clock, bodies, ["bank", "volunteers"])
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    found = statuses(answers)
    assert found == Counter({"created": 7, "held": 7}), found
    verified(service)


# --- identities ---------------------------------------------------------------------------


def register(service: Service, sequence: int, name: str = NAME) -> dict[str, Any]:
    identifier = make_resident_id("110105", date(1968, 4, 5), sequence)
    body = {"kind": "person", "identifier": identifier, "name": name, "region": "110105"}
    response = service.call("POST", "/v1/subjects", "registry", json=body)
    assert response.status_code == 201, response.text
    reply: dict[str, Any] = response.json()
    return reply


def resolve(service: Service, flag: str, verb: str, client: httpx.Client | None = None) -> Any:
    return service.call(
        "POST",
        f"/v1/identity-flags/{flag}/{verb}",
        "registry",
        client=client,
        json={"reasons": f"{verb}: checked at the registry"},
    )


def test_an_alias_ended_at_once_is_ended_once(service: Service) -> None:
    register(service, 31)
    flag = register(service, 32)["flags"][0]["flag_id"]
    merged = resolve(service, flag, "merge")
    assert merged.status_code == 200, merged.text
    path = f"/v1/aliases/{merged.json()['alias_id']}/end"

    def end(client: httpx.Client) -> httpx.Response:
        body = {"reasons": "two people after all"}
        return service.call("POST", path, "registry", client=client, json=body)

    responses = race(service, "alias_ends", end)
    resend = service.call("POST", path, "registry", json={"reasons": "again"})
    assert resend.status_code == 200, resend.text
    assert [r.status_code for r in responses] == [200] * CONTENDERS
    assert all(r.json() == resend.json() for r in responses)
    assert count(service.engine, select(func.count()).select_from(AliasEnd)) == 1
    assert entries(service, "subjects_unmerged") == 1
    verified(service)


def _two_at_once(
    service: Service, table: str, attempts: list[Callable[[httpx.Client], httpx.Response]]
) -> list[httpx.Response]:
    """Two different requests raced like :func:`race` races identical ones."""
    lock = threading.Lock()
    queue = list(attempts) * CONTENDERS

    def attempt(client: httpx.Client) -> httpx.Response:
        with lock:
            chosen = queue.pop(0)
        return chosen(client)

    return race(service, table, attempt)


def two_flags_on_one_subject(service: Service, sequence: int) -> tuple[str, str, dict[str, str]]:
    """Three registrations resembling each other (sequence numbers from ``sequence``):
    the third is flagged as a probable duplicate of each of the first two. The first
    two subjects, and the third's flag ids by the subject each names."""
    first = register(service, sequence)["subject_id"]
    second = register(service, sequence + 1)["subject_id"]
    third = register(service, sequence + 2)
    flags = {f["probable_duplicate_of"]: f["flag_id"] for f in third["flags"]}
    assert set(flags) == {first, second}
    return first, second, flags


def test_one_subject_merged_into_two_files_at_once_is_merged_once(service: Service) -> None:
    # The third registration resembles both earlier ones: two flags on one subject.
    first, second, flags = two_flags_on_one_subject(service, 41)
    responses = _two_at_once(
        service,
        "subject_aliases",
        [
            lambda c: resolve(service, flags[first], "merge", c),
            lambda c: resolve(service, flags[second], "merge", c),
        ],
    )
    assert {r.status_code for r in responses} <= {200, 409}, [r.text for r in responses]
    aliases = count(service.engine, select(func.count()).select_from(SubjectAlias))
    assert aliases == 1, "one subject read into two files at once"
    verified(service)


def test_one_subject_merged_and_voided_at_once_is_not_both(service: Service) -> None:
    first, second, flags = two_flags_on_one_subject(service, 51)
    responses = _two_at_once(
        service,
        "identity_resolutions",
        [
            lambda c: resolve(service, flags[first], "merge", c),
            lambda c: resolve(service, flags[second], "void", c),
        ],
    )
    assert {r.status_code for r in responses} <= {200, 409}, [r.text for r in responses]
    merged = entries(service, "subjects_merged")
    voided = entries(service, "identity_voided")
    assert merged + voided == 1, (merged, voided)
    verified(service)


# --- backfill runs ------------------------------------------------------------------------


def test_approvals_at_once_are_one_run_each(
    service: Service, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    operator = add_key(service, sessions, clock, Role.OPERATOR)
    body = {
        "source": "bank",
        "occurred_from": "2019-01-01T00:00:00Z",
        "occurred_until": "2025-01-01T00:00:00Z",
        "expected_records": 5000,
    }

    def approve(client: httpx.Client) -> httpx.Response:
        return service.call("POST", "/v1/backfill-runs", operator, client=client, json=body)

    responses = race(service, "backfill_runs", approve)
    assert [r.status_code for r in responses] == [201] * CONTENDERS
    ids = {r.json()["run_id"] for r in responses}
    assert len(ids) == CONTENDERS
    listed = service.call("GET", "/v1/backfill-runs", operator).json()
    assert sorted(run["run_id"] for run in listed) == sorted(ids)
    assert count(service.engine, select(func.count()).select_from(BackfillRun)) == CONTENDERS
    assert entries(service, "backfill_approved") == CONTENDERS
    verified(service)


def test_batches_under_one_run_through_two_processes_exempt_at_most_its_volume(
    service: Service, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    operator = add_key(service, sessions, clock, Role.OPERATOR)
    expected = 20
    approved = service.call(
        "POST",
        "/v1/backfill-runs",
        operator,
        json={
            "source": "bank",
            "occurred_from": "2019-01-01T00:00:00Z",
            "occurred_until": service.now().isoformat(),
            "expected_records": expected,
        },
    )
    assert approved.status_code == 201, approved.text
    run = approved.json()["run_id"]
    # A batch about each person, each alone within the run's volume.
    bodies = [
        {"backfill_run": run, "records": positives(service, f"K{i}", expected, i)} for i in range(2)
    ]
    answers = through_two_processes(service, sessions, clock, bodies)
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    exempted = count(service.engine, select(func.coalesce(func.sum(BackfillDelivery.exempted), 0)))
    listed = service.call("GET", "/v1/backfill-runs", operator).json()
    assert listed[0]["exempted"] == exempted
    assert exempted <= expected, f"{exempted} exempted under a run of {expected}"
    verified(service)


# --- suspensions --------------------------------------------------------------------------


def test_suspensions_of_one_source_at_once_suspend_it_once(
    service: Service, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    operator = add_key(service, sessions, clock, Role.OPERATOR)
    body = {"reason": "suspected_bribery"}

    def suspend(client: httpx.Client) -> httpx.Response:
        path = "/v1/sources/bank/suspension"
        return service.call("POST", path, operator, client=client, json=body)

    responses = race(service, "source_suspensions", suspend)
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * (CONTENDERS - 1) + [201], [r.text for r in responses]
    assert len({r.json()["suspended_at"] for r in responses}) == 1
    assert count(service.engine, select(func.count()).select_from(SourceSuspension)) == 1
    assert entries(service, "source_suspended") == 1
    verified(service)
