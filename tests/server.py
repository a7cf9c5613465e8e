"""A real API server in a process of its own, for tests that kill it, load it or run
several at once: ``credence serve`` on a free port of the loopback, against a store the
test built (SQLite file or PostgreSQL schema)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, create_relying_party, issue_key
from credence.access.policy import Role
from credence.clock import Clock
from credence.ledger.tables import Record
from tests.world import World, build_world, rec, submit

#: The services the test relying party may ask about.
SERVICES = ("air_travel", "loan_rate_discount", "community_perks")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """``credence serve`` in a subprocess; :meth:`start` waits until it answers."""

    db_url: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Server:
        env = {
            **os.environ,
            "CREDENCE_DB_URL": self.db_url,
            "CREDENCE_LOG_KEY_PATH": str(self.workdir / "log.key"),
            "CREDENCE_LOG_LEVEL": "warning",
            **self.env,
        }
        log = (self.workdir / f"server-{self.port}.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                sys.executable,
                "-c",
                "from credence.cli import app; app()",
                "serve",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        # Never leave it running behind the failed test (it would hold its port and store).
        self.kill()
        raise RuntimeError(f"the server did not answer in {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no last commit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


@dataclass
class Keys:
    """One key per role of a :func:`keyed_world`."""

    world: World
    keys: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


def keyed_world(sessions: sessionmaker[Session], clock: Clock, *, people: int = 3) -> Keys:
    """:func:`tests.world.build_world` and a key for each role: ``bank``, ``court``,
    ``registry`` (an identity authority), ``party`` (a relying party asking about
    :data:`SERVICES`), ``subject`` (the first person), ``operator`` and ``reviewer``."""
    world = build_world(sessions, clock, people=people)
    keys: dict[str, str] = {}
    with sessions.begin() as session:
        party = create_relying_party(
            session, code="party", name="Party", services=SERVICES, clock=clock
        )
        links: dict[str, tuple[Role, dict[str, Any]]] = {
            "bank": (Role.SOURCE, {"source_id": world.sources["bank"].id}),
            "court": (Role.SOURCE, {"source_id": world.sources["court"].id}),
            "registry": (Role.SOURCE, {"source_id": world.sources["civil_registry"].id}),
            "party": (Role.RELYING_PARTY, {"party_id": party.id}),
            "subject": (Role.SUBJECT, {"subject_id": world.people[0].id}),
            "operator": (Role.OPERATOR, {}),
            "reviewer": (Role.REVIEWER, {}),
        }
        for name, (role, link) in links.items():
            principal = create_principal(session, role=role, name=name, clock=clock, **link)
            keys[name] = issue_key(session, principal=principal, clock=clock)
    return Keys(world, keys)


def own_records(sessions: sessionmaker[Session], k: Keys, now: datetime) -> dict[str, Any]:
    """Records on the subject key's own file, as of the server's ``now``: a recent one
    to dispute and comment on, an older negative one to apply for repair of."""
    me = k.world.people[0]
    submit(
        sessions,
        k.world,
        "bank",
        now - timedelta(days=1),
        rec("own-1", me, "loan_default", now - timedelta(days=30), decision_ref="HCB-7"),
        rec("old-1", me, "credit_card_default", now - timedelta(days=200), decision_ref="HCB-8"),
    )
    with sessions() as session:
        ids = dict(
            session.execute(
                select(Record.source_ref, Record.public_id).where(Record.subject_id == me.id)
            ).all()
        )
    return {"own": ids["own-1"], "old": ids["old-1"]}
