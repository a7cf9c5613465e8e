"""A running server signs a checkpoint soon after entries arrive, and none while
nothing does: a real ``credence serve`` on every backend."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.journal import JournalEntry
from credence.translog import verify
from credence.translog.checkpoints import checkpoints, latest_checkpoint, verify_checkpoint
from credence.translog.keys import load_signer
from tests.server import Server, keyed_world
from tests.world import person_id


def _state(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    """(checkpoints stored, the newest one's size, journal entries)."""
    with sessions() as session:
        stored = checkpoints(session)
        entries = session.scalar(select(func.count()).select_from(JournalEntry)) or 0
    return len(stored), (stored[-1].tree_size if stored else 0), entries


def _wait_until_covered(sessions: sessionmaker[Session], within: float) -> tuple[int, int, int]:
    deadline = time.monotonic() + within
    state = _state(sessions)
    while time.monotonic() < deadline:
        state = _state(sessions)
        if state[0] and state[1] == state[2]:
            return state
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint covered every entry in {within} s: {state}")


def test_the_server_signs_a_checkpoint_while_entries_arrive(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    keys = keyed_world(sessions, clock)
    server = Server(
        engine.url.render_as_string(hide_password=False),
        tmp_path,
        env={"CREDENCE_CHECKPOINT_EVERY_SECONDS": "1"},
    ).start()
    try:
        # What the world wrote before the server started is signed without any request.
        first = _wait_until_covered(sessions, within=10)
        # Nothing arrives: nothing new is signed.
        time.sleep(2.5)
        assert _state(sessions) == first
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for n in (601, 602):
                registered = client.post(
                    "/v1/subjects",
                    headers=keys.auth("registry"),
                    json={"kind": "person", "identifier": person_id(n), "name": "Timer Test"},
                )
                assert registered.status_code == 201, registered.text
        assert _state(sessions)[2] > first[2]
        second = _wait_until_covered(sessions, within=10)
        assert second[0] > first[0]
        assert second[1] == second[2] > first[1]
        # Signed with the server's key: the checkpoint's note opens with it.
        signer, _ = load_signer(tmp_path / "log.key", name="credence.example/log", create=False)
        with sessions() as session:
            newest = latest_checkpoint(session)
            assert newest is not None
            verify_checkpoint(newest.signed_note, signer.public)
            assert verify.verify_log(session, key=signer.public).ok
    finally:
        server.stop()
