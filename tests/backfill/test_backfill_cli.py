"""``credence backfill``: an operator approves a run from the command line and lists the
runs, on SQLite and PostgreSQL; the approval is journalled and the log verifies."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from tests.cli.conftest import Invoke
from tests.cli.conftest import cli as cli  # the fixture, re-exported
from tests.due_process import journal_kinds
from tests.world import World


def test_approve_prints_the_run_id_and_list_shows_the_scope(
    cli: Invoke, sessions: sessionmaker[Session], world: World
) -> None:
    approved = cli(
        "backfill", "approve", "--source", "bank", "--from", "2019-01-01",
        "--until", "2026-01-01", "--expected", "120000",
    )  # fmt: skip
    assert approved.exit_code == 0, approved.output
    [run] = re.findall(r"\bbkf_\w+", approved.output)
    listing = cli("backfill", "list", columns=200)
    assert listing.exit_code == 0, listing.output
    assert run in listing.output
    assert "bank" in listing.output
    assert "120000" in listing.output.replace(",", "")
    [shown] = json.loads(cli("backfill", "list", "--json").output)
    assert shown["run_id"] == run
    assert shown["source"] == "bank"
    assert datetime.fromisoformat(shown["occurred_from"]) == datetime(2019, 1, 1, tzinfo=UTC)
    assert datetime.fromisoformat(shown["occurred_until"]) == datetime(2026, 1, 1, tzinfo=UTC)
    assert shown["expected_records"] == 120000
    assert shown["exempted"] == 0
    assert journal_kinds(sessions)["backfill_approved"] == 1
    verified = cli("log", "verify")
    assert verified.exit_code == 0, verified.output


def test_approve_refuses_what_cannot_be_a_run(
    cli: Invoke, sessions: sessionmaker[Session], world: World
) -> None:
    def approve(source: str, since: str, until: str, expected: str) -> tuple[int, str]:
        done = cli(
            "backfill", "approve", "--source", source, "--from", since, "--until", until,
            "--expected", expected,
        )  # fmt: skip
        return done.exit_code, done.output

    code, output = approve("nowhere", "2019-01-01", "2020-01-01", "10")
    assert code == 1
    assert "unknown_source" in output
    code, output = approve("bank", "2020-01-01", "2019-01-01", "10")
    assert code == 1
    assert "backfill_period_empty" in output
    code, output = approve("bank", "2019-01-01", "2020-01-01", "0")
    assert code == 1
    assert "backfill_volume_invalid" in output
    assert json.loads(cli("backfill", "list", "--json").output) == []
    assert journal_kinds(sessions)["backfill_approved"] == 0
