"""The real ``credence`` command, in processes of its own (as a person runs it): each
command loads what it needs (every table, every feature's record endings) by itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock, SystemClock
from tests.disputes.test_disputes import default, open_
from tests.world import build_world


def credence(db_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``credence ARGS --db URL`` in a fresh interpreter."""
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-c", "from credence.cli import app; app()", *args, "--db", db_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
    )


def test_commands_run_in_a_process_of_their_own(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    clock = FixedClock(SystemClock().now())  # the commands run on the system's clock
    world = build_world(sessions, clock)
    dispute = open_(sessions, world, clock, default(sessions, world, clock, "L-1"))
    url = engine.url.render_as_string(hide_password=False)

    def run(*args: str) -> str:
        done = credence(url, tmp_path, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    subject = world.people[0].public_id
    assert dispute.record_id in run("explain", subject)
    listed = json.loads(run("disputes", "list", "--json"))
    assert [d["dispute_id"] for d in listed] == [dispute.dispute_id]
    key = run("keys", "create", "--role", "subject", "--name", "P0", "--subject", subject)
    assert key.startswith("cr_sub_")
    run("keys", "revoke", key[:12])
    assert json.loads(run("keys", "list", "--json"))[0]["status"] == "revoked"
    assert "bank" in run("sources", "list")
    run("parties", "list")
    run("rulebook", "history")
