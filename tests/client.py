"""The one API under test: an application on the test's store, a small world, and a key
for each role (see :func:`open_api`; the ``api`` fixture in ``conftest.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, create_relying_party, issue_key
from credence.access.policy import Role
from credence.api.app import create_app
from credence.clock import FixedClock
from credence.context import Context
from credence.settings import Settings
from tests.world import World


@dataclass
class Api:
    """A client of the application, the world it was built on, and a key per name."""

    client: TestClient
    world: World
    keys: dict[str, str]
    clock: FixedClock

    def call(self, method: str, path: str, role: str | None = None, **kw: Any) -> Any:
        """``method path`` as ``role`` (by the key's name), or without a key."""
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        headers |= kw.pop("headers", {})
        return self.client.request(method, path, headers=headers, **kw)

    def get(self, path: str, role: str | None = None, **kw: Any) -> Any:
        return self.call("GET", path, role, **kw)


def open_api(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    world: World,
    tmp_path: Path,
) -> Api:
    """The application on ``engine``, with a relying party ("air", registered for air
    travel) and keys named bank, court, traffic and registry (sources), airline (the
    relying party), subject and other (the world's first two people), operator and
    reviewer."""
    settings = Settings(
        db_url=str(engine.url),
        max_body_bytes=200_000,
        max_batch_records=100,
        log_key_path=str(tmp_path / "log.key"),
    )
    ctx = Context(settings=settings, engine=engine, sessions=sessions, clock=clock)
    keys: dict[str, str] = {}
    with sessions.begin() as session:
        airline = create_relying_party(
            session, code="air", name="Sky Airlines", services=["air_travel"], clock=clock
        )
        links: dict[str, tuple[Role, dict[str, int]]] = {
            "bank": (Role.SOURCE, {"source_id": world.sources["bank"].id}),
            "court": (Role.SOURCE, {"source_id": world.sources["court"].id}),
            "traffic": (Role.SOURCE, {"source_id": world.sources["traffic_police"].id}),
            "registry": (Role.SOURCE, {"source_id": world.sources["civil_registry"].id}),
            "airline": (Role.RELYING_PARTY, {"party_id": airline.id}),
            "subject": (Role.SUBJECT, {"subject_id": world.people[0].id}),
            "other": (Role.SUBJECT, {"subject_id": world.people[1].id}),
            "operator": (Role.OPERATOR, {}),
            "reviewer": (Role.REVIEWER, {}),
        }
        for name, (role, link) in links.items():
            principal = create_principal(session, role=role, name=name, clock=clock, **link)
            keys[name] = issue_key(session, principal=principal, clock=clock)
    return Api(TestClient(create_app(ctx), raise_server_exceptions=False), world, keys, clock)


def assert_envelope(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    error: dict[str, Any] = body["error"]
    return error
