"""Acknowledged means committed: no write is answered before its transaction commits.

Two tests from the outside, on SQLite and PostgreSQL, over every kind of acknowledged
write (registration, record batch, retraction, dispute, answer, statement, repair,
decision inquiry, key issue, revocation and rotation):

* **The commit is held**: an in-process server whose store commits only when the test
  lets it (an engine ``commit`` listener that waits on a gate). Each write is sent, the
  test sees its commit begin, and asserts that no answer has arrived while the commit
  is held; then it opens the gate and the answer arrives.
* **Killed after the acknowledgement**: a ``credence serve`` process is sent SIGKILL as
  soon as each write is answered, and the write is in the store afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi.routing import APIRoute
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from credence.access.tables import ApiKey
from credence.api.app import create_app
from credence.api.deps import get_session
from credence.api.routing import CommittingRoute
from credence.clock import FixedClock, SystemClock
from credence.context import Context
from credence.decisions.tables import Inquiry
from credence.disputes.tables import Dispute, DisputeAnswer, Repair, Statement
from credence.ledger.tables import Record, Retraction, Subject
from credence.settings import Settings
from tests.server import Keys, Server, free_port, keyed_world, own_records
from tests.world import person_id


@dataclass
class Write:
    """One kind of acknowledged write: how to send it, and how to find it stored."""

    name: str
    send: Callable[[httpx.Client, dict[str, Any]], httpx.Response]
    stored: Callable[[Session, dict[str, Any]], bool]


def _one(session: Session, statement: Any) -> bool:
    return session.scalar(statement) is not None


def writes(k: Keys) -> list[Write]:
    """Every kind of acknowledged write, in an order where each can use the earlier
    ones' results (kept in the shared dict)."""
    people = k.world.people
    out: list[Write] = []

    def add(name: str, stored: Callable[[Session, dict[str, Any]], bool]) -> Callable[..., Any]:
        def register(send: Callable[[httpx.Client, dict[str, Any]], httpx.Response]) -> Any:
            out.append(Write(name, send, stored))
            return send

        return register

    @add(
        "registration",
        lambda s, st: _one(s, select(Subject.id).where(Subject.public_id == st["subject"])),
    )
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        body = {"kind": "person", "identifier": person_id(70 + len(st)), "name": "Newcomer"}
        r = c.post("/v1/subjects", json=body, headers=k.auth("registry"))
        st["subject"] = r.json().get("subject_id")
        return r

    @add(
        "record batch",
        lambda s, st: _one(s, select(Record.id).where(Record.public_id == st["record"])),
    )
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        body = {
            "records": [
                {
                    "source_ref": f"ack-{time.monotonic_ns()}",
                    "subject_id": people[1].public_id,
                    "record_type": "loan_repaid",
                    "occurred_at": "2026-05-01T00:00:00Z",
                }
            ]
        }
        r = c.post("/v1/records", json=body, headers=k.auth("bank"))
        st["record"] = r.json()["results"][0]["record_id"]
        return r

    @add(
        "retraction",
        lambda s, st: _one(
            s, select(Retraction.id).join(Record).where(Record.public_id == st["record"])
        ),
    )
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        path = f"/v1/records/{st['record']}/retraction"
        return c.post(path, json={"reason": "sent in error"}, headers=k.auth("bank"))

    @add(
        "dispute",
        lambda s, st: _one(s, select(Dispute.id).where(Dispute.public_id == st["dispute"])),
    )
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        body = {"record_id": st["own"], "reason": "I repaid this loan"}
        r = c.post("/v1/disputes", json=body, headers=k.auth("subject"))
        st["dispute"] = r.json().get("dispute_id")
        return r

    @add(
        "answer",
        lambda s, st: _one(
            s, select(DisputeAnswer.id).join(Dispute).where(Dispute.public_id == st["dispute"])
        ),
    )
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        body = {"outcome": "verified", "explanation": "the default is on our books"}
        return c.post(f"/v1/disputes/{st['dispute']}/answer", json=body, headers=k.auth("bank"))

    @add(
        "statement",
        lambda s, st: _one(
            s, select(Statement.id).join(Record).where(Record.public_id == st["own"])
        ),
    )
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        path = f"/v1/records/{st['own']}/statement"
        return c.post(path, json={"text": "I was ill that year"}, headers=k.auth("subject"))

    @add("repair", lambda s, st: _one(s, select(Repair.id).where(Repair.public_id == st["repair"])))
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        body = {"record_id": st["old"], "commitment": "I pay by direct debit now"}
        r = c.post("/v1/repairs", json=body, headers=k.auth("subject"))
        st["repair"] = r.json().get("repair_id")
        return r

    @add(
        "decision inquiry",
        lambda s, st: _one(s, select(Inquiry.id).where(Inquiry.public_id == st["decision"])),
    )
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        body = {"subject_id": people[2].public_id, "service": "air_travel"}
        r = c.post("/v1/decisions", json=body, headers=k.auth("party"))
        st["decision"] = r.json().get("decision_id")
        return r

    @add("key issue", lambda s, st: _one(s, select(ApiKey.id).where(ApiKey.prefix == st["key"])))
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        body = {"role": "reviewer", "name": "second reviewer"}
        r = c.post("/v1/keys", json=body, headers=k.auth("operator"))
        st["key"] = r.json().get("prefix")
        return r

    @add(
        "key rotation",
        lambda s, st: _one(s, select(ApiKey.id).where(ApiKey.prefix == st["rotated"])),
    )
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        r = c.post(f"/v1/keys/{st['key']}/rotation", json={}, headers=k.auth("operator"))
        st["rotated"] = r.json().get("prefix")
        return r

    @add(
        "key revocation",
        lambda s, st: _one(
            s,
            select(ApiKey.id).where(ApiKey.prefix == st["rotated"], ApiKey.revoked_at.is_not(None)),
        ),
    )
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        return c.post(f"/v1/keys/{st['rotated']}/revocation", headers=k.auth("operator"))

    return out


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


# --- the commit is held: no answer until it is released ----------------------------------


class _InProcess:
    """The API served by uvicorn in a thread of the test process, on a free port."""

    def __init__(self, ctx: Context) -> None:
        self.port = free_port()
        config = uvicorn.Config(create_app(ctx), port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_no_write_is_answered_before_its_commit(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    k = keyed_world(sessions, clock)
    state = own_records(sessions, k, clock.now())
    held = threading.Event()  # a commit is waiting at the gate
    gate = threading.Event()
    gate.set()

    @event.listens_for(engine, "commit")
    def _hold(_connection: Any) -> None:
        if not gate.is_set():
            held.set()
            gate.wait(30)

    settings = Settings(db_url=_url(engine), log_key_path=str(tmp_path / "log.key"))
    ctx = Context(settings=settings, engine=engine, sessions=sessions, clock=clock)
    checked = []
    with _InProcess(ctx) as url, httpx.Client(base_url=url, timeout=30) as client:
        pool = ThreadPoolExecutor(1)
        for write in writes(k):
            if write.name == "decision inquiry":
                continue  # written by the direct path's own connection: see the kill test
            held.clear()
            gate.clear()
            try:
                answer = pool.submit(write.send, client, state)
                assert held.wait(10), f"{write.name}: no commit began"
                time.sleep(0.3)
                assert not answer.done(), f"{write.name} was answered before its commit"
            finally:
                gate.set()
            response = answer.result(10)
            assert response.status_code < 300, (write.name, response.text)
            checked.append(write.name)
        pool.shutdown()
    event.remove(engine, "commit", _hold)
    assert len(checked) == len(writes(k)) - 1


# --- killed right after the acknowledgement ------------------------------------------------


def survive_kill_9(
    engine: Engine,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    sent: list[Write],
    state: dict[str, Any],
) -> list[str]:
    """Each write of ``sent`` through a ``credence serve`` process sent SIGKILL as soon
    as the write is answered; each must be in the store afterwards. The names of the
    writes that were, in order."""
    server = Server(_url(engine), tmp_path)
    done = []
    try:
        for write in sent:
            server.start()
            with httpx.Client(base_url=server.url, timeout=30) as client:
                response = write.send(client, state)
                server.kill()  # at once, before anything else can happen
            assert response.status_code < 300, (write.name, response.text)
            with sessions() as session:
                assert write.stored(session, state), f"acknowledged {write.name} was lost"
            done.append(write.name)
    finally:
        server.kill()
    return done


def test_every_acknowledged_write_survives_kill_9(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    k = keyed_world(sessions, clock)
    state = own_records(sessions, k, SystemClock().now())
    survive_kill_9(engine, sessions, tmp_path, writes(k), state)


def test_every_route_with_a_session_commits_before_it_answers(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    """A route added later cannot forget it: every endpoint that is given the request's
    session is served by a CommittingRoute (the tests above show what that promises)."""
    settings = Settings(db_url=_url(engine), log_key_path=str(tmp_path / "log.key"))
    app = create_app(Context(settings=settings, engine=engine, sessions=sessions, clock=clock))
    with_session = [
        route
        for route in _routes(app.routes)
        if isinstance(route, APIRoute)
        and any(d.call is get_session for d in _dependencies(route.dependant))
    ]
    assert len(with_session) > 20
    assert [r.path for r in with_session if not isinstance(r, CommittingRoute)] == []


def _routes(routes: list[Any]) -> list[Any]:
    """Every route, those of included routers too (FastAPI includes them lazily)."""
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        found += [route] if included is None else _routes(included.routes)
    return found


def _dependencies(dependant: Any) -> list[Any]:
    found = list(dependant.dependencies)
    for sub in dependant.dependencies:
        found += _dependencies(sub)
    return found
