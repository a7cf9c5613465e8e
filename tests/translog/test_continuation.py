"""A store written before migration 0008, upgraded: the old log ends, the new one
continues it, and ``credence log verify`` checks both. On every backend.

The store (``tests/data/pre_0008/store.sqlite``, revision 0007) was written by the code
of commit ff96c12 (see ``make.py`` there): a small demo city and every step of due
process, two checkpoints signed with the throwaway key kept next to it, and a few
entries after the last one. On SQLite the file itself is upgraded; on PostgreSQL a new
schema is brought to revision 0007, every table's rows are copied into it, and it is
upgraded.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic import command
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, MetaData, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from credence import journal
from credence.clock import FixedClock
from credence.db import make_engine, session_factory
from credence.journal import EventKind, JournalEntry
from credence.ledger import service as ledger
from credence.ledger.tables import Record, Source, Subject
from credence.migrate import alembic_config, check_drift, upgrade
from credence.models import metadata
from credence.rulebook import store
from credence.translog import continuation
from credence.translog.checkpoints import checkpoint, checkpoints
from credence.translog.keys import LogKey, LogSigner, generate_signer, signer_of
from credence.translog.tables import LegacyCheckpoint, LegacyLeaf
from credence.translog.tree import clear_cache
from credence.translog.verify import verify_log

DATA = Path(__file__).parents[1] / "data" / "pre_0008"
FACTS: dict[str, Any] = json.loads((DATA / "store.json").read_text(encoding="utf-8"))
NEW_ORIGIN = "credence.test/log-after-0008"
"""The origin the migrated log is signed under (the old one's was ``FACTS["origin"]``)."""


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    store.clear_cache()
    clear_cache()
    yield
    store.clear_cache()
    clear_cache()


def log_private_key() -> Ed25519PrivateKey:
    """The throwaway key the old log's checkpoints were signed with."""
    pem = (DATA / FACTS["key_file"]).read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def new_signer() -> LogSigner:
    return signer_of(log_private_key(), NEW_ORIGIN)


def new_key() -> LogKey:
    return new_signer().public


# --- the store before the upgrade -------------------------------------------------------


@pytest.fixture
def old_store(backend: str, db_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on this test's copy of the old store, at revision 0007."""
    source = tmp_path / "old.sqlite"
    shutil.copyfile(DATA / "store.sqlite", source)
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{source}")
    else:
        engine = make_engine(db_url)
        copy_into_postgres(source, engine)
    yield engine
    engine.dispose()


def copy_into_postgres(source: Path, engine: Engine) -> None:
    """Bring the (empty) schema of ``engine`` to revision 0007 and copy every table's
    rows from the SQLite file ``source`` into it, parents first; then set each serial
    column's sequence past the largest value copied."""
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0007")
    sqlite = make_engine(f"sqlite:///{source}")
    old, new = MetaData(), MetaData()
    old.reflect(sqlite)
    new.reflect(engine)
    assert set(old.tables) == set(new.tables)
    try:
        with sqlite.connect() as src, engine.begin() as dst:
            for table in new.sorted_tables:
                if table.name == "alembic_version":
                    continue
                copied = old.tables[table.name]
                assert set(copied.c.keys()) == set(table.c.keys()), table.name
                order = list(copied.primary_key.columns) or list(copied.c)
                rows = [dict(r) for r in src.execute(select(copied).order_by(*order)).mappings()]
                if rows:
                    dst.execute(table.insert(), rows)
                for column in table.primary_key.columns:
                    sequence = dst.scalar(
                        text("SELECT pg_get_serial_sequence(:t, :c)"),
                        {"t": table.name, "c": column.name},
                    )
                    if sequence is not None:
                        dst.execute(
                            text(
                                f'SELECT setval(:s, coalesce(max("{column.name}"), 1), '
                                f'max("{column.name}") IS NOT NULL) FROM "{table.name}"'
                            ),
                            {"s": sequence},
                        )
    finally:
        sqlite.dispose()


def covered_counts(engine: Engine) -> dict[str, int]:
    """Rows in each covered table (0 for one the store does not have yet)."""
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        return {
            table.name: (conn.scalar(select(func.count()).select_from(table)) or 0)
            if table.name in present
            else 0
            for table, _ in journal.covered_tables(metadata)
        }


def committed_file() -> closing[sqlite3.Connection]:
    """The committed store, read-only (closed on leaving the ``with``)."""
    return closing(sqlite3.connect(f"file:{DATA / 'store.sqlite'}?mode=ro", uri=True))


# --- the upgrade -------------------------------------------------------------------------


def test_the_committed_store_is_an_old_one() -> None:
    with committed_file() as db:
        texts = [row[0] for row in db.execute("SELECT data FROM journal")]
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0007",)]
        assert db.execute("SELECT count(*) FROM journal").fetchone() == (FACTS["journal_entries"],)
        assert db.execute("SELECT count(*) FROM checkpoints").fetchone() == (FACTS["checkpoints"],)
    assert FACTS["alembic_revision"] == "0007"
    assert FACTS["checkpoints"] == 2
    # Entries after the last checkpoint: the old log's unsigned tail.
    assert FACTS["journal_entries"] > FACTS["last_checkpoint_size"]
    assert FACTS["tree_size"] == FACTS["journal_entries"]
    # What the migrated journal must no longer hold was there before.
    assert FACTS["content"]
    assert [c for c in FACTS["content"] if not any(c in t for t in texts)] == []
    assert (DATA / "store.sqlite").stat().st_size < 2_000_000


def test_the_old_log_is_carried_into_the_new_one(
    old_store: Engine, backend: str, request: pytest.FixtureRequest
) -> None:
    before = covered_counts(old_store)
    rows_before = sum(before.values())
    assert before["records"] > 200
    assert before["api_keys"] > 0

    upgrade(old_store)

    sessions = session_factory(old_store)
    assert check_drift(old_store) == []
    with sessions() as session:
        report = verify_log(session, key=new_key())
    assert report.ok, report.problems
    assert report.signatures_checked
    assert report.legacy_entries == FACTS["journal_entries"]
    assert report.rows == rows_before
    assert report.entries == rows_before + 1

    # The old log, kept as leaf hashes and checkpoints.
    with sessions() as session:
        legacy = session.scalars(select(LegacyCheckpoint).order_by(LegacyCheckpoint.id)).all()
        assert [cp.origin for cp in legacy] == [FACTS["origin"]] * FACTS["checkpoints"]
        assert legacy[-1].tree_size == FACTS["last_checkpoint_size"]
        assert legacy[-1].signed_note == FACTS["last_checkpoint_note"]
        leaves = session.scalar(select(func.count()).select_from(LegacyLeaf))
        assert leaves == FACTS["journal_entries"]
        assert checkpoints(session) == []

    # The new journal: the continuation, then one carried_over entry per row.
    with sessions() as session:
        entries = session.execute(
            select(
                JournalEntry.seq, JournalEntry.kind, JournalEntry.data, JournalEntry.rows
            ).order_by(JournalEntry.seq)
        ).all()
    first = entries[0]
    assert first.kind == EventKind.LOG_CONTINUED.value
    assert orjson.loads(first.data) == {
        "checkpoint": FACTS["last_checkpoint_note"],
        "entries": FACTS["journal_entries"],
        "origin": FACTS["origin"],
        "root": FACTS["tree_root"],
    }
    assert {e.kind for e in entries[1:]} == {EventKind.CARRIED_OVER.value}
    assert len(entries) - 1 == rows_before
    # Each lists exactly one row, of the table it names.
    for entry in entries[1:]:
        (listed,) = orjson.loads(entry.rows)
        assert listed[0] == orjson.loads(entry.data)["table"]

    # No record content is left in the journal.
    journal_text = "\n".join(f"{e.data}\n{e.rows}" for e in entries)
    assert [c for c in FACTS["content"] if c in journal_text] == []

    # Every covered row kept, with a seq and a salt, written by a carried_over entry.
    carried = {e.seq for e in entries[1:]}
    with old_store.connect() as conn:
        for table, _ in journal.covered_tables(metadata):
            rows = conn.execute(select(table.c.seq, table.c.salt)).all()
            assert len(rows) == before[table.name], table.name
            assert all(seq in carried for seq, _ in rows), table.name
            assert all(salt is not None and len(salt) == 32 for _, salt in rows), table.name
        seqs = [
            seq
            for table, _ in journal.covered_tables(metadata)
            for (seq,) in conn.execute(select(table.c.seq)).all()
        ]
    assert sorted(seqs) == sorted(carried)  # one row per entry, one entry per row

    # The records the old journal copied are still there, content and all.
    with sessions() as session:
        stored = dict(
            session.execute(
                select(Record.public_id, Record.source_ref).where(
                    Record.public_id.in_([r["public_id"] for r in FACTS["records"]])
                )
            ).all()
        )
    assert stored == {r["public_id"]: r["source_ref"] for r in FACTS["records"]}

    # A second upgrade changes nothing.
    upgrade(old_store)
    with sessions() as session:
        again = session.execute(
            select(func.count(), func.max(JournalEntry.seq)).select_from(JournalEntry)
        ).one()
        assert tuple(again) == (len(entries), entries[-1].seq)
        assert verify_log(session, key=new_key()).ok
    assert covered_counts(old_store) == before
    assert check_drift(old_store) == []


def test_the_old_checkpoints_signatures_are_checked(
    old_store: Engine, backend: str, request: pytest.FixtureRequest
) -> None:
    """With another key, the earlier log's checkpoints fail (the new log has none yet,
    so nothing else does); with the old key under its old name, they pass too."""
    upgrade(old_store)
    with session_factory(old_store)() as session:
        stranger = verify_log(session, key=generate_signer(NEW_ORIGIN).public)
        as_before = verify_log(session, key=signer_of(log_private_key(), FACTS["origin"]).public)
    assert not stranger.ok
    assert {p.kind for p in stranger.problems} == {"legacy"}
    assert len(stranger.problems) == FACTS["checkpoints"]
    assert all("earlier log: checkpoint" in p.message for p in stranger.problems)
    assert as_before.ok, as_before.problems


def test_the_log_goes_on_after_the_upgrade(
    old_store: Engine, backend: str, request: pytest.FixtureRequest, clock: FixedClock
) -> None:
    upgrade(old_store)
    sessions = session_factory(old_store)
    signer = new_signer()
    with sessions.begin() as session:
        first = checkpoint(session, signer=signer, at=clock.now())
    with sessions() as session:
        total = session.scalar(select(func.count()).select_from(JournalEntry))
        report = verify_log(session, key=signer.public)
    assert first.tree_size == total
    assert first.origin == NEW_ORIGIN
    assert report.ok, report.problems
    assert (report.committed, report.pending) == (total, 0)

    # A record submitted through the service, after the upgrade.
    clock.advance(timedelta(days=1))
    ref = "AFTER-0008-1"
    with sessions.begin() as session:
        subject = session.scalars(
            select(Subject).where(Subject.kind == "person").order_by(Subject.id)
        ).first()
        assert subject is not None
        results = ledger.submit_records(
            session,
            source=session.scalars(select(Source).where(Source.code == "city_bank")).one(),
            records=ledger.parse_records(
                [
                    {
                        "source_ref": ref,
                        "subject_id": subject.public_id,
                        "record_type": "loan_default",
                        "occurred_at": (clock.now() - timedelta(days=3)).isoformat(),
                        "decision_ref": "AFTER-0008-D1",
                    }
                ]
            ),
            rulebook=store.in_force(session, clock.now()).rulebook,
            at=clock.now(),
        )
    assert [r.status for r in results] == ["created"]
    with sessions() as session:
        row = session.scalars(select(Record).where(Record.source_ref == ref)).one()
        entry = session.get(JournalEntry, row.seq)
        assert entry is not None
        assert entry.kind == EventKind.RECORD.value
        assert ref not in entry.data
        assert verify_log(session, key=signer.public).ok
    with sessions.begin() as session:
        second = checkpoint(session, signer=signer, at=clock.now())
    assert second.tree_size > first.tree_size
    with sessions() as session:
        report = verify_log(session, key=signer.public)
    assert report.ok, report.problems
    assert (report.checkpoints, report.pending) == (2, 0)
    assert report.legacy_entries == FACTS["journal_entries"]
    # The carried-over record rows are still proven after new entries.
    assert report.rows == sum(covered_counts(old_store).values())


def test_a_changed_legacy_leaf_fails_verify(
    old_store: Engine, backend: str, request: pytest.FixtureRequest
) -> None:
    upgrade(old_store)
    sessions = session_factory(old_store)
    with sessions.begin() as session:
        session.execute(
            text("UPDATE legacy_leaves SET leaf_hash = :h WHERE leaf_index = :i"),
            {"h": b"\x01" * 32, "i": 7},
        )
    with sessions() as session:
        report = verify_log(session, key=new_key())
    assert not report.ok
    assert {p.kind for p in report.problems} == {"legacy"}
    messages = [p.message for p in report.problems]
    # Both old checkpoints cover leaf 7, and so does the tree head the new log records.
    assert sum("do not give checkpoint" in m for m in messages) == FACTS["checkpoints"]
    assert any("do not give the tree head" in m for m in messages)


def test_a_failed_upgrade_leaves_the_old_store_as_it_was(
    old_store: Engine, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upgrade fails at its last step (carrying the rows over): nothing of it stays,
    so it can be run again once the cause is fixed."""
    before = schema_of(old_store)

    def fail(connection: object, metadata: object) -> int:
        raise RuntimeError("carry_over failed")

    monkeypatch.setattr(continuation, "carry_over", fail)
    with pytest.raises((RuntimeError, IntegrityError)):
        upgrade(old_store)
    assert schema_of(old_store) == before
    with old_store.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0007"
        assert conn.scalar(text("SELECT count(*) FROM journal")) == FACTS["journal_entries"]
        assert conn.scalar(text("SELECT count(*) FROM checkpoints")) == FACTS["checkpoints"]


def schema_of(engine: Engine) -> dict[str, list[str]]:
    """Each table's columns."""
    with engine.connect() as conn:
        found = inspect(conn)
        return {t: [c["name"] for c in found.get_columns(t)] for t in found.get_table_names()}
