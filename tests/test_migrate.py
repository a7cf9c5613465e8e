"""Migrations: from empty to head on every backend, no drift, drift reported."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
)
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.db import NAMING
from credence.journal import JournalEntry
from credence.ledger.tables import Source
from credence.migrate import MIGRATIONS_DIR, alembic_config, check_drift, head_revision, reset
from credence.migrate import upgrade as migrate_upgrade
from credence.models import metadata


def _copy_metadata() -> MetaData:
    copy = MetaData(naming_convention=NAMING)
    for table in metadata.sorted_tables:
        table.to_metadata(copy)
    return copy


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert MIGRATIONS_DIR.parent.name == "credence"
    newest = max(p.name.split("_", 1)[0] for p in (MIGRATIONS_DIR / "versions").glob("0*.py"))
    assert head_revision() == newest
    config = alembic_config("postgresql://u:p%40ss@host/db")
    assert config.get_main_option("sqlalchemy.url") == "postgresql+psycopg://u:p%40ss@host/db"


def test_upgrade_from_empty_creates_every_table(bare_engine: Engine) -> None:
    assert inspect(bare_engine).get_table_names() == []
    migrate_upgrade(bare_engine)
    tables = set(inspect(bare_engine).get_table_names())
    assert tables == set(metadata.tables) | {"alembic_version"}


def test_upgrade_twice_is_harmless(engine: Engine) -> None:
    migrate_upgrade(engine)
    assert check_drift(engine) == []


def test_no_drift_after_upgrade(engine: Engine) -> None:
    assert check_drift(engine) == []


def test_instants_are_bigint(engine: Engine) -> None:
    columns = {c["name"]: c["type"] for c in inspect(engine).get_columns("records")}
    for name in ("occurred_at", "received_at"):
        assert isinstance(columns[name], BigInteger), name


def test_drift_reports_an_empty_database(bare_engine: Engine) -> None:
    problems = check_drift(bare_engine)
    assert problems[0].startswith("database is at revision none (empty)")
    assert "table journal is in the code but not in the database" in problems


def test_drift_reports_altered_metadata(engine: Engine) -> None:
    altered = _copy_metadata()
    altered.tables["subjects"].append_column(Column("nickname", String(40), nullable=True))
    altered.remove(altered.tables["scores"])
    rulebooks = altered.tables["rulebooks"]
    rulebooks.c.version.type = String(64)
    problems = check_drift(engine, metadata=altered)
    assert "column subjects.nickname is in the code but not in the database" in problems
    assert "table scores is in the database but not in the code" in problems
    assert any(p.startswith("column rulebooks.version is VARCHAR(32)") for p in problems)
    assert len(problems) == 3, problems


def test_journal_sequence_autoincrements(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    with sessions.begin() as session:
        for kind in ("a", "b", "c"):
            session.add(JournalEntry(kind=kind, at=clock.now(), data="{}"))
    with sessions() as session:
        rows = session.execute(select(JournalEntry.seq, JournalEntry.kind)).all()
    assert sorted(rows) == [(1, "a"), (2, "b"), (3, "c")]


def test_reset_wipes_data_and_leaves_head(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    with sessions.begin() as session:
        session.add(Source(code="s", name="S", kind="bank", created_at=clock.now()))
    reset(engine)
    with sessions() as session:
        assert session.scalars(select(Source)).all() == []
    assert check_drift(engine) == []


def test_reset_drops_tables_the_code_does_not_know(engine: Engine) -> None:
    leftover = MetaData()
    Table("leftover", leftover, Column("id", Integer, primary_key=True))
    leftover.create_all(engine)
    assert "table leftover is in the database but not in the code" in check_drift(engine)
    reset(engine)
    assert "leftover" not in inspect(engine).get_table_names()
    assert check_drift(engine) == []
