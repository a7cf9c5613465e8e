"""The command line end to end on a small demo city (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from credence.audit.tables import AccessEntry
from credence.cli import app
from credence.context import open_context
from credence.ledger.tables import Record, Subject
from credence.scoring.tables import ScoreSnapshot
from credence.tiers.tables import SubjectTier

runner = CliRunner()
WIDE = {
    "COLUMNS": "200",
    # The demo signs a log checkpoint: keep its key out of the working tree.
    "CREDENCE_LOG_KEY_PATH": str(Path(tempfile.gettempdir()) / f"credence-cli-{os.getpid()}.key"),
}


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def issued(out: str) -> tuple[str, str]:
    """The key and the prefix ``keys create`` and ``keys rotate`` print."""
    key = re.search(r"^(cr_[a-z]+_\S+)$", out, re.M)
    prefix = re.search(r"^prefix\s+(\S+)\s", out, re.M)
    assert key is not None, out
    assert prefix is not None, out
    return key.group(1), prefix.group(1)


@pytest.fixture
def city(bare_engine: object, db_url: str, tmp_path: Path) -> dict[str, str]:
    """A demo city of 120 persons; returns the variables of its demo.env."""
    env_file = tmp_path / "demo.env"
    out = run(
        "demo",
        "--db",
        db_url,
        "--subjects",
        "120",
        "--records",
        "2400",
        "--no-serve",
        "--env-file",
        str(env_file),
    )
    assert "Tier distribution" in out
    assert "Most frequent record types" in out
    assert "curl -s -X POST" in out
    values = dict(re.findall(r"^export (\w+)=(.*)$", env_file.read_text(), re.M))
    values["DB"] = db_url
    return values


def test_demo_builds_scores_and_issues_keys(city: dict[str, str]) -> None:
    ctx = open_context(city["DB"])
    with ctx.sessions() as session:
        assert session.scalar(select(func.count(Subject.id))) == 130
        assert session.scalar(select(func.count(Record.id))) == 2400
        assert session.scalar(select(func.count(ScoreSnapshot.subject_id))) == 130
        assert session.scalar(select(func.count(SubjectTier.subject_id))) == 130
    for var in (
        "CREDENCE_OPERATOR_KEY",
        "CREDENCE_PARTY_KEY",
        "CREDENCE_SUBJECT_KEY",
        "CREDENCE_SOURCE_KEY",
        "CREDENCE_REVIEWER_KEY",
        "RESTRICTED_SUBJECT",
    ):
        assert city[var]
    ctx.engine.dispose()


def test_a_second_demo_needs_reset(city: dict[str, str], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "demo",
            "--db",
            city["DB"],
            "--subjects",
            "50",
            "--no-serve",
            "--env-file",
            str(tmp_path / "x.env"),
        ],
        env=WIDE,
    )
    assert result.exit_code == 1
    assert "--reset" in result.output


def test_explain_score_and_rulebook_commands(city: dict[str, str]) -> None:
    out = run("explain", city["RESTRICTED_SUBJECT"], "--db", city["DB"], "--limit", "500")
    assert city["RESTRICTED_SUBJECT"] in out
    assert "Main factors" in out
    assert re.search(r"score \d+\.\d tier [A-D]+", out)
    out = run("score", "--db", city["DB"])
    assert "scored 130 subjects" in out
    out = run("rulebook", "history", "--db", city["DB"])
    assert "2026.5" in out
    out = run("rulebook", "show", "--db", city["DB"])
    assert "air_travel" in out


def test_keys_are_issued_rotated_and_revoked_with_an_audit_trail(
    city: dict[str, str], tmp_path: Path
) -> None:
    out = run("keys", "create", "--role", "operator", "--name", "Ops 2", "--db", city["DB"])
    key, prefix = issued(out)
    assert key.startswith("cr_op_")
    assert prefix == key[:12]
    assert re.search(r"^expires\s+never$", out, re.M)
    new, new_prefix = issued(run("keys", "rotate", prefix, "--db", city["DB"]))
    assert new.startswith("cr_op_")
    assert new != key
    run("keys", "revoke", new_prefix, "--db", city["DB"])
    result = runner.invoke(app, ["keys", "revoke", new_prefix, "--db", city["DB"]], env=WIDE)
    assert result.exit_code == 1
    ctx = open_context(city["DB"])
    with ctx.sessions() as session:
        actions = list(session.scalars(select(AccessEntry.action).order_by(AccessEntry.id)))
    assert actions[-3:] == ["key_issued", "key_rotated", "key_revoked"]
    ctx.engine.dispose()


def test_import_stores_a_good_file_and_refuses_a_bad_one(
    city: dict[str, str], tmp_path: Path
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(
        "source_ref,subject_id,record_type,occurred_at\n"
        f"cli-1,{city['CLEAR_SUBJECT']},loan_repaid,2026-01-02T00:00:00Z\n"
        f"cli-2,{city['CLEAR_SUBJECT']},loan_repaid,2026-01-03T00:00:00Z\n"
    )
    out = run("import", str(good), "--source", "city_bank", "--db", city["DB"])
    assert "2" in out
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "source_ref,subject_id,record_type,occurred_at\n"
        f"cli-3,{city['CLEAR_SUBJECT']},loan_repaid,2026-01-04T00:00:00Z\n"
        f"cli-4,{city['CLEAR_SUBJECT']},attended_protest,2026-01-04T00:00:00Z\n"
    )
    result = runner.invoke(
        app, ["import", str(bad), "--source", "city_bank", "--db", city["DB"]], env=WIDE
    )
    assert result.exit_code == 1
    assert "unknown_record_type" in result.output
    ctx = open_context(city["DB"])
    with ctx.sessions() as session:
        refs = set(
            session.scalars(select(Record.source_ref).where(Record.source_ref.like("cli-%")))
        )
    assert refs == {"cli-1", "cli-2"}
    ctx.engine.dispose()
