"""Lawful erasure: the retention sweep erases a demo city's expired records, their
content leaves every table (and, on SQLite, the database file and its WAL), the
subject's file lists each erasure, scores as of now do not move, and the log still
verifies. On every backend."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from credence.cli import app as cli
from credence.clock import FixedClock
from credence.context import Context
from credence.disputes import service as disputes
from credence.disputes.schemas import DisputeOut
from credence.errors import NotFound
from credence.journal import EventKind, JournalEntry
from credence.lab.demo import build_demo
from credence.ledger import erasure, subject_file
from credence.ledger import service as ledger
from credence.ledger.tables import ERASED_RECORD_COLUMNS, Record, RecordErasure, Subject
from credence.notifications.tables import Notification
from credence.rulebook import store
from credence.scoring.online import score_subject
from credence.settings import Settings
from credence.translog import verify
from credence.translog.checkpoints import checkpoint
from credence.translog.keys import generate_signer
from tests.disputes.test_disputes import answer, default, open_
from tests.world import build_world, rec, submit


def _city(engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp: Path) -> None:
    ctx = Context(settings=Settings(), engine=engine, sessions=sessions, clock=clock)
    build_demo(
        ctx,
        console=Console(file=io.StringIO()),
        persons=30,
        organisations=5,
        records=300,
        seed=5,
        reset=False,
        env_file=tmp / "demo.env",
        base_url="http://127.0.0.1:8000",
    )


def _expired(sessions: sessionmaker[Session], clock: FixedClock) -> list[tuple[int, str, str]]:
    """(record id, public id, source_ref) of every record whose retention ended now."""
    with sessions() as session:
        book = store.in_force(session, clock.now()).rulebook
        found = erasure.expired(session, book, clock.now(), limit=100_000)
        return [(r.id, r.public_id, r.source_ref) for r in found]


def test_the_sweep_erases_expired_records_everywhere_and_the_log_still_verifies(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _city(engine, sessions, clock, tmp_path)
    # (The demo signs checkpoints with its own key; signatures are tested elsewhere.)
    with sessions.begin() as session:
        checkpoint(session, signer=generate_signer("credence.example/log"), at=clock.now())
    due = _expired(sessions, clock)
    assert len(due) >= 10, "the demo city has records past their retention"
    erased_ids = {record_id for record_id, _, _ in due}
    with sessions() as session:
        edition = store.in_force(session, clock.now())
        owners = session.scalars(
            select(Subject)
            .join(Record, Record.subject_id == Subject.id)
            .where(Record.id.in_(sorted(erased_ids)))
        ).all()
        before = {s.id: score_subject(session, s, edition, clock.now()).total for s in owners}

    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("CREDENCE_LOG_KEY_PATH", str(tmp_path / "cli.key"))
    result = CliRunner().invoke(
        cli, ["retention", "sweep", "--db", url, "--as-of", clock.now().isoformat()]
    )
    assert result.exit_code == 0, result.output
    assert f"retention ended: {len(due):,}" in result.output
    for _, _, source_ref in due:  # the command names no content either
        assert source_ref not in result.output

    with sessions() as session:
        rows = session.execute(
            select(Record.id, *(getattr(Record, c) for c in ERASED_RECORD_COLUMNS)).where(
                Record.id.in_(sorted(erased_ids))
            )
        ).all()
        assert len(rows) == len(due)  # the rows stay: id, subject, place in the log
        assert all(all(value is None for value in row[1:]) for row in rows)
        erasures = session.scalars(select(RecordErasure)).all()
        assert {e.record_id for e in erasures} == erased_ids
        assert {e.reason for e in erasures} == {erasure.RETENTION_ENDED}
        kinds = session.scalar(
            select(func.count())
            .select_from(JournalEntry)
            .where(JournalEntry.kind == EventKind.RECORD_ERASED.value)
        )
        assert kinds == len(due)
        # Nothing left to erase: a second sweep erases nothing.
        assert _expired(sessions, clock) == []
        # The subject's file lists each erasure and its date; its records no longer show.
        owner = owners[0]
        listed = subject_file.erasures(session, owner.id)
        mine = {public for rid, public, _ in due if rid in {e.record_id for e in erasures}}
        assert listed
        assert {e.record_id for e in listed} <= mine
        assert all(e.erased_at == clock.now() and e.seq is not None for e in listed)
        on_file = {v.record_id for v in subject_file.subject_records(session, owner.id)}
        assert not on_file & {e.record_id for e in listed}
        # Scores as of now do not move: an expired record counted zero already.
        edition = store.in_force(session, clock.now())
        after = {s.id: score_subject(session, s, edition, clock.now()).total for s in owners}
        assert after == pytest.approx(before)
        # No notice names an erased record any more.
        texts = session.scalars(select(Notification.text)).all()
        for _, public_id, _ in due:
            assert not any(public_id in t for t in texts)
        report = verify.verify_log(session)
    assert report.ok, report.problems[:5]
    assert report.erased == len(due)

    if engine.dialect.name == "sqlite":
        engine.dispose()
        database = Path(engine.url.database or "")
        stored = database.read_bytes()
        wal = database.with_name(database.name + "-wal")
        stored += wal.read_bytes() if wal.exists() else b""
        for _, _, source_ref in due:
            assert source_ref.encode() not in stored
        # ... while a retained record's content is still there (the search can find it).
        with sessions() as session:
            kept = session.scalar(select(Record.source_ref).where(Record.salt.is_not(None)))
        assert kept is not None
        assert kept.encode() in database.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_erasing_is_idempotent_and_refuses_unknown_reasons(
    sessions: sessionmaker[Session], clock: FixedClock, engine: Engine, tmp_path: Path
) -> None:
    _city(engine, sessions, clock, tmp_path)
    with sessions.begin() as session:
        record = session.scalars(select(Record).order_by(Record.id).limit(1)).one()
        with pytest.raises(ValueError, match="reason"):
            erasure.erase(session, record, reason="because", at=clock.now())
        first = erasure.erase(session, record, reason=erasure.RETENTION_ENDED, at=clock.now())
        again = erasure.erase(
            session, record, reason=erasure.RETENTION_ENDED, at=clock.now() + timedelta(days=1)
        )
        assert again.id == first.id
    with sessions() as session:
        assert verify.verify_log(session).ok


def test_an_erased_record_is_gone_from_disputes_statements_and_retractions(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    """A record erased while a dispute of it was open: the dispute still reads (without
    the record's type), nothing more can be done with the record, and the subject's
    next record is stored after the dispute lapsed. Seen failing before the fixes: a
    dispute's view required a type (a 500), and the reinsertion check read the erased
    record's date (an AttributeError on every record of that subject)."""
    world = build_world(sessions, clock)
    record = default(sessions, world, clock, "L-erased")
    dispute = open_(sessions, world, clock, record)
    with sessions.begin() as session:
        row = session.scalars(select(Record).where(Record.public_id == record)).one()
        erasure.erase(session, row, reason=erasure.RETENTION_ENDED, at=clock.now())
    with sessions() as session:
        view = disputes.get_dispute(session, dispute.dispute_id, clock.now())
        out = DisputeOut.of(view)
    assert out.record_id == record
    assert out.record_type is None
    subject = world.people[0]
    with sessions() as session:
        for attempt in (
            lambda: disputes.add_statement(
                session, subject=subject, record_id=record, text="mine", at=clock.now()
            ),
            lambda: disputes.open_dispute(
                session,
                subject=subject,
                record_id=record,
                reason="again",
                new_information="new",
                rulebook=world.edition.rulebook,
                at=clock.now(),
            ),
            lambda: ledger.retract_record(
                session,
                source=world.sources["bank"],
                record_id=record,
                reason="withdrawn",
                at=clock.now(),
            ),
        ):
            with pytest.raises(NotFound) as refused:
                attempt()
            assert refused.value.code == "record_erased"
            session.rollback()
    # Its dispute lapses at the deadline; the subject's next record is checked against
    # what disputes ended (an erased record among them) and stored.
    clock.set(dispute.deadline + timedelta(days=1))
    later = rec(
        "L-after", subject, "loan_default", clock.now() - timedelta(days=1), decision_ref="D-9"
    )
    assert submit(sessions, world, "bank", clock.now(), later) == ["created"]


def test_a_record_a_dispute_deleted_is_erased_but_for_what_reinsertion_needs(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    """Deleted after a dispute: the sweep erases its content but the source reference
    and content hash, so a resend is still a duplicate and the same content under
    another reference still needs certification; once the reinsertion window closes,
    those go too, and the same content is a new record."""
    world = build_world(sessions, clock)
    person = world.people[0]
    record = default(sessions, world, clock, "L-del")
    dispute = open_(sessions, world, clock, record)
    clock.advance(timedelta(days=2))
    answer(sessions, world, clock, dispute.dispute_id, "deleted")
    clock.advance(timedelta(days=1))
    report = erasure.sweep_retention(engine, sessions, world.edition.rulebook, clock.now())
    assert report.erased == {erasure.DISPUTE_DELETED: 1}
    with sessions() as session:
        row = session.scalars(select(Record).where(Record.public_id == record)).one()
        kept = {c: getattr(row, c) for c in ERASED_RECORD_COLUMNS}
        assert kept["source_ref"] == "L-del"
        assert kept["content_hash"] is not None
        assert all(
            kept[c] is None for c in ERASED_RECORD_COLUMNS if c not in erasure.REINSERTION_MINIMUM
        )
        reason = session.scalar(
            select(RecordErasure.reason).where(RecordErasure.record_id == row.id)
        )
        assert reason == erasure.DISPUTE_DELETED
        assert verify.verify_log(session).ok
    day = clock.now() - timedelta(days=13)
    same = rec("L-del-again", person, "loan_default", day, decision_ref="L-del")
    resent = rec("L-del", person, "loan_default", day, decision_ref="L-del")
    assert submit(sessions, world, "bank", clock.now(), resent) == ["duplicate"]
    assert submit(sessions, world, "bank", clock.now(), same) == [
        "reinsertion_requires_certification"
    ]
    # The window closes: what was kept goes, and the same content is a record of its own.
    clock.advance(erasure.REINSERTION_WINDOW + timedelta(days=1))
    report = erasure.sweep_retention(engine, sessions, world.edition.rulebook, clock.now())
    assert report.finished == 1
    with sessions() as session:
        row = session.scalars(select(Record).where(Record.public_id == record)).one()
        assert all(getattr(row, c) is None for c in ERASED_RECORD_COLUMNS)
        assert verify.verify_log(session).ok
    later = rec("L-del-later", person, "loan_default", day, decision_ref="L-del")
    assert submit(sessions, world, "bank", clock.now(), later) == ["created"]
