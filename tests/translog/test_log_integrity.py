"""What decides is checked: a rulebook whose text was edited does not load and fails
``credence log verify``; entries after the last checkpoint are checked too, and reported
as not yet signed. On every backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from credence.cli.log import app as log_cli
from credence.clock import FixedClock
from credence.errors import RulebookTampered
from credence.journal import EventKind, JournalEntry
from credence.rulebook import store
from credence.translog import verify
from credence.translog.checkpoints import checkpoint
from credence.translog.keys import LogSigner, generate_signer
from credence.translog.tree import clear_cache
from tests.server import Server, keyed_world
from tests.world import World, build_world, rec, submit

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # A parsed rulebook cached by an earlier test (same default text) would hide the
    # stored text: each test starts as a new process would.
    store.clear_cache()
    clear_cache()
    yield
    store.clear_cache()
    clear_cache()


@pytest.fixture
def signer() -> LogSigner:
    return generate_signer("credence.example/log")


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def execute(sessions: sessionmaker[Session], sql: str, **params: Any) -> None:
    with sessions.begin() as session:
        session.execute(text(sql), params)


def tamper_rulebook(sessions: sessionmaker[Session]) -> None:
    """A record type's points -120 become -12; the recorded hash stays."""
    execute(sessions, "UPDATE rulebooks SET text = REPLACE(text, 'points = -120', 'points = -12')")
    with sessions() as session:
        assert "points = -12\n" in (session.scalar(text("SELECT text FROM rulebooks")) or "")


def verify_cli(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CREDENCE_LOG_KEY_PATH", str(tmp_path / "cli.key"))
    return CliRunner().invoke(log_cli, ["verify", "--db", _url(engine)])


# --- (a) a rulebook edition must hash to its recorded SHA-256 ---------------------------


def test_a_tampered_rulebook_does_not_load(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    world = build_world(sessions, clock)
    tamper_rulebook(sessions)
    store.clear_cache()  # as a process started after the edit
    with sessions() as session:
        with pytest.raises(RulebookTampered) as refused:
            store.in_force(session, clock.now())
        assert world.edition.version in refused.value.message
        assert refused.value.status == 503
        with pytest.raises(RulebookTampered):
            store.by_version(session, world.edition.version)


def test_log_verify_names_a_tampered_rulebook_and_its_entry(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = build_world(sessions, clock)
    assert verify_cli(engine, tmp_path, monkeypatch).exit_code == 0
    with sessions() as session:
        published = session.scalar(
            select(JournalEntry.seq).where(JournalEntry.kind == EventKind.RULEBOOK_PUBLISHED.value)
        )
    assert published is not None
    tamper_rulebook(sessions)
    result = verify_cli(engine, tmp_path, monkeypatch)
    assert result.exit_code == 1, result.output
    assert "rulebooks" in result.output
    assert f"rulebook {world.edition.version}" in result.output
    assert f"entry {published}" in result.output


def test_the_api_refuses_to_decide_with_a_tampered_rulebook(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    keys = keyed_world(sessions, clock)
    tamper_rulebook(sessions)
    server = Server(_url(engine), tmp_path).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(2):  # the direct path and its cache, then again
                asked = client.post(
                    "/v1/decisions",
                    headers=keys.auth("party"),
                    json={"subject_id": keys.world.people[0].public_id, "service": "air_travel"},
                )
                assert asked.status_code == 503, asked.text
                error = asked.json()["error"]
                assert error["code"] == "rulebook_tampered"
                assert "integrity check" in error["message"]
            score = client.get(
                f"/v1/subjects/{keys.world.people[0].public_id}/score",
                headers=keys.auth("subject"),
            )
            assert score.status_code == 503, score.text
    finally:
        server.stop()


# --- (b) entries after the last checkpoint ----------------------------------------------


def _more_records(sessions: sessionmaker[Session], world: World, clock: FixedClock) -> None:
    assert submit(
        sessions,
        world,
        "bank",
        clock.now() - DAY,
        rec("late-1", world.people[0], "loan_repaid", clock.now() - 3 * DAY),
        rec("late-2", world.people[1], "loan_repaid", clock.now() - 2 * DAY),
    ) == ["created", "created"]


def _seqs_after(sessions: sessionmaker[Session], size: int) -> list[int]:
    with sessions() as session:
        seqs = session.scalars(select(JournalEntry.seq).order_by(JournalEntry.seq)).all()
    return list(seqs[size:])


def test_entries_after_the_checkpoint_are_reported_unsigned(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    signer: LogSigner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = build_world(sessions, clock)
    with sessions.begin() as session:
        cp = checkpoint(session, signer=signer, at=clock.now())
    _more_records(sessions, world, clock)
    after = _seqs_after(sessions, cp.tree_size)
    assert len(after) == 2
    result = verify_cli(engine, tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert f"2 entries after checkpoint {cp.id} are not yet signed" in result.output


def test_an_edited_entry_after_the_checkpoint_fails(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    signer: LogSigner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = build_world(sessions, clock)
    with sessions.begin() as session:
        cp = checkpoint(session, signer=signer, at=clock.now())
    _more_records(sessions, world, clock)
    target = _seqs_after(sessions, cp.tree_size)[0]
    # The entry's commitment to the row it wrote is edited (its digest's last digit): the
    # record's row no longer matches what its entry says it wrote.
    with sessions() as session:
        listed = session.scalar(text("SELECT rows FROM journal WHERE seq = :s"), {"s": target})
    assert listed is not None
    assert '"records"' in listed
    edited = listed[:-3] + ("0" if listed[-3] != "0" else "1") + listed[-2:]
    execute(sessions, "UPDATE journal SET rows = :r WHERE seq = :s", r=edited, s=target)
    with sessions() as session:
        report = verify.verify_log(session, key=signer.public)
    assert not report.ok
    assert report.first_bad_seq == target
    result = verify_cli(engine, tmp_path, monkeypatch)
    assert result.exit_code == 1, result.output
    assert f"first bad entry: {target}" in result.output
    assert "table records, row" in result.output


def test_a_deleted_entry_after_the_checkpoint_fails(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    signer: LogSigner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = build_world(sessions, clock)
    with sessions.begin() as session:
        cp = checkpoint(session, signer=signer, at=clock.now())
    _more_records(sessions, world, clock)
    last = _seqs_after(sessions, cp.tree_size)[-1]  # the newest: no gap shows it
    execute(sessions, "DELETE FROM journal WHERE seq = :s", s=last)
    result = verify_cli(engine, tmp_path, monkeypatch)
    assert result.exit_code == 1, result.output
    assert "late-2" not in result.output  # a source reference is not echoed
    assert "records" in result.output
