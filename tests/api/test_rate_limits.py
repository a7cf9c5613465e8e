"""Rate limits on failed authentication and identifier look-ups, over real HTTP.

Each test starts ``credence serve`` (uvicorn, one process) on a free loopback port, on
SQLite and on PostgreSQL, with small limits and a short window so that the window can
be waited out. Every request comes from 127.0.0.1; where a test needs several client
addresses, the server trusts 127.0.0.1 as a proxy and the test names the client in
``X-Forwarded-For``, as a proxy would.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, create_relying_party, issue_key
from credence.access.policy import Role
from credence.clock import FixedClock
from tests.server import Server as RealServer
from tests.world import build_world, person_id

LIMIT = 5
"""Failed authentications and look-ups allowed per window, in these tests."""
WINDOW = 4.0
"""The window, in seconds: six requests in a row take far less."""


@dataclass
class Server:
    url: str
    keys: dict[str, str]
    subject_id: str
    http: httpx.Client

    def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        client: str | None = None,
        json: Any = None,
        http: httpx.Client | None = None,
    ) -> httpx.Response:
        headers = {}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if client is not None:
            headers["X-Forwarded-For"] = client
        return (http or self.http).request(method, path, headers=headers, json=json)

    def decide(self, key: str, client: str | None = None, **subject: str) -> httpx.Response:
        return self.call(
            "POST",
            "/v1/decisions",
            key=key,
            client=client,
            json={"service": "air_travel", **subject},
        )


@contextmanager
def serving(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path, **settings: str
) -> Iterator[Server]:
    """``credence serve`` on the test's store, with ``settings`` (CREDENCE_<NAME>)."""
    clock = FixedClock(datetime.now(UTC))
    world = build_world(sessions, clock)
    keys: dict[str, str] = {}
    with sessions.begin() as session:
        airline = create_relying_party(
            session, code="air", name="Sky Airlines", services=["air_travel"], clock=clock
        )
        for name in ("airline", "airline2", "airline3"):
            principal = create_principal(
                session, role=Role.RELYING_PARTY, name=name, party_id=airline.id, clock=clock
            )
            keys[name] = issue_key(session, principal=principal, clock=clock)
    env = {
        "CREDENCE_RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
        **{f"CREDENCE_{name.upper()}": value for name, value in settings.items()},
    }
    server = RealServer(engine.url.render_as_string(hide_password=False), tmp_path, env)
    try:
        server.start(timeout=60)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            yield Server(server.url, keys, world.people[0].public_id, http)
    finally:
        server.stop()


def wrong_key() -> str:
    return f"cr_rp_{secrets.token_hex(16)}"


def assert_too_many(response: httpx.Response, *keys: str) -> int:
    """A 429 in the error envelope, with Retry-After in whole seconds; returns it."""
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == "too_many_requests"
    for key in keys:
        assert key not in response.text
        assert key[-12:] not in response.text
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= math.ceil(WINDOW)
    return retry_after


def test_failed_authentication_is_limited_per_address_and_per_key(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with serving(
        engine,
        sessions,
        tmp_path,
        failed_auth_limit=str(LIMIT),
        lookup_limit="0",
        trusted_proxies="127.0.0.1",
    ) as server:
        right = server.keys["airline"]
        a, b = "203.0.113.1", "203.0.113.2"
        # One address: LIMIT wrong keys are answered 401, then every keyed request is
        # refused, the right key included (a guess refused cannot be checked).
        guesses = [wrong_key() for _ in range(LIMIT + 1)]
        assert [
            server.call("GET", "/v1/me", key=k, client=a).status_code for k in guesses[:-1]
        ] == [401] * LIMIT
        assert_too_many(server.call("GET", "/v1/me", key=guesses[-1], client=a), guesses[-1])
        assert_too_many(server.decide(right, a, subject_id=server.subject_id))
        # ... requests without a key still pass (they cannot guess one) ...
        assert server.call("GET", "/v1/health", client=a).status_code == 200
        # ... and another address is not affected.
        assert server.decide(right, b, subject_id=server.subject_id).status_code == 200

        # The direct decision path (a small JSON body, a bearer key) is covered too.
        c = "198.51.100.7"
        statuses = [server.decide(wrong_key(), c, subject_id=server.subject_id).status_code]
        statuses += [
            server.decide(wrong_key(), c, subject_id=server.subject_id).status_code
            for _ in range(LIMIT)
        ]
        assert statuses == [401] * LIMIT + [429]

        # One key from many addresses: the key is limited on its own.
        revoked_like = wrong_key()
        seen = [
            server.call("GET", "/v1/me", key=revoked_like, client=f"192.0.2.{n}").status_code
            for n in range(LIMIT + 1)
        ]
        assert seen == [401] * LIMIT + [429]

        # A burst: 1,500 wrong keys from one address over 8 connections at once. Only
        # the limit and what was already under way get a 401, per window.
        burst_address = "198.51.100.99"
        counts: Counter[int] = Counter()
        lock = threading.Lock()
        started = time.monotonic()

        def hammer() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                for _ in range(1500 // 8):
                    status = server.call(
                        "GET", "/v1/me", key=wrong_key(), client=burst_address, http=http
                    ).status_code
                    with lock:
                        counts[status] += 1

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        assert set(counts) <= {401, 429}, counts
        windows = 1 + int(elapsed // (WINDOW * 0.9))
        assert counts[401] <= (LIMIT + 8) * windows, (counts, elapsed)
        assert counts[429] >= 1500 // 8 * 8 - (LIMIT + 8) * windows

        # Once the window has passed, the address is served again.
        time.sleep(WINDOW + 0.2)
        assert server.decide(right, a, subject_id=server.subject_id).status_code == 200
        assert server.decide(right, c, subject_id=server.subject_id).status_code == 200


def test_forwarded_for_is_ignored_without_a_trusted_proxy(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with serving(
        engine, sessions, tmp_path, failed_auth_limit=str(LIMIT), lookup_limit="0"
    ) as server:
        statuses = [
            server.call("GET", "/v1/me", key=wrong_key(), client=f"192.0.2.{n}").status_code
            for n in range(LIMIT + 2)
        ]
        # Every request counts against 127.0.0.1, whatever it claims to come from.
        assert statuses == [401] * LIMIT + [429, 429]
        refused = server.decide(server.keys["airline"], "192.0.2.200", subject_id=server.subject_id)
        retry_after = assert_too_many(refused)
        time.sleep(retry_after + 0.1)
        assert (
            server.decide(server.keys["airline"], subject_id=server.subject_id).status_code == 200
        )


def test_identifier_lookups_are_limited_per_key_and_per_address(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with serving(
        engine,
        sessions,
        tmp_path,
        failed_auth_limit="0",
        lookup_limit=str(LIMIT),
        trusted_proxies="127.0.0.0/8",
    ) as server:
        ident = {"identifier": person_id(0)}
        first, second, third = (server.keys[k] for k in ("airline", "airline2", "airline3"))
        # One key, several addresses: look-ups and decisions by identifier share the key's
        # allowance; the router's look-up and the decision paths are all counted.
        seen = [
            server.call(
                "POST", "/v1/subjects/lookup", key=first, client=f"192.0.2.{n}", json=ident
            ).status_code
            for n in range(3)
        ]
        seen += [server.decide(first, f"192.0.2.{n}", **ident).status_code for n in range(3, 5)]
        assert seen == [200] * LIMIT
        assert_too_many(server.decide(first, "192.0.2.9", **ident), first)
        assert_too_many(
            server.call("POST", "/v1/subjects/lookup", key=first, client="192.0.2.9", json=ident)
        )
        # Decisions by subject id are no look-ups: not limited.
        by_id = [
            server.decide(first, "192.0.2.9", subject_id=server.subject_id).status_code
            for _ in range(LIMIT + 2)
        ]
        assert by_id == [200] * (LIMIT + 2)

        # One address, several keys: the address is limited too.
        d = "203.0.113.50"
        seen = [server.decide(second, d, **ident).status_code for _ in range(3)]
        seen += [server.decide(third, d, **ident).status_code for _ in range(2)]
        assert seen == [200] * LIMIT
        assert_too_many(server.decide(third, d, **ident))
        # An identifier spelt with escapes is still a look-up.
        with httpx.Client(base_url=server.url, timeout=30) as http:
            sneaky = http.post(
                "/v1/decisions",
                content=b'{"service": "air_travel", "\\u0069dentifier": "'
                + person_id(0).encode()
                + b'"}',
                headers={
                    "Authorization": f"Bearer {third}",
                    "X-Forwarded-For": d,
                    "Content-Type": "application/json",
                },
            )
        assert_too_many(sneaky)

        # Once the window has passed, look-ups are served again.
        time.sleep(WINDOW + 0.2)
        assert server.decide(first, "192.0.2.9", **ident).status_code == 200
        assert server.decide(third, d, **ident).status_code == 200
