"""No stall: decisions beside ordinary writes never freeze the server.

A decision's writes and an ordinary request's commit must never wait for each other on
the event loop (on SQLite that was a 30 s freeze: the loop waited in SQLite's busy
handler for a write lock held by a request that could only commit after its response,
which the same loop had to send). 8 clients ask for decisions while 2 register
subjects, add statements and issue keys, for 10 s, against a real ``credence serve``
on SQLite and PostgreSQL: no request takes 5 s or more, and ``/v1/health``, asked every
100 ms, answers within 1 s throughout. A correctness check with a wide margin, not a
speed target."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock, SystemClock
from credence.decisions.tables import Inquiry
from credence.ledger.tables import Subject
from tests.server import Keys, Server, keyed_world, own_records
from tests.world import person_id

SECONDS = 10.0

#: What each request must get: every one succeeds (a registration of a number already
#: registered, which a retried request would be, gets 200).
OK = frozenset({200})
CREATED = frozenset({201})
REGISTERED = frozenset({200, 201})


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


class Load:
    def __init__(self, url: str, k: Keys, own_record: str) -> None:
        self.url = url
        self.k = k
        self.own_record = own_record
        self.stop = threading.Event()
        self.slowest: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.serial = itertools.count(500)

    def timed(
        self,
        kind: str,
        accepted: frozenset[int],
        call: Callable[..., httpx.Response],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Make a request, timing it; a status not in ``accepted`` is a failure."""
        started = time.monotonic()
        try:
            response = call(*args, **kwargs)
            ok = response.status_code in accepted
            what = f"{kind}: {response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            ok, what = False, f"{kind}: {type(exc).__name__}"
        took = time.monotonic() - started
        with self.lock:
            self.slowest[kind] = max(self.slowest.get(kind, 0.0), took)
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if not ok:
                self.failures.append(what)

    def decisions(self) -> None:
        people = self.k.world.people
        with httpx.Client(base_url=self.url, timeout=60) as c:
            for i in itertools.count():
                if self.stop.is_set():
                    return
                body = {"subject_id": people[i % len(people)].public_id, "service": "air_travel"}
                self.timed(
                    "decision",
                    OK,
                    c.post,
                    "/v1/decisions",
                    json=body,
                    headers=self.k.auth("party"),
                )

    def writes(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as c:
            while not self.stop.is_set():
                n = next(self.serial)
                self.timed(
                    "registration",
                    REGISTERED,
                    c.post,
                    "/v1/subjects",
                    json={"kind": "person", "identifier": person_id(n), "name": "Load"},
                    headers=self.k.auth("registry"),
                )
                self.timed(
                    "statement",
                    CREATED,
                    c.post,
                    f"/v1/records/{self.own_record}/statement",
                    json={"text": f"statement {n}"},
                    headers=self.k.auth("subject"),
                )
                self.timed(
                    "key issue",
                    CREATED,
                    c.post,
                    "/v1/keys",
                    json={"role": "reviewer", "name": f"reviewer {n}"},
                    headers=self.k.auth("operator"),
                )
                # Entries arrived: asking for the log's head signs a checkpoint.
                self.timed("checkpoint", OK, c.get, "/v1/log/checkpoint")

    def health(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as c:
            while not self.stop.is_set():
                self.timed("health", OK, c.get, "/v1/health")
                time.sleep(0.1)


def test_decisions_beside_writes_never_stall(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    k = keyed_world(sessions, clock, people=6)
    own = own_records(sessions, k, SystemClock().now())["own"]
    server = Server(_url(engine), tmp_path).start()
    try:
        load = Load(server.url, k, own)
        threads = [threading.Thread(target=load.decisions) for _ in range(8)]
        threads += [threading.Thread(target=load.writes) for _ in range(2)]
        threads.append(threading.Thread(target=load.health))
        for t in threads:
            t.start()
        time.sleep(SECONDS)
        load.stop.set()
        for t in threads:
            t.join(60)
    finally:
        server.stop()
    assert not load.failures, (len(load.failures), load.failures[:10])
    # Every registration made a subject of its own (numbers a test world never uses).
    with sessions() as session:
        registered = session.scalar(
            select(func.count()).select_from(Subject).where(Subject.name == "Load")
        )
    assert registered == load.counts["registration"], (registered, load.counts)
    for kind in ("decision", "registration", "statement", "key issue", "checkpoint", "health"):
        assert load.counts.get(kind, 0) > 0, (kind, load.counts)
    assert max(load.slowest.values()) < 5.0, load.slowest
    assert load.slowest["health"] < 1.0, load.slowest


def test_a_decision_waiting_for_the_write_lock_does_not_hold_the_server(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    """Another connection holds the store's write lock (SQLite: ``BEGIN IMMEDIATE``;
    PostgreSQL: an exclusive lock on the inquiries table). A decision must wait for it
    to store its inquiry, but the server goes on answering meanwhile; once the lock is
    released the decision is answered, and its inquiry is stored."""
    k = keyed_world(sessions, clock)
    server = Server(_url(engine), tmp_path).start()
    holder = engine.raw_connection()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            body = {"subject_id": k.world.people[1].public_id, "service": "air_travel"}
            assert c.post("/v1/decisions", json=body, headers=k.auth("party")).status_code == 200
            cursor = holder.cursor()
            if engine.dialect.name == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")
            else:
                cursor.execute("LOCK TABLE inquiries IN EXCLUSIVE MODE")
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(c.post, "/v1/decisions", json=body, headers=k.auth("party"))
                time.sleep(0.5)
                started = time.monotonic()
                with httpx.Client(base_url=server.url, timeout=10) as other:
                    assert other.get("/v1/health").status_code == 200
                    assert other.get("/v1/rulebook").status_code == 200
                assert time.monotonic() - started < 1.0
                assert not waiting.done(), "answered before its inquiry could be stored"
                holder.rollback()
                answer = waiting.result(10)
            assert answer.status_code == 200, answer.text
        with sessions() as session:
            stored = session.scalar(
                select(Inquiry.id).where(Inquiry.public_id == answer.json()["decision_id"])
            )
        assert stored is not None
    finally:
        holder.close()
        server.stop()
