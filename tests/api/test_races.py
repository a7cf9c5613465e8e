"""One answer per race: contenders released together get what a sequential resend gets.

Each race is forced twice over. A barrier releases the contenders at once, each with a
client of its own (the ASGI app answers each request on an event loop of its own, in
its own thread, so they do run at the same time); and the test holds the store's lock
on the table they write (:class:`StoreGate`) until every contender has read the store
and waits to write, so all of them decide on the same reading, the worst case for a
"look, then insert". Then:

* identical registrations: one 201, the rest the 200 a resend gets, all naming the
  same subject; one subject, one journal entry;
* retractions of one record: one created, the rest the answer a repeat gets; one
  retraction, one journal entry; of a record that restricts someone (held for a
  reviewer's confirmation), one change held, the rest the 202 a repeat gets, naming it;
* disputes of one record: one 201, the rest the 409 a second dispute gets; exactly one
  open dispute.

On SQLite and PostgreSQL; never a 5xx. :mod:`tests.translog.test_log_privacy` runs these races
again, in this process and against a server process, and checks the logs (no national
identifier or name in any).
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, issue_key
from credence.access.policy import Role
from credence.api.app import create_app
from credence.clock import FixedClock
from credence.context import Context
from credence.disputes.tables import Dispute
from credence.identifiers import make_resident_id
from credence.journal import JournalEntry
from credence.ledger.lifting import PendingChange
from credence.ledger.tables import Retraction, Subject
from credence.settings import Settings
from tests.world import World, build_world

#: How many requests race in each test.
CONTENDERS = 5


@dataclass
class Service:
    """A world behind the API, and how to reach it: ``client()`` makes a client of its
    own for one contender (in process, or over HTTP to a server process)."""

    engine: Engine
    world: World
    keys: dict[str, str]
    client: Callable[[], httpx.Client]
    now: Callable[[], datetime]
    #: Clients made by ``call``, closed at the end.
    _clients: list[httpx.Client] = field(default_factory=list)

    def call(
        self,
        method: str,
        path: str,
        role: str | None = None,
        client: httpx.Client | None = None,
        **kw: Any,
    ) -> httpx.Response:
        if client is None:
            client = self.client()
            self._clients.append(client)
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return client.request(method, path, headers=headers | kw.pop("headers", {}), **kw)

    def close(self) -> None:
        for client in self._clients:
            client.close()


def issue_keys(sessions: sessionmaker[Session], world: World, clock: FixedClock) -> dict[str, str]:
    """Keys for the civil registry, the bank, the court and the first person."""
    keys: dict[str, str] = {}
    links: dict[str, tuple[Role, dict[str, int]]] = {
        "registry": (Role.SOURCE, {"source_id": world.sources["civil_registry"].id}),
        "bank": (Role.SOURCE, {"source_id": world.sources["bank"].id}),
        "court": (Role.SOURCE, {"source_id": world.sources["court"].id}),
        "subject": (Role.SUBJECT, {"subject_id": world.people[0].id}),
    }
    with sessions.begin() as session:
        for name, (role, link) in links.items():
            principal = create_principal(session, role=role, name=name, clock=clock, **link)
            keys[name] = issue_key(session, principal=principal, clock=clock)
    return keys


class RunningClock:
    """A clock that runs from ``start`` as time passes: contenders read different
    instants, in the order they read them, as on a server (a fixed clock would give all
    of them the same instant and hide what depends on the order)."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.started = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.started)


@pytest.fixture
def service(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock
) -> Iterator[Service]:
    """The ASGI app in this process, on the test's store, with a running clock."""
    world = build_world(sessions, clock, people=2)
    keys = issue_keys(sessions, world, clock)
    settings = Settings(db_url=str(engine.url))
    running = RunningClock(clock.now())
    ctx = Context(settings=settings, engine=engine, sessions=sessions, clock=running)
    app = create_app(ctx)
    served = Service(
        engine,
        world,
        keys,
        lambda: TestClient(app, raise_server_exceptions=False),
        running.now,
    )
    yield served
    served.close()


# --- forcing a race ----------------------------------------------------------------------


class StoreGate:
    """Holds the store's write lock on ``table`` while contenders read, then lets go.

    PostgreSQL: ``LOCK TABLE … IN EXCLUSIVE MODE`` (reads pass, writes wait), released
    once ``expected`` of the test's connections wait for a lock (or after 10 s).
    SQLite: ``BEGIN IMMEDIATE`` on a connection of its own (readers pass, writers wait
    in SQLite's busy handler), released after ``settle`` seconds, as SQLite cannot say
    who waits.
    """

    def __init__(self, engine: Engine, table: str, *, settle: float = 1.0) -> None:
        self.engine = engine
        self.table = table
        self.settle = settle
        self.waited: int | None = None

    @contextmanager
    def held(self, expected: int) -> Iterator[Callable[[], None]]:
        """Hold the lock; the block calls the function it is given once the contenders
        are on their way, which returns when they are all waiting (or it gave up)."""
        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database
            assert database
            holder = sqlite3.connect(database, timeout=30, isolation_level=None)
            try:
                holder.execute("BEGIN IMMEDIATE")
                yield lambda: time.sleep(self.settle)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            return
        app = self.engine.url.query.get("application_name")
        with self.engine.connect() as conn:
            conn.execute(text(f'LOCK TABLE "{self.table}" IN EXCLUSIVE MODE'))

            def wait() -> None:
                deadline = time.monotonic() + 10
                with self.engine.connect() as watcher:
                    while time.monotonic() < deadline:
                        self.waited = watcher.scalar(
                            text(
                                "SELECT count(*) FROM pg_stat_activity "
                                "WHERE application_name = :app AND wait_event_type = 'Lock'"
                            ),
                            {"app": app},
                        )
                        watcher.rollback()  # pg_stat_activity is read once per transaction
                        if self.waited is not None and self.waited >= expected:
                            return
                        time.sleep(0.02)

            try:
                yield wait
            finally:
                conn.rollback()


def race(
    service: Service, table: str, attempt: Callable[[httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """Run ``attempt`` in :data:`CONTENDERS` threads released together by a barrier,
    each with its own client, while a :class:`StoreGate` holds ``table``."""
    clients = [service.client() for _ in range(CONTENDERS)]
    barrier = threading.Barrier(CONTENDERS + 1)
    answers: list[httpx.Response | BaseException | None] = [None] * CONTENDERS

    def contender(i: int) -> None:
        barrier.wait()
        try:
            answers[i] = attempt(clients[i])
        except BaseException as exc:  # reported below, with the others' answers
            answers[i] = exc

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(CONTENDERS)]
    gate = StoreGate(service.engine, table)
    try:
        with gate.held(CONTENDERS) as all_waiting:
            for thread in threads:
                thread.start()
            barrier.wait()
            all_waiting()
        for thread in threads:
            thread.join(60)
    finally:
        for client in clients:
            client.close()
    assert not any(t.is_alive() for t in threads), "a contender is still waiting after 60 s"
    if gate.waited is not None:  # PostgreSQL: the race was forced (all read, then wrote)
        assert gate.waited == CONTENDERS, f"only {gate.waited} contenders waited to write"
    failed = [a for a in answers if not isinstance(a, httpx.Response)]
    assert not failed, failed
    responses = [a for a in answers if isinstance(a, httpx.Response)]
    assert all(r.status_code < 500 for r in responses), [(r.status_code, r.text) for r in responses]
    return responses


def new_person(rng: random.Random | None = None) -> tuple[str, str]:
    """A valid resident identity number and a name, both unlikely to appear anywhere
    else (a log scan looks for them)."""
    rng = rng or random.Random()
    birth = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 50))
    identifier = make_resident_id("110105", birth, rng.randrange(1000))
    given = "".join(rng.choice("bcdfghjklmnpqrstwxz") + rng.choice("aeiou") for _ in range(4))
    return identifier, f"Ouyang {given.capitalize()}"


def loan_default(service: Service, ref: str) -> str:
    """A loan default on the first person's file, from the bank; its record id."""
    record = {
        "source_ref": ref,
        "subject_id": service.world.people[0].public_id,
        "record_type": "loan_default",
        "occurred_at": (service.now() - timedelta(days=10)).isoformat(),
        "decision_ref": f"REG-{ref}",
    }
    response = service.call("POST", "/v1/records", "bank", json={"records": [record]})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["status"] == "created", result
    return str(result["record_id"])


def count(engine: Engine, query: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


# --- the races ----------------------------------------------------------------------------


def race_registration(service: Service, identifier: str, name: str) -> None:
    body = {"kind": "person", "identifier": identifier, "name": name}

    def register(client: httpx.Client) -> httpx.Response:
        return service.call("POST", "/v1/subjects", "registry", client=client, json=body)

    responses = race(service, "subjects", register)
    resend = service.call("POST", "/v1/subjects", "registry", json=body)
    assert resend.status_code == 200, resend.text
    assert sorted(r.status_code for r in responses) == [200] * (CONTENDERS - 1) + [201]
    winner = next(r for r in responses if r.status_code == 201).json()
    assert winner["created"] is True
    for loser in (r for r in responses if r.status_code == 200):
        assert loser.json() == resend.json()  # what a sequential resend gets
    assert resend.json() == {**winner, "created": False}
    engine = service.engine
    assert count(engine, select(func.count()).where(Subject.identifier == identifier)) == 1
    subject_id = select(Subject.id).where(Subject.identifier == identifier).scalar_subquery()
    registered = select(func.count()).where(
        JournalEntry.kind == "subject_registered", JournalEntry.subject_id == subject_id
    )
    assert count(engine, registered) == 1


def race_retraction(service: Service, ref: str) -> None:
    record = loan_default(service, ref)
    path = f"/v1/records/{record}/retraction"
    body = {"reason": "sent to the wrong file"}

    def retract(client: httpx.Client) -> httpx.Response:
        return service.call("POST", path, "bank", client=client, json=body)

    responses = race(service, "retractions", retract)
    repeat = service.call("POST", path, "bank", json=body)
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["created"] is False
    assert [r.status_code for r in responses] == [200] * CONTENDERS
    created = [r.json() for r in responses if r.json()["created"]]
    assert len(created) == 1, [r.json() for r in responses]
    for loser in (r for r in responses if not r.json()["created"]):
        assert loser.json() == repeat.json()  # what a sequential repeat gets
    assert repeat.json() == {**created[0], "created": False}
    engine = service.engine
    assert count(engine, select(func.count()).select_from(Retraction)) == 1
    assert count(engine, select(func.count()).where(JournalEntry.kind == "retraction")) == 1


def race_held_retraction(service: Service, ref: str) -> None:
    record = {
        "source_ref": ref,
        "subject_id": service.world.people[0].public_id,
        "record_type": "judgment_default",
        "occurred_at": (service.now() - timedelta(days=10)).isoformat(),
        "decision_ref": f"(2026)Zhi-{ref}",
    }
    sent = service.call("POST", "/v1/records", "court", json={"records": [record]})
    assert sent.status_code == 200, sent.text
    path = f"/v1/records/{sent.json()['results'][0]['record_id']}/retraction"
    body = {"reason": "entered against the wrong person"}

    def retract(client: httpx.Client) -> httpx.Response:
        return service.call("POST", path, "court", client=client, json=body)

    responses = race(service, "pending_changes", retract)
    repeat = service.call("POST", path, "court", json=body)
    assert repeat.status_code == 202, repeat.text
    assert repeat.json()["created"] is False
    assert [r.status_code for r in responses] == [202] * CONTENDERS
    created = [r.json() for r in responses if r.json()["created"]]
    assert len(created) == 1, [r.json() for r in responses]
    for loser in (r for r in responses if not r.json()["created"]):
        assert loser.json() == repeat.json()  # what a sequential repeat gets
    assert repeat.json() == {**created[0], "created": False}
    engine = service.engine
    assert count(engine, select(func.count()).select_from(PendingChange)) == 1
    held = select(func.count()).where(JournalEntry.kind == "pending_change_requested")
    assert count(engine, held) == 1
    assert count(engine, select(func.count()).select_from(Retraction)) == 0


def race_dispute(service: Service, ref: str) -> None:
    record = loan_default(service, ref)
    body = {"record_id": record, "reason": "I repaid this loan on time."}

    def dispute(client: httpx.Client) -> httpx.Response:
        return service.call("POST", "/v1/disputes", "subject", client=client, json=body)

    responses = race(service, "disputes", dispute)
    again = service.call("POST", "/v1/disputes", "subject", json=body)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "dispute_already_open"
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (CONTENDERS - 1), [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 201).json()
    assert again.json()["error"]["details"]["dispute_id"] == winner["dispute_id"]
    for loser in (r for r in responses if r.status_code == 409):
        assert loser.json() == again.json()  # what a sequential second dispute gets
    engine = service.engine
    assert count(engine, select(func.count()).select_from(Dispute)) == 1
    assert count(engine, select(func.count()).where(JournalEntry.kind == "dispute_opened")) == 1
    listed = service.call("GET", "/v1/disputes", "subject")
    assert [d["dispute_id"] for d in listed.json()] == [winner["dispute_id"]]


def test_identical_registrations_at_once_make_one_subject(service: Service) -> None:
    race_registration(service, *new_person())


def test_retractions_of_one_record_at_once_make_one_retraction(service: Service) -> None:
    race_retraction(service, "L-RACE")


def test_held_retractions_of_one_record_at_once_hold_one_change(service: Service) -> None:
    race_held_retraction(service, "J-RACE")


def test_disputes_of_one_record_at_once_open_one_dispute(service: Service) -> None:
    race_dispute(service, "L-RACE")


def test_a_new_dispute_after_a_verified_answer_is_one_dispute_too(service: Service) -> None:
    # The record's second dispute (with new information, after the first was answered
    # verified) is raced like the first: one opens, the rest get the same 409.
    record = loan_default(service, "L-TWICE")
    first = service.call(
        "POST", "/v1/disputes", "subject", json={"record_id": record, "reason": "Not mine."}
    )
    assert first.status_code == 201, first.text
    answer = service.call(
        "POST",
        f"/v1/disputes/{first.json()['dispute_id']}/answer",
        "bank",
        json={"outcome": "verified", "explanation": "The contract is signed."},
    )
    assert answer.status_code == 200, answer.text
    body = {"record_id": record, "reason": "Not mine.", "new_information": "A police report."}

    def dispute(client: httpx.Client) -> httpx.Response:
        return service.call("POST", "/v1/disputes", "subject", client=client, json=body)

    responses = race(service, "disputes", dispute)
    assert sorted(r.status_code for r in responses) == [201] + [409] * (CONTENDERS - 1)
    codes = {r.json()["error"]["code"] for r in responses if r.status_code == 409}
    assert codes == {"dispute_already_open"}
    assert count(service.engine, select(func.count()).select_from(Dispute)) == 2
