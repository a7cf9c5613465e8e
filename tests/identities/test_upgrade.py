"""A store of revision 0009 upgraded: the subjects it logged keep their digests.

Migration 0011 adds ``subjects.founded_on``. A subject's row is covered by the log, and
the digest its entry lists was made of the eight columns the row had. The store is
written at revision 0009 by hand, with those digests computed here from the bytes
``docs/journal.md`` describes (not by Credence's encoder), then upgraded to the newest
revision: ``credence log verify`` still passes, and again once new subjects (an
organisation with a founding date, a probable duplicate) are registered beside them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from credence.cli.log import app as log_cli
from credence.clock import to_micros
from credence.db import session_factory
from credence.identifiers import SubjectKind, make_credit_code, make_resident_id
from credence.ledger import registry
from credence.ledger.schemas import SubjectIn
from credence.ledger.tables import Source
from credence.migrate import alembic_config, check_drift, upgrade
from credence.rulebook.loader import default_rulebook
from credence.translog.verify import verify_log

AT = datetime(2026, 1, 5, 3, 4, 5, 678901, tzinfo=UTC)
SALT = "0f" * 16
NAME = "王芳 Wang Fang"


def old_bytes(table: str, row: dict[str, Any]) -> bytes:
    """A row's canonical bytes as docs/journal.md writes them."""
    return json.dumps(
        {"row": row, "table": table}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def write(conn: Any, table: str, row: dict[str, Any], seq: int) -> list[Any]:
    """Insert ``row`` as entry ``seq`` wrote it; its listing ``[table, key, digest]``."""
    stored = {**row, "seq": seq, "salt": SALT}
    names = ", ".join(stored)
    conn.execute(
        text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + n for n in stored)})"),
        stored,
    )
    digest = hashlib.sha256(bytes.fromhex(SALT) + old_bytes(table, row)).hexdigest()
    return [table, row["id"], digest]


def entry(conn: Any, seq: int, kind: str, data: dict[str, Any], rows: list[Any]) -> None:
    conn.execute(
        text(
            "INSERT INTO journal (seq, kind, subject_id, at, data, rows) "
            "VALUES (:seq, :kind, NULL, :at, :data, :rows)"
        ),
        {
            "seq": seq,
            "kind": kind,
            "at": to_micros(AT),
            "data": json.dumps(data, sort_keys=True, separators=(",", ":")),
            "rows": json.dumps(rows, separators=(",", ":")),
        },
    )


def store_at_0009(engine: Engine) -> None:
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0009")
    source = {
        "id": 1,
        "code": "civil_registry",
        "name": "市民政局 Civil Registry",
        "kind": "identity_authority",
        "identity_authority_for": "person",
        "created_at": to_micros(AT),
    }
    subject = {
        "id": 1,
        "public_id": "sub_0123456789abcdef0123",
        "kind": "person",
        "identifier": make_resident_id("110105", date(1984, 2, 29), 5),
        "name": NAME,
        "region": "110105",
        "registered_by": 1,
        "registered_at": to_micros(AT),
    }
    with engine.begin() as conn:
        entry(conn, 1, "source_registered", {"source": "civil_registry"}, [])
        listed = write(conn, "sources", source, 1)
        conn.execute(
            text("UPDATE journal SET rows = :rows WHERE seq = 1"), {"rows": json.dumps([listed])}
        )
        listed = write(conn, "subjects", subject, 2)
        entry(conn, 2, "subject_registered", {"subject": subject["public_id"]}, [listed])
        if engine.dialect.name == "postgresql":  # serial columns past the ids written
            for table, column, top in (
                ("sources", "id", 1),
                ("subjects", "id", 1),
                ("journal", "seq", 2),
            ):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), {top})")
                )


def test_subjects_logged_before_0011_keep_their_digests(
    bare_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_at_0009(bare_engine)
    upgrade(bare_engine)
    sessions = session_factory(bare_engine)
    assert check_drift(bare_engine) == []
    with sessions() as session:
        report = verify_log(session)
        assert report.ok, [p.message for p in report.problems]

    # New subjects beside the old: an organisation with its founding date, and a second
    # Wang Fang (same name, birth date and region), flagged.
    with sessions.begin() as session:
        civil = session.get_one(Source, 1)
        business = registry.register_source(
            session,
            code="business_registry",
            name="Business Registry",
            kind="identity_authority",
            record_types=[],
            rulebook=default_rulebook(),
            at=AT,
            identity_authority_for="organisation",
        )
        registry.register_subject(
            session,
            source=business,
            data=SubjectIn(
                kind=SubjectKind.COMPANY,
                identifier=make_credit_code("9", "1", "110105", "MA0000017"),
                name="Shanshui Co.",
                founded_on=date(2001, 3, 14),
            ),
            at=AT,
        )
        registry.register_subject(
            session,
            source=civil,
            data=SubjectIn(
                kind=SubjectKind.PERSON,
                identifier=make_resident_id("110105", date(1984, 2, 29), 77),
                name=NAME,
                region="110105",
            ),
            at=AT,
        )
    with sessions() as session:
        report = verify_log(session)
        assert report.ok, [p.message for p in report.problems]
        flagged = session.execute(text("SELECT subject_id, other_subject_id FROM identity_flags"))
        assert [tuple(r) for r in flagged] == [(3, 1)]

    # And from the command line (no key there: it checks no signature, creates none).
    monkeypatch.setenv("CREDENCE_LOG_KEY_PATH", str(tmp_path / "no.key"))
    url = bare_engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(log_cli, ["verify", "--db", url])
    assert result.exit_code == 0, result.output
