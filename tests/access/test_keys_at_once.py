"""Keys take effect at once, in every server process: a key issued through one server
works on the very next request to another, a key revoked through the API or the CLI is
refused by the very next request everywhere, a revocation during a rotation's overlap
cuts both keys, and an expiry must lie in the future. Real ``credence serve`` processes
and the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from tests.server import Keys, Server, keyed_world


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``credence`` command, in a process of its own."""
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-c", "from credence.cli import app; app()", *args, "--db", db_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


class Servers:
    def __init__(self, keys: Keys, a: Server, b: Server) -> None:
        self.k = keys
        self.a = httpx.Client(base_url=a.url, timeout=30)
        self.b = httpx.Client(base_url=b.url, timeout=30)

    def issue(self, via: httpx.Client, **body: object) -> tuple[str, str]:
        body = {"role": "relying_party", "name": "rp", "party": "party"} | body
        r = via.post("/v1/keys", json=body, headers=self.k.auth("operator"))
        assert r.status_code == 201, r.text
        return r.json()["key"], r.json()["prefix"]

    def status(self, on: httpx.Client, key: str) -> tuple[int, int]:
        """What a key gets on the direct decision path and through the router."""
        subject = self.k.world.people[1].public_id
        headers = {"Authorization": f"Bearer {key}"}
        direct = on.post(
            "/v1/decisions", json={"subject_id": subject, "service": "air_travel"}, headers=headers
        )
        routed = on.get(
            f"/v1/subjects/{subject}/score", params={"purpose": "audit"}, headers=headers
        )
        return direct.status_code, routed.status_code

    def accepted(self, key: str) -> bool:
        codes = self.status(self.a, key) + self.status(self.b, key)
        assert len(set(c == 401 for c in codes)) == 1, codes
        return codes[0] != 401


@pytest.fixture
def two(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> Iterator[Servers]:
    keys = keyed_world(sessions, clock)
    a = Server(_url(engine), tmp_path).start()
    b = Server(_url(engine), tmp_path).start()
    try:
        yield Servers(keys, a, b)
    finally:
        a.stop()
        b.stop()


def test_a_key_issued_or_revoked_applies_to_the_next_request_everywhere(
    two: Servers, engine: Engine
) -> None:
    key, prefix = two.issue(two.a)
    assert two.accepted(key)  # issued through A, at once on B (and A)

    revoked = two.a.post(f"/v1/keys/{prefix}/revocation", headers=two.k.auth("operator"))
    assert revoked.status_code == 200, revoked.text
    assert not two.accepted(key)  # revoked through A, refused at once on B (and A)

    other, other_prefix = two.issue(two.b)
    assert two.accepted(other)
    done = cli(_url(engine), "keys", "revoke", other_prefix)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not two.accepted(other)  # revoked by the CLI, refused at once by both servers


@pytest.mark.parametrize("revoke", ["old", "new"])
def test_revoking_during_a_rotation_overlap_cuts_both_keys(
    two: Servers, engine: Engine, revoke: str
) -> None:
    old, old_prefix = two.issue(two.a)
    rotated = two.a.post(
        f"/v1/keys/{old_prefix}/rotation",
        json={"overlap_hours": 1},
        headers=two.k.auth("operator"),
    )
    assert rotated.status_code == 200, rotated.text
    new, new_prefix = rotated.json()["key"], rotated.json()["prefix"]
    assert two.accepted(old)
    assert two.accepted(new)
    done = cli(_url(engine), "keys", "revoke", old_prefix if revoke == "old" else new_prefix)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not two.accepted(old)
    assert not two.accepted(new)
    again = cli(_url(engine), "keys", "revoke", old_prefix)
    assert again.returncode != 0
    assert "already revoked" in again.stdout + again.stderr


def test_an_expiry_must_lie_in_the_future(two: Servers, engine: Engine) -> None:
    for when in ("2020-01-01T00:00:00Z", "2026-06-01T00:00:00Z"):
        r = two.a.post(
            "/v1/keys",
            json={"role": "reviewer", "name": "r", "expires_at": when},
            headers=two.k.auth("operator"),
        )
        assert r.status_code == 422, r.text
        assert "future" in r.json()["error"]["message"]
    for days in ("0", "-3"):
        made = cli(
            _url(engine),
            "keys",
            "create",
            "--role",
            "reviewer",
            "--name",
            "r",
            "--expires-days",
            days,
        )
        assert made.returncode != 0, made.stdout
        assert "cr_" not in made.stdout  # no key was printed, so none was made
    made = cli(
        _url(engine), "keys", "create", "--role", "reviewer", "--name", "r", "--expires-days", "1"
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert made.stdout.strip().startswith("cr_rev_")
